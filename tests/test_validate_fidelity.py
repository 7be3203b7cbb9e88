"""Fidelity metrics (twinsim.validate.fidelity) against independent references.

References: scipy.stats.ks_2samp / wasserstein_distance (marginals), numpy.corrcoef
(correlations), scipy.optimize.minimize on the same penalised loss and the saturated-model
closed form (logistic regression), brute-force pair counting (AUC), lifelines'
KaplanMeierFitter.predict with synthcity's ``nonparametric_distance`` formula written out
(KM distances), scipy.special.comb (the short-sightedness order-statistic rule).
"""

import jax
import numpy as np
import pandas as pd
import pytest
from lifelines import KaplanMeierFitter
from scipy import optimize, special, stats

from twinsim.errors import DataError
from twinsim.validate.fidelity import (
    _max_rank,
    auc_mann_whitney,
    correlation_difference,
    detection_auc,
    fidelity_report,
    km_distance,
    logistic_l2,
    marginal_table,
)


def _patients(rng, n, *, age_shift=0.0, hr=1.0):
    """Covariates (age, sex, biomarker x, arm) and an exponential time with uniform censoring."""
    age = rng.normal(50 + age_shift, 10, n)
    sex = rng.choice(["m", "f"], n, p=[0.6, 0.4])
    x = rng.normal(0, 1, n) + 0.5 * (age - 50) / 10
    arm = rng.integers(0, 2, n)
    t = rng.exponential(2.0 / hr * np.exp(-0.3 * x), n)
    c = rng.uniform(0, 5, n)
    return pd.DataFrame({"age": age, "sex": pd.Categorical(sex), "x": x, "arm": arm,
                         "time": np.minimum(t, c), "event": (t <= c).astype(int)})


# --------------------------------------------------------------------------- marginals


def test_marginal_table_matches_scipy_and_hand_counts():
    rng = np.random.default_rng(0)
    tr = pd.DataFrame({"a": rng.normal(0, 2, 150), "g": ["p", "p", "q", "r"] * 37 + ["p", "p"]})
    ot = pd.DataFrame({"a": rng.normal(0.5, 3, 120), "g": ["p", "q", "q", "q"] * 30})
    m = marginal_table(tr, ot)
    a, b = tr["a"].to_numpy(), ot["a"].to_numpy()
    assert m.at["a", "kind"] == "numeric"
    assert m.at["a", "ks"] == pytest.approx(stats.ks_2samp(a, b).statistic, abs=1e-15)
    mu, sd = a.mean(), a.std()
    assert m.at["a", "wasserstein"] == pytest.approx(stats.wasserstein_distance((a - mu) / sd, (b - mu) / sd), rel=1e-12)
    assert m.at["a", "smd"] == pytest.approx((b.mean() - a.mean()) / np.sqrt((a.var(ddof=1) + b.var(ddof=1)) / 2), rel=1e-12)
    # categorical: train shares p 76/150, q 37/150, r 37/150; other p 1/4, q 3/4, r 0
    d = np.array([30 / 120 - 76 / 150, 90 / 120 - 37 / 150, 0 - 37 / 150])
    assert m.at["g", "kind"] == "categorical"
    assert m.at["g", "tvd"] == pytest.approx(0.5 * np.abs(d).sum(), abs=1e-14)
    assert m.at["g", "smd"] == pytest.approx(np.abs(d).max(), abs=1e-14) and m.at["g", "level"] == "q"
    assert np.isnan(m.at["g", "ks"]) and np.isnan(m.at["a", "tvd"])


def test_marginal_table_names_a_missing_column():
    with pytest.raises(DataError, match=r"other table lacks the column\(s\) \['b'\]"):
        marginal_table(pd.DataFrame({"a": [1.0], "b": [2.0]}), pd.DataFrame({"a": [1.0]}))


def test_correlation_difference_matches_numpy_and_is_zero_for_a_copy():
    rng = np.random.default_rng(1)
    cov = [[1, 0.6, 0.2], [0.6, 1, 0], [0.2, 0, 1]]
    tr = pd.DataFrame(rng.multivariate_normal(np.zeros(3), cov, 200), columns=list("abc"))
    ot = pd.DataFrame(rng.multivariate_normal(np.zeros(3), np.eye(3), 150), columns=list("abc"))
    # standardising by the training table's mean/SD leaves Pearson correlations unchanged
    d = np.abs(np.corrcoef(ot.to_numpy(), rowvar=False) - np.corrcoef(tr.to_numpy(), rowvar=False))[np.triu_indices(3, 1)]
    r = correlation_difference(tr, ot)
    assert r["max"] == pytest.approx(d.max(), abs=1e-12) and r["mean"] == pytest.approx(d.mean(), abs=1e-12)
    assert r["pairs"] == 3
    assert correlation_difference(tr, tr.copy())["max"] == 0.0


# --------------------------------------------------------------------------- detection


def _loss(w, A, y, l2):
    eta = A @ w
    pen = np.r_[0.0, np.full(len(w) - 1, l2)]
    return np.sum(np.logaddexp(0, eta) - y * eta) + 0.5 * np.sum(pen * w**2), A.T @ (1 / (1 + np.exp(-eta)) - y) + pen * w


