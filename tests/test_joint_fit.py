"""The joint model and SVI wired into fitting, the posterior file, the simulator and scenarios.

References: the marginal survival of a normal frailty by Gauss-Hermite quadrature (closed
form up to a 1-d integral) for the simulator; the random effects' algebra
(``assoc' L L' assoc``) recomputed by hand; the joint model's own sampler
(:func:`twinsim.models.joint.joint_sample`, tested against a numpy/scipy implementation in
test_joint.py) for trajectories; NUTS for the SVI path.  Event convention: 1 = event observed.
"""

from __future__ import annotations

import math
import warnings
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats

from twinsim.data import Biomarker, TrialData
from twinsim.errors import ConvergenceWarning, DataError, ModelError, ScenarioError
from twinsim.fit import Posterior, fit, fit_joint_model
from twinsim.models.joint import joint_sample
from twinsim.predictive import biomarker_ppc_arrays, sample_trajectories, visit_of_measurement
from twinsim.scenario import parse_scenario as _parse
from twinsim.simulate import PatientModel, patient_model_from_posterior, sample_patients

TRUTH = {
    "log_scale": math.log(400.0), "log_shape": math.log(1.2), "beta": jnp.array([0.4]),
    "bm_intercept": 18.0, "bm_slope": -2.0, "bm_gamma": jnp.array([1.0]), "bm_sigma": 1.5,
    "re_sd": jnp.array([3.0, 2.0]), "assoc": jnp.array([-0.5, -0.5]),
    "re_corr_chol": jnp.linalg.cholesky(jnp.array([[1.0, 0.3], [0.3, 1.0]])),
}
VISITS = np.array([0.0, 100.0, 300.0])


def parse_scenario(text: str):
    return _parse(yaml.safe_load(text))


def _trial_data(n=200, seed=3) -> TrialData:
    key = jax.random.key(seed)
    kx, ks, kc = jax.random.split(key, 3)
    x = np.asarray(jax.random.normal(kx, (n, 1)))
    draw = joint_sample(ks, TRUTH, (x - x.mean()) / x.std(), VISITS, time_ref=400.0, transform="sqrt")
    c = np.asarray(jax.random.uniform(kc, (n,), minval=300.0, maxval=900.0))
    t_event = np.asarray(draw.time)
    time, event = np.minimum(t_event, c), (t_event <= c).astype(int)
    values = np.asarray(draw.bm_value)
    patient, visit = np.nonzero(VISITS[None, :] <= time[:, None])
    bm = Biomarker("cd4", patient.astype(np.int64), VISITS[visit], values[patient, visit])
    return TrialData(time=time, event=event, covariates=pd.DataFrame({"x": x[:, 0]}), time_unit="days",
                     source="simulated", biomarker=bm)


@pytest.fixture(scope="module")
def joint_fit():
    data = _trial_data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # short chain: not a convergence test
        post = fit_joint_model(data, rng_key=jax.random.key(7), chains=1, warmup=150, draws=150)
    return data, post


def test_frailty_survival_matches_gauss_hermite_quadrature():
    """Event times of patients with a N(0, s^2) log-hazard term have the marginal survival
    E_z[exp(-(t/lam)^k e^{s z})] (Gauss-Hermite, 60 nodes): KS test of 20,000 draws."""
    lam, k, s = 300.0, 1.3, 0.8
    from twinsim.simulate import _NO_COVARIATES

    model = PatientModel("weibull", {"log_scale": jnp.array([math.log(lam)]), "log_shape": jnp.array([math.log(k)])},
                         jnp.zeros((1, 0)), {}, _NO_COVARIATES.arrays, jnp.zeros(0), jnp.ones(0), jnp.zeros(1),
                         jnp.array([s]))
    _, t = sample_patients(jax.random.key(5), model, 20_000, draw=0)
    nodes, weights = np.polynomial.hermite_e.hermegauss(60)
    weights = weights / weights.sum()

    def cdf(x):
        h = (np.asarray(x)[:, None] / lam) ** k * np.exp(s * nodes[None, :])
        return 1.0 - (np.exp(-h) * weights).sum(axis=1)

    assert stats.kstest(np.asarray(t), cdf).pvalue > 0.001
    # and it is not the model without the frailty (the test can fail)
    assert stats.kstest(np.asarray(t), lambda x: 1 - np.exp(-(x / lam) ** k)).pvalue < 1e-6


