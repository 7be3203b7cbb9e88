"""Digital twins (twinsim.digital_twins) against independent references.

References: scipy.stats survival functions and medians per posterior draw (Weibull,
exponential, log-normal, the log-normal with a study effect folded into sigma); a
piecewise-exponential cumulative hazard written out in numpy; scipy.integrate.quad for
the normal mixture, the RMST and scipy.optimize.brentq for the mixture's median; Monte
Carlo event times of twinsim.simulate.sample_patients for the integrated survival; brute
force importance sampling of the random effects given the baseline biomarker for the joint
model.  Posteriors are built by hand (known draws), so no NUTS runs here.  No outcome data
are read (event convention not used).
"""

from __future__ import annotations

import math
import warnings

import jax
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from scipy import integrate, optimize, stats

from twinsim.cli import main
from twinsim.errors import DataError, StatisticalWarning
from twinsim.fit import Posterior
from twinsim.models import time_factor
from twinsim.models.covariates import CovariateModel
from twinsim.simulate import patient_model_from_posterior, sample_patients
from twinsim.digital_twins import twin_draws, twins

S = 40  # posterior draws of the hand-built posteriors
HIST = pd.DataFrame({"age": np.linspace(30.0, 70.0, 21), "sex": pd.Categorical(["F", "M"] * 10 + ["F"])})
CM = CovariateModel.fit(HIST)
X_HIST = CM.design(HIST)
PATIENTS = pd.DataFrame({"pid": ["a", "b", "c"], "age": [35.0, 52.5, 68.0], "sex": ["M", "F", "M"]})


def _normal(seed: int, shape, loc=0.0, scale=1.0) -> np.ndarray:
    return loc + scale * np.asarray(jax.random.normal(jax.random.key(seed), shape))


def _posterior(outcome, params, *, cm=CM, mean=None, sd=None, beta=None, study_sd=None, joint=None, consts=None):
    p = len(cm.design_names)
    return Posterior(
        outcome=outcome, time_unit="days", covariate_names=cm.design_names,
        covariate_mean=X_HIST.mean(0) if mean is None else np.asarray(mean, float),
        covariate_sd=X_HIST.std(0) if sd is None else np.asarray(sd, float),
        params=params, beta=_normal(1, (S, p), scale=0.3) if beta is None else beta, covariate_model=cm,
        observed_time=np.linspace(20.0, 700.0, 21), observed_event=np.ones(21, int),
        diagnostics=pd.DataFrame({"param": ["x"], "mean": [0.0]}), divergences=0,
        inference={"method": "nuts", "chains": 1}, provenance={}, consts=consts or {},
        study=None if study_sd is None else {"labels": ("s1", "s2"), "sd": study_sd, "effect": np.zeros((S, 2))},
        joint=joint,
    )


def _x_std(post, frame):
    f = frame[["age", "sex"]].assign(sex=pd.Categorical(frame["sex"], categories=["F", "M"]))
    return (CM.design(f) - post.covariate_mean) / post.covariate_sd


WEIBULL = {"log_scale": _normal(2, S, math.log(400.0), 0.1), "log_shape": _normal(3, S, math.log(1.3), 0.1)}


def _scipy_dist(outcome, params, eta, study_sd=None):
    """Per-draw frozen scipy distributions (S, n) of the patients' control event time, in days."""
    if outcome == "lognormal":
        sigma = np.exp(params["log_sigma"])[:, None]
        if study_sd is not None:  # N(0, sd^2) on log time: log-normal with sigma^2 + sd^2
            sigma = np.sqrt(sigma**2 + study_sd[:, None] ** 2)
        return stats.lognorm(sigma, scale=np.exp(params["mu"][:, None] + eta))
    k = np.exp(params["log_shape"])[:, None]
    # H(t) = (t / lam)^k e^eta  <=>  Weibull with scale lam e^{-eta / k}
    return stats.weibull_min(k, scale=np.exp(params["log_scale"])[:, None] * np.exp(-eta / k))


