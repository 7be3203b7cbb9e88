"""Prognostic-score adjustment (PROCOVA) of time-to-event trials with digital twins.

References: lifelines' ``CoxPHFitter`` (weighted, two covariates) for the adjusted Cox
model; the correctly specified Cox model's consistency for the conditional hazard ratio
(and the attenuation of the unadjusted, marginal one: Gail, Wieand & Piantadosi 1984) for
the simulated estimates; alpha within Monte Carlo error for type I error.  Event
convention: 1 = event observed.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from lifelines import CoxPHFitter

from twinsim.analysis import cox_adjusted
from twinsim.errors import ScenarioError
from twinsim.models import CovariateModel
from twinsim.scenario import build_grid, parse_scenario
from twinsim.simulate import KEY_SIMULATE, PatientModel, design_configs, simulate_grid, simulate_trial_data

R = 2000


def _scenario(designs, hazard_ratio=(1.0, 0.7), replicates=R):
    return parse_scenario({
        "name": "procova", "seed": 11, "replicates": replicates,
        "historical": {"data": "builtin:actg175", "duration": "days", "event": "cens", "covariates": ["age"]},
        "model": {"outcome": "weibull"},
        "trial": {"time_unit": "days", "n_treatment": 200, "accrual": {"duration": 300}, "cut": {"events": 200}},
        "effect": {"hazard_ratio": list(hazard_ratio)},
        "designs": designs,
    })


def _model():
    """One known draw (the twin is then the true linear predictor): Weibull, a strongly
    prognostic normal covariate (log HR 1 per SD) and a binary one (log HR 0.5)."""
    rng = np.random.default_rng(5)
    frame = pd.DataFrame({"z": rng.normal(size=2000), "b": rng.integers(0, 2, 2000).astype(float)})
    cov = CovariateModel.fit(frame)
    x = frame.to_numpy()
    return PatientModel(
        "weibull", {"log_scale": jnp.array([math.log(400.0)]), "log_shape": jnp.array([math.log(1.2)])},
        jnp.array([[1.0, 0.5 * x[:, 1].std()]]), {}, cov.arrays, jnp.asarray(x.mean(0)), jnp.asarray(x.std(0)),
        jnp.zeros(1),
    )


def test_adjusted_cox_matches_lifelines_on_a_simulated_trial():
    sc = _scenario([{"name": "p", "real_control": 200, "method": "procova"}], hazard_ratio=(0.7,))
    table = design_configs(build_grid(sc))
    cfg = jax.tree_util.tree_map(lambda a: a[0], table.configs)
    trial = simulate_trial_data(jax.random.key(3), _model(), cfg, table.sizes)
    res = cox_adjusted(trial.time, trial.event, trial.group, trial.twin, trial.weight)
    keep = np.asarray(trial.weight) > 0
    df = pd.DataFrame({"T": np.asarray(trial.time), "E": np.asarray(trial.event, int),
                       "g": np.asarray(trial.group), "twin": np.asarray(trial.twin)})[keep]
    cph = CoxPHFitter().fit(df, "T", "E", fit_options={"precision": 1e-12})  # no ties: Efron = Breslow
    np.testing.assert_allclose([float(res.log_hr), float(res.coef[0])], cph.params_.to_numpy(), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(float(res.se), cph.standard_errors_["g"], rtol=1e-6)
    assert bool(res.valid)
    # the covariate-adjusted Cox (method adjusted) on the same trial: treatment + both covariates
    res2 = cox_adjusted(trial.time, trial.event, trial.group, trial.x, trial.weight)
    x = np.asarray(trial.x)[keep]
    df2 = df.drop(columns="twin").assign(x0=x[:, 0], x1=x[:, 1])
    cph2 = CoxPHFitter().fit(df2, "T", "E", fit_options={"precision": 1e-12})
    np.testing.assert_allclose([float(res2.log_hr), *np.asarray(res2.coef)], cph2.params_.to_numpy(), rtol=1e-6,
                               atol=1e-8)
    np.testing.assert_allclose(float(res2.se), cph2.standard_errors_["g"], rtol=1e-6)


def test_procova_keeps_alpha_gains_power_and_targets_the_conditional_hazard_ratio():
    sc = _scenario([{"name": "rct", "real_control": 200}, {"name": "procova", "real_control": 200, "method": "procova"},
                    {"name": "adjusted", "real_control": 200, "method": "adjusted"}])
    key = jax.random.fold_in(jax.random.key(sc.seed), KEY_SIMULATE)
    ds = simulate_grid(sc, _model(), rng_key=key, grid=build_grid(sc))
    reject = ds["reject"]
    mcse = math.sqrt(0.05 * 0.95 / R)
    for design in ("rct", "procova", "adjusted"):  # type I error within 3 MC SE of alpha
        rate = float(reject.sel(design=design, hazard_ratio=1.0).mean())
        assert abs(rate - 0.05) < 3 * mcse, (design, rate)
    # power on the same trials: paired, so the MC SE of the difference comes from the
    # discordant pairs; procova must win by more than 3 of those
    a = reject.sel(design="procova", hazard_ratio=0.7).values.astype(float)
    b = reject.sel(design="rct", hazard_ratio=0.7).values.astype(float)
    diff = a - b
    assert diff.mean() > 3 * diff.std(ddof=1) / math.sqrt(R), (a.mean(), b.mean())
    # the adjusted model is correctly specified (the twin is the true linear predictor), so
    # it estimates the conditional log HR log(0.7): its mean is off only by the Cox MLE's
    # finite-sample bias, O(1/events) and away from 0 (about 0.01 at 200 events; allowed:
    # 0.025 + 3 MC SE); the unadjusted estimate targets the marginal hazard ratio, attenuated
    # towards 0 (non-collapsibility, Gail, Wieand & Piantadosi 1984) by more than 3 MC SE
    # and by more than twice the adjusted estimate's error
    est = {d: ds["log_hr"].sel(design=d, hazard_ratio=0.7).values for d in ("procova", "rct")}
    se = {d: v.std(ddof=1) / math.sqrt(R) for d, v in est.items()}
    err = {d: v.mean() - math.log(0.7) for d, v in est.items()}
    assert abs(err["procova"]) < 0.025 + 3 * se["procova"], err
    assert err["rct"] > 3 * se["rct"] and err["rct"] > 2 * abs(err["procova"]), err
    # with a twin equal to the true linear predictor, adjusting for the twin (1 df) and for both
    # covariates (2 df) fit the same model: the estimates agree trial by trial up to the
    # finite-sample noise of the extra coefficient (mean |difference| below 0.02)
    diff = np.abs(ds["log_hr"].sel(design="adjusted", hazard_ratio=0.7).values - est["procova"])
    assert diff.mean() < 0.02, diff.mean()


def test_procova_needs_real_controls_only_and_a_model_with_covariates():
    with pytest.raises(ScenarioError, match="synthetic_control to 0"):
        _scenario([{"name": "p", "real_control": 100, "synthetic_control": 50, "method": "procova"}])
    with pytest.raises(ScenarioError, match="need baseline covariates"):
        parse_scenario({
            "name": "c", "seed": 1, "control": {"distribution": "exponential", "median": 12},
            "trial": {"n_treatment": 100, "accrual": {"duration": 12}, "cut": {"events": 80}},
            "effect": {"hazard_ratio": [1.0]}, "designs": [{"name": "p", "real_control": 100, "method": "procova"}]})