def test_joint_posterior_fields_frailty_and_round_trip(joint_fit, tmp_path):
    data, post = joint_fit
    j = post.joint
    assert post.outcome == "weibull" and j["biomarker"] == "cd4" and j["transform"] == "sqrt"
    np.testing.assert_array_equal(j["visit_times"], VISITS)
    assert j["params"]["re_corr_chol"].shape == (150, 2, 2) and post.beta.shape == (150, 1)
    # frailty SD by hand: Var(assoc' L z) = assoc' (L L') assoc
    a, chol = j["params"]["assoc"], j["params"]["re_corr_chol"]
    by_hand = np.sqrt([ai @ li @ li.T @ ai for ai, li in zip(a, chol)])
    np.testing.assert_allclose(post.frailty_sd, by_hand, rtol=1e-12)
    assert np.isclose(np.median(post.params["log_shape"]), math.log(1.2), atol=0.3)  # a sane fit
    path = tmp_path / "joint.nc"
    post.save(path)
    back = Posterior.load(path)
    for k, v in j["params"].items():
        np.testing.assert_array_equal(back.joint["params"][k], v)
    for k in ("patient", "time", "value"):
        np.testing.assert_array_equal(back.joint["observed"][k], j["observed"][k])
    assert back.joint["time_ref"] == j["time_ref"] and back.diagnostics.equals(post.diagnostics)
    pm = patient_model_from_posterior(back, "months")
    np.testing.assert_allclose(np.asarray(pm.frailty_sd), post.frailty_sd)


def test_trajectories_and_biomarker_check_arrays(joint_fit):
    data, post = joint_fit
    tr = sample_trajectories(jax.random.key(2), post, 50, time_unit="weeks")
    assert tr["biomarker"].shape == (50, 3) and (tr["biomarker"] >= 0).all()
    np.testing.assert_allclose(tr["visit_times"], VISITS / 7.0)
    assert np.isfinite(tr["time"]).all() and list(tr["covariates"].columns) == ["x"]
    # the same draw and key give the same patients (reproducible); another key does not
    a = sample_trajectories(jax.random.key(2), post, 5, draw=3)
    b = sample_trajectories(jax.random.key(2), post, 5, draw=3)
    np.testing.assert_array_equal(a["biomarker"], b["biomarker"])
    obs, pred = biomarker_ppc_arrays(jax.random.key(4), post, cohorts=20)
    assert pred["values"].shape == (20, data.n, 3) and pred["at_risk"].shape == (20, data.n, 3)
    assert pred["at_risk"][:, :, 0].all()  # everyone is at risk at time 0
    np.testing.assert_array_equal(pred["measured"], pred["at_risk"])  # every patient at risk was measured
    from twinsim.predictive import _thin

    half = _thin(jax.random.key(9), pred["at_risk"], [1.0, 0.5, 0.25])
    assert not (half & ~pred["at_risk"]).any()
    np.testing.assert_array_equal(half.sum(axis=1), np.rint(pred["at_risk"].sum(axis=1) * [1.0, 0.5, 0.25]))
    # observed values by visit, recomputed from the data: measured while at risk
    bm = data.biomarker
    for v, t in enumerate(VISITS):
        keep = (bm.time == t) & (data.time[bm.patient] >= t)
        np.testing.assert_array_equal(np.sort(obs["values"][v]), np.sort(bm.value[keep]))
        assert obs["n_at_risk"][v] == int((data.time >= t).sum())
    np.testing.assert_array_equal(visit_of_measurement([0, 49, 51, 299, 1000], VISITS), [0, 0, 1, 2, 2])
    assert biomarker_ppc_arrays(jax.random.key(4), SimpleNamespace(joint=None), cohorts=2) is None


def test_joint_model_errors_name_the_fix():
    data = _trial_data(n=40)
    no_bm = TrialData(time=data.time, event=data.event, covariates=data.covariates, time_unit="days", source="s")
    with pytest.raises(DataError, match="historical.biomarker"):
        fit_joint_model(no_bm, rng_key=jax.random.key(0))
    with pytest.raises(ModelError, match="transform"):
        fit_joint_model(data, rng_key=jax.random.key(0), transform="cube")
    with pytest.raises(ModelError, match="visits"):
        fit_joint_model(data, rng_key=jax.random.key(0), visits=[10, 5])
    base = ("name: j\nseed: 1\nhistorical: {data: builtin:actg175, duration: days, event: cens, covariates: [age]%s}\n"
            "model: {outcome: %s, joint: {transform: sqrt}%s}\n"
            "trial: {n_treatment: 50, accrual: {duration: 6}, cut: {events: 40}}\n"
            "effect: {hazard_ratio: [1.0]}\ndesigns: [{name: rct, real_control: 50}]\n")
    bm = ", biomarker: {name: cd4, columns: {cd40: 0, cd420: 20}}"
    parse_scenario(base % (bm, "weibull", ""))  # valid
    for args, match in (((bm, "lognormal", ""), "outcome: weibull"), (("", "weibull", ""), "needs a biomarker"),
                        ((bm, "weibull", ", inference: {method: svi}"), "NUTS"),
                        ((bm + ", study: arms", "weibull", ""), "several historical studies")):
        with pytest.raises(ScenarioError, match=match):
            parse_scenario(base % args)


