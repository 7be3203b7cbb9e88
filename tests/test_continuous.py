"""Continuous endpoints: OLS analyses, the planning model, t-test planning and PROCOVA.

References: numpy least squares for the OLS treatment coefficient and its SE; Cohen (1988,
Statistical Power Analysis, Table 2.4.1): d = 0.5, two-sided alpha 0.05, power 0.80 needs
64 patients per group; the exact noncentral-t power against Monte Carlo; Borm et al.
(2007): ANCOVA on a covariate correlated rho with the outcome needs (1 - rho^2) n.
Tolerances are multiples of Monte Carlo standard errors, derived beside each check.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from twinsim.continuous import (NormalControl, borm_sample_size, ols_treatment, power_ttest, simulate_continuous,
                                ttest_sample_size)
from twinsim.errors import ModelError

R = 4000


def test_ols_treatment_matches_numpy_least_squares():
    rng = np.random.default_rng(0)
    n = 60
    g = (np.arange(n) % 2).astype(float)
    cov = rng.normal(size=(n, 2))
    y = 1.0 + 0.7 * g + cov @ [0.5, -0.3] + rng.normal(size=n)
    weight = (np.arange(n) < 50).astype(float)  # the last 10 patients are padding
    res = ols_treatment(jnp.asarray(y), jnp.asarray(g), jnp.asarray(cov), jnp.asarray(weight))
    x = np.column_stack([np.ones(50), g[:50], cov[:50]])
    coef, rss, *_ = np.linalg.lstsq(x, y[:50], rcond=None)
    se = math.sqrt(rss[0] / (50 - 4) * np.linalg.inv(x.T @ x)[1, 1])
    np.testing.assert_allclose([float(res.estimate), float(res.se)], [coef[1], se], rtol=1e-10)


def test_planning_model_has_the_stated_correlations_and_a_calibrated_twin():
    model = NormalControl(mean=300.0, sd=100.0, prognostic_correlation=0.6, baseline_correlation=0.4)
    y, m, b = (np.asarray(a) for a in model.draw(jax.random.key(1), 200_000))
    # SE of a correlation ~ (1 - r^2)/sqrt(n) <= 0.0023; allow 4 SE = 0.01
    assert abs(np.corrcoef(m, y)[0, 1] - 0.6) < 0.01 and abs(np.corrcoef(b, y)[0, 1] - 0.4) < 0.01
    slope = np.cov(m, y)[0, 1] / np.var(m, ddof=1)  # E[y | m] = m: slope 1 (SE ~ 0.004)
    assert abs(slope - 1.0) < 0.02 and abs(y.mean() - 300.0) < 1.0 and abs(y.std() - 100.0) < 1.0
    with pytest.raises(ModelError, match="prognostic_correlation"):
        NormalControl(prognostic_correlation=1.0)


def test_t_test_planning_reproduces_cohen_and_the_exact_power_matches_simulation():
    assert ttest_sample_size(0.5, 0.8) == 64  # Cohen (1988) Table 2.4.1
    assert abs(power_ttest(64, 0.5) - 0.8015) < 5e-4  # noncentral t (G*Power gives 0.8015)
    sim = simulate_continuous(jax.random.key(2), NormalControl(sd=1.0), n_treatment=64, n_control=64,
                              mean_difference=0.5, replicates=R)
    p = sim["unadjusted"]["rejection_rate"]
    assert abs(p - power_ttest(64, 0.5)) < 3 * math.sqrt(0.8 * 0.2 / R), p


def test_every_analysis_keeps_alpha_and_covers():
    sim = simulate_continuous(jax.random.key(3), NormalControl(sd=10.0, prognostic_correlation=0.7,
                                                               baseline_correlation=0.5),
                              n_treatment=50, n_control=50, mean_difference=0.0, replicates=R)
    mcse = math.sqrt(0.05 * 0.95 / R)  # 0.0034
    for name, r in sim.items():
        assert abs(r["rejection_rate"] - 0.05) < 3 * mcse, (name, r["rejection_rate"])
        assert abs(r["coverage"] - 0.95) < 3 * mcse, (name, r["coverage"])
        assert abs(r["bias"]) < 3 * r["estimate"].std() / math.sqrt(R), (name, r["bias"])


def test_procova_needs_one_minus_rho_squared_of_the_patients():
    """Done-when of issue 4: with a twin of known correlation rho = 0.6, PROCOVA with
    (1 - rho^2) n = 64 per arm has the power of the unadjusted analysis with n = 100 per arm
    (both about 0.80), within Monte Carlo error (independent runs: SE of the difference
    sqrt(2 x 0.8 x 0.2 / R) = 0.0089; 3 SE allowed), while the unadjusted analysis at 64 per
    arm falls far short (exact: 0.61) and ANCOVA on a weaker baseline (r = 0.3) sits between."""
    rho, d = 0.6, 0.4
    n = ttest_sample_size(d, 0.8)
    assert n == 100
    n_adj = math.ceil(borm_sample_size(n, rho))
    assert n_adj == 64
    model = NormalControl(sd=1.0, prognostic_correlation=rho, baseline_correlation=0.3)
    full = simulate_continuous(jax.random.key(4), model, n_treatment=n, n_control=n, mean_difference=d, replicates=R)
    small = simulate_continuous(jax.random.key(5), model, n_treatment=n_adj, n_control=n_adj, mean_difference=d,
                                replicates=R)
    p_unadj, p_procova = full["unadjusted"]["rejection_rate"], small["procova"]["rejection_rate"]
    assert abs(p_procova - p_unadj) < 3 * math.sqrt(2 * 0.8 * 0.2 / R), (p_procova, p_unadj)
    assert small["unadjusted"]["rejection_rate"] < p_procova - 0.1
    assert small["unadjusted"]["rejection_rate"] < small["ancova"]["rejection_rate"] < p_procova


# --------------------------------------------------------------------------- scenarios

CONTINUOUS = {
    "name": "c", "seed": 5, "replicates": 300,
    "control": {"distribution": "normal", "mean": 10.0, "sd": 2.0, "prognostic_correlation": 0.5,
                "baseline_correlation": 0.3},
    "trial": {"endpoint": "continuous", "n_treatment": 40},
    "effect": {"mean_difference": [0.0, 1.0]},
    "designs": [{"name": "ttest", "real_control": 40}, {"name": "ancova", "real_control": 40, "method": "ancova"},
                {"name": "procova", "real_control": 40, "method": "procova"}],
}


def test_scenario_kernel_reproduces_the_library_simulation_trial_by_trial():
    """The scenario path (one patient pool per replicate, every design and effect analysed on
    it) and simulate_continuous (one analysis set per call) draw the same patients from the
    same replicate keys when the sizes agree, so their estimates agree to rounding."""
    from twinsim.run import run_scenario
    from twinsim.scenario import parse_scenario
    from twinsim.simulate import KEY_SIMULATE

    sc = parse_scenario(CONTINUOUS)
    result = run_scenario(sc)
    key = jax.random.fold_in(jax.random.key(sc.seed), KEY_SIMULATE)
    lib = simulate_continuous(key, NormalControl(10.0, 2.0, 0.5, 0.3), n_treatment=40, n_control=40,
                              mean_difference=1.0, replicates=300)
    for design in ("ttest", "ancova", "procova"):
        name = {"ttest": "unadjusted"}.get(design, design)
        got = result.results["estimate"].sel(design=design, mean_difference=1.0).values.ravel()
        np.testing.assert_allclose(got, lib[name]["estimate"], rtol=1e-10, atol=1e-10)
        row = result.summary[(result.summary.design == design) & (result.summary.mean_difference == 1.0)]
        assert abs(float(row.rejection_rate.iloc[0]) - lib[name]["rejection_rate"]) < 1e-12
    assert list(result.summary.columns[:3]) == ["design", "mean_difference", "drift"]


@pytest.mark.parametrize("change, match", [
    ({"effect": {"hazard_ratio": [0.7]}}, "mean_difference"),
    ({"effect": {"mean_difference": [0.0], "hazard_ratio": [0.7]}}, "hazard ratios"),
    ({"designs": [{"name": "p", "real_control": 10, "synthetic_control": 10, "method": "pool"}]}, "synthetic controls"),
    ({"trial": {"endpoint": "continuous", "n_treatment": 40, "cut": {"events": 10}}}, "measured once"),
    ({"control": {"distribution": "exponential", "median": 12}}, "distribution: normal"),
    ({"analysis": {"alternative": "less"}}, "two-sided"),
])
def test_continuous_scenarios_refuse_what_does_not_apply(change, match):
    from twinsim.errors import ScenarioError
    from twinsim.scenario import parse_scenario

    with pytest.raises(ScenarioError, match=match):
        parse_scenario({**CONTINUOUS, **change})


def test_time_to_event_scenarios_refuse_continuous_fields():
    from twinsim.errors import ScenarioError
    from twinsim.scenario import parse_scenario

    tte = {"name": "t", "seed": 1, "control": {"distribution": "exponential", "median": 12},
           "trial": {"n_treatment": 50, "accrual": {"duration": 6}, "cut": {"events": 40}},
           "effect": {"hazard_ratio": [1.0]}, "designs": [{"name": "rct", "real_control": 50}]}
    parse_scenario(tte)
    for change, match in (({"effect": {"mean_difference": [1.0]}}, "continuous endpoint"),
                          ({"designs": [{"name": "a", "real_control": 50, "method": "ancova"}]}, "ancova"),
                          ({"control": {"distribution": "normal", "sd": 1.0}}, "endpoint: continuous"),
                          ({"trial": {"n_treatment": 50, "cut": {"events": 40}}}, "accrual")):
        with pytest.raises(ScenarioError, match=match):
            parse_scenario({**tte, **change})


def test_prognostic_correlation_lower_limit_matches_scipy():
    """The conservative rho is the lower end of scipy's two-sided 80% Fisher interval (= the
    one-sided 90% lower limit), computed independently by scipy.stats.pearsonr."""
    from scipy import stats

    from twinsim.continuous import prognostic_correlation

    rng = np.random.default_rng(3)
    x = rng.normal(size=200)
    y = 0.6 * x + 0.8 * rng.normal(size=200)
    y[5] = np.nan  # dropped
    rho, low = prognostic_correlation(x, y, level=0.9)
    ref = stats.pearsonr(x[np.isfinite(y)], y[np.isfinite(y)])
    assert abs(rho - ref.statistic) < 1e-12
    assert abs(low - ref.confidence_interval(confidence_level=0.8).low) < 1e-10
    with pytest.raises(ModelError, match="at least 4"):
        prognostic_correlation([1, 2, 3], [1, 2, 3])