def test_logistic_l2_matches_scipy_minimize_on_the_same_loss():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(200, 4))
    y = (rng.random(200) < 1 / (1 + np.exp(-(0.3 + X @ [1.0, -2.0, 0.5, 0.0])))).astype(float)
    b0, b = logistic_l2(X, y, l2=2.0)
    A = np.c_[np.ones(200), X]
    ref = optimize.minimize(_loss, np.zeros(5), args=(A, y, 2.0), jac=True, method="BFGS", options={"gtol": 1e-9})
    # strictly convex loss: |w_ref - w*| <= |grad(w_ref)| / lambda_min(Hessian); the Newton solution
    # w* is converged to ~1e-10, so the two agree within that bound plus 1e-8 for rounding
    eta = A @ ref.x
    p = 1 / (1 + np.exp(-eta))
    H = (A * (p * (1 - p))[:, None]).T @ A + np.diag([0.0, 2, 2, 2, 2])
    bound = np.linalg.norm(_loss(ref.x, A, y, 2.0)[1]) / np.linalg.eigvalsh(H).min()
    assert bound < 1e-6
    np.testing.assert_allclose(np.r_[b0, b], ref.x, atol=bound + 1e-8)


def test_logistic_l2_unpenalised_saturated_model_is_the_closed_form():
    # one binary feature, l2 = 0: intercept = logit(p0), slope = logit(p1) - logit(p0)
    x = np.r_[np.zeros(40), np.ones(60)]
    y = np.r_[np.ones(10), np.zeros(30), np.ones(45), np.zeros(15)]
    b0, b = logistic_l2(x[:, None], y, l2=0.0)
    logit = lambda p: np.log(p / (1 - p))  # noqa: E731
    assert b0 == pytest.approx(logit(0.25), abs=1e-10) and b[0] == pytest.approx(logit(0.75) - logit(0.25), abs=1e-10)
    with pytest.raises(DataError, match="both classes"):
        logistic_l2(x[:, None], np.ones(100))


def test_auc_mann_whitney_equals_pair_count_with_ties():
    rng = np.random.default_rng(3)
    s0, s1 = np.round(rng.normal(0, 1, 57), 1), np.round(rng.normal(0.7, 1, 43), 1)  # rounding makes ties
    brute = np.mean((s1[:, None] > s0[None, :]) + 0.5 * (s1[:, None] == s0[None, :]))
    assert auc_mann_whitney(s0, s1) == pytest.approx(brute, abs=1e-14)


def test_detection_auc_is_half_for_one_distribution_and_near_one_for_a_shift():
    rng = np.random.default_rng(4)
    cols = ["age", "sex", "x", "arm"]
    tr, same = _patients(rng, 200)[cols], _patients(rng, 200)[cols]
    far = _patients(rng, 200, age_shift=30.0)[cols]  # 3 SD shift of age
    key = jax.random.key(0)
    r0 = detection_auc(tr, same, rng_key=key)
    # Under indistinguishability the CV AUC has mean 0.5 and SD ~ null_se = sqrt((401)/(12*200*200))
    # = 0.029; a simulation (40 replicates, n = 300 per table) gave SD 1.12 * null_se, so 3.5 * null_se
    # is about a 3-sigma band
    assert abs(r0.auc - 0.5) < 3.5 * r0.null_se, r0
    assert len(r0.fold_aucs) == 5 and r0.se > 0
    r1 = detection_auc(tr, far, rng_key=key)
    # the optimal rule on a 3-SD mean shift alone has AUC Phi(3 / sqrt 2) = 0.983
    assert r1.auc > 0.95, r1
    again = detection_auc(tr, same, rng_key=key)
    np.testing.assert_array_equal(again.fold_aucs, r0.fold_aucs)  # the key fixes the folds


# --------------------------------------------------------------------------- survival curves


def _synthcity_reference(tt, et, to, eo, n_points=1000):
    """synthcity's nonparametric_distance (Norcliffe et al. 2023) with lifelines, written out."""
    t_max = max(tt.max(), to.max())
    grid = np.linspace(max(0, min(tt.min(), to.min())), t_max, n_points)
    s_r = KaplanMeierFitter().fit(tt, et).predict(grid).to_numpy()
    s_s = KaplanMeierFitter().fit(to, eo).predict(grid).to_numpy()
    return (np.trapezoid(s_s - s_r, grid) / t_max, np.trapezoid(np.abs(s_s - s_r), grid) / t_max,
            (tt.max() - to.max()) / t_max)


def test_km_distance_matches_the_synthcity_formula_with_lifelines():
    rng = np.random.default_rng(5)
    a, b = _patients(rng, 150), _patients(rng, 120, hr=0.7)
    got = km_distance(a["time"], a["event"], b["time"], b["event"])
    ref = _synthcity_reference(a["time"].to_numpy(), a["event"].to_numpy(), b["time"].to_numpy(), b["event"].to_numpy())
    np.testing.assert_allclose(got, ref, atol=1e-12)


