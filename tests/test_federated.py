"""Federated fitting (twinsim.fit.federated): the combination of site summaries against the
pooled fit, the Gaussian algebra against closed forms, the exchange objects' JSON round trip,
and the combined posterior driving the simulator.

Event convention: 1 = event observed, 0 = right censored.
"""

from __future__ import annotations

import dataclasses
import json
import math
import warnings
from types import SimpleNamespace

import jax
import numpy as np
import pandas as pd
import pytest

from twinsim.errors import ConvergenceWarning, ModelError, StatisticalWarning
from twinsim.fit import Posterior, fit
from twinsim.fit.federated import (FederatedPlan, SiteStatistics, SiteSummary, combine,
                                   federated_plan, fit_site, site_statistics)
from twinsim.simulate import patient_model_from_posterior, sample_patients

K_SITES, N_SITE = 3, 400
NUTS = {"chains": 2, "warmup": 300, "draws": 300}
FED_DRAWS = 2000


def simulate(rng, n):
    """Weibull PH (shape 1.3, scale 100 days at the covariate means) with age ~ N(60, 10^2) and
    a Bernoulli(0.4) column; log hazard ratios 0.4 per age SD and -0.5 for the binary;
    censoring Uniform(0, 250) days."""
    age = 60.0 + 10.0 * rng.standard_normal(n)
    binary = (rng.uniform(size=n) < 0.4).astype(float)
    eta = 0.04 * (age - 60.0) - 0.5 * (binary - 0.4)
    t_event = 100.0 * (rng.exponential(size=n) / np.exp(eta)) ** (1 / 1.3)
    t_cens = rng.uniform(0.0, 250.0, size=n)
    return (np.minimum(t_event, t_cens), (t_event <= t_cens).astype(int),
            pd.DataFrame({"age": age, "binary": binary}))


@pytest.fixture(scope="module")
def run():
    """Three sites of 400 (a random split of one population), their federated combination and
    the pooled fit under the same standardisation and time_ref (so the priors agree)."""
    rng = np.random.default_rng(20250317)
    time, event, cov = simulate(rng, K_SITES * N_SITE)
    parts = [slice(i * N_SITE, (i + 1) * N_SITE) for i in range(K_SITES)]
    stats = [site_statistics(time[s], event[s], cov.iloc[s], site=f"site{i}") for i, s in enumerate(parts)]
    plan = federated_plan(stats)
    key = jax.random.key(31)
    summaries = [fit_site(time[s], event[s], cov.iloc[s], plan, rng_key=jax.random.fold_in(key, i),
                          synthetic=200, site=f"site{i}", data_hash=f"hash{i}", **NUTS)
                 for i, s in enumerate(parts)]
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        fed = combine(summaries, plan, rng_key=jax.random.fold_in(key, 99), draws=FED_DRAWS)
    pooled = fit(time, event, cov, rng_key=jax.random.fold_in(key, 100), standardisation=plan.standardisation,
                 time_ref=plan.time_ref, **NUTS)
    return SimpleNamespace(time=time, event=event, cov=cov, parts=parts, stats=stats, plan=plan,
                           summaries=summaries, fed=fed, pooled=pooled, record=record)


