"""Collapse harness (twinsim.validate.collapse) against independent references.

References: the closed form of a Gaussian refitted on its own samples (E[s^2_ddof0] =
(n-1)/n sigma^2 at every fit, moments of products of chi-square variables); a second, numpy-only
implementation of the same recursion with real rows kept; fidelity_report on the same tables
and keys (floors, tolerances, the documented key scheme); a generator that records what it was
given (training-set composition, keys).
"""

import jax
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from twinsim.errors import DataError, ModelError
from twinsim.validate.collapse import FIDELITY_METRICS, collapse, plot_collapse
from twinsim.validate.fidelity import fidelity_report


def _population(key, n, *, age_shift=0.0):
    """Age, sex, biomarker x and an exponential time with uniform censoring (1 = event)."""
    k = jax.random.split(key, 5)
    age = 50 + age_shift + 10 * np.asarray(jax.random.normal(k[0], (n,)))
    sex = np.where(np.asarray(jax.random.uniform(k[1], (n,))) < 0.4, "f", "m")
    x = np.asarray(jax.random.normal(k[2], (n,))) + 0.5 * (age - 50) / 10
    t = np.asarray(jax.random.exponential(k[3], (n,))) * 2.0 * np.exp(-0.3 * x)
    c = 5 * np.asarray(jax.random.uniform(k[4], (n,)))
    return pd.DataFrame({"age": age, "sex": pd.Categorical(sex, categories=["f", "m"]), "x": x,
                         "time": np.minimum(t, c), "event": (t <= c).astype(int)})


# --------------------------------------------------------------------------- (a) Gaussian collapse

N, CHAINS, K, SIGMA = 10, 4000, 5, 2.0


def _gauss_fit(frame, key):
    a = frame.to_numpy(float)
    return a.mean(axis=0), a.std(axis=0)  # maximum likelihood: SD with ddof 0


def _gauss_sample(cols):
    def sample(model, n, key):
        m, sd = model
        return pd.DataFrame(m + sd * np.asarray(jax.random.normal(key, (n, len(m)))), columns=cols)
    return sample


def _gauss_chains(share):
    """CHAINS independent chains at once: one table column per chain (fit and sample act per column).

    Given the real rows drawn for D_g (the same row indices for every column), the columns are
    independent, and each column's distribution does not depend on which rows were drawn
    (the training rows are i.i.d.), so the columns are independent chains."""
    cols = [f"c{j}" for j in range(CHAINS)]
    train = pd.DataFrame(SIGMA * np.asarray(jax.random.normal(jax.random.key(11), (N, CHAINS))), columns=cols)
    tab = collapse(train, train.iloc[:2], fit=_gauss_fit, sample=_gauss_sample(cols), generations=K,
                   real_share=share, rng_key=jax.random.key(12), metrics=(),
                   params=lambda m: {c: v for c, v in zip(cols, m[1] ** 2)})
    var = tab.pivot(index="metric", columns="generation", values="value").to_numpy() / SIGMA**2
    return var  # (CHAINS, K + 1): variance of model_g over sigma^2


def test_gaussian_variance_shrinks_by_closed_form_without_real_data_and_stays_with_half_real():
    v0 = _gauss_chains(0.0)
    # Generation g is the (g+1)-th maximum-likelihood fit: n s_j^2 / s_{j-1}^2 ~ chi^2_{n-1}, so
    # var_g / sigma^2 = prod_{j=0..g} X_j with X_j iid chi^2_{n-1} / n:
    #   E = ((n-1)/n)^(g+1),   E[X^2] = (n-1)(n+1)/n^2  ->  Var = ((n^2-1)/n^2)^(g+1) - E^2.
    g = np.arange(K + 1)
    mean = ((N - 1) / N) ** (g + 1)
    se = np.sqrt((((N**2 - 1) / N**2) ** (g + 1) - mean**2) / CHAINS)
    # Tolerance: 4 Monte Carlo SEs per generation (two-sided 6e-5 each, < 4e-4 over 6 generations);
    # at g = 5 that is 4 * 0.0128 = 0.05 against a shrinkage of 1 - 0.53 = 0.47.
    np.testing.assert_array_less(np.abs(v0.mean(axis=0) - mean), 4 * se)
    assert v0.mean(axis=0)[-1] < 0.6

    # real_share 0.5: a second implementation of the recursion (numpy generator, per-column row
    # draws): D_g = 5 training rows without replacement + 5 draws from N(m_{g-1}, v_{g-1}).
    v5 = _gauss_chains(0.5)
    rng = np.random.default_rng(5)
    ref_chains, r = 20000, 5
    X = rng.normal(0.0, SIGMA, (N, ref_chains))
    m, v = X.mean(axis=0), X.var(axis=0)
    ref = [v / SIGMA**2]
    for _ in range(K):
        idx = np.argsort(rng.random((N, ref_chains)), axis=0)[:r]
        d = np.concatenate([np.take_along_axis(X, idx, axis=0), m + np.sqrt(v) * rng.normal(size=(N - r, ref_chains))])
        m, v = d.mean(axis=0), d.var(axis=0)
        ref.append(v / SIGMA**2)
    ref = np.array(ref).T
    # Tolerance: 4 SEs of the difference of two independent Monte Carlo means (SEs from the samples).
    se_d = np.sqrt(v5.var(axis=0, ddof=1) / CHAINS + ref.var(axis=0, ddof=1) / ref_chains)
    np.testing.assert_array_less(np.abs(v5.mean(axis=0) - ref.mean(axis=0)), 4 * se_d)
    # Keeping half real rows: the variance settles near 0.81 sigma^2 instead of falling to 0.53.
    se_gap = np.sqrt(v5[:, -1].var(ddof=1) / CHAINS + v0[:, -1].var(ddof=1) / CHAINS)
    assert v5[:, -1].mean() - v0[:, -1].mean() > 4 * se_gap
    assert abs(1 - v5[:, -1].mean()) < abs(1 - v0[:, -1].mean())