def test_km_distance_is_zero_for_identical_tables_and_signs_longer_survival():
    rng = np.random.default_rng(6)
    a = _patients(rng, 200)
    same = km_distance(a["time"], a["event"], a["time"], a["event"])
    assert same.optimism == 0.0 and same.abs_optimism == 0.0 and same.short_sightedness == 0.0
    longer = _patients(rng, 200, hr=0.5)  # hazard halved: survival longer at every time
    d = km_distance(a["time"], a["event"], longer["time"], longer["event"])
    # S_o - S_t ~ exp(-t/4) - exp(-t/2) > 0 averaged over [0, 5]: about 0.17; KM noise at n = 200 is ~0.03
    assert d.optimism > 0.08 and d.abs_optimism >= d.optimism
    shorter_follow_up = a["time"] < 2.5  # the other table stops following at 2.5
    d = km_distance(a["time"], a["event"], a["time"][shorter_follow_up], a["event"][shorter_follow_up])
    assert d.short_sightedness == pytest.approx((a["time"].max() - a["time"][shorter_follow_up].max()) / a["time"].max())
    assert d.short_sightedness > 0.4


def test_max_rank_probability_is_the_hypergeometric_tail():
    # P(top k of the pooled sample all from the holdout) = C(n_h, k) / C(n_h + n_s, k)
    for n_h, n_s, level in [(30, 20, 0.05), (300, 300, 0.05 / 23), (10, 40, 0.01)]:
        k = _max_rank(n_h, n_s, level)
        p = lambda k: special.comb(n_h, k, exact=True) / special.comb(n_h + n_s, k, exact=True)  # noqa: E731
        assert p(k) <= level < p(k - 1) if k > 1 else p(k) <= level
    assert _max_rank(3, 3, 0.01) is None  # best case k = 3: 1 / C(6, 3) = 0.05 > 0.01
    # Monte Carlo: with exchangeable times, max_s < k-th largest holdout time at rate <= level
    rng = np.random.default_rng(7)
    n_h, n_s, level = 30, 20, 0.05
    k = _max_rank(n_h, n_s, level)
    th, ts = rng.random((20000, n_h)), rng.random((20000, n_s))
    rate = np.mean(ts.max(1) < -np.sort(-th, axis=1)[:, k - 1])
    exact = special.comb(n_h, k) / special.comb(n_h + n_s, k)
    assert abs(rate - exact) < 4 * np.sqrt(exact * (1 - exact) / 20000)  # binomial MC error, 4 SE


# --------------------------------------------------------------------------- report


def test_fidelity_report_verdict_flips_for_bad_generators():
    rng = np.random.default_rng(8)
    train, holdout, good = _patients(rng, 200), _patients(rng, 200), _patients(rng, 200)
    shifted = _patients(rng, 200, age_shift=8.0, hr=0.4)  # older and longer-lived
    # bootstrap-noise generator: training rows resampled, numeric covariates jittered by 2 SD (variance x 5)
    noisy = train.iloc[rng.integers(0, 200, 200)].reset_index(drop=True)
    for c in ("age", "x"):
        noisy[c] = noisy[c] + rng.normal(0, 2 * train[c].std(), 200)
    kw = dict(rng_key=jax.random.key(1), time="time", event="event", group="arm", n_boot=40)
    r_good = fidelity_report(train, holdout, good, **kw)
    # a perfect generator passes every row with probability >= 1 - alpha = 0.95 (Bonferroni; the
    # per-row tail was checked by simulation); at this seed it passes all
    assert set(r_good["verdict"]) == {"within floor"}, r_good[r_good["verdict"] != "within floor"]
    assert len(r_good) == 3 * 3 + 1 * 2 + 2 + 3 * 3 + 1  # 3 numeric x 3, sex x 2, 2 corr, 3 KM x (all + 2 arms), AUC
    assert r_good.attrs["z"] == pytest.approx(stats.norm.ppf(1 - 0.05 / len(r_good)))
    r_bad = fidelity_report(train, holdout, shifted, **kw).set_index(["metric", "column"])
    for row in [("smd", "age"), ("ks", "age"), ("wasserstein", "age"), ("optimism", "all"),
                ("abs_optimism", "all"), ("detection_auc", "all")]:
        assert r_bad.at[row, "verdict"] == "worse than floor", r_bad.loc[row]
    assert r_bad.at[("optimism", "all"), "synthetic"] > 0  # longer survival = optimistic
    r_noisy = fidelity_report(train, holdout, noisy, **kw).set_index(["metric", "column"])
    # W1(N(0, 1), N(0, sqrt 5)) = E|Z| (sqrt 5 - 1) = 0.99 SD against a floor of about 0.15 + 0.2
    for c in ("age", "x"):
        assert r_noisy.at[("wasserstein", c), "verdict"] == "worse than floor", r_noisy.loc[("wasserstein", c)]
    # the squared features see the spread: AUC about 0.8 against a floor of about 0.5 + 0.12
    assert r_noisy.at[("detection_auc", "all"), "verdict"] == "worse than floor", r_noisy.loc[("detection_auc", "all")]