def test_svi_fit_agrees_with_nuts_and_records_its_diagnostics(tmp_path):
    """fit(method="svi") against NUTS on the same data: posterior means within 0.25 NUTS SD
    (the guide is a full-covariance Gaussian and the posterior of n = 400 nearly Gaussian;
    the NUTS means carry Monte Carlo error ~ SD / sqrt(ESS ~ 300) = 0.06 SD, and the
    optimiser's remaining jitter was < 0.15 SD in benchmarks/bench_fit.py), SDs within 25%."""
    rng = np.random.default_rng(11)
    x = pd.DataFrame({"a": rng.normal(size=400), "b": rng.binomial(1, 0.4, 400).astype(float)})
    t = rng.weibull(1.3, 400) * 200 * np.exp(-(0.5 * x["a"] - 0.4 * x["b"]) / 1.3)
    c = rng.uniform(50, 400, 400)
    time, event = np.minimum(t, c), (t <= c).astype(int)
    nuts = fit(time, event, x, rng_key=jax.random.key(1), chains=2, warmup=300, draws=300)
    svi = fit(time, event, x, rng_key=jax.random.key(1), method="svi", steps=3000, draws=400)
    assert svi.inference["method"] == "svi" and svi.inference["khat"] < 0.7
    assert {"param", "mean", "sd"} <= set(svi.diagnostics.columns) and "r_hat" not in svi.diagnostics
    m_n, m_s = nuts.diagnostics.set_index("param"), svi.diagnostics.set_index("param")
    gap = (m_s["mean"] - m_n["mean"]).abs() / m_n["sd"]
    assert (gap < 0.25).all(), gap
    assert ((m_s["sd"] / m_n["sd"]).between(0.75, 1.25)).all(), m_s["sd"] / m_n["sd"]
    assert svi.loo is not None and abs(svi.loo["elpd_loo"] - nuts.loo["elpd_loo"]) < 2.0
    path = tmp_path / "svi.nc"
    svi.save(path)
    back = Posterior.load(path)
    assert back.inference["method"] == "svi" and back.diagnostics.equals(svi.diagnostics)
    with pytest.raises(ScenarioError, match="at least 100"):
        parse_scenario(
            "name: s\nhistorical: {data: builtin:actg175, duration: days, event: cens}\n"
            "model: {inference: {method: svi, draws: 50}}\n"
            "trial: {n_treatment: 50, accrual: {duration: 6}, cut: {events: 40}}\n"
            "effect: {hazard_ratio: [1.0]}\ndesigns: [{name: rct, real_control: 50}]\n")


def test_measurement_weights_equal_inverse_group_proportions_in_a_saturated_model():
    """With a binary previous value the logistic model is saturated, so p_hat is the
    measured share within each group (closed form) and the weights are its inverse,
    rescaled to the number at risk; with everyone measured they are all 1."""
    from twinsim.predictive import measurement_weights

    previous = np.r_[np.zeros(10), np.ones(10)]
    measured = np.r_[np.ones(8), np.zeros(2), np.ones(4), np.zeros(6)].astype(bool)
    w = measurement_weights(measured, previous)
    raw = np.r_[np.full(8, 10 / 8), np.full(4, 10 / 4)]
    np.testing.assert_allclose(w, raw * 20 / raw.sum(), rtol=1e-5)  # the 1e-6 ridge moves p_hat by ~1e-7
    # a third group without an earlier value gets its own share through the indicator
    previous3 = np.r_[previous, np.full(5, np.nan)]
    measured3 = np.r_[measured, [True, False, False, False, False]]
    w3 = measurement_weights(measured3, previous3)
    raw3 = np.r_[raw, 5.0]
    np.testing.assert_allclose(w3, raw3 * 25 / raw3.sum(), rtol=1e-5)
    np.testing.assert_array_equal(measurement_weights(np.ones(5, bool), np.arange(5.0)), np.ones(5))
