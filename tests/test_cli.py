"""Tests of the ``twinsim`` command line (smoke and contract tests, no model fits).

Success paths use the planning scenario (an assumed control, so no NUTS) at 200
replicates; every successful run has the same array shapes so the JAX kernel compiles
once per test session.  Error paths stop before any simulation.  click >= 8.2 keeps
``result.stderr`` apart from ``result.stdout``; ``result.output`` holds both.
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import pandas as pd
import pytest
import xarray as xr
import yaml
from click.testing import CliRunner

import twinsim.run
import twinsim.scenario
from twinsim import __version__
from twinsim.cli import main
from twinsim.errors import DataError, StatisticalWarning

PLANNING = Path(__file__).resolve().parents[1] / "scenarios" / "planning_schoenfeld.yaml"
# every successful run uses these, so the compiled kernel is reused across tests
FAST = ["--replicates", "200", "--set", "trial.n_treatment=250", "--quiet", "--no-report"]
WITH_REPORT = FAST[:-1]
CONTRACT_COLUMNS = ["design", "hazard_ratio", "drift", "replicates", "rejection_rate", "mcse",
                    "mean_estimate", "bias", "rmse", "coverage"]


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Three successful runs: default --out, the same seed again, another seed with the report."""
    base = tmp_path_factory.mktemp("runs")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(base)
        first = invoke("run", PLANNING, *FAST)  # default --out results/<name>
    default_out = base / "results" / "planning-schoenfeld"
    again = invoke("run", PLANNING, *FAST, "--out", base / "again")
    other = invoke("run", PLANNING, *WITH_REPORT, "--seed", 7, "--out", base / "other")
    return {"first": (first, default_out), "again": (again, base / "again"), "other": (other, base / "other")}


# --------------------------------------------------------------------------- success paths


def test_run_writes_the_contract_outputs(runs):
    result, out = runs["first"]
    assert result.exit_code == 0, result.output
    assert {"summary.csv", "results.nc", "scenario.yaml", "provenance.json"} <= set(snapshot(out))

    summary = pd.read_csv(out / "summary.csv")
    assert list(summary.columns[: len(CONTRACT_COLUMNS)]) == CONTRACT_COLUMNS
    assert len(summary) == 2 and set(summary["hazard_ratio"]) == {1.0, 0.7}
    assert (summary["replicates"] == 200).all()

    resolved = yaml.safe_load((out / "scenario.yaml").read_text())
    assert resolved["trial"]["n_treatment"] == 250 and resolved["replicates"] == 200

    prov = json.loads((out / "provenance.json").read_text())
    assert prov["seed"] == 20240601 and prov["replicates"] == 200
    with xr.open_dataset(out / "results.nc") as ds:
        assert ds.sizes["replicate"] == 200 and ds.sizes["design"] == 1

    # the compact table and the folder are printed on stdout; nothing on stderr with --quiet
    assert "rejection rate" in result.stdout and "rct" in result.stdout
    assert "Wrote results/planning-schoenfeld/" in result.stdout
    assert "Error" not in result.output and "Warning" not in result.output


def test_same_seed_same_bytes_other_seed_other_numbers(runs):
    first, again, other = (runs[k][1] / "summary.csv" for k in ("first", "again", "other"))
    assert runs["again"][0].exit_code == 0 and runs["other"][0].exit_code == 0
    assert first.read_bytes() == again.read_bytes()
    a, b = pd.read_csv(first), pd.read_csv(other)
    assert not a["mean_estimate"].equals(b["mean_estimate"])


def test_run_writes_the_report_unless_told_not_to(runs):
    result, out = runs["other"]
    assert result.exit_code == 0, result.output
    assert (out / "report.html").is_file() and f"Report: {out / 'report.html'}" in result.stdout
    assert not (runs["first"][1] / "report.html").exists()