CASES = {
    "weibull": ("weibull", WEIBULL, None, "days"),
    "exponential": ("exponential", {"log_scale": WEIBULL["log_scale"], "log_shape": np.zeros(S)}, None, "weeks"),
    "lognormal_study": ("lognormal", {"mu": _normal(4, S, math.log(300.0), 0.1), "log_sigma": _normal(5, S, -0.2, 0.1)},
                        np.abs(_normal(6, S, 0.0, 0.5)), "months"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_closed_forms_per_draw_and_summaries(case):
    """Per draw: S(t), median, RMST (quad), eta = x'beta; columns = mean and quantiles of those.

    The twin's numbers are deterministic functions of the draws, so the tolerances are
    numerical: 1e-9 (survival; log-normal via its own ndtr route), 1e-7 relative (median by
    bisection in log time), 1e-6 (RMST: 48-node Gauss-Legendre vs adaptive quad).
    """
    outcome, params, study_sd, unit = CASES[case]
    post = _posterior(outcome, params, study_sd=study_sd)
    ms, horizon = np.array([3.0, 12.0]) * time_factor("months", unit), 15.0 * time_factor("months", unit)
    d = twin_draws(post, PATIENTS, milestones=ms, horizon=horizon, time_unit=unit, max_draws=None)
    out = twins(post, PATIENTS, milestones=ms, horizon=horizon, time_unit=unit, id="pid", level=0.8, max_draws=None)
    eta = post.beta @ _x_std(post, PATIENTS).T  # (S, n)
    dist = _scipy_dist(outcome, params, eta, study_sd)
    f = time_factor(unit, "days")  # the reference works in days, the twin in `unit`
    ref_surv = np.stack([dist.sf(m * f) for m in ms], axis=-1)
    np.testing.assert_allclose(d["surv"], ref_surv, atol=1e-9)
    np.testing.assert_allclose(d["median"], dist.median() / f, rtol=1e-7)
    np.testing.assert_allclose(d["eta"], eta, atol=1e-12)
    i, s = 1, [0, 17]
    for j in s:
        ref = integrate.quad(lambda t: _scipy_dist(outcome, {k: v[j:j + 1] for k, v in params.items()}, eta[j:j + 1, i:i + 1],
                                                   None if study_sd is None else study_sd[j:j + 1]).sf(t)[0, 0],
                             0, horizon * f, epsabs=1e-10, epsrel=1e-10, limit=200)[0]
        assert abs(d["rmst"][j, i] - ref / f) < 1e-6 * horizon
    assert d["n_nodes"] == 1  # nothing integrated numerically (log-normal: folded into sigma)
    # the table: posterior mean and central 80% quantiles of the per-draw values
    cols = [c for c in out.columns if c.startswith("surv_") and not c.endswith(("_lo", "_hi"))]
    assert cols == {"days": ["surv_91.312", "surv_365.25"], "weeks": ["surv_13.045", "surv_52.179"],
                    "months": ["surv_3", "surv_12"]}[unit]  # integers as such, else 3 decimals
    col = cols[1]
    np.testing.assert_allclose(out[col], ref_surv[:, :, 1].mean(0), atol=1e-9)
    np.testing.assert_allclose(out[[f"{col}_lo", f"{col}_hi"]].to_numpy().T,
                               np.quantile(ref_surv[:, :, 1], [0.1, 0.9], axis=0), atol=1e-9)
    np.testing.assert_allclose(out["median"], (dist.median() / f).mean(0), rtol=1e-7)
    assert list(out["pid"]) == ["a", "b", "c"] and (out["time_unit"] == unit).all()
    assert (out["rmst_horizon"] == horizon).all() and not out["out_of_range"].any()
    assert out.attrs["eta"].startswith("log time ratio" if outcome == "lognormal" else "log hazard")


def _mixture_reference(lam, k, eta, sd, horizon):
    """S(t) = int exp(-(t/lam)^k e^{eta + sd z}) phi(z) dz by adaptive quad; median by brentq; RMST by quad."""
    def surv(t):
        return integrate.quad(lambda z: math.exp(-((t / lam) ** k) * math.exp(eta + sd * z)) * stats.norm.pdf(z),
                              -12, 12, epsabs=1e-13, epsrel=1e-12, limit=200)[0]
    median = optimize.brentq(lambda t: surv(t) - 0.5, 1e-6, 1e7, xtol=1e-12, rtol=1e-13)
    rmst = integrate.quad(surv, 0, horizon, epsabs=1e-9, epsrel=1e-10)[0]
    return surv, median, rmst


def test_integrated_study_effect_matches_quadrature_brentq_and_pwe_by_hand():
    """Weibull with shape < 1 and a new-study effect N(0, sd^2): per-draw S, median and RMST
    against adaptive quadrature over z (a second implementation of the 40-node Gauss-Hermite
    sum) and brentq; tolerance 1e-7, well above both methods' errors (GH is exact to ~1e-12
    for this smooth integrand, quad to its epsabs).  Then the piecewise-exponential model
    against its cumulative hazard written out by hand, in months."""
    params = {"log_scale": WEIBULL["log_scale"], "log_shape": _normal(7, S, math.log(0.7), 0.1)}
    study_sd = np.abs(_normal(8, S, 0.0, 0.6))
    post = _posterior("weibull", params, study_sd=study_sd)
    d = twin_draws(post, PATIENTS.iloc[:2], milestones=[100.0, 365.0], horizon=500.0, max_draws=None)
    assert d["n_nodes"] == 40
    eta = post.beta @ _x_std(post, PATIENTS.iloc[:2]).T
    for j, i in ((0, 0), (21, 1)):
        surv, median, rmst = _mixture_reference(math.exp(params["log_scale"][j]), math.exp(params["log_shape"][j]),
                                                eta[j, i], study_sd[j], 500.0)
        np.testing.assert_allclose(d["surv"][j, i], [surv(100.0), surv(365.0)], atol=1e-7)
        assert abs(d["median"][j, i] / median - 1) < 1e-7 and abs(d["rmst"][j, i] - rmst) < 1e-7 * 500
        # and the integration matters here (the test can fail): without it S(365) is off
        plain = math.exp(-((365.0 / math.exp(params["log_scale"][j])) ** math.exp(params["log_shape"][j])) * math.exp(eta[j, i]))
        assert abs(plain - surv(365.0)) > 0.01 or study_sd[j] < 0.2

    knots = np.array([0.0, 60.0, 200.0, 450.0])
    log_h = _normal(9, (S, 4), math.log(1 / 300.0), 0.3)
    pwe = _posterior("piecewise_exponential", {"log_hazard": log_h}, consts={"knots": knots})
    f = time_factor("days", "months")
    d = twin_draws(pwe, PATIENTS, milestones=[1.0, 10.0, 20.0], horizon=18.0, time_unit="months", max_draws=None)
    eta = pwe.beta @ _x_std(pwe, PATIENTS).T

    def cumhaz0(t_days, j):
        widths = np.clip(np.minimum(t_days, np.r_[knots[1:], np.inf]) - knots, 0, None)
        return float(np.exp(log_h[j]) @ widths)

    for j in (0, 33):
        for i in range(3):
            s_ref = [math.exp(-cumhaz0(m / f, j) * math.exp(eta[j, i])) for m in (1.0, 10.0, 20.0)]
            np.testing.assert_allclose(d["surv"][j, i], s_ref, atol=1e-12)
            med = optimize.brentq(lambda t: cumhaz0(t, j) * math.exp(eta[j, i]) - math.log(2), 1e-9, 1e6, xtol=1e-10)
            assert abs(d["median"][j, i] * (1 / f) / med - 1) < 1e-9
            rmst = integrate.quad(lambda t: math.exp(-cumhaz0(t, j) * math.exp(eta[j, i])), 0, 18.0 / f,
                                  points=knots[1:], epsabs=1e-10)[0]
            assert abs(d["rmst"][j, i] / f - rmst) < 1e-8 * rmst


def _joint(s_count=S, *, p=2, assoc=(-0.8, -0.6)):
    """A joint-model record with known draws (sqrt CD4 around 18, i.e. CD4 about 320)."""
    corr = np.array([[1.0, 0.4], [0.4, 1.0]])
    params = {
        "bm_intercept": _normal(10, s_count, 18.0, 0.3), "bm_slope": _normal(11, s_count, -2.0, 0.2),
        "bm_gamma": _normal(12, (s_count, p), 0.0, 0.5), "bm_sigma": np.abs(_normal(13, s_count, 1.5, 0.1)),
        "re_sd": np.abs(_normal(14, (s_count, 2), 3.0, 0.2)), "assoc": _normal(15, (s_count, 2), 0.0, 0.05) + np.array(assoc),
        "re_corr_chol": np.broadcast_to(np.linalg.cholesky(corr), (s_count, 2, 2)).copy(),
    }
    values = np.square(np.linspace(8.0, 28.0, 21))
    return {"biomarker": "cd4", "transform": "sqrt", "time_ref": 400.0, "visit_times": np.array([0.0, 100.0, 300.0]),
            "params": params, "observed": {"patient": np.arange(21), "time": np.zeros(21), "value": values}}


def _constant_covariate_posterior(**kw):
    """Every patient (synthetic or given) has standardised covariate x = 1: a covariate model
    fitted on a constant column, with mean 0 and sd 1, so sample_patients draws fixed-x patients."""
    cm = CovariateModel.fit(pd.DataFrame({"c": np.ones(8)}))
    return _posterior("weibull", WEIBULL, cm=cm, mean=[0.0], sd=[1.0], beta=_normal(16, (S, 1), 0.3, 0.1), **kw)


@pytest.mark.parametrize("term", ["study", "frailty"])
def test_integrated_survival_matches_sample_patients(term):
    """The twin's mean survival is the posterior predictive P(T > t | x): compare it with the
    share of 20,000 event times from twinsim.simulate.sample_patients (each patient its own
    draw, own study effect or own random-effects term).  Binomial SE <= 0.5/sqrt(20000) =
    0.0035; tolerance 4 SE = 0.014.  Ignoring the term is off by more (the test can fail)."""
    kw = {"study_sd": np.full(S, 1.0)} if term == "study" else {"joint": _joint(p=1, assoc=(-1.0, -0.5))}
    post = _constant_covariate_posterior(**kw)
    ms = np.array([150.0, 400.0, 900.0])
    d = twin_draws(post, pd.DataFrame({"c": [1.0]}), milestones=ms, max_draws=None)
    _, t = sample_patients(jax.random.key(3), patient_model_from_posterior(post, "days"), 20_000)
    empirical = (np.asarray(t)[:, None] > ms).mean(0)
    twin = d["surv"][:, 0, :].mean(0)
    np.testing.assert_allclose(twin, empirical, atol=4 * 0.0035)
    eta = post.beta[:, 0]
    lam, k = np.exp(WEIBULL["log_scale"])[:, None], np.exp(WEIBULL["log_shape"])[:, None]
    plain = np.exp(-((ms / lam) ** k) * np.exp(eta[:, None])).mean(0)
    assert np.abs(plain - empirical).max() > 0.04


def test_joint_biomarker_conditioning_matches_importance_sampling():
    """Conditioning the random effects on the baseline biomarker (closed-form bivariate
    normal) against brute force: 400,000 draws of u ~ N(0, Sigma) weighted by the likelihood of
    the observed baseline, N(g(v0); m0 + u0, sigma^2).  Compared per draw: survival at two
    milestones, the expected raw biomarker (new measurement, with its error) at each visit,
    and eta = x'beta + E[assoc . u/tau | v0].  Tolerance 4.5 importance-sampling SEs
    (SE = weighted SD / sqrt(ESS)); about 40 comparisons, so a false alarm has probability
    < 1e-3.  The unconditioned twin (no baseline value) is checked against plain Monte Carlo
    and must differ from the conditioned one by far more (the test can fail)."""
    joint = _joint()
    post = _posterior("weibull", WEIBULL, joint=joint)
    patients = PATIENTS.assign(cd4=[90.0, np.nan, 600.0])  # low, not given, high baseline CD4
    ms = np.array([200.0, 500.0])
    d = twin_draws(post, patients, milestones=ms, max_draws=None)
    assert list(d["conditioned"]) == [True, False, True]
    x = _x_std(post, patients)
    jp = joint["params"]
    m_draws = 400_000
    for j in (0, 29):
        tau, sigma = jp["re_sd"][j], jp["bm_sigma"][j]
        z = np.asarray(jax.random.normal(jax.random.fold_in(jax.random.key(20), j), (m_draws, 2)))
        u = (z @ jp["re_corr_chol"][j].T) * tau
        eps = np.asarray(jax.random.normal(jax.random.fold_in(jax.random.key(21), j), (m_draws, 3))) * sigma
        frail = (u / tau) @ jp["assoc"][j]
        lam, k = math.exp(WEIBULL["log_scale"][j]), math.exp(WEIBULL["log_shape"][j])
        s = joint["visit_times"] / joint["time_ref"]
        for i in range(3):
            m0 = jp["bm_intercept"][j] + x[i] @ jp["bm_gamma"][j]
            xb = x[i] @ post.beta[j]
            v0 = patients["cd4"].iloc[i]
            w = np.ones(m_draws) if np.isnan(v0) else stats.norm.pdf(math.sqrt(v0), m0 + u[:, 0], sigma)
            w = w / w.sum()
            ess = 1.0 / np.sum(w**2)

            def check(values, got):
                mean = values.T @ w
                se = np.sqrt(((values - mean) ** 2).T @ w / ess)
                assert np.all(np.abs(got - mean) <= 4.5 * se + 1e-12), (j, i, got, mean, se)

            check(np.exp(-((ms[None, :] / lam) ** k) * np.exp(xb + frail)[:, None]), d["surv"][j, i])
            y = m0 + u[:, :1] + (jp["bm_slope"][j] + u[:, 1:]) * s + eps
            check(np.square(np.clip(y, 0, None)), d["biomarker"][j, i])
            check(xb + frail[:, None], d["eta"][j, i])
    # conditioning moves the twin: low baseline CD4 -> worse survival and lower CD4 than unconditioned
    free = twin_draws(post, PATIENTS, milestones=ms, max_draws=None)
    assert (d["surv"][:, 0, 1] < free["surv"][:, 0, 1] - 0.05).all()
    assert (d["biomarker"][:, 0, 1] < free["biomarker"][:, 0, 1] - 50).all()
    np.testing.assert_allclose(d["surv"][:, 1], free["surv"][:, 1], atol=1e-12)  # NaN baseline = unconditioned
    table = twins(post, patients, milestones=ms, max_draws=None)
    assert list(table["biomarker_conditioned"]) == [True, False, True]
    assert ["cd4_0", "cd4_100", "cd4_300"] == [c for c in table.columns if c.startswith("cd4_") and c.count("_") == 1]


def test_out_of_range_flags_unknown_levels_and_missing_columns():
    post = _posterior("weibull", WEIBULL, joint=_joint())
    patients = pd.DataFrame({"age": [29.0, 50.0, 71.0, 40.0], "sex": ["F", "X", "M", "M"],
                             "cd4": [300.0, 300.0, 300.0, 1000.0]})
    with pytest.warns(StatisticalWarning, match="4 of 4 patients.*1 with a categorical level"):
        out = twins(post, patients, milestones=[100.0], max_draws=None)
    assert list(out["out_of_range"]) == [True, True, True, True]
    notes = list(out["out_of_range_covariates"])
    assert notes[0] == "age: 29 < historical min 30" and notes[2] == "age: 71 > historical max 70"
    assert "sex: 'X' is not a historical level" in notes[1] and "cd4 (baseline biomarker): 1000" in notes[3]
    assert out.loc[1, ["surv_100", "median", "rmst", "eta", "cd4_100"]].isna().all()  # no coefficient for 'X'
    assert np.isfinite(out.loc[[0, 2, 3], ["surv_100", "median", "rmst", "eta"]].to_numpy()).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error", StatisticalWarning)  # in range: no warning, no flag
        inside = twins(post, patients.iloc[[3]].assign(cd4=300.0), milestones=[100.0], max_draws=None)
    assert not inside["out_of_range"].any() and inside["out_of_range_covariates"].iloc[0] == ""
    with pytest.raises(DataError, match=r"\['sex'\] are missing"):
        twins(post, patients.drop(columns="sex"))
    with pytest.raises(DataError, match="patients.age: 1 missing value"):
        twins(post, patients.assign(age=[1.0, np.nan, 2.0, 3.0]))
    with pytest.raises(DataError, match="patients.cd4"):
        twins(post, patients.assign(cd4=-1.0))


def test_cli_round_trip_and_bad_input(tmp_path):
    post = _posterior("weibull", WEIBULL, study_sd=np.full(S, 0.3))
    model = tmp_path / "post.nc"
    post.save(model)
    PATIENTS.to_csv(tmp_path / "patients.csv", index=False)
    runner = CliRunner()
    out = tmp_path / "twins.csv"
    res = runner.invoke(main, ["twins", "--model", str(model), "--patients", str(tmp_path / "patients.csv"),
                               "--out", str(out), "--milestones", "100,365", "--horizon", "400", "--id", "pid",
                               "--time-unit", "days"])
    assert res.exit_code == 0, res.output
    back = pd.read_csv(out)
    ref = twins(Posterior.load(model), PATIENTS, milestones=[100, 365], horizon=400, id="pid")
    pd.testing.assert_frame_equal(back.drop(columns="out_of_range_covariates"),
                                  ref.drop(columns="out_of_range_covariates"), check_dtype=False, rtol=1e-12)
    parquet = tmp_path / "twins.parquet"
    res = runner.invoke(main, ["twins", "--model", str(model), "--patients", str(tmp_path / "patients.csv"),
                               "--out", str(parquet), "--milestones", "100,365", "--horizon", "400"])
    assert res.exit_code == 0, res.output
    np.testing.assert_allclose(pd.read_parquet(parquet)["surv_365"], ref["surv_365"], rtol=1e-12)
    # a patients file without a covariate: exit 2, one message, no traceback, no output
    PATIENTS.drop(columns="age").to_csv(tmp_path / "bad.csv", index=False)
    good = ["--patients", str(tmp_path / "patients.csv")]
    for name, bad_args in {"bad_column.csv": ["--patients", str(tmp_path / "bad.csv")],
                           "bad_milestones.csv": [*good, "--milestones", "0,1"],
                           "bad_suffix.txt": good}.items():
        target = tmp_path / name
        res = runner.invoke(main, ["twins", "--model", str(model), *bad_args, "--out", str(target)])
        assert res.exit_code == 2, res.output
        assert res.stderr.startswith("Error: ") and "Traceback" not in res.output
        assert not target.exists() and not list(tmp_path.glob(".bad_*"))
    assert "['age'] are missing" in runner.invoke(
        main, ["twins", "--model", str(model), "--patients", str(tmp_path / "bad.csv"), "--out", str(out)]).stderr
    pd.testing.assert_frame_equal(pd.read_csv(out), back)  # a failed run leaves an earlier output untouched
