"""The mixed covariate generator (CovariateModel) and its design-matrix encoding.

References (each named beside its test):
- binomial Monte Carlo error sqrt(p(1-p)/N) for proportions drawn from the generator;
- closed-form conditional missingness rates of a probit MAR mechanism, from the bivariate
  normal orthant probability integrated with scipy.integrate.quad;
- per-level means of the historical data (pandas groupby) with their sampling error;
- the tetrachoric correlation (bivariate normal orthant = observed 2x2 cell, solved with
  scipy) and Olsson, Drasgow & Dorans' (1982) polyserial formula for the latent correlation;
- numpy's "hazen" quantiles for the stored quantiles of a continuous column;
- pandas.get_dummies / fillna / isna for the design matrix, and NumPy vs JAX for encode;
- an exact NetCDF4 round trip; real data: ACTG 175.

Every generator below is a seeded numpy Generator or an explicit JAX key (no global state).
"""

import math
import warnings

import jax
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import integrate, optimize, stats

from twinsim.data import builtin_frame
from twinsim.errors import ModelError, StatisticalWarning
from twinsim.models.covariates import CovariateCopula, CovariateModel, copula_sample, sample_raw
from twinsim.models.encoding import encode

N_HIST = 20000   # historical rows of the synthetic data set
N = 40000        # generated rows
R = np.array([[1.0, 0.6, 0.7],   # latent correlation of x, the race latent and the
              [0.6, 1.0, 0.3],   # missingness latent of x2
              [0.7, 0.3, 1.0]])
MISS_RATE = 0.3
RACE = (("white", 0.5), ("black", 0.3), ("asian", 0.2))  # by increasing latent value


def _orthant(a: float, b: float, r: float) -> float:
    """P(Z1 > a, Z2 > b) for a standard bivariate normal with correlation r (1-D quadrature)."""
    f = lambda z: stats.norm.pdf(z) * stats.norm.sf((b - r * z) / math.sqrt(1 - r * r))  # noqa: E731
    return integrate.quad(f, a, np.inf, epsabs=1e-13, epsrel=1e-12)[0]


@pytest.fixture(scope="module")
def hist():
    """Historical covariates from a known Gaussian-copula mechanism.

    x: skewed continuous, exp(Z0 / 2) (median 1); race: Categorical cut from latent Z1
    (white 0.5 < black 0.3 < asian 0.2 along Z1, plus a declared level 'other' never
    observed); x2: continuous, missing where Z2 > Phi^-1(0.7), a probit MAR mechanism
    (depends on x and race only through Z0, Z1; not on x2's own noise); count: Poisson(3);
    ecog: Categorical '0'/'1'/'2' with 5% missing completely at random.
    """
    rng = np.random.default_rng(20240917)
    z = rng.multivariate_normal(np.zeros(3), R, N_HIST)
    cuts = stats.norm.ppf(np.cumsum([p for _, p in RACE])[:-1])
    race = np.array([lab for lab, _ in RACE])[np.searchsorted(cuts, z[:, 1])]
    x2 = 0.5 * z[:, 0] + rng.normal(size=N_HIST)
    x2[z[:, 2] > stats.norm.ppf(1 - MISS_RATE)] = np.nan
    ecog = rng.choice(["0", "1", "2"], size=N_HIST, p=[0.6, 0.3, 0.1]).astype(object)
    ecog[rng.uniform(size=N_HIST) < 0.05] = np.nan
    return pd.DataFrame({
        "x": np.exp(0.5 * z[:, 0]),
        "race": pd.Categorical(race, categories=["asian", "black", "other", "white"]),
        "x2": x2,
        "count": rng.poisson(3.0, N_HIST).astype(float),
        "ecog": pd.Categorical(ecog, categories=["0", "1", "2"]),
    })


@pytest.fixture(scope="module")
def model(hist):
    return CovariateModel.fit(hist, missing="model")


@pytest.fixture(scope="module")
def draws(model):
    return model.sample(jax.random.key(0), N)


def _binom_tol(p: float, n: int) -> float:
    """4 binomial MC standard errors (false alarm ~6e-5 per comparison)."""
    return 4 * math.sqrt(p * (1 - p) / n)


