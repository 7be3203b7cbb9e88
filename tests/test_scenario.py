"""The scenario contract (shared/docs/scenario-spec.md): parsing, overrides, grid, errors."""

from pathlib import Path

import pytest
import yaml

from twinsim.errors import ScenarioError
from twinsim.scenario import apply_override, build_grid, load_scenario, parse_scenario, scenario_reference

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "scenarios" / "actg175_hybrid_control.yaml"


def _raw():
    return yaml.safe_load(DEMO.read_text())


def test_spec_example_parses_with_the_contract_meaning():
    sc = load_scenario(DEMO)
    assert sc.seed == 175 and sc.replicates == 2000
    assert sc.historical.data == "builtin:actg175" and sc.historical.filter == {"arms": 0}
    assert sc.trial.cut.events == 200 and sc.trial.accrual.duration == 18
    assert sc.trial.dropout.rate == pytest.approx(-__import__("math").log(0.95) / 12)
    assert sc.effect.hazard_ratio == (1.0, 0.7) and sc.drift.hazard_ratio == (1.0, 1.25)
    pp = sc.design("hybrid_power_prior")
    assert pp.method == "power_prior" and pp.synthetic_weight == 0.5
    assert sc.design("rct").method == "none"
    assert sc.base_dir == DEMO.parent


def test_grid_dimensions_and_points():
    sc = load_scenario(DEMO)
    grid = build_grid(sc)
    assert list(grid.dims) == ["hazard_ratio", "drift", "designs.hybrid_pooled.real_control"]
    assert grid.shape == (2, 2, 3)
    idx, point = list(grid)[-1]
    assert idx == (1, 1, 2)
    assert point.effect.hazard_ratio == (0.7,) and point.drift.hazard_ratio == (1.25,)
    assert point.design("hybrid_pooled").real_control == 150
    assert isinstance(point.design("hybrid_pooled").real_control, int)


def test_set_overrides_parse_yaml_and_address_designs_by_name():
    sc = load_scenario(DEMO, overrides=["effect.hazard_ratio=[1.0,0.8]", "designs.rct.real_control=200",
                                        "trial.dropout.probability=0.1"], replicates=10, seed=5)
    assert sc.effect.hazard_ratio == (1.0, 0.8)
    assert sc.design("rct").real_control == 200
    assert sc.trial.dropout.probability == 0.1 and sc.trial.dropout.by == 12
    assert sc.replicates == 10 and sc.seed == 5
    raw = apply_override({"a": 1}, "trial.cut.time", 3)
    assert raw == {"a": 1, "trial": {"cut": {"time": 3}}}


@pytest.mark.parametrize(
    "override, words",
    [
        ("trial.accrul.duration=3", ["trial.accrul", "unknown field 'accrul'", "did you mean 'accrual'"]),
        ("trial.n_treatment=-1", ["trial.n_treatment", "greater than or equal to 1", "-1"]),
        ("designs.rct.method=bogus", ["designs[rct].method", "'pool', 'power_prior', 'none', 'procova', 'ancova' or 'adjusted'", "bogus"]),
        ("designs.nope.real_control=1", ["no entry named 'nope'", "rct, hybrid_pooled"]),
        ("effect.hazard_ratio=[1,-2]", ["effect.hazard_ratio", "positive"]),
        ("model.outcome=gamma", ["model.outcome", "is unknown", "piecewise_exponential, lognormal"]),
        ("designs.hybrid_power_prior.a0=null", ["designs[hybrid_power_prior]", "needs `a0`"]),
        ("trial.cut.time=12", ["trial.cut", "exactly one of `events` or `time`"]),
        ("sweep={trial.foo: [1]}", ["sweep 'trial.foo'", "sweepable"]),
        ("designs.rct.synthetic_control=10", ["designs[rct]", "`method` is required"]),
        ("control={distribution: exponential, median: 12}", ["either `control`", "not both"]),
        ("analysis.alternative=greater", ["analysis.alternative", "two-sided"]),
    ],
)
def test_bad_scenarios_name_the_field_and_the_fix(override, words):
    with pytest.raises(ScenarioError) as err:
        load_scenario(DEMO, overrides=[override])
    msg = str(err.value)
    for w in words:
        assert w in msg, (w, msg)
    assert "\n" not in msg.strip()  # one paragraph


def test_malformed_files(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nseed: [1,\n")
    with pytest.raises(ScenarioError, match="not valid YAML at line"):
        load_scenario(bad)
    bad.write_text("- a list\n")
    with pytest.raises(ScenarioError, match="mapping"):
        load_scenario(bad)
    with pytest.raises(ScenarioError, match="does not exist"):
        load_scenario(tmp_path / "missing.yaml")
    with pytest.raises(ScenarioError, match="dotted.path=VALUE"):
        load_scenario(DEMO, overrides=["replicates"])


def test_control_scenario_and_planning_units():
    sc = parse_scenario({
        "name": "p", "seed": 1, "control": {"distribution": "weibull", "shape": 2.0, "median": 10},
        "trial": {"n_treatment": 10, "accrual": {"rate": 5}, "cut": {"time": 20}},
        "designs": [{"name": "rct", "real_control": 10}],
    })
    # Weibull median m = scale (log 2)^(1/k)  ->  scale = 10 / sqrt(log 2)
    import math
    assert math.exp(sc.control.log_scale) * math.log(2) ** 0.5 == pytest.approx(10)


def test_scenario_reference_doc_is_current():
    doc = (ROOT / "docs" / "scenario-reference.md").read_text()
    assert doc.strip() == scenario_reference().strip(), "regenerate: twinsim reference > docs/scenario-reference.md"


def test_reference_command_prints_the_doc():
    from click.testing import CliRunner

    from twinsim.cli import main

    out = CliRunner().invoke(main, ["reference"])
    assert out.exit_code == 0 and out.output.strip() == scenario_reference().strip()
