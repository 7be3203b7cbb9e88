"""Tests of the joint biomarker-survival model (twinsim.models.joint).

Kinds (simtrial's labels): *double programming* (a numpy/scipy re-implementation of the
generative process is the reference for ``joint_sample``; scipy densities for the
likelihood; lifelines' Kaplan-Meier for the reverse-KM censoring sampler and the observed
survival band), *hand-derived* (the direction of the informative-dropout bias from Stein's
lemma and its size by Gauss-Hermite quadrature), *calibration* (coverage of 90% posterior
intervals over R simulated data sets) and *real data* (posterior predictive checks on ACTG
175, zidovudine arm).  Randomness: explicit JAX keys and, for numpy, one
``np.random.default_rng`` per test with a fixed seed chosen once and never tuned.

Event convention throughout: ``event`` 1 = event observed, 0 = right censored.
"""

from __future__ import annotations

import math
import time as _time
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from lifelines import KaplanMeierFitter
from numpyro import handlers
from scipy import stats

from twinsim.analysis import km_on_grid
from twinsim.data import builtin_frame
from twinsim.errors import ConvergenceWarning, DataError, ModelError
from twinsim.models import weibull_ph
from twinsim.models.joint import (
    biomarker_long,
    bm_inverse,
    bm_transform,
    censoring_sampler,
    fit_joint,
    joint_eta_offset,
    joint_nuts,
    joint_predictive,
    joint_random_effects,
    joint_sample,
    joint_weibull,
)

# --------------------------------------------------------------------------- truth

RHO = 0.3  # correlation of the random intercept and slope
TRUTH = {
    "log_scale": math.log(1.5), "log_shape": math.log(1.3), "beta": np.array([0.5]),
    "bm_intercept": 20.0, "bm_slope": -2.0, "bm_gamma": np.array([1.0]), "bm_sigma": 1.5,
    "re_sd": np.array([3.0, 2.0]), "assoc": np.array([-0.6, -0.6]),
    "re_corr_chol": np.linalg.cholesky(np.array([[1.0, RHO], [RHO, 1.0]])),
}
VISITS = np.array([0.0, 0.25, 0.5, 0.75, 1.0])  # time unit with time_ref = 1


def _jnp(params):
    return {k: jnp.asarray(v, dtype=float) for k, v in params.items()}


# --------------------------------------------------------------------------- small units


def test_transforms_invert_and_sqrt_clips_at_zero():
    v = np.array([0.0, 1.0, 49.0, 350.0])
    for g in ("sqrt", "identity"):
        np.testing.assert_allclose(bm_inverse(bm_transform(v, g), g), v, rtol=1e-12)
    np.testing.assert_allclose(bm_inverse(bm_transform(v[1:], "log"), "log"), v[1:], rtol=1e-12)
    # a negative draw on the sqrt scale is a count of 0, not y**2
    np.testing.assert_array_equal(bm_inverse(jnp.array([-2.0, 3.0]), "sqrt"), [0.0, 9.0])
    with pytest.raises(ModelError, match="transform 'logit'"):
        bm_transform(v, "logit")


def test_biomarker_long_drops_missing_and_post_follow_up_values():
    values = np.array([[300.0, 250.0, np.nan], [400.0, 380.0, 360.0]])
    pat, t, v = biomarker_long(values, [0.0, 140.0, 672.0], time=np.array([700.0, 100.0]))
    # patient 0: week 96 missing; patient 1: follow-up ends at day 100 (> only week 0 kept)
    np.testing.assert_array_equal(pat, [0, 0, 1])
    np.testing.assert_array_equal(t, [0.0, 140.0, 0.0])
    np.testing.assert_array_equal(v, [300.0, 250.0, 400.0])


def _small_data(rng, n=6):
    x = rng.normal(size=(n, 1))
    time = rng.uniform(0.2, 2.0, n)
    event = (rng.random(n) < 0.6).astype(float)
    pat = np.repeat(np.arange(n), 3)
    bt = np.tile([0.0, 0.5, 1.0], n)
    bv = rng.uniform(100, 500, 3 * n)
    bv[[2, 7]] = np.nan  # missing measurements are masked
    return x, time, event, pat, bt, bv