def test_plan_pools_standardisation_and_time_ref(run):
    x = run.cov.to_numpy(float)
    np.testing.assert_allclose(run.plan.mean, x.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(run.plan.sd, x.std(axis=0), rtol=1e-9)  # sum-of-squares form
    assert run.plan.time_ref == pytest.approx(math.exp(np.log(run.time).mean()), rel=1e-12)
    assert (run.plan.n, run.plan.n_events, run.plan.sites) == (1200, int(run.event.sum()), 3)


@pytest.mark.slow
def test_federated_matches_pooled_fit(run):
    """Each parameter: |mean_fed - mean_pooled| <= tol * sd_pooled and |sd_fed / sd_pooled - 1| <= tol_sd.

    Tolerances, in units of the pooled posterior SD (D = 4 parameters, K = 3 sites):
    * Monte Carlo, means: the pooled mean has variance 1/ESS_p; the federated mean
      m = L^-1 sum_k L_k m_k has variance ~ 1/ESS_s from the site means (ESS_s the smallest
      bulk ESS over sites and parameters) and the 2000 iid combined draws add 1/2000.  The
      site covariances are estimated from draws too: in whitened coordinates
      L_k = L_s^1/2 (I + E_k) L_s^1/2 with E_k of entries ~ N(0, 1/ESS_s), and the error
      L^-1 sum_k dL_k (m_k - m) = (1/K) sum_k E_k u_k, u_k ~ N(0, (K-1)/K I) the site
      deviations, has variance (D+1)(K-1)/(K ESS_s) pooled SD^2.  tol = 4 SD of the sum,
      about 0.43 here.
    * Gaussian approximation (Bernstein-von Mises): a site posterior with standardised
      skewness g has its mean about g/2 site SDs from its mode; the product of the site
      Gaussians keeps that offset while the pooled posterior has only 1/K of it, so the
      means differ by about g (K-1) / (2 sqrt K) pooled SDs.  g is O(1/sqrt(events)); we
      take g = 2 / sqrt(min events per site) (a Gamma posterior of a log rate has
      1/sqrt(events)) and allow twice the offset (the third-derivative term is of the same
      order): 0.15 here.  Long runs (4 x 2500 draws, 20000 combined) measured |z| <= 0.064.
    * SD ratio: relative SD of an SD estimate 1/sqrt(2 ESS_p) (pooled); the combined
      covariance inherits the errors of all D(D+1)/2 entries of the K site covariances,
      bounded by (D+1)/(2 K ESS_s); 4 SD of both plus the same Gaussian term.
    Repeating this test's protocol with 12 other keys on the same data gave SD(z) 0.08-0.13
    and SD(ratio) 0.04-0.05 per parameter (docs/models-federated.md), inside these bounds.
    """
    fed, pooled = run.fed, run.pooled
    names = fed.provenance["gaussian"]["names"]
    assert names == ["log_scale", "log_shape", "beta[age]", "beta[binary]"]
    d = len(names)
    fed_draws = np.column_stack([fed.log_scale, fed.log_shape, fed.beta])
    pool_draws = np.column_stack([pooled.log_scale, pooled.log_shape, pooled.beta])
    ess_pool = pooled.diagnostics.set_index("param").loc[names, "ess_bulk"].to_numpy()
    ess_site = min(s.diagnostics["min_ess_bulk"] for s in run.summaries)
    g = 2 / math.sqrt(min(s.n_events for s in run.summaries))
    gauss = 2 * g * (K_SITES - 1) / (2 * math.sqrt(K_SITES))
    cov_err = (d + 1) * (K_SITES - 1) / (K_SITES * ess_site)
    tol_mean = 4 * np.sqrt(1 / ess_pool + 1 / ess_site + 1 / FED_DRAWS + cov_err) + gauss
    tol_sd = 4 * np.sqrt(1 / (2 * ess_pool) + (d + 1) / (2 * K_SITES * ess_site)) + gauss
    sd_p = pool_draws.std(axis=0)
    z = (fed_draws.mean(axis=0) - pool_draws.mean(axis=0)) / sd_p
    ratio = fed_draws.std(axis=0) / sd_p
    print("\nparam, z = (fed - pooled)/sd_pooled, tol, sd ratio, tol")
    for i, n in enumerate(names):
        print(f"{n}: {z[i]:+.3f} {tol_mean[i]:.3f} {ratio[i]:.3f} {tol_sd[i]:.3f}")
    print(f"ESS pooled {ess_pool.round()}, min site ESS {ess_site:.0f}, g {g:.3f}, "
          f"Q {fed.provenance['heterogeneity']}")
    assert np.all(np.abs(z) <= tol_mean), (z, tol_mean)
    assert np.all(np.abs(ratio - 1) <= tol_sd), (ratio, tol_sd)
    # one population split at random: Q ~ chi2(8), no heterogeneity warning (fixed seed)
    assert fed.provenance["heterogeneity"]["df"] == (K_SITES - 1) * 4
    assert not [w for w in run.record if issubclass(w.category, StatisticalWarning)]
    assert fed.inference["method"] == "federated" and fed.inference["sites"] == K_SITES
    assert [s["data_hash"] for s in fed.provenance["sites"]] == ["hash0", "hash1", "hash2"]
    assert fed.provenance["n"] == 1200 and fed.loo is None and fed.observed_time.shape == (0,)


def _assert_same(a, b):
    for f in dataclasses.fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, np.ndarray):
            np.testing.assert_array_equal(x, y, err_msg=f.name)
            assert x.dtype == y.dtype and x.shape == y.shape, f.name
        else:
            assert x == y, f.name


