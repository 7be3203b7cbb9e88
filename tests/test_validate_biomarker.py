"""Biomarker visit columns in validation (twinsim.validate.biomarker), and validate on a joint model.

References: hand-placed measurements (visit assignment), a simulated missing-at-random measurement
process with known logistic coefficients (the fitted measurement model must recover them within
4 SE of the MLE; the thinning must reproduce the expected measured share within 4 binomial SE).
"""

from pathlib import Path

import jax
import numpy as np
import pytest
from scipy.special import expit

from twinsim.scenario import load_scenario
from twinsim.validate.biomarker import measure, measurement_model, visit_columns, wide_values
from twinsim.validate.runner import validate_scenario


def test_wide_values_places_measurements_by_hand():
    # patient 0: visits 0 and 20 (a late measurement at 23 goes to visit 20, the latest wins);
    # patient 1 is followed to 15, so its value at visit 20 is dropped
    out = wide_values([0, 0, 0, 1, 1], [0.0, 19.0, 23.0, 1.0, 20.0], [10.0, 11.0, 12.0, 20.0, 21.0],
                      [100.0, 15.0], [0.0, 20.0, 96.0])
    assert np.array_equal(out, np.array([[10.0, 12.0, np.nan], [20.0, np.nan, np.nan]]), equal_nan=True)
    assert visit_columns("cd4", [0.0, 140.0]) == ["cd4@0", "cd4@140"]


def test_measurement_model_recovers_a_known_mar_process_and_measure_reproduces_it():
    """Visit 1 measured with P = expit(1.0 - 0.8 (sqrt(y0) - c)): the fitted slope must be within 4
    SE of -0.8 (SE from the Fisher information of the true model, about 0.03 at n = 20,000)."""
    rng = np.random.default_rng(0)
    n = 20_000
    y0 = rng.gamma(9.0, 40.0, n)
    y1 = y0 * rng.lognormal(0, 0.2, n)
    prev = np.sqrt(y0)
    c = prev.mean()
    p_true = expit(1.0 - 0.8 * (prev - c))
    measured = rng.uniform(size=n) < p_true
    values = np.column_stack([y0, np.where(measured, y1, np.nan)])
    observed = np.ones((n, 2), bool)
    model = measurement_model(values, observed, [0.0, 20.0], "sqrt")
    assert model[0]["coef"].tolist() == [0.0, 0.0]  # baseline: everyone measured, intercept only
    x = np.column_stack([np.ones(n), prev - c])
    info = x.T @ (x * (p_true * (1 - p_true))[:, None])
    se = np.sqrt(np.diag(np.linalg.inv(info)))
    assert abs(model[1]["intercept"] - 1.0) < 4 * se[0]
    assert abs(model[1]["coef"][0] + 0.8) < 4 * se[1]
    # thinning complete synthetic trajectories by the fitted model: measured share = mean of p_true
    full = np.column_stack([y0, y1])
    thinned = measure(jax.random.key(0), full, observed, model, "sqrt")
    share = np.isfinite(thinned[:, 1]).mean()
    assert abs(share - p_true.mean()) < 4 * np.sqrt(p_true.mean() * (1 - p_true.mean()) / n)
    assert np.isfinite(thinned[:, 0]).all()
    # not under observation: never measured
    off = measure(jax.random.key(1), full, np.column_stack([np.ones(n, bool), np.zeros(n, bool)]), model, "sqrt")
    assert np.isnan(off[:, 1]).all()


def test_validate_joint_model_has_visit_rows(quiet_convergence):
    """A joint biomarker scenario validates end to end: the visit columns are in every table and
    fidelity has a row per visit (tiny fit; a smoke test of the wiring)."""
    path = Path(__file__).resolve().parents[1] / "scenarios" / "actg175_adam.yaml"
    sc = load_scenario(path, overrides=["model.inference={method: nuts, chains: 1, warmup: 100, draws: 100}",
                                        "validation.splits=1", "validation.collapse.generations=0",
                                        "validation.subgroups=[SEX]"])
    r = validate_scenario(sc)
    cols = ["CD4@0", "CD4@140", "CD4@672"]
    for name in ("train", "holdout", "synthetic"):
        assert set(cols) <= set(r.first[name].columns), name
    syn = r.first["synthetic"]
    assert np.isnan(syn.loc[syn["time"] < 672, "CD4@672"]).all()  # not measured after follow-up
    ks = r.fidelity[(r.fidelity["metric"] == "ks") & r.fidelity["column"].isin(cols)]
    assert len(ks) == 3 and ks["synthetic"].notna().all()
    share = {t: np.isfinite(r.first[t].loc[r.first[t]["time"] >= 672, "CD4@672"]).mean()
             for t in ("train", "synthetic")}
    # each share has binomial SE sqrt(0.75 * 0.25 / 170) = 0.033 at n ~ 170; their difference has SD about
    # sqrt(2) * 0.033 = 0.047, and 4 SD is 0.19 (without the measurement model the share would be 1, not ~0.75)
    assert share["synthetic"] == pytest.approx(share["train"], abs=0.19)