def test_log_likelihood_matches_scipy_and_weibull_ph():
    """Double programming: the two likelihood sites against scipy densities, and the
    survival site against weibull_ph when the random effects are 0."""
    rng = np.random.default_rng(11)
    x, time, event, pat, bt, bv = _small_data(rng)
    z = rng.normal(size=(len(time), 2))
    sampled = ("log_shape", "beta", "assoc", "re_corr_chol")  # the rest are derived sites
    params = _jnp({**{k: TRUTH[k] for k in sampled}, "re_z": z,
                   "log_scale_std": TRUTH["log_scale"] - math.log(1.2)})
    std = {"bm_intercept_std": 0.3, "bm_slope_std": -0.2, "bm_gamma_std": np.array([0.1]),
           "re_sd_std": np.array([0.8, 0.5]), "bm_sigma_std": 0.4}
    params.update(_jnp(std))
    tr = handlers.trace(handlers.substitute(joint_weibull, params)).get_trace(
        x, time, event, pat, bt, bv, time_ref=1.2, transform="sqrt")
    # the data-scale parameters the model derived from the standardised sites
    y = np.sqrt(bv[np.isfinite(bv)])
    m_y, s_y = y.mean(), y.std(ddof=1)
    b0, b1 = m_y + s_y * 0.3, s_y * -0.2
    gamma, tau, sigma = s_y * 0.1, s_y * np.array([0.8, 0.5]), s_y * 0.4
    np.testing.assert_allclose(tr["bm_intercept"]["value"], b0, rtol=1e-12)
    u_std = z @ TRUTH["re_corr_chol"].T
    u = u_std * tau
    mu = b0 + gamma * x[pat, 0] + u[pat, 0] + (b1 + u[pat, 1]) * bt / 1.2
    ok = np.isfinite(bv)
    ref_bm = stats.norm.logpdf(np.sqrt(bv[ok]), mu[ok], sigma).sum()
    site = tr["bm_obs"]
    got_bm = float(jnp.sum(site["fn"].log_prob(site["value"])))  # masked sites give 0
    np.testing.assert_allclose(got_bm, ref_bm, rtol=1e-10)
    # survival: scipy Weibull with scale lambda * exp(-eta / k) (PH <-> Weibull scale)
    k, lam = 1.3, 1.5
    eta = 0.5 * x[:, 0] + u_std @ TRUTH["assoc"]
    scale = lam * np.exp(-eta / k)
    ref_surv = np.where(event == 1, stats.weibull_min.logpdf(time, k, scale=scale),
                        stats.weibull_min.logsf(time, k, scale=scale))
    np.testing.assert_allclose(np.asarray(tr["obs"]["fn"].log_prob(tr["obs"]["value"])), ref_surv, rtol=1e-10)
    # with u = 0 the survival part is weibull_ph's (same sites, same likelihood)
    params0 = {**params, "re_z": jnp.zeros_like(params["re_z"])}
    tr0 = handlers.trace(handlers.substitute(joint_weibull, params0)).get_trace(
        x, time, event, pat, bt, bv, time_ref=1.2, transform="sqrt")
    trw = handlers.trace(handlers.substitute(weibull_ph, params0)).get_trace(x, time, event, time_ref=1.2)
    def loglik(site):  # generic: a factor site or a censored distribution alike
        return np.asarray(site["fn"].log_prob(site["value"]))

    np.testing.assert_allclose(loglik(tr0["obs"]), loglik(trw["obs"]), rtol=1e-12)
    for name in ("log_scale_std", "log_shape", "beta"):
        np.testing.assert_allclose(tr0[name]["fn"].log_prob(tr0[name]["value"]),
                                   trw[name]["fn"].log_prob(trw[name]["value"]), rtol=1e-12)