# --------------------------------------------------------------------------- (b) perfect generator


def _perfect(model, n, key):
    return _population(key, n)  # fresh draws from the true population, whatever was fitted


def test_perfect_generator_stays_within_floor_and_a_shifted_one_does_not():
    train, hold = _population(jax.random.key(1), 200), _population(jax.random.key(2), 200)
    key = jax.random.key(3)
    tab = collapse(train, hold, fit=lambda d, k: None, sample=_perfect, generations=3, rng_key=key,
                   time="time", event="event")
    assert set(tab["metric"]) == set(FIDELITY_METRICS)
    assert len(tab) == 2 * 4 * len(FIDELITY_METRICS)
    assert tab["within_floor"].all(), tab[~tab["within_floor"]]
    assert (tab.groupby(["real_share", "generation"])["n_train_real"].first().to_numpy() == [200, 0, 0, 0,
                                                                                             200, 100, 100, 100]).all()
    # z: Bonferroni over the 48 rows with a tolerance
    assert tab.attrs["z"] == pytest.approx(stats.norm.ppf(1 - 0.05 / 48), rel=1e-12)

    # Floors are fidelity_report's on the same tables with the same keys (k_floor = fold_in(key, 0)
    # plays fidelity_report's rng_key); so is the detection tolerance (the Mann-Whitney null SD).
    # The bootstrap rows' band is the holdout bootstrap rule z * sqrt(2) * sd_h, which fidelity_report
    # replaced by re-splits of holdout + synthetic: a generation has no synthetic table at floor time.
    fr = fidelity_report(train, hold, hold, rng_key=jax.random.fold_in(key, 0), time="time", event="event")
    row = lambda met, col="all": fr[(fr["metric"] == met) & (fr["column"] == col)].iloc[0]  # noqa: E731
    floor = tab.groupby("metric")[["holdout_floor", "tolerance"]].first()
    z = tab.attrs["z"]
    for ours, theirs in (("corr_diff_max", "corr_diff_max"), ("km_abs_optimism", "abs_optimism"),
                         ("km_optimism", "optimism"), ("detection_auc", "detection_auc")):
        assert floor.at[ours, "holdout_floor"] == pytest.approx(row(theirs)["holdout"], abs=1e-12)
        if ours == "detection_auc":
            assert floor.at[ours, "tolerance"] == pytest.approx(row(theirs)["tolerance"] / fr.attrs["z"] * z, rel=1e-9)
    smd = fr[fr["metric"] == "smd"]
    assert floor.at["smd_max_abs", "holdout_floor"] == pytest.approx(smd["holdout"].abs().max(), abs=1e-12)
    assert floor.at["wasserstein_mean", "holdout_floor"] == pytest.approx(
        fr[fr["metric"] == "wasserstein"]["holdout"].mean(), abs=1e-12)

    # The documented key of S_g: fold_in(fold_in(fold_in(fold_in(key, 1), round(s * 1e6)), g), 1).
    k_s = jax.random.fold_in(jax.random.fold_in(key, 1), 500_000)
    syn = _population(jax.random.fold_in(jax.random.fold_in(k_s, 2), 1), 200)
    fs = fidelity_report(train, hold, syn, rng_key=jax.random.fold_in(key, 0), time="time", event="event")
    got = tab[(tab["real_share"] == 0.5) & (tab["generation"] == 2)].set_index("metric")["value"]
    assert got["km_abs_optimism"] == pytest.approx(fs[fs["metric"] == "abs_optimism"]["synthetic"].iloc[0], abs=1e-12)
    assert got["detection_auc"] == pytest.approx(fs[fs["metric"] == "detection_auc"]["synthetic"].iloc[0], abs=1e-12)

    # A generator 1 SD off in age (and so in x and time) is flagged at every generation.
    bad = collapse(train, hold, fit=lambda d, k: None, sample=lambda m, n, k: _population(k, n, age_shift=10.0),
                   generations=1, real_share=0.0, rng_key=key, time="time", event="event",
                   metrics=("detection_auc", "smd_max_abs"))
    assert not bad["within_floor"].any(), bad

    fig = plot_collapse(tab)
    fig.savefig("/tmp/twinsim_collapse_perfect.png")
    titles = [a.get_title() for a in fig.axes if a.get_visible()]
    assert len(titles) == len(FIDELITY_METRICS) and "KM optimism (> 0: survives longer)" in titles