def test_structure_and_names(model, draws, hist):
    assert model.names == ("x", "race", "x2", "count", "ecog")
    assert model.copula_names[-2:] == ("x2[missing]", "ecog[missing]")
    # reference levels = most frequent: white (race), '0' (ecog); 'other' keeps its dummy
    assert model.design_names == ("x", "race[asian]", "race[black]", "race[other]", "x2",
                                  "x2[missing]", "count", "ecog[1]", "ecog[2]", "ecog[missing]")
    assert list(draws.columns) == list(hist.columns) and len(draws) == N
    for col in ("race", "ecog"):
        assert draws[col].dtype == hist[col].dtype  # same categories, same order
    assert draws["x"].dtype == np.float64 and draws["x2"].dtype == np.float64


def test_categorical_and_integer_proportions_within_binomial_mc_error(hist, draws):
    # reference: the historical proportions among observed values (pandas value_counts); the
    # model stores them exactly, so only the binomial MC error of N draws remains
    for col in ("race", "ecog", "count"):
        ref = hist[col].value_counts(normalize=True, dropna=True)
        got = draws[col].value_counts(normalize=True, dropna=True)
        n_obs = int(draws[col].notna().sum())
        for level, p in ref.items():
            assert abs(got.get(level, 0.0) - p) <= _binom_tol(p, n_obs), (col, level)
        assert set(got[got > 0].index) <= set(ref[ref > 0].index), col  # observed values only
    assert (draws["race"] == "other").sum() == 0  # declared but never observed
    p_miss = hist["ecog"].isna().mean()
    assert abs(draws["ecog"].isna().mean() - p_miss) < _binom_tol(p_miss, N)