def test_no_covariates_is_supported():
    """p = 0: no beta / bm_gamma sites, and the sampler runs without them."""
    rng = np.random.default_rng(13)
    x, time, event, pat, bt, bv = _small_data(rng)

    def sites():  # traced abstractly (shapes only): cheap
        tr = handlers.trace(handlers.seed(joint_weibull, 0)).get_trace(x[:, :0], time, event, pat, bt, bv)
        return {name: site["value"] for name, site in tr.items() if site["type"] == "sample"}

    shapes = jax.eval_shape(sites)
    assert "beta" not in shapes and "bm_gamma" not in shapes and shapes["re_z"].shape == (6, 2)
    params = _jnp({k: v for k, v in TRUTH.items() if k not in ("beta", "bm_gamma")})
    draw = jax.jit(lambda key: joint_sample(key, params, jnp.zeros((4, 0)), VISITS, time_ref=1.0))(
        jax.random.key(13))
    assert draw.bm_value.shape == (4, 5) and np.all(np.isfinite(draw.time))


def test_bad_inputs_raise_data_errors_naming_the_field():
    rng = np.random.default_rng(12)
    x, time, event, pat, bt, bv = _small_data(rng)
    with pytest.raises(DataError, match="bm_value must be >= 0"):
        joint_weibull(x, time, event, pat, bt, np.where(np.isnan(bv), bv, -bv))
    with pytest.raises(DataError, match="event must be 1 = event observed"):
        joint_weibull(x, time, event * 2, pat, bt, bv)
    with pytest.raises(DataError, match=r"bm_patient must hold integer row indices in \[0, 6\)"):
        joint_weibull(x, time, event, pat + 1, bt, bv)


# --------------------------------------------------------------------------- the sampler


def _reference_sample(rng, params, x, visits):
    """Independent numpy/scipy implementation of the generative process (double programming):
    Sigma built from tau and rho (not from the Cholesky factor), multivariate normal random
    effects, event times from scipy's Weibull with the PH scale lambda * exp(-eta / k)."""
    tau, rho = params["re_sd"], RHO
    sigma_re = np.array([[tau[0] ** 2, rho * tau[0] * tau[1]], [rho * tau[0] * tau[1], tau[1] ** 2]])
    n = x.shape[0]
    u = rng.multivariate_normal(np.zeros(2), sigma_re, size=n)
    y = (params["bm_intercept"] + x @ params["bm_gamma"] + u[:, 0])[:, None] \
        + (params["bm_slope"] + u[:, 1])[:, None] * visits + params["bm_sigma"] * rng.normal(size=(n, len(visits)))
    values = np.clip(y, 0.0, None) ** 2
    eta = x @ params["beta"] + params["assoc"][0] * u[:, 0] / tau[0] + params["assoc"][1] * u[:, 1] / tau[1]
    k = math.exp(params["log_shape"])
    t = stats.weibull_min.rvs(k, scale=math.exp(params["log_scale"]) * np.exp(-eta / k), random_state=rng)
    return u, values, t