# --------------------------------------------------------------------------- (c) keys and composition


def _recording(train_ids):
    """fit/sample that record their inputs; synthetic rows carry id -1."""
    log = {"fit": [], "sample": []}

    def fit(frame, key):
        log["fit"].append((frame.copy(), bytes(np.asarray(jax.random.key_data(key)))))
        return float(frame["v"].mean())

    def sample(model, n, key):
        log["sample"].append(bytes(np.asarray(jax.random.key_data(key))))
        return pd.DataFrame({"id": -np.ones(n, int), "v": model + np.asarray(jax.random.normal(key, (n,)))})

    return log, fit, sample


def test_training_sets_are_composed_as_documented_and_chains_use_independent_keys():
    train = pd.DataFrame({"id": np.arange(20), "v": np.asarray(jax.random.normal(jax.random.key(0), (20,)))})
    log, fit, sample = _recording(train["id"])
    opts = dict(generations=3, rng_key=jax.random.key(7), metrics=("wasserstein_mean",), n_boot=2,
                params=lambda m: {"mean": m})
    tab = collapse(train, train.iloc[:5], fit=fit, sample=sample, real_share=(0.0, 0.5), **opts)
    frames = [f for f, _ in log["fit"]]
    assert len(frames) == 8  # 2 shares x generations 0..3
    pd.testing.assert_frame_equal(frames[0], train)
    pd.testing.assert_frame_equal(frames[4], train)
    for f in frames[1:4]:  # share 0: 20 synthetic rows
        assert len(f) == 20 and (f["id"] == -1).all()
    real_sets = []
    for f in frames[5:8]:  # share 0.5: 10 distinct training rows + 10 synthetic
        real = f["id"][f["id"] >= 0]
        assert len(f) == 20 and len(real) == 10 and real.is_unique
        real_sets.append(frozenset(real))
    assert len(set(real_sets)) == 3  # fresh rows each generation (a repeat has probability < 1e-10)
    # no key is used twice, within or across chains: 8 metric samples (5 rows) + 6 next-training ones
    keys = [k for _, k in log["fit"]] + log["sample"]
    assert len(log["sample"]) == 8 + 6 and len(set(keys)) == len(keys)
    assert (tab[tab["generation"] == 0]["n_train_real"] == 20).all()
    par = tab[tab["metric"] == "param:mean"]
    p = par.set_index(["real_share", "generation"])["value"]
    assert (par["holdout_floor"] == par["real_share"].map({0.0: p[(0.0, 0)], 0.5: p[(0.5, 0)]})).all()
    assert par["tolerance"].isna().all() and par["within_floor"].isna().all()

    # the s = 0.5 chain is keyed by its value: identical when run alone; the s = 0 chain differs
    _, fit2, sample2 = _recording(train["id"])
    alone = collapse(train, train.iloc[:5], fit=fit2, sample=sample2, real_share=0.5, **opts)
    cols = ["generation", "metric", "value", "holdout_floor", "n_train_real"]  # z differs: fewer rows
    pd.testing.assert_frame_equal(alone[cols].reset_index(drop=True),
                                  tab[tab["real_share"] == 0.5][cols].reset_index(drop=True))
    assert not np.allclose(p.loc[0.0].to_numpy()[1:], p.loc[0.5].to_numpy()[1:])


def test_same_key_gives_the_same_table_and_another_key_another():
    train, hold = _population(jax.random.key(4), 60), _population(jax.random.key(5), 60)
    gauss = lambda d, k: (d["age"].mean(), d["age"].std(ddof=0))  # noqa: E731

    def sample(model, n, key):
        out = _population(key, n)
        out["age"] = model[0] + model[1] * np.asarray(jax.random.normal(jax.random.fold_in(key, 9), (n,)))
        return out

    run = lambda key: collapse(train, hold, fit=gauss, sample=sample, generations=2, rng_key=key,  # noqa: E731
                               time="time", event="event", n_boot=20, params=lambda m: {"age_sd": m[1]})
    a, b, c = run(jax.random.key(8)), run(jax.random.key(8)), run(jax.random.key(9))
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a["value"].to_numpy(), c["value"].to_numpy())


def test_bad_inputs_are_named():
    train = pd.DataFrame({"v": np.arange(10.0)})
    ok = dict(fit=lambda d, k: 0.0, sample=lambda m, n, k: pd.DataFrame({"v": np.zeros(n)}), rng_key=jax.random.key(0))
    with pytest.raises(DataError, match=r"real_share=\(0.0, 1.5\)"):
        collapse(train, train, real_share=(0.0, 1.5), **ok)
    with pytest.raises(DataError, match=r"\['km_abs_optimism'\] are not among"):
        collapse(train, train, metrics=("km_abs_optimism",), **ok)
    with pytest.raises(ModelError, match=r"sample\(model, n=10, key\) at real_share=0, generation 0 returned 3 rows"):
        collapse(train, train, **dict(ok, sample=lambda m, n, k: pd.DataFrame({"v": np.zeros(3)})))