def test_missingness_rate_and_mar_dependence(hist, draws):
    # overall rate: stored exactly -> binomial MC error only
    p = hist["x2"].isna().mean()
    assert abs(draws["x2"].isna().mean() - p) < _binom_tol(p, N)
    # dependence: P(x2 missing | x > 1) and | x <= 1 (x > 1 <=> Z0 > 0); closed form from
    # the probit mechanism: P(Z0 > 0, Z2 > t) / 0.5 by quadrature.  Tolerance: 4 SE of
    # (MC error of the generated rate in ~N/2 rows) + (sampling error of the fitted copula,
    # bounded by the binomial SE of the empirical rate in ~N_HIST/2 historical rows).
    # A copula without the latent-correlation correction (normal-score correlation used as
    # the latent one) gives about 0.44 instead of 0.51 for x > 1: it fails this test.
    t = stats.norm.ppf(1 - MISS_RATE)
    high = _orthant(0.0, t, R[0, 2]) / 0.5
    truth = {True: high, False: 2 * MISS_RATE - high}
    for side, ref in truth.items():
        gen = draws.loc[(draws["x"] > 1.0) == side, "x2"].isna()
        se = math.sqrt(ref * (1 - ref) / len(gen) + ref * (1 - ref) / (N_HIST / 2))
        assert abs(gen.mean() - ref) < 4 * se, (side, gen.mean(), ref)
    # and the historical data agree with the closed form (checks the fixture itself)
    emp = hist.loc[hist["x"] > 1.0, "x2"].isna().mean()
    assert abs(emp - high) < _binom_tol(high, N_HIST // 2)


def test_continuous_categorical_dependence_per_level_means(hist, draws):
    # reference: per-level mean of x in the historical data (pandas groupby); tolerance
    # 4 * sqrt(SE_mc^2 + SE_data^2) with SE = sd / sqrt(rows of the level) (the fitted
    # copula's implied mean varies with the data no more than the raw level mean does).
    # Without the latent correction the level means are pulled together and this fails.
    for level, _ in RACE:
        h = hist.loc[hist["race"] == level, "x"]
        g = draws.loc[draws["race"] == level, "x"]
        se = math.sqrt(g.var() / len(g) + h.var() / len(h))
        assert abs(g.mean() - h.mean()) < 4 * se, (level, g.mean(), h.mean())
    # the same for the observed x2 values by ecog (independent: means equal across levels)
    h2, g2 = hist.dropna().groupby("ecog", observed=True)["x2"], draws.dropna().groupby(
        "ecog", observed=True)["x2"]
    se2 = np.sqrt(g2.var() / g2.size() + h2.var() / h2.size())
    assert (np.abs(g2.mean() - h2.mean()) < 4 * se2).all()


def test_bounded_columns_stay_within_observed_range(hist, draws, model):
    for col in ("x", "x2"):
        lo, hi = hist[col].min(), hist[col].max()
        assert lo <= draws[col].min() and draws[col].max() <= hi, col
    assert set(draws["count"].unique()) <= set(hist["count"].unique())
    # the whole continuous marginal: two-sample KS against the data (P-value floor 1e-3)
    assert stats.ks_2samp(draws["x"], hist["x"]).pvalue > 1e-3
    assert not model.discrete[0] and model.discrete[1] and model.discrete[3]


def test_max_quantiles_stores_hazen_quantiles_and_stays_bounded(hist):
    q = 64
    small = CovariateModel.fit(hist[["x", "race", "count"]], max_quantiles=q)
    assert small.n_knots[0] == q and small.max_quantiles == q
    # reference: numpy's Hazen quantiles (plotting positions (k - 0.5) / n, linear)
    probs = (np.arange(q) + 0.5) / q
    np.testing.assert_allclose(small.knot_value[0, :q], np.quantile(hist["x"], probs, method="hazen"),
                               rtol=1e-12)
    # categorical proportions stay exact; count (13-ish distinct values < 64) too
    full = CovariateModel.fit(hist[["x", "race", "count"]])
    for c in (1, 2):
        np.testing.assert_array_equal(small.knot_prob[c], full.knot_prob[c, :small.knot_prob.shape[1]])
    d = small.sample(jax.random.key(3), 5000)
    assert probs[0] > 0 and d["x"].min() >= small.knot_value[0, 0] >= hist["x"].min()
    assert d["x"].max() <= small.knot_value[0, q - 1] <= hist["x"].max()
    # integer column with more distinct values than Q: coarsened to Q quantiles of weight 1/Q
    wide = pd.DataFrame({"k": np.arange(1000.0)})
    coarse = CovariateModel.fit(wide, max_quantiles=10)
    np.testing.assert_array_equal(coarse.knot_value[0], np.arange(50.0, 1000.0, 100.0))
    np.testing.assert_allclose(coarse.knot_prob[0], np.arange(1, 11) / 10, rtol=1e-15)


def test_latent_correlation_matches_tetrachoric_and_polyserial():
    rng = np.random.default_rng(11)
    z = rng.multivariate_normal(np.zeros(3), [[1, 0.5, 0.4], [0.5, 1, 0.3], [0.4, 0.3, 1]], 3000)
    a, b = (z[:, 0] > 0.5).astype(float), (z[:, 1] > -0.3).astype(float)
    # levels along Z2: lo (0.5), mid (0.32), hi (0.18); sorted categories are hi, lo, mid,
    # so the model's frequency order (lo, mid, hi), not the code order, follows the latent
    cat = np.select([z[:, 2] < 0.0, z[:, 2] < 0.9], ["lo", "mid"], "hi")
    # x: a monotone transform of the normal (Z1 + e) / sqrt(2), latent correlation with
    # the levels of c: 0.3 / sqrt(2)
    x = (z[:, 1] + rng.normal(size=3000)) ** 3
    frame = pd.DataFrame({"a": a, "b": b, "c": pd.Categorical(cat), "x": x})
    m = CovariateModel.fit(frame)
    # tetrachoric: rho with P(Z1 > tau_a, Z2 > tau_b; rho) = observed P(a=1, b=1),
    # thresholds from the margins (the 2x2 table's estimate, solved with brentq)
    ta, tb = stats.norm.ppf(1 - a.mean()), stats.norm.ppf(1 - b.mean())
    p11 = np.mean(a * b)
    tetra = optimize.brentq(lambda r: _orthant(ta, tb, r) - p11, -0.99, 0.99, xtol=1e-12)
    assert abs(m.corr[0, 1] - tetra) < 1e-6  # Mehler series truncation and quadrature error
    # polyserial (Olsson, Drasgow & Dorans 1982): rho = r * sd(y) / sum_l phi(tau_l)(y_{l+1}-y_l),
    # y the level normal scores in the model's order (decreasing frequency), r their
    # correlation with the normal scores of x.  x's scores are a step function of its latent
    # with 3000 steps, not exactly linear in it: allow 2e-3.
    counts = pd.Series(cat).value_counts()  # decreasing frequency
    assert list(counts.index) == ["lo", "mid", "hi"]
    cum = np.concatenate([[0.0], np.cumsum(counts.to_numpy()) / len(cat)])
    y_levels = stats.norm.ppf((cum[:-1] + cum[1:]) / 2)
    y = pd.Series(cat).map(dict(zip(counts.index, y_levels))).to_numpy()
    sx = stats.norm.ppf((stats.rankdata(frame["x"]) - 0.5) / len(cat))
    r = np.corrcoef(sx, y)[0, 1]
    poly = r * y.std() / np.sum(stats.norm.pdf(stats.norm.ppf(cum[1:-1])) * np.diff(y_levels))
    assert abs(m.corr[2, 3] - poly) < 2e-3
    # and both recover the generating latent correlations (0.5 for a/b: 4 SE of a
    # tetrachoric at n=3000 ~ 4 * 0.03; 0.21 for c/x: 4 * 0.02)
    assert abs(m.corr[0, 1] - 0.5) < 0.12 and abs(m.corr[2, 3] - 0.3 / math.sqrt(2)) < 0.08


def test_encode_jax_equals_design_numpy_exactly(model, hist, draws):
    # historical rows: NumPy design of the frame vs JAX encode of its raw codes
    raw_hist = model.to_raw(hist)
    np.testing.assert_array_equal(np.asarray(model.encode(raw_hist)), model.design(hist))
    # generated rows under jit + vmap (fixed shapes): the encoding returned by the jitted
    # kernel equals the NumPy design of the very rows it generated
    keys = jax.random.split(jax.random.key(5), 2)
    arrays = model.arrays

    def kernel(key):
        raw = sample_raw(key, N, arrays)
        return raw, encode(raw, arrays)

    raws, encoded = jax.jit(jax.vmap(kernel))(keys)
    for i in range(2):
        raw = np.asarray(raws[i])
        np.testing.assert_array_equal(np.asarray(encoded[i]), model.design(model.to_frame(raw)))
        # the same key gives the same rows without vmap; XLA may contract a * b + c into one
        # fused multiply-add differently, so interpolated values can differ in the last bit
        single = model.to_raw(model.sample(keys[i], N))
        np.testing.assert_array_equal(np.isnan(single), np.isnan(raw))
        np.testing.assert_allclose(single, raw, rtol=1e-14, atol=0)
    assert np.isnan(raws).any()  # the check covered missing rows


def test_design_matches_pandas_get_dummies(model, hist):
    design = pd.DataFrame(model.design(hist), columns=list(model.design_names))
    for col in ("race", "ecog"):
        ref = pd.get_dummies(hist[col], dummy_na=True, dtype=float)
        reference_level = hist[col].value_counts().idxmax()  # most frequent level
        assert f"{col}[{reference_level}]" not in design.columns
        for level in ref.columns:
            name = f"{col}[missing]" if pd.isna(level) else f"{col}[{level}]"
            if pd.isna(level) and not hist[col].isna().any():
                continue
            if level == reference_level:
                continue
            np.testing.assert_array_equal(design[name], ref[level], err_msg=name)
    # missing-indicator method for a numeric column: NaN -> observed mean, plus the dummy
    np.testing.assert_allclose(design["x2"], hist["x2"].fillna(hist["x2"].mean()), rtol=1e-13)
    np.testing.assert_array_equal(design["x2[missing]"], hist["x2"].isna().astype(float))
    np.testing.assert_array_equal(design["x"], hist["x"])
    assert not np.isnan(design.to_numpy()).any()


def _assert_same_model(a: CovariateModel, b: CovariateModel) -> None:
    for f in ("names", "levels", "copula_names", "n_rows", "missing", "max_quantiles"):
        assert getattr(a, f) == getattr(b, f), f
        if f == "levels":
            assert [[type(v) for v in lv] for lv in a.levels] == [[type(v) for v in lv] for lv in b.levels]
    for f in ("categorical", "ordered", "reference", "observed_mean", "missing_index",
              "knot_prob", "knot_value", "n_knots", "discrete", "corr"):
        x, y = getattr(a, f), getattr(b, f)
        np.testing.assert_array_equal(x, y, err_msg=f)
        assert x.dtype == y.dtype, f


def test_netcdf_round_trip_is_exact(model, tmp_path):
    rng = np.random.default_rng(3)
    other = pd.DataFrame({
        "grade": pd.Categorical(rng.choice([1, 2, 3], 300), ordered=True),
        "flag": pd.Categorical(rng.choice([True, False], 300)),
        "w": np.where(rng.uniform(size=300) < 0.2, np.nan, rng.gamma(2.0, 1.5, 300)),
    })
    models = [model, CovariateModel.fit(other, missing="model", max_quantiles=20),
              CovariateModel.fit(pd.DataFrame(index=range(5)))]
    for i, m in enumerate(models):
        path = tmp_path / f"cov{i}.nc"
        m.to_dataset().to_netcdf(path, engine="netcdf4")
        with xr.open_dataset(path, engine="netcdf4") as ds:
            back = CovariateModel.from_dataset(ds.load())
        _assert_same_model(m, back)
        assert back.design_names == m.design_names
    # the generator itself: same key, same rows (ordered int and bool levels restored)
    a, b = models[1].sample(jax.random.key(9), 50), back_small(models[1], tmp_path)
    pd.testing.assert_frame_equal(b.sample(jax.random.key(9), 50), a)
    assert a["grade"].cat.ordered and list(a["grade"].cat.categories) == [1, 2, 3]
    assert list(a["flag"].cat.categories) == [False, True]
    with pytest.raises(ModelError, match="twinsim_format"):
        CovariateModel.from_dataset(xr.Dataset(attrs={"twinsim_format": "other"}))


def back_small(m: CovariateModel, tmp_path) -> CovariateModel:
    path = tmp_path / "small.nc"
    m.to_dataset().to_netcdf(path, engine="netcdf4")
    with xr.open_dataset(path, engine="netcdf4") as ds:
        return CovariateModel.from_dataset(ds.load())


def test_actg175_fits_samples_and_encodes():
    raw = builtin_frame("actg175")
    frame = raw[["age", "wtkg", "karnof", "cd40", "cd80", "gender", "race", "symptom", "str2"]].copy()
    frame["gender"] = pd.Categorical(np.where(raw["gender"] == 1, "M", "F"), categories=["F", "M"])
    rng = np.random.default_rng(175)
    frame.loc[rng.uniform(size=len(frame)) < 0.1, "wtkg"] = np.nan  # MCAR on purpose
    m = CovariateModel.fit(frame, missing="model")
    assert m.design_names == ("age", "wtkg", "wtkg[missing]", "karnof", "cd40", "cd80",
                              "gender[F]", "race", "symptom", "str2")  # M is the most frequent
    n = 20000
    d = m.sample(jax.random.key(4), n)
    for p_data, p_gen in ((frame["gender"].eq("F").mean(), d["gender"].eq("F").mean()),
                          (frame["wtkg"].isna().mean(), d["wtkg"].isna().mean()),
                          (frame["symptom"].mean(), d["symptom"].mean())):
        assert abs(p_gen - p_data) < _binom_tol(p_data, n)
    assert set(d["karnof"].unique()) <= set(frame["karnof"].unique())
    x = m.design(d)
    np.testing.assert_array_equal(np.asarray(m.encode(m.to_raw(d))), x)
    assert x.shape == (n, 10) and not np.isnan(x).any()
    np.testing.assert_array_equal(x[:, 6], (d["gender"] == "F").to_numpy(float))


def test_errors_name_the_field_and_the_fix(model, hist):
    with pytest.raises(ModelError, match=r"historical\.covariates.*\['x2', 'ecog'\].*missing='model'"):
        CovariateModel.fit(hist)
    with pytest.raises(ModelError, match="missing='drop' expects"):
        CovariateModel.fit(hist, missing="drop")
    with pytest.raises(ModelError, match=r"historical\.covariates\.s: .*astype\('category'\)"):
        CovariateModel.fit(pd.DataFrame({"s": ["a", "b"]}))
    with pytest.raises(ModelError, match="max_quantiles"):
        CovariateModel.fit(hist[["x"]], max_quantiles=1)
    with pytest.raises(ModelError, match="policy"):
        CovariateModel.fit(hist[["x"]], missing="impute")
    clash = pd.DataFrame({"c": pd.Categorical(["missing", "a", None, "a"])})
    with pytest.raises(ModelError, match="clash"):
        CovariateModel.fit(clash, missing="model")
    new = hist.head(3).copy()
    new["race"] = pd.Categorical(["white", "martian", "asian"])
    with pytest.raises(ModelError, match=r"covariates\.race: .*'martian'"):
        model.design(new)
    new = hist.head(3).copy()
    new.loc[0, "x"] = np.nan
    with pytest.raises(ModelError, match=r"covariates\.x: 1 missing value.*refit with missing='model'"):
        model.design(new)
    with pytest.raises(ModelError, match=r"column\(s\) \['count'\] are missing"):
        model.design(hist.drop(columns="count"))


def test_few_pairwise_complete_rows_warn():
    a = np.arange(30.0)
    b = np.full(30, np.nan)
    b[[2, 9, 14, 21, 27]] = [1.0, 5.0, 2.0, 4.0, 3.0]  # only 5 rows observed together with a
    with pytest.warns(StatisticalWarning, match="fewer than 10 rows"):
        m = CovariateModel.fit(pd.DataFrame({"a": a, "b": b}), missing="model")
    assert m.corr[0, 1] == 0.0


def test_empty_cell_uses_the_continuity_correction():
    # a (30 of 400) and b (40 of 400) are never 1 together: the observed phi is at its
    # lower bound (tetrachoric -1).  The estimate uses the table with 0.5 in the empty cell;
    # reference: that table's phi coefficient (numpy) must equal the phi implied by the
    # fitted latent rho under the data's margins (bivariate normal orthant by quadrature).
    a = np.zeros(400)
    b = np.zeros(400)
    a[:30], b[100:140] = 1.0, 1.0
    m = CovariateModel.fit(pd.DataFrame({"a": a, "b": b}))
    w = np.array([[330.0, 40.0], [30.0, 0.5]]) / 400.5  # rows a = 0, 1; columns b = 0, 1
    pa, pb = w[1].sum(), w[:, 1].sum()
    phi_corrected = (w[1, 1] - pa * pb) / math.sqrt(pa * (1 - pa) * pb * (1 - pb))
    qa, qb = a.mean(), b.mean()
    rho = m.corr[0, 1]
    implied = (_orthant(stats.norm.ppf(1 - qa), stats.norm.ppf(1 - qb), rho) - qa * qb) / math.sqrt(
        qa * (1 - qa) * qb * (1 - qb))
    assert -0.99 < rho < -0.3 and abs(implied - phi_corrected) < 1e-6


def test_rare_values_enter_independently():
    # real data with sparse missingness (NCCTG lung: ph.ecog 1, ph.karno 1, pat.karno 3
    # missing values): their indicators are independent of everything (exact zeros), the
    # others keep their estimated dependence, and no positive-definite repair is needed
    lung = builtin_frame("lung")[["age", "sex", "ph.ecog", "ph.karno", "pat.karno", "meal.cal",
                                  "wt.loss"]]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        m = CovariateModel.fit(lung, missing="model")
    messages = [str(w.message) for w in caught if issubclass(w.category, StatisticalWarning)]
    assert len(messages) == 1 and "'ph.ecog[missing]'" in messages[0], messages
    for name in ("ph.ecog[missing]", "ph.karno[missing]", "pat.karno[missing]"):
        c = m.copula_names.index(name)
        np.testing.assert_array_equal(m.corr[c], np.eye(len(m.copula_names))[c])
    w = m.copula_names.index("wt.loss[missing]")
    assert m.corr[w, m.copula_names.index("meal.cal[missing]")] != 0.0
    x = m.design(lung)
    assert x.shape == (len(lung), 12) and not np.isnan(x).any()


def test_clean_data_fit_is_silent_and_legacy_copula_stays():
    # CovariateCopula and copula_sample keep their signatures and results (tests/test_models.py
    # checks them against closed forms); the new model fits the same frame without a caveat
    frame = pd.DataFrame({"a": np.arange(20.0), "b": np.arange(20.0) % 3})
    assert CovariateCopula.fit(frame).quantiles.shape == (2, 20) and callable(copula_sample)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = CovariateModel.fit(frame)
    assert m.discrete.tolist() == [True, True] and m.n_knots.tolist() == [20, 3]
