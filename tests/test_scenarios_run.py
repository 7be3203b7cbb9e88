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
    assert list(summary.columns[: 3]) == ["design", sc.effect_dim, "drift"]
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


def test_saved_scenario_reproduces_the_run_from_anywhere(tmp_path, monkeypatch, quiet_convergence):
    """scenario.yaml in the output folder, run from another folder, gives identical results
    (relative data paths are saved resolved)."""
    import numpy as np

    rng = np.random.default_rng(0)
    data = tmp_path / "project" / "hist.csv"
    data.parent.mkdir()
    t = rng.exponential(300, 120)
    pd.DataFrame({"t": t, "e": (t < 400).astype(int), "x": rng.normal(size=120)}).to_csv(data, index=False)
    scen = data.parent / "s.yaml"
    scen.write_text(
        "name: repro\nseed: 9\nreplicates: 30\n"
        "historical: {data: hist.csv, duration: t, event: e, covariates: [x]}\n"
        "model: {outcome: exponential, inference: {chains: 1, warmup: 60, draws: 60}}\n"
        "trial: {n_treatment: 50, accrual: {duration: 6}, cut: {events: 40}}\n"
        "effect: {hazard_ratio: [1.0, 0.7]}\n"
        "designs: [{name: rct, real_control: 50}, {name: hybrid, real_control: 25, synthetic_control: 25, method: pool}]\n"
    )
    first = write_outputs(run_scenario(load_scenario(scen)), tmp_path / "out1")
    monkeypatch.chdir(tmp_path)
    again = write_outputs(run_scenario(load_scenario(first / "scenario.yaml")), tmp_path / "out2")
    a, b = xr.open_dataset(first / "results.nc"), xr.open_dataset(again / "results.nc")
    xr.testing.assert_identical(a, b)
    assert (first / "summary.csv").read_bytes() == (again / "summary.csv").read_bytes()