def test_sampler_matches_an_independent_numpy_scipy_implementation():
    rng = np.random.default_rng(21)
    n = 20000
    x = rng.normal(size=(n, 1))
    draw = joint_sample(jax.random.key(21), _jnp(TRUTH), x, VISITS, time_ref=1.0, transform="sqrt")
    u_ref, v_ref, t_ref = _reference_sample(rng, TRUTH, x, VISITS)
    # event times and each visit's values: two-sample KS, level 1e-3 per test (6 tests)
    assert stats.ks_2samp(np.asarray(draw.time), t_ref).pvalue > 1e-3
    for j in range(len(VISITS)):
        assert stats.ks_2samp(np.asarray(draw.bm_value[:, j]), v_ref[:, j]).pvalue > 1e-3, j
    # random-effect covariance vs Sigma: MC SE of a sample (co)variance of a bivariate normal
    # is sqrt((s_ii s_jj + s_ij^2) / n) (Anderson 2003, Thm 3.4.4); allow 4 SE
    tau = TRUTH["re_sd"]
    sigma_re = np.outer(tau, tau) * np.array([[1, RHO], [RHO, 1]])
    cov = np.cov(np.asarray(draw.re).T)
    se = np.sqrt((np.outer(np.diag(sigma_re), np.diag(sigma_re)) + sigma_re**2) / n)
    assert np.all(np.abs(cov - sigma_re) < 4 * se), (cov, sigma_re)
    # the link biomarker <-> survival: correlation of the last value with log T agrees
    # between the samplers (Fisher z, SE of the difference sqrt(2 / (n - 3)); 4 SE)
    z_new = np.arctanh(np.corrcoef(np.sqrt(draw.bm_value[:, -1]), np.log(draw.time))[0, 1])
    z_ref = np.arctanh(np.corrcoef(np.sqrt(v_ref[:, -1]), np.log(t_ref))[0, 1])
    assert abs(z_new - z_ref) < 4 * math.sqrt(2 / (n - 3))
    assert z_new > 0.1  # alpha < 0: a higher trajectory means a longer life
    # given each patient's own random effects, joint_eta_offset is the hazard the sampler
    # used: the probability integral transform S(T | x, u) is Uniform(0, 1) (one-sample KS)
    eta = x @ TRUTH["beta"] + np.asarray(joint_eta_offset(_jnp(TRUTH), draw.re))
    pit = np.exp(-((np.asarray(draw.time) / 1.5) ** 1.3) * np.exp(eta))
    assert stats.kstest(pit, "uniform").pvalue > 1e-3


def test_censoring_sampler_is_the_reverse_kaplan_meier():
    rng = np.random.default_rng(31)
    n = 300
    t_event = rng.weibull(1.2, n) * 2.0
    cens = np.minimum(rng.exponential(3.0, n), 2.5)  # administrative end at 2.5
    time = np.round(np.minimum(t_event, cens), 2)  # rounding makes ties
    event = (t_event <= cens).astype(int)
    i = np.argmax(time)
    time[i], event[i] = 3.0, 1  # the longest follow-up ends in an event
    draws = np.asarray(censoring_sampler(time, event)(jax.random.key(31), (20000,)))
    # reference: lifelines' KM of the censoring indicator (1 - event)
    km = KaplanMeierFitter().fit(time, 1 - event)
    grid = np.unique(time[event == 0])
    cdf_ref = 1.0 - km.survival_function_at_times(grid).to_numpy()
    cdf_mc = np.searchsorted(np.sort(draws), grid, side="right") / draws.size
    # DKW: P(sup |F_N - F| > eps) <= 2 exp(-2 N eps^2); eps for probability 1e-3
    eps = math.sqrt(math.log(2 / 1e-3) / (2 * draws.size))
    assert np.max(np.abs(cdf_mc[:-1] - cdf_ref[:-1])) < eps
    # the mass beyond the last censoring time sits at that time (administrative censoring)
    assert draws.max() == grid[-1] and set(np.unique(draws)) <= set(grid)


# --------------------------------------------------------------------------- calibration

R, N_PAT = 32, 80  # data sets and patients per data set (small for CI; see the SE below)
COVERAGE_PARAMS = {  # name -> (extract from samples, truth)
    "log_scale": (lambda s: s["log_scale"], TRUTH["log_scale"]),
    "log_shape": (lambda s: s["log_shape"], TRUTH["log_shape"]),
    "beta[0]": (lambda s: s["beta"][..., 0], 0.5),
    "bm_intercept": (lambda s: s["bm_intercept"], 20.0),
    "bm_slope": (lambda s: s["bm_slope"], -2.0),
    "assoc[0]": (lambda s: s["assoc"][..., 0], -0.6),
    "assoc[1]": (lambda s: s["assoc"][..., 1], -0.6),
    "bm_sigma": (lambda s: s["bm_sigma"], 1.5),
    "re_sd[0]": (lambda s: s["re_sd"][..., 0], 3.0),
    "re_sd[1]": (lambda s: s["re_sd"][..., 1], 2.0),
}