def test_json_round_trip_is_exact_and_shares_no_row(run):
    for obj, cls in ((run.stats[0], SiteStatistics), (run.summaries[0], SiteSummary),
                     (run.plan, FederatedPlan)):
        text = obj.to_json()
        back = cls.from_json(text)
        _assert_same(obj, back)
        assert back.to_json() == text
    assert run.plan.from_json(run.plan.to_json()).digest == run.plan.digest
    with pytest.raises(ModelError, match="not a twinsim SiteSummary"):
        SiteSummary.from_json(run.stats[0].to_json())
    # no patient row leaves the site: no follow-up time, no raw age (continuous, so an
    # equal value would be a copy) appears in what the site sends; with n = 400 each of the
    # 50 shared quantiles lies halfway between two order statistics (position 8k + 3.5)
    s0, part = run.summaries[0], run.parts[0]
    text = s0.to_json() + run.stats[0].to_json()
    assert not any(repr(float(t)) in text for t in run.time[part])
    syn = s0.synthetic_frame()
    assert syn.shape == (200, 2) and set(syn["binary"].unique()) <= {0.0, 1.0}
    assert not set(syn["age"]) & set(run.cov["age"].iloc[part])


def test_design_mismatch_and_plan_errors(run):
    rng = np.random.default_rng(5)
    t, e = rng.uniform(1, 100, 50), (rng.uniform(size=50) < 0.5).astype(int)
    cat = lambda levels: pd.DataFrame({"arm": pd.Categorical(rng.choice(levels, 50), categories=levels)})
    a = site_statistics(t, e, cat(["a", "b"]))
    b = site_statistics(t, e, cat(["a", "b", "c"]))
    with pytest.raises(ModelError, match=r"same level list"):
        federated_plan([a, b])
    with pytest.raises(ModelError, match="needs explicit knots"):
        federated_plan([a], outcome="piecewise_exponential")
    with pytest.raises(ModelError, match="time units"):
        federated_plan([a, dataclasses.replace(b, time_unit="months")])
    # a site whose columns differ from the plan is refused before any fitting
    with pytest.raises(ModelError, match=r"only at the site: \['weight'\]"):
        fit_site(t, e, pd.DataFrame({"age": t, "weight": rng.uniform(50, 90, 50)}), run.plan,
                 rng_key=jax.random.key(0))
    with pytest.raises(ModelError, match="needs more than 50 patients"):
        fit_site(t, e, pd.DataFrame({"age": t, "binary": e * 1.0}), run.plan, rng_key=jax.random.key(0),
                 synthetic=10)
    with pytest.raises(ModelError, match="come from the plan"):
        fit_site(t, e, None, run.plan, rng_key=jax.random.key(0), time_ref=3.0)
    with pytest.raises(ModelError, match="missing='error' only"):
        site_statistics(t, e, None, missing="model")


# --------------------------------------------------------------------------- algebra


def _gaussian_summary(plan, mean, cov, label, n_syn=60, seed=0):
    rng = np.random.default_rng(seed)
    syn = {"n": n_syn, "names": ["age", "binary"], "categorical": [False, False], "levels": [[], []],
           "ordered": [False, False],
           "columns": [list(60 + 10 * rng.standard_normal(n_syn)),
                       list((rng.uniform(size=n_syn) < 0.4) * 1.0)]}
    diag = {"max_r_hat": 1.0, "min_ess_bulk": 500.0, "min_ess_tail": 500.0, "divergences": 0,
            "chains": 2, "draws": 500, "max_abs_skewness": 0.0}
    return SiteSummary(site=label, outcome=plan.outcome, param_names=plan.param_names, mean=mean, cov=cov,
                       n=100, n_events=50, data_hash="", diagnostics=diag, plan_digest=plan.digest,
                       synthetic=syn)