def test_rerun_replaces_an_earlier_output(runs, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(runs["first"][1], out)
    result = invoke("run", PLANNING, *FAST, "--seed", 7, "--out", out)
    assert result.exit_code == 0, result.output
    assert (out / "summary.csv").read_bytes() == (runs["other"][1] / "summary.csv").read_bytes()
    assert json.loads((out / "provenance.json").read_text())["seed"] == 7
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no .partial- / .old- left


def test_datasets_lists_the_builtin_data():
    result = invoke("datasets")
    assert result.exit_code == 0, result.output
    for name in ("actg175", "gbsg2", "lung"):
        assert name in result.stdout


def test_version():
    result = invoke("--version")
    assert result.exit_code == 0 and __version__ in result.stdout


def test_warnings_raised_during_a_run_are_printed(runs, tmp_path, monkeypatch):
    real = twinsim.run.run_scenario

    def warn_then_run(scenario, **kwargs):
        assert callable(kwargs.get("progress"))
        warnings.warn("only 12 events for 5 parameters", StatisticalWarning)
        return real(scenario, **kwargs)

    monkeypatch.setattr(twinsim.run, "run_scenario", warn_then_run)
    result = invoke("run", PLANNING, *FAST, "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert "Warning: only 12 events for 5 parameters" in result.stderr


# --------------------------------------------------------------------------- error paths

HISTORICAL_SCENARIO = """\
name: csv-check
seed: 1
replicates: 10
historical: {data: hist.csv, duration: time, event: event}
model: {outcome: exponential, inference: {chains: 1, warmup: 10, draws: 10}}
trial: {n_treatment: 50, accrual: {duration: 12}, cut: {events: 30}}
designs: [{name: rct, real_control: 50}]
"""
BAD_CSV = {  # the data errors fire while loading, before any fit
    "missing_column": ("time,status\n5,1\n8,0\n", ["historical.event", "'event'", "status"]),
    "nan": ("time,event\n5,1\n,0\n9,1\n", ["historical.duration", "missing"]),
    "negative_time": ("time,event\n5,1\n-3,0\n", ["historical.duration", "-3"]),
    "event_1_2": ("time,event\n5,1\n8,2\n9,1\n", ["historical.event", "0/1"]),
}


def historical_scenario(tmp_path: Path, csv: str) -> Path:
    (tmp_path / "hist.csv").write_text(csv)
    path = tmp_path / "sc.yaml"
    path.write_text(HISTORICAL_SCENARIO)
    return path


ERRORS = {
    "missing_file": (lambda d: ["run", d / "nope.yaml"], ["nope.yaml", "does not exist"]),
    "invalid_yaml": (lambda d: ["run", _write(d / "bad.yaml", "name: [unclosed\nseed: 1\n")], ["not valid YAML", "line"]),
    "unknown_key": (lambda d: ["run", PLANNING, "--set", "trial.accrul.duration=3"], ["'accrul'", "'accrual'"]),
    "negative_n_treatment": (lambda d: ["run", PLANNING, "--set", "trial.n_treatment=-5"], ["trial.n_treatment", "-5"]),
    "unknown_method": (lambda d: ["run", PLANNING, "--set", "designs.rct.method=bogus"], ["method", "bogus"]),
    "set_without_equals": (lambda d: ["run", PLANNING, "--set", "trial.n_treatment"], ["trial.n_treatment", "dotted.path=VALUE"]),
    "unknown_design": (lambda d: ["run", PLANNING, "--set", "designs.nope.real_control=3"], ["'nope'", "rct"]),
    "fit_control_scenario": (lambda d: ["fit", PLANNING], ["planning scenario", "nothing to fit"]),
    **{f"csv_{k}": (lambda d, csv=csv: ["run", historical_scenario(d, csv)], words) for k, (csv, words) in BAD_CSV.items()},
    "fit_csv_missing_column": (lambda d: ["fit", historical_scenario(d, BAD_CSV["missing_column"][0])], ["historical.event"]),
}


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize("case", list(ERRORS))
def test_input_errors_exit_2_with_one_message(case, tmp_path):
    make_args, words = ERRORS[case]
    args = make_args(tmp_path)
    out = tmp_path / ("out.nc" if args[0] == "fit" else "out")
    result = invoke(*args, "--out", out)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("Error: ") and "Traceback" not in result.output
    message = result.stderr.replace("\n", " ")
    for word in words:
        assert word in message
    assert not out.exists()


def test_failed_rerun_leaves_the_previous_output_untouched(runs, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(runs["first"][1], out)
    before = snapshot(out)
    result = invoke("run", PLANNING, "--out", out, "--set", "trial.n_treatment=-1")
    assert result.exit_code == 2 and "Error:" in result.stderr
    assert snapshot(out) == before
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no .partial- folder beside it


def test_out_folder_with_a_users_file_is_refused(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("my notes")
    result = invoke("run", PLANNING, *FAST, "--out", out)
    assert result.exit_code == 2 and "not an earlier twinsim output" in result.stderr
    assert [p.name for p in out.iterdir()] == ["notes.txt"] and (out / "notes.txt").read_text() == "my notes"
    assert [p.name for p in tmp_path.iterdir()] == ["mine"]


def test_warnings_are_printed_before_an_error(tmp_path, monkeypatch):
    def warn_then_fail(scenario, **kwargs):
        warnings.warn("few events", StatisticalWarning)
        raise DataError("historical.data: broken")

    monkeypatch.setattr(twinsim.run, "run_scenario", warn_then_fail)
    result = invoke("run", PLANNING, "--out", tmp_path / "out", "--quiet")
    assert result.exit_code == 2
    assert "Warning: few events" in result.stderr and "Error: historical.data: broken" in result.stderr


def test_unexpected_exception_keeps_its_traceback(tmp_path, monkeypatch):
    def bug(scenario, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(twinsim.run, "run_scenario", bug)
    result = invoke("run", PLANNING, "--out", tmp_path / "out", "--quiet")
    assert isinstance(result.exception, RuntimeError)  # not turned into an 'Error:' line
    assert result.exit_code == 1 and "Error:" not in result.output


def test_keyboard_interrupt_exits_130(tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(twinsim.scenario, "load_scenario", interrupted)
    result = invoke("run", PLANNING, "--out", tmp_path / "out")
    assert result.exit_code == 130 and "Interrupted" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