def _simulate(key, n):
    """One data set: x ~ N(0, 1) standardised, 5 visits over one time_ref, censoring
    U(0.8, 2.0) independent of everything; visits after min(T, C) are missing (NaN)."""
    kx, ks, kc = jax.random.split(key, 3)
    x = jax.random.normal(kx, (n, 1))
    x = (x - x.mean(0)) / x.std(0)
    draw = joint_sample(ks, _jnp(TRUTH), x, VISITS, time_ref=1.0, transform="sqrt")
    c = jax.random.uniform(kc, (n,), minval=0.8, maxval=2.0)
    time = jnp.minimum(draw.time, c)
    values = jnp.where(VISITS[None, :] <= time[:, None], draw.bm_value, jnp.nan)
    data = (x, time, (draw.time <= c).astype(float), jnp.repeat(jnp.arange(n), len(VISITS)),
            jnp.tile(jnp.asarray(VISITS), n), values.ravel())
    return data, draw.re


@pytest.fixture(scope="module")
def recovery():
    """R independent data sets and one NUTS chain each (200 warmup + 200 draws), compiled once."""
    keys = jax.random.split(jax.random.key(41), R + 1)
    sims = [_simulate(k, N_PAT) for k in keys[1:]]
    run = joint_nuts(sims[0][0], transform="sqrt", warmup=200, draws=200)
    fits = []
    for r, (data, _) in enumerate(sims):
        samples, _, _ = run(jax.random.fold_in(keys[0], r), *data, 1.0)
        fits.append({k: np.asarray(v) for k, v in samples.items()})
    return sims, fits


def test_posterior_intervals_cover_the_truth(recovery):
    """90% central intervals of the main parameters cover the truth at about 0.90."""
    _, fits = recovery
    hits = np.array([[np.quantile(get(f), 0.05) <= truth <= np.quantile(get(f), 0.95)
                      for get, truth in COVERAGE_PARAMS.values()] for f in fits])  # (R, P)
    # The R x P indicators are correlated within a fit (shared data), so the binomial SE
    # uses R, not R x P: sqrt(0.9 * 0.1 / R) = 0.053 for R = 32 (conservative); 3 SE.
    se = math.sqrt(0.9 * 0.1 / R)
    print(f"coverage over {R} fits: {hits.mean():.3f};",  # noqa: T201
          dict(zip(COVERAGE_PARAMS, hits.mean(0).round(3))))
    assert abs(hits.mean() - 0.90) < 3 * se, dict(zip(COVERAGE_PARAMS, hits.mean(0)))
    # per parameter: at least the 0.001 quantile of Binomial(R, 0.9) (= 23 of 32)
    assert hits.sum(0).min() >= stats.binom.ppf(1e-3, R, 0.9), dict(zip(COVERAGE_PARAMS, hits.sum(0)))


def test_per_patient_random_effects_are_recovered(recovery):
    """Posterior means of u_i track the true u_i.  With 5 visits the reliability of a
    patient's level is tau0^2 / (tau0^2 + sigma^2 / 5) = 0.95 (correlation 0.975); dropouts
    have fewer visits, so ask for > 0.9 (intercept); slopes are weaker (one time_ref of
    follow-up): reliability tau1^2 / (tau1^2 + sigma^2 / sum (s - s_bar)^2) = 0.63, ask > 0.6."""
    sims, fits = recovery
    u_hat = np.concatenate([joint_random_effects(f).mean(0) for f in fits])
    u_true = np.concatenate([np.asarray(re) for _, re in sims])
    assert np.corrcoef(u_hat[:, 0], u_true[:, 0])[0, 1] > 0.9
    assert np.corrcoef(u_hat[:, 1], u_true[:, 1])[0, 1] > 0.6


