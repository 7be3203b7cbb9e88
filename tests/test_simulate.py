"""The trial simulator: generative process, operating characteristics, reproducibility.

Reference values: references.md (Monte Carlo power of the planning design, 20,000 trials:
0.794, MC SE 0.003); closed forms for the exponential and Weibull distributions.
Tolerances are multiples of Monte Carlo standard errors, derived beside each check.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import stats

from twinsim.analysis import decide, operating_characteristics
from twinsim.models import CovariateModel
from twinsim.scenario import build_grid, load_scenario, parse_scenario
from twinsim.simulate import (
    KEY_SIMULATE,
    PatientModel,
    patient_model_from_control,
    sample_patients,
    simulate_grid,
)

PLANNING = "scenarios/planning_schoenfeld.yaml"


def _run(sc):
    grid = build_grid(sc)
    model = patient_model_from_control(sc.control)
    key = jax.random.fold_in(jax.random.key(sc.seed), KEY_SIMULATE)
    return simulate_grid(sc, model, rng_key=key, grid=grid)


def _control_scenario(**changes):
    raw = {
        "name": "t", "seed": 3, "replicates": 400,
        "control": {"distribution": "exponential", "median": 12},
        "trial": {"n_treatment": 150, "accrual": {"duration": 12}, "cut": {"events": 120}},
        "effect": {"hazard_ratio": [1.0]},
        "designs": [{"name": "rct", "real_control": 150}],
    }
    raw.update(changes)
    return parse_scenario(raw)


@pytest.mark.slow
def test_planning_power_and_type_one_error_match_reference():
    sc = load_scenario(PLANNING, replicates=4000)
    ds = _run(sc)
    oc = operating_characteristics(ds).sel(design="rct", drift=1.0)
    r = 4000
    # power: reference 0.794 (MC SE 0.003, 20,000 trials); ours has MC SE
    # sqrt(0.794 * 0.206 / 4000) = 0.0064; the difference of two independent estimates has
    # SE sqrt(0.0064^2 + 0.003^2) = 0.0071; allow 3 of them.
    power = float(oc.rejection_rate.sel(hazard_ratio=0.7))
    assert abs(power - 0.794) < 3 * math.hypot(math.sqrt(0.794 * 0.206 / r), 0.003)
    # type I error: exact test level 0.05 within 3 MC SE = 3 sqrt(0.05 * 0.95 / 4000) = 0.0103
    size = float(oc.rejection_rate.sel(hazard_ratio=1.0))
    assert abs(size - 0.05) < 3 * math.sqrt(0.05 * 0.95 / r)
    # every trial analysed at exactly its 247th event
    assert int(ds.real_events.min()) == int(ds.real_events.max()) == 247
    # Wald interval coverage at HR 0.7: 0.95 within 3 MC SE (sqrt(.95 * .05 / 4000) = 0.0034)
    assert abs(float(oc.coverage.sel(hazard_ratio=0.7)) - 0.95) < 3 * 0.0035
    # one-sided test (alternative: less) at 0.025 on the same trials: level 0.025 within 3 MC SE,
    # and power close to the two-sided 0.05 test's (same critical value on the favourable side)
    z = ds.z.sel(design="rct", drift=1.0)
    one_sided = decide(z, 0.025, "less").mean("replicate")
    assert abs(float(one_sided.sel(hazard_ratio=1.0)) - 0.025) < 3 * math.sqrt(0.025 * 0.975 / r)
    assert float(one_sided.sel(hazard_ratio=0.7)) == pytest.approx(power, abs=0.01)


@pytest.mark.parametrize("dist,shape", [("exponential", None), ("weibull", 1.6)])
def test_control_event_times_follow_the_assumed_distribution(dist, shape):
    control = {"distribution": dist, "median": 12}
    if shape:
        control["shape"] = shape
    sc = _control_scenario(control=control)
    model = patient_model_from_control(sc.control)
    _, t = sample_patients(jax.random.key(0), model, 20000)
    k = shape or 1.0
    scale = 12 / math.log(2) ** (1 / k)  # median m -> scale m / (log 2)^(1/k)
    p = stats.kstest(np.asarray(t), stats.weibull_min(k, scale=scale).cdf).pvalue
    assert p > 1e-3  # a wrong scale or shape gives p ~ 0 with 20,000 draws
    assert float(np.median(np.asarray(t))) == pytest.approx(12, rel=0.03)  # MC SE of median ~1%


def test_covariate_effects_reach_event_times():
    """Marginal survival of sampled patients equals the closed form averaged over their own
    covariates (second implementation of the PH inverse transform, in numpy)."""
    rng = np.random.default_rng(0)
    q = np.stack([rng.normal(size=500), rng.integers(0, 2, 500).astype(float)])  # independent columns
    beta = np.array([[0.6, -0.8]])
    cov = CovariateModel.fit(pd.DataFrame({"z": q[0], "b": q[1]}))
    model = PatientModel(
        "weibull", {"log_scale": jnp.array([math.log(10.0)]), "log_shape": jnp.array([math.log(1.3)])},
        jnp.asarray(beta), {}, cov.arrays, jnp.asarray(q.mean(1)), jnp.asarray(q.std(1)), jnp.zeros(1),
    )
    x, t = map(np.asarray, sample_patients(jax.random.key(1), model, 40000))
    eta = ((x - q.mean(1)) / q.std(1)) @ beta[0]
    assert set(np.unique(x[:, 1])) <= {0.0, 1.0}  # binary column stays binary
    for t0 in (3.0, 10.0, 25.0):
        expected = np.mean(np.exp(-((t0 / 10.0) ** 1.3) * np.exp(eta)))
        observed = np.mean(t > t0)
        # binomial MC SE sqrt(S(1-S)/n) <= 0.0025 at n = 40,000; allow 4 SE
        assert abs(observed - expected) < 4 * math.sqrt(expected * (1 - expected) / 40000)


def test_same_seed_identical_and_replicates_are_a_prefix():
    sc = _control_scenario(replicates=300)
    a, b = _run(sc), _run(sc)
    xr.testing.assert_identical(a, b)
    c = _run(_control_scenario(replicates=150))
    xr.testing.assert_identical(a.isel(replicate=slice(0, 150)), c)
    d = _run(_control_scenario(replicates=300, seed=4))
    assert not np.array_equal(a.log_hr.values, d.log_hr.values)


def test_designs_share_patients():
    """Two designs with the same composition see the same trials (common random numbers)."""
    sc = _control_scenario(designs=[{"name": "a", "real_control": 150}, {"name": "b", "real_control": 150},
                                    {"name": "c", "real_control": 100}])
    ds = _run(sc)
    np.testing.assert_array_equal(ds.log_hr.sel(design="a"), ds.log_hr.sel(design="b"))
    assert not np.array_equal(ds.log_hr.sel(design="a"), ds.log_hr.sel(design="c"))


@pytest.mark.slow
def test_pooling_under_drift_inflates_type_one_error_while_rct_holds():
    """Without drift, synthetic controls from the true control distribution are exchangeable
    with real ones: the RCT and pooling keep alpha.  The power prior's normal approximation
    uses the weighted information sum(w p (1-p)) as variance, larger than the sampling
    variance sum(w^2 p (1-p)) of its score when w < 1, so it is conservative there.
    With drift 1.25 pooling biases the log hazard ratio upwards by about
    log 1.25 - log(mean control hazard ~ 1.12) = 0.11 (SE ~ 2 / sqrt(120 events) = 0.18),
    so the two-sided test rejects with probability P(|Z + 0.6| > 1.96) ~ 0.09."""
    sc = _control_scenario(
        replicates=2000, drift={"hazard_ratio": [1.0, 1.25]},
        designs=[
            {"name": "rct", "real_control": 150},
            {"name": "pooled", "real_control": 75, "synthetic_control": 75, "method": "pool"},
            {"name": "pp", "real_control": 75, "synthetic_control": 75, "method": "power_prior", "a0": 0.3},
        ],
    )
    oc = operating_characteristics(_run(sc)).sel(hazard_ratio=1.0)
    se = math.sqrt(0.05 * 0.95 / 2000)  # 0.0049: binomial MC SE at the nominal level
    rate = oc.rejection_rate
    for design in ("rct", "pooled"):
        assert abs(float(rate.sel(design=design, drift=1.0)) - 0.05) < 3 * se
    assert float(rate.sel(design="pp", drift=1.0)) < 0.05 + 3 * se
    assert abs(float(rate.sel(design="rct", drift=1.25)) - 0.05) < 3 * se
    pooled = float(rate.sel(design="pooled", drift=1.25))
    assert abs(pooled - 0.09) < 3 * math.sqrt(0.09 * 0.91 / 2000)  # the approximation above
    assert float(rate.sel(design="pp", drift=1.25)) < pooled
    assert float(oc.bias.sel(design="pooled", drift=1.25)) == pytest.approx(0.11, abs=0.03)
    assert abs(float(oc.bias.sel(design="rct", drift=1.25))) < 3 * 0.18 / math.sqrt(2000)


def test_calendar_cut_and_accrual_rate():
    sc = _control_scenario(trial={"n_treatment": 100, "accrual": {"rate": 20}, "cut": {"time": 15.0}},
                           designs=[{"name": "rct", "real_control": 100}], replicates=50)
    ds = _run(sc)
    assert np.all(ds.cut_time.values == 15.0)
    # 200 patients at 20 per month enrol over 10 months: all enrolled by the cut at 15
    assert np.all(ds.n_analysed.values == 200)
    sc = _control_scenario(trial={"n_treatment": 100, "accrual": {"rate": 10}, "cut": {"time": 10.0}},
                           designs=[{"name": "rct", "real_control": 100}], replicates=200)
    ds = _run(sc)
    # 200 patients over 20 months: about half enrolled by month 10 (binomial SE ~ 7)
    assert abs(float(ds.n_analysed.mean()) - 100) < 3


@pytest.mark.slow
def test_rct_keeps_alpha_with_a_fitted_posterior_and_covariates(quiet_convergence):
    """The full path (copula covariates, Weibull PH, a fresh posterior draw as truth per
    replicate, dropout, event-driven cut): the randomised design's log-rank test is exact
    whatever the truth, so its type I error is alpha within 3 MC SE (sqrt(.05 * .95 / 3000))."""
    from twinsim.run import run_scenario

    sc = load_scenario(
        "scenarios/actg175_hybrid_control.yaml",
        overrides=["replicates=3000", "sweep={}", "effect.hazard_ratio=1.0", "drift.hazard_ratio=1.0",
                   "model.inference.chains=1", "model.inference.warmup=150", "model.inference.draws=150",
                   "designs=[{name: rct, real_control: 300}]"],
    )
    result = run_scenario(sc)
    rate = float(result.summary["rejection_rate"].iloc[0])
    assert abs(rate - 0.05) < 3 * math.sqrt(0.05 * 0.95 / 3000)
    assert int(result.results.real_events.min()) == 200


def test_unreached_event_target_warns():
    """200 patients, no dropout, all followed to their event: a target of 199 events is reached,
    one of 250 cannot be, and the user is told instead of silently analysing all follow-up."""
    from twinsim.errors import StatisticalWarning

    base = {"n_treatment": 100, "accrual": {"duration": 12}}
    sc = _control_scenario(trial={**base, "cut": {"events": 199}}, designs=[{"name": "rct", "real_control": 100}],
                           replicates=20)
    assert np.all(np.isfinite(_run(sc).cut_time.values))
    sc = _control_scenario(trial={**base, "cut": {"events": 250}}, designs=[{"name": "rct", "real_control": 100}],
                           replicates=20)
    with pytest.warns(StatisticalWarning, match="never reached 250 events"):
        ds = _run(sc)
    assert np.all(np.isinf(ds.cut_time.values)) and np.all(ds.real_events.values == 200)