def test_combination_matches_conjugate_closed_form(run):
    """Gaussian likelihoods N(y_k, R_k) under the family's prior N(m0, S0): the site posteriors
    are exactly Gaussian, and the pooled posterior has precision L0 + sum R_k^-1 and mean
    P^-1 (L0 m0 + sum R_k^-1 y_k); the combination must reproduce it to rounding error (the
    prior counted once).  The prior is written here from the model's definition (weibull:
    log_scale ~ N(log t_ref, 3^2), log_shape ~ N(0, 1), beta ~ N(0, 1))."""
    plan = run.plan
    m0 = np.array([math.log(plan.time_ref), 0.0, 0.0, 0.0])
    l0 = np.diag(1 / np.array([9.0, 1.0, 1.0, 1.0]))
    rng = np.random.default_rng(11)
    summaries, info_sum, score_sum = [], np.zeros((4, 4)), np.zeros(4)
    for k in range(4):
        a = rng.standard_normal((4, 4)) * 0.1
        info = np.linalg.inv(a @ a.T + 0.01 * np.eye(4))  # R_k^-1
        y = m0 + rng.standard_normal(4) * 0.3
        prec_k = l0 + info
        summaries.append(_gaussian_summary(plan, np.linalg.solve(prec_k, l0 @ m0 + info @ y),
                                           np.linalg.inv(prec_k), f"s{k}", seed=k))
        info_sum, score_sum = info_sum + info, score_sum + info @ y
    prec = l0 + info_sum
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StatisticalWarning)  # random y_k disagree on purpose
        post = combine(summaries, plan, rng_key=jax.random.key(1), draws=4000)
    g = post.provenance["gaussian"]
    np.testing.assert_allclose(g["mean"], np.linalg.solve(prec, l0 @ m0 + score_sum), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(g["cov"], np.linalg.inv(prec), rtol=1e-9, atol=1e-14)
    # the draws follow N(mean, cov): sample mean within 4 Monte Carlo SE
    draws = np.column_stack([post.log_scale, post.log_shape, post.beta])
    se = np.sqrt(np.diag(g["cov"]) / 4000)
    assert np.all(np.abs(draws.mean(axis=0) - g["mean"]) <= 4 * se)
    # one site: its own Gaussian, exactly (no prior division)
    one = combine(summaries[:1], plan, rng_key=jax.random.key(2), draws=10).provenance["gaussian"]
    np.testing.assert_allclose(one["mean"], summaries[0].mean, rtol=1e-12)
    np.testing.assert_allclose(one["cov"], summaries[0].cov, rtol=1e-10, atol=1e-15)
    assert one["names"] == list(plan.param_names)


def test_combination_warns_and_refuses(run):
    plan = run.plan
    m0 = np.array([math.log(plan.time_ref), 0.0, 0.0, 0.0])
    cov = np.diag([0.01, 0.004, 0.003, 0.003])
    same = [_gaussian_summary(plan, m0.copy(), cov, f"s{k}") for k in range(3)]
    shifted = same[:2] + [dataclasses.replace(same[2], mean=m0 + 10 * np.sqrt(np.diag(cov)))]
    with pytest.warns(StatisticalWarning, match="sites disagree"):
        combine(shifted, plan, rng_key=jax.random.key(0), draws=10)
    # prior-dominated sites (posterior wider than the prior): sum L_k - 2 L0 is not PD
    wide = [dataclasses.replace(s, cov=4 * np.diag([9.0, 1, 1, 1])) for s in same]
    with pytest.raises(ModelError, match="too few events"):
        combine(wide, plan, rng_key=jax.random.key(0), draws=10)
    with pytest.raises(ModelError, match="another plan"):
        combine([dataclasses.replace(same[0], plan_digest="0" * 64)], plan, rng_key=jax.random.key(0))
    with pytest.raises(ModelError, match="no site shared synthetic"):
        combine([dataclasses.replace(s, synthetic=None) for s in same], plan, rng_key=jax.random.key(0))
    bad = dataclasses.replace(same[0], diagnostics={**same[0].diagnostics, "divergences": 3})
    with pytest.warns(ConvergenceWarning, match="site 's0'"):
        combine([bad], plan, rng_key=jax.random.key(0), draws=10)


FAMILY_KNOTS = [("weibull", None), ("exponential", None), ("lognormal", None),
                ("piecewise_exponential", np.array([0.0, 10.0, 30.0, 60.0]))]


@pytest.mark.parametrize("family,knots", FAMILY_KNOTS)
def test_prior_moments_match_the_model_prior(family, knots):
    """The Gaussian prior divided out by combine() against 20000 draws of the NumPyro model's
    own prior (Predictive): mean within 4 SE (SE = sd / sqrt(N)), covariance entries within
    4 SE (SE of a sample covariance = sqrt((S_ii S_jj + S_ij^2) / N) for Gaussian draws)."""
    from numpyro.infer import Predictive

    from twinsim.fit.federated import prior_moments
    from twinsim.models import outcome_model

    n = 20000
    plan = FederatedPlan(family, "days", ("a", "b"), np.zeros(2), np.ones(2), 45.0, knots, 1, 3, 3)
    kw = {"time_ref": 45.0} | ({"knots": knots} if knots is not None else {})
    pr = Predictive(lambda *a, **k: outcome_model(family, *a, **k), num_samples=n)(
        jax.random.key(0), np.zeros((3, 2)), np.ones(3), np.ones(3), **kw)
    head = {"weibull": ["log_scale", "log_shape"], "exponential": ["log_scale"],
            "lognormal": ["mu", "log_sigma"], "piecewise_exponential": ["log_hazard"]}[family]
    theta = np.column_stack([np.asarray(pr[k]).reshape(n, -1) for k in head + ["beta"]])
    m0, s0 = prior_moments(plan)
    assert theta.shape[1] == len(plan.param_names) == len(m0)
    assert np.all(np.abs(theta.mean(axis=0) - m0) <= 4 * np.sqrt(np.diag(s0) / n))
    v = np.diag(s0)
    assert np.all(np.abs(np.cov(theta, rowvar=False) - s0) <= 4 * np.sqrt((np.outer(v, v) + s0**2) / n))


@pytest.mark.parametrize("family,knots", FAMILY_KNOTS)
def test_theta_mapping_round_trip(family, knots):
    """theta (S, D) -> the Posterior's params/beta -> theta is the identity, for every family."""
    from twinsim.fit.federated import _params, _theta

    plan = FederatedPlan(family, "days", ("a", "b"), np.zeros(2), np.ones(2), 45.0, knots, 1, 3, 3)
    theta = np.random.default_rng(0).standard_normal((7, len(plan.param_names)))
    params, beta = _params(family, theta, 2)
    assert set(params) == set({"weibull": ["log_scale", "log_shape"], "lognormal": ["mu", "log_sigma"],
                               "exponential": ["log_scale", "log_shape"],
                               "piecewise_exponential": ["log_hazard"]}[family])
    post = SimpleNamespace(outcome=family, params=params, beta=beta, n_draws=7)
    np.testing.assert_array_equal(_theta(post), theta)


# --------------------------------------------------------------------------- simulator


def test_combined_posterior_drives_simulator_and_saves(run, tmp_path):
    fed = run.fed
    model = patient_model_from_posterior(fed, "days")
    x, t = jax.jit(sample_patients, static_argnums=2)(jax.random.key(3), model, 300)  # jit: faster than eager
    assert x.shape == (300, 2) and t.shape == (300,)
    assert np.all(np.isfinite(np.asarray(t))) and np.all(np.asarray(t) > 0)
    # the centre's covariate generator reproduces the pooled population (600 synthetic rows):
    # binary proportion SE sqrt(0.24 (1/600 + 1/4000)) = 0.021, age mean SE 10 * 0.044 = 0.44
    syn = fed.covariate_model.sample(jax.random.key(4), 4000)
    assert abs(syn["binary"].mean() - run.cov["binary"].mean()) <= 4 * 0.021
    assert abs(syn["age"].mean() - run.cov["age"].mean()) <= 4 * 0.44
    fed.save(tmp_path / "fed.nc")
    back = Posterior.load(tmp_path / "fed.nc")
    np.testing.assert_array_equal(back.beta, fed.beta)
    np.testing.assert_array_equal(back.log_shape, fed.log_shape)
    assert back.provenance == json.loads(json.dumps(fed.provenance))
    assert back.observed_time.shape == (0,)