def _expected_observed_mean(x, s):
    """E[y(s) | T > s] pooled over patients with covariates x, by 2-D Gauss-Hermite
    quadrature over z ~ N(0, I) (u = tau * L z); censoring is independent, so it cancels.
    Hand derivation of the sign (Stein's lemma, first order in H0): E[u' w | T > s] ~
    -H0(s) Cov(u' w, eta_u) with w = (1, s), eta_u = alpha . (u / tau); here
    Cov = tau0 a0 + rho (tau0 a1 + s tau1 a0) + s tau1 a1 < 0 for alpha < 0, rho > 0:
    the survivors' biomarker is *above* the marginal mean."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(40)
    weights = weights / weights.sum()
    z = np.stack(np.meshgrid(nodes, nodes, indexing="ij"), -1).reshape(-1, 2)
    w = np.outer(weights, weights).ravel()
    tau = TRUTH["re_sd"]
    u = (z @ TRUTH["re_corr_chol"].T) * tau
    y = TRUTH["bm_intercept"] + TRUTH["bm_gamma"][0] * x[:, None] + u[:, 0] + (TRUTH["bm_slope"] + u[:, 1]) * s
    eta = TRUTH["beta"][0] * x[:, None] + (u / tau) @ TRUTH["assoc"]
    surv = np.exp(-((s / math.exp(TRUTH["log_scale"])) ** math.exp(TRUTH["log_shape"])) * np.exp(eta))
    return float((y * surv) @ w @ np.ones(len(x)) / (surv @ w).sum())


def test_informative_dropout_biases_the_naive_mean_and_the_joint_model_corrects_it(recovery):
    sims, fits = recovery
    s = VISITS[-1]
    marginal = TRUTH["bm_intercept"] + TRUTH["bm_slope"] * s  # x standardised: mean(x) = 0
    naive, joint = [], []
    pooled = []
    for (data, _), f in zip(sims, fits):
        x, bt, bv = np.asarray(data[0][:, 0]), np.asarray(data[4]), np.asarray(data[5])
        last = np.sqrt(bv[(bt == s) & np.isfinite(bv)])  # patients still in follow-up at s
        pooled.append(last)
        naive.append(last.mean())
        joint.append(np.mean(f["bm_intercept"] + f["bm_slope"] * s))
    pooled = np.concatenate(pooled)
    x_all = np.concatenate([np.asarray(d[0][:, 0]) for d, _ in sims])
    expected = _expected_observed_mean(x_all, s)
    assert expected > marginal + 0.5  # the hand-derived direction, by quadrature
    # the observed last-visit mean: MC SE sd / sqrt(n_obs) (patients independent); 4 SE
    se_pooled = pooled.std(ddof=1) / math.sqrt(pooled.size)
    assert abs(pooled.mean() - expected) < 4 * se_pooled
    # across the R data sets (independent): the naive per-visit average is biased by more
    # than 5 SE in the direction implied by alpha; the joint model's marginal mean is not
    # (|bias| < 3 SE, SE = sd over data sets / sqrt(R))
    naive, joint = np.array(naive), np.array(joint)
    print(f"last visit: marginal {marginal:.3f}, quadrature {expected:.3f}, observed pooled "  # noqa: T201
          f"{pooled.mean():.3f} (SE {se_pooled:.3f}), naive mean over data sets {naive.mean():.3f}, "
          f"joint {joint.mean():.3f} (SE {joint.std(ddof=1) / math.sqrt(R):.3f})")
    assert (naive.mean() - marginal) / (naive.std(ddof=1) / math.sqrt(R)) > 5
    assert abs(joint.mean() - marginal) < 3 * joint.std(ddof=1) / math.sqrt(R)


# --------------------------------------------------------------------------- ACTG 175

ACTG_COVARIATES = ["age", "wtkg", "karnof", "symptom"]
ACTG_VISITS = np.array([0.0, 140.0, 672.0])  # weeks 0, 20, 96 in days


@pytest.fixture(scope="module")
def actg():
    frame = builtin_frame("actg175")
    arm = frame[frame["arms"] == 0].reset_index(drop=True)  # zidovudine only, 532 patients
    time, event = arm["days"].to_numpy(float), arm["cens"].to_numpy()  # cens: 1 = event
    pat, bt, bv = biomarker_long(arm[["cd40", "cd420", "cd496"]].to_numpy(float), ACTG_VISITS, time=time)
    start = _time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # short chains; checked below
        fit = fit_joint(time, event, arm[ACTG_COVARIATES], pat, bt, bv, rng_key=jax.random.key(175),
                        chains=2, warmup=300, draws=200)
    seconds = _time.perf_counter() - start
    x = fit.standardise(arm[ACTG_COVARIATES])
    pp = joint_predictive(jax.random.key(176), fit, x, ACTG_VISITS, n_draws=200,
                          censoring=censoring_sampler(time, event))
    return arm, fit, pp, seconds


def test_actg_fit_is_usable(actg):
    _, fit, _, seconds = actg
    print(f"ACTG joint fit: {seconds:.1f} s")  # noqa: T201  (reported with -s)
    # short chains (2 x 200 draws): a sanity check that the chains agree (R-hat < 1.1,
    # Gelman & Rubin's original threshold), not a convergence verdict for inference
    assert fit.divergences <= 4 and (fit.diagnostics["r_hat"] < 1.1).all(), fit.diagnostics
    # CD4 decline raises the hazard (the event includes a >= 50% CD4 drop): slope assoc < 0
    assert np.quantile(fit.samples["assoc"][:, 1], 0.95) < 0


def test_actg_predictive_km_stays_within_the_observed_band(actg):
    arm, _, pp, _ = actg
    grid = np.linspace(100.0, 1100.0, 10)
    km_pred = np.asarray(jax.vmap(lambda t, e: km_on_grid(t, e, jnp.asarray(grid)))(
        jnp.asarray(pp["time"]), jnp.asarray(pp["event"]))).mean(0)
    kmf = KaplanMeierFitter().fit(arm["days"], arm["cens"])
    band = kmf.confidence_interval_  # pointwise 95% (log(-log) Greenwood), right-continuous
    idx = np.searchsorted(band.index.to_numpy(), grid, side="right") - 1
    lower, upper = band.iloc[idx, 0].to_numpy(), band.iloc[idx, 1].to_numpy()
    print("KM observed/predicted:", np.c_[grid, kmf.survival_function_at_times(grid), km_pred].round(3))  # noqa: T201
    assert np.all((lower <= km_pred) & (km_pred <= upper)), np.c_[grid, lower, km_pred, upper]


def test_actg_week96_cd4_matches_the_observed_among_patients_at_risk(actg):
    """Synthetic patients alive and in follow-up at week 96 vs the observed cd496 of patients
    still at risk at day 672 (the like-for-like group: cd496 values measured after the
    event are not part of the model, which describes the biomarker while at risk)."""
    arm, _, pp, _ = actg
    observed = arm.loc[arm["days"] > 672, "cd496"].dropna().to_numpy()
    q = np.array([0.25, 0.5, 0.75])
    q_obs = np.quantile(observed, q)
    # posterior predictive distribution of the quantiles of a replicate group of the
    # observed size: per draw, a random subset of size n_obs of that draw's synthetic
    # patients at risk (their spread holds both the sampling error of n_obs patients and
    # the posterior uncertainty, so no bootstrap SE is added on top)
    rng = np.random.default_rng(96)
    at_risk = (pp["event_time"] > 672) & (pp["censor_time"] > 672)
    q_rep = np.array([np.quantile(rng.choice(v[m], observed.size, replace=False), q)
                      for v, m in zip(pp["bm_value"][..., 2], at_risk)])  # (draws, 3)
    z = (q_obs - q_rep.mean(0)) / q_rep.std(0, ddof=1)
    # for the report: the observed quantiles' bootstrap SE alone (sampling error only)
    boot = np.quantile(rng.choice(observed, (2000, observed.size)), q, axis=1)
    print("week-96 CD4 q25/q50/q75 synthetic:", q_rep.mean(0).round(1), "observed:", q_obs,  # noqa: T201
          "predictive sd:", q_rep.std(0, ddof=1).round(1), "bootstrap SE:", boot.std(1, ddof=1).round(1))
    assert np.all(np.abs(z) < 3), z  # 3 predictive sd per quantile
