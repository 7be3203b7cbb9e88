"""Every file in scenarios/ and every example in examples/ runs end to end at a small size
(a smoke test: the statistical checks live in test_simulate.py and test_fit.py)."""

import json
import runpy
import sys
from pathlib import Path

import pandas as pd
import pytest
import xarray as xr

from twinsim.run import SUMMARY_COLUMNS, run_scenario, write_outputs
from twinsim.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = sorted((ROOT / "scenarios").glob("*.yaml"))
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
SMALL = ["replicates=8", "model.inference.chains=1", "model.inference.warmup=60", "model.inference.draws=60"]


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_scenario_runs_small(path, tmp_path, quiet_convergence):
    raw_has_model = "model:" in path.read_text()
    overrides = SMALL if raw_has_model else SMALL[:1]
    sc = load_scenario(path, overrides=overrides)
    result = run_scenario(sc)
    out = write_outputs(result, tmp_path / "out")
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary.columns[: 3]) == ["design", "hazard_ratio", "drift"]
    assert set(SUMMARY_COLUMNS) <= set(summary.columns)
    n_points = len(sc.designs)
    for values in result.grid.dims.values():
        n_points *= len(values)
    assert len(summary) == n_points
    ds = xr.open_dataset(out / "results.nc")
    assert ds.sizes["replicate"] == 8 and "provenance" in ds.attrs
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["seed"] == sc.seed
    for name in ("report.html", "report.md", "scenario.yaml"):
        assert (out / name).is_file()


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_runs(path, monkeypatch, tmp_path, quiet_convergence):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [str(path), "--small"])
    runpy.run_path(str(path), run_name="__main__")
