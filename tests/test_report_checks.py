"""Posterior predictive checks of the report: covariate marginals and the biomarker by visit.

Kinds: *second implementation* (ECDFs and pointwise bands against a broadcast comparison and
per-column ``np.quantile``; the biomarker table's bands against a per-cohort loop),
*hand-derived* (statistics that must sit inside their band because the observed data are the
centre of the synthetic distribution, and fall outside when the synthetic side is shifted by
many standard errors; the derivations are written beside each case) and *smoke* (one panel per
covariate / visit, the report's section, valid PNGs, the wiring to
``twinsim.predictive.biomarker_ppc_arrays``, replaced here by a stand-in).

Random inputs come from explicit JAX keys; the report fixture fits NUTS (1 chain, 50 + 50
iterations) on the first 150 patients of ACTG 175 arm 0; such a tiny fit does not converge and
its ConvergenceWarning is silenced in the fixture.
"""

from __future__ import annotations

import dataclasses
import sys
import types
import warnings

import jax
import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_hex
from matplotlib.image import imread
from scipy.stats import norm

from twinsim.data import TrialData, builtin_frame
from twinsim.errors import ConvergenceWarning, DataError, ModelError, StatisticalWarning
from twinsim.fit import fit_data
from twinsim.models import CovariateModel
from twinsim.report import write_report
from twinsim.report.checks import (BIOMARKER_COHORTS, KEY_BIOMARKER_CHECK, KEY_COVARIATE_CHECK, biomarker_check_table,
                                   check_key, covariate_check, covariate_check_table, ecdf, plot_biomarker_predictive,
                                   pointwise_band)
from twinsim.report.figures import KM_COHORTS
from twinsim.run import run_scenario
from twinsim.scenario import parse_scenario

RED = "#b00020"


# --------------------------------------------------------------------------- band arithmetic


def test_ecdf_and_band_match_a_second_implementation():
    values = np.array([[3.0, 1.0, np.nan, 2.0],
                       [0.5, 2.5, 2.0, 4.0],
                       [np.nan, np.nan, np.nan, np.nan],
                       [1.0, 1.0, 3.5, 0.0]])
    grid = np.array([-1.0, 0.0, 1.0, 1.5, 2.0, 3.0, 5.0])
    got = ecdf(values, grid)
    # broadcast comparison: share of the non-NaN values <= x (NaN <= x is False)
    count = (~np.isnan(values)).sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        expect = (values[:, :, None] <= grid[None, None, :]).sum(axis=1) / count
    np.testing.assert_allclose(got[[0, 1, 3]], expect[[0, 1, 3]])
    assert np.isnan(got[2]).all()  # a cohort with no value has no ECDF
    np.testing.assert_allclose(got[0], [0, 0, 1 / 3, 1 / 3, 2 / 3, 1, 1])  # by hand: values 1, 2, 3
    lo, med, hi = pointwise_band(got)
    ok = got[[0, 1, 3]]  # the all-NaN cohort is left out
    for j in range(grid.size):
        np.testing.assert_allclose([lo[j], med[j], hi[j]], np.quantile(ok[:, j], [0.025, 0.5, 0.975]))


def test_check_keys_are_not_the_km_figures():
    # predictive_km folds the cohort index 0..KM_COHORTS-1 into the same report key
    assert min(KEY_COVARIATE_CHECK, KEY_BIOMARKER_CHECK) > 100 * KM_COHORTS
    a, b = check_key(11, KEY_COVARIATE_CHECK), check_key(11, KEY_BIOMARKER_CHECK)
    assert not np.array_equal(jax.random.key_data(a), jax.random.key_data(b))
    np.testing.assert_array_equal(jax.random.key_data(a), jax.random.key_data(check_key(11, KEY_COVARIATE_CHECK)))


# --------------------------------------------------------------------------- covariates


def covariate_frame(key, n=400):
    """age ~ N(50, 10) (continuous), sex binary 0/1 (40% 1), group categorical a/b/c
    (50/30/20%), score N(0, 1) with 15% missing."""
    ka, ks, kg, kx, km = jax.random.split(key, 5)
    u = np.asarray(jax.random.uniform(kg, (n,)))
    score = np.asarray(jax.random.normal(kx, (n,)))
    score = np.where(np.asarray(jax.random.uniform(km, (n,))) < 0.15, np.nan, score)
    return pd.DataFrame({
        "age": 50 + 10 * np.asarray(jax.random.normal(ka, (n,))),
        "sex": (np.asarray(jax.random.uniform(ks, (n,))) < 0.4).astype(float),
        "group": pd.Categorical(np.where(u < 0.5, "a", np.where(u < 0.8, "b", "c"))),
        "score": score,
    })


@pytest.fixture(scope="module")
def observed():
    return covariate_frame(jax.random.key(1))


def generator_for(frame):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StatisticalWarning)
        return CovariateModel.fit(frame, missing="model")


def test_covariate_table_inside_for_the_generators_own_data(observed):
    # The generator's marginals are the empirical marginals of `observed`, and each cohort has
    # the observed size n: every observed statistic is at the centre of its synthetic sampling
    # distribution (|z| ~ 0, against 1.96 at the band's edge), so all are inside.
    t = covariate_check_table(observed, generator_for(observed), rng_key=jax.random.key(2), cohorts=100)
    assert list(t.columns) == ["covariate", "statistic", "observed", "median", "2.5%", "97.5%", "inside"]
    stats = {c: list(t.loc[t["covariate"] == c, "statistic"]) for c in observed}
    assert stats == {"age": ["mean", "sd", "25%", "median", "75%"], "sex": ["share 0", "share 1"],
                     "group": ["share a", "share b", "share c"],
                     "score": ["mean", "sd", "25%", "median", "75%", "share missing"]}
    row = t.set_index(["covariate", "statistic"])["observed"]
    assert row["age", "mean"] == pytest.approx(observed["age"].mean())
    assert row["age", "sd"] == pytest.approx(observed["age"].std(ddof=1))
    assert row["score", "median"] == pytest.approx(observed["score"].median())
    assert row["score", "share missing"] == pytest.approx(observed["score"].isna().mean())
    assert row["group", "share b"] == pytest.approx((observed["group"] == "b").mean())
    assert t["inside"].all(), t[~t["inside"]]
    assert (t["2.5%"] <= t["median"]).all() and (t["median"] <= t["97.5%"]).all()


def test_covariate_table_flags_a_shifted_generator(observed):
    # Generator fitted to shifted data: age + 10 (1 SD; SE of a mean of 400 is 0.5, of a
    # quartile about 0.7: 14-20 SE away), group a/b/c 20/30/50% instead of about 50/30/20%
    # (SE of a share about 0.025: 12 SE), score missing 45% instead of 15% (17 SE).  Unchanged:
    # the age SD (same values, moved), sex, the score's observed values, group share b (30%).
    shifted = observed.copy()
    shifted["age"] = observed["age"] + 10
    shifted["group"] = observed["group"].map({"a": "c", "b": "b", "c": "a"}).astype("category")
    score = observed["score"].to_numpy().copy()
    extra = np.asarray(jax.random.uniform(jax.random.key(3), (len(score),))) < 0.35
    shifted["score"] = np.where(extra, np.nan, score)
    t = covariate_check_table(observed, generator_for(shifted), rng_key=jax.random.key(2), cohorts=100)
    inside = t.set_index(["covariate", "statistic"])["inside"]
    for s in ("mean", "25%", "median", "75%"):
        assert not inside["age", s]
    assert inside["age", "sd"]
    assert inside["sex", "share 0"] and inside["sex", "share 1"]
    assert not inside["group", "share a"] and not inside["group", "share c"] and inside["group", "share b"]
    assert not inside["score", "share missing"]
    assert all(inside["score", s] for s in ("mean", "sd", "median"))  # missing completely at random: values unchanged


def test_covariate_figure_has_one_panel_per_covariate(observed):
    gen = generator_for(observed)
    key = jax.random.key(2)
    fig, table = covariate_check(observed, gen, rng_key=key, cohorts=50)
    pd.testing.assert_frame_equal(table, covariate_check_table(observed, gen, rng_key=key, cohorts=50))
    assert len(fig.axes) == 4
    assert [ax.get_title() for ax in fig.axes] == ["age", "sex", "group", "score"]
    age = fig.axes[0]
    step = next(line for line in age.get_lines() if line.get_label() == "observed ECDF")
    v = np.sort(observed["age"].to_numpy())
    np.testing.assert_allclose(step.get_ydata()[1:-1], np.arange(1, v.size + 1) / v.size)
    np.testing.assert_allclose(step.get_xdata()[1:-1], v)
    assert [t.get_text() for t in fig.axes[2].get_xticklabels()] == ["a", "b", "c"]
    assert "missing" in fig.axes[3].texts[0].get_text()
    assert all(to_hex(ax.title.get_color()) == "#000000" for ax in fig.axes)
    # a shifted age is flagged in red; 15 covariates fit a 4-column grid without empty axes
    shifted = observed.assign(age=observed["age"] + 10)
    fig = covariate_check(observed, generator_for(shifted), rng_key=key, cohorts=50)[0]
    assert to_hex(fig.axes[0].title.get_color()) == RED and to_hex(fig.axes[1].title.get_color()) == "#000000"
    many = pd.DataFrame(np.asarray(jax.random.normal(jax.random.key(4), (200, 15))),
                        columns=[f"x{i}" for i in range(15)])
    fig = covariate_check(many, generator_for(many), rng_key=key, cohorts=10)[0]
    assert len(fig.axes) == 15 and fig.axes[0].get_gridspec().get_geometry() == (4, 4)


def test_covariate_check_is_reproducible_and_checks_its_inputs(observed):
    gen = generator_for(observed)
    a = covariate_check_table(observed, gen, rng_key=jax.random.key(5), cohorts=20)
    b = covariate_check_table(observed, gen, rng_key=jax.random.key(5), cohorts=20)
    c = covariate_check_table(observed, gen, rng_key=jax.random.key(6), cohorts=20)
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a["2.5%"], c["2.5%"])
    with pytest.raises(ModelError, match="cohorts"):
        covariate_check_table(observed, gen, rng_key=jax.random.key(5), cohorts=1)
    with pytest.raises(ModelError, match="age"):
        covariate_check_table(observed.drop(columns="age"), gen, rng_key=jax.random.key(5))


# --------------------------------------------------------------------------- biomarker by visit

TIMES = np.array([0.0, 8.0, 16.0, 24.0, 40.0])
N, D, SIGMA = 300, 200, 3.0


def mean_at(t):
    return 20.0 - 0.1 * t


def biomarker_inputs(key, *, shift_visit=None, shift=0.0, dropout_scale=40.0):
    """Observed: at visit t, round(N exp(-t/40)) patients at risk with values at the exact
    normal quantiles (i + 0.5)/m of N(mean(t), SIGMA^2): the centre of the truth.  Predicted: D
    cohorts of N patients, values N(mean(t), SIGMA^2) (+ shift at one visit), at risk while an
    exponential time with mean dropout_scale exceeds the visit time."""
    observed = {"name": "sqrt CD4", "unit": "weeks", "visit_times": TIMES, "values": []}
    for t in TIMES:
        m = int(round(N * np.exp(-t / 40.0)))
        observed["values"].append(mean_at(t) + SIGMA * norm.ppf((np.arange(m) + 0.5) / m))
    kv, kt = jax.random.split(key)
    values = np.array(mean_at(TIMES) + SIGMA * jax.random.normal(kv, (D, N, TIMES.size)))
    if shift_visit is not None:
        values[..., shift_visit] += shift
    leave = np.asarray(jax.random.exponential(kt, (D, N, 1))) * dropout_scale
    return observed, {"values": values, "at_risk": leave >= TIMES}


def test_biomarker_table_matches_a_per_cohort_loop():
    observed, predicted = biomarker_inputs(jax.random.key(7))
    t = biomarker_check_table(observed, predicted)
    assert list(t.columns) == ["visit", "statistic", "observed", "median", "2.5%", "97.5%", "inside"]
    assert len(t) == 4 * TIMES.size
    j = 3
    rows = t[t["visit"] == TIMES[j]].set_index("statistic")
    n = predicted["at_risk"][:, :, j].sum(axis=1)
    np.testing.assert_allclose(rows.loc["n at risk", ["2.5%", "median", "97.5%"]].to_numpy(float),
                               np.quantile(n, [0.025, 0.5, 0.975]))
    # quartiles are inverted-CDF quantiles (the method NumPy can weight), observed and predicted alike
    q = np.array([np.quantile(predicted["values"][d, predicted["at_risk"][d, :, j], j], [0.25, 0.5, 0.75],
                              method="inverted_cdf") for d in range(D)])
    for i, s in enumerate(["25%", "median", "75%"]):
        np.testing.assert_allclose(rows.loc[s, ["2.5%", "median", "97.5%"]].to_numpy(float),
                                   np.quantile(q[:, i], [0.025, 0.5, 0.975]))
        v = np.sort(observed["values"][j])  # inverted CDF by hand: the ceil(p m)-th smallest value
        assert rows.loc[s, "observed"] == v[int(np.ceil([0.25, 0.5, 0.75][i] * v.size)) - 1]
    assert rows.loc["n at risk", "observed"] == len(observed["values"][j])


def test_biomarker_weights_act_as_repeated_values_and_n_at_risk_counts_the_unmeasured():
    # Integer weights are frequency weights: the weighted ECDF and quartiles must equal those
    # of the values repeated w times (an independent reference).
    observed, predicted = biomarker_inputs(jax.random.key(7))
    w = [1.0 + (np.arange(v.size) % 3) for v in observed["values"]]
    repeated = [np.repeat(v, wi.astype(int)) for v, wi in zip(observed["values"], w)]
    n_at_risk = [v.size + 7 for v in observed["values"]]  # 7 patients at risk missed each visit
    weighted = {**observed, "weights": w, "n_at_risk": n_at_risk}
    a = biomarker_check_table(weighted, predicted)
    b = biomarker_check_table({**observed, "values": repeated}, predicted)
    quart = a["statistic"] != "n at risk"
    np.testing.assert_array_equal(a.loc[quart, "observed"], b.loc[quart, "observed"])
    np.testing.assert_array_equal(a.loc[~quart, "observed"], n_at_risk)
    fig = plot_biomarker_predictive(weighted, predicted)
    assert f"n at risk {n_at_risk[1]} ({observed['values'][1].size} measured)" in fig.axes[1].get_title()
    step = next(line for line in fig.axes[1].get_lines() if line.get_label().startswith("observed ECDF"))
    x, y = step.get_xdata()[1:-1], step.get_ydata()[1:-1]
    np.testing.assert_allclose(y, ecdf(repeated[1], x))
    with pytest.raises(DataError, match="n_at_risk"):
        biomarker_check_table({**observed, "n_at_risk": [1] * TIMES.size}, predicted)
    with pytest.raises(DataError, match="weights"):
        biomarker_check_table({**observed, "weights": [wi[:-1] for wi in w]}, predicted)


def test_biomarker_inside_for_the_truth_and_outside_when_shifted():
    # Same distribution: the observed n at risk is the binomial mean N S(t) (rounded) and the
    # observed quartiles are the true ones (to O(1/m)), both at the centre of the cohorts'
    # sampling distributions, so all 20 statistics are inside.
    t = biomarker_check_table(*biomarker_inputs(jax.random.key(7)))
    assert t["inside"].all(), t[~t["inside"]]
    # Values shifted by 2 at visit 24 (m = 165 at risk: SE of a quartile about
    # 1.36 SIGMA / sqrt(165) = 0.32, so 6 SE): its quartiles are outside, n at risk is not.
    t = biomarker_check_table(*biomarker_inputs(jax.random.key(7), shift_visit=3, shift=2.0))
    flags = t.set_index(["visit", "statistic"])["inside"]
    assert not any(flags[24.0, s] for s in ("25%", "median", "75%")) and flags[24.0, "n at risk"]
    assert flags.drop(24.0, level="visit").all()
    # Dropout twice as fast: at week 40 about 300 e^-2 = 41 predicted at risk against 110 observed.
    t = biomarker_check_table(*biomarker_inputs(jax.random.key(7), dropout_scale=20.0))
    flags = t.set_index(["visit", "statistic"])["inside"]
    assert flags[0.0, "n at risk"] and not flags[16.0, "n at risk"] and not flags[40.0, "n at risk"]


def test_biomarker_figure_has_one_panel_per_visit():
    observed, predicted = biomarker_inputs(jax.random.key(7), shift_visit=3, shift=2.0)
    fig = plot_biomarker_predictive(observed, predicted)
    assert len(fig.axes) == TIMES.size
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[1].startswith("8 weeks\nn at risk 246\npredicted 246 [")
    assert [to_hex(ax.title.get_color()) == RED for ax in fig.axes] == [False, False, False, True, False]
    step = next(line for line in fig.axes[2].get_lines() if line.get_label().startswith("observed ECDF"))
    v = np.sort(observed["values"][2])
    np.testing.assert_allclose(step.get_ydata()[1:-1], np.arange(1, v.size + 1) / v.size)


def test_biomarker_inputs_are_checked():
    observed, predicted = biomarker_inputs(jax.random.key(7))
    with pytest.raises(DataError, match="visit times"):
        biomarker_check_table({**observed, "values": observed["values"][:-1]}, predicted)
    with pytest.raises(ModelError, match="at_risk"):
        biomarker_check_table(observed, {**predicted, "at_risk": predicted["at_risk"][..., :-1]})
    with pytest.raises(ModelError, match="unit"):
        biomarker_check_table({k: v for k, v in observed.items() if k != "unit"}, predicted)


# --------------------------------------------------------------------------- report


@pytest.fixture(scope="module")
def run_result():
    frame = builtin_frame("actg175")
    frame = frame[frame["arms"] == 0].head(150).reset_index(drop=True)
    cov = frame[["age", "karnof"]].astype(float)
    cov.loc[::10, "karnof"] = np.nan  # 15 missing: the "missing" level of a level panel
    data = TrialData(frame["days"].to_numpy(float), frame["cens"].to_numpy(int), cov, "days", "ACTG 175 head")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", StatisticalWarning)
        post = fit_data(data, rng_key=jax.random.key(0), chains=1, warmup=50, draws=50)
    raw = {
        "name": "checks-test", "seed": 11, "replicates": 20,
        "historical": {"data": "builtin:actg175", "filter": {"arms": 0}, "duration": "days", "event": "cens",
                       "time_unit": "days", "covariates": ["age", "karnof"], "missing": "model"},
        "model": {"outcome": "weibull"},
        "trial": {"time_unit": "months", "n_treatment": 60, "accrual": {"duration": 12}, "cut": {"events": 40}},
        "effect": {"hazard_ratio": [1.0]},
        "designs": [{"name": "rct", "real_control": 60}],
    }
    return run_scenario(parse_scenario(raw), posterior=post, historical=data)


@pytest.fixture
def fake_predictive(monkeypatch):
    """Stands in for the lead's twinsim.predictive.biomarker_ppc_arrays; records its calls."""
    calls = []
    observed, predicted = biomarker_inputs(jax.random.key(7), shift_visit=3, shift=2.0)
    # as twinsim.predictive returns it: weights (all 1 here) and n at risk (3 missed each visit after 0;
    # everyone is at risk at visit 0, so the predicted count there is exactly N)
    observed = {**observed, "weights": [np.ones(v.size) for v in observed["values"]],
                "n_at_risk": [v.size + 3 * (t > 0) for v, t in zip(observed["values"], TIMES)]}
    state = {"return": (observed, predicted)}

    def biomarker_ppc_arrays(rng_key, posterior, *, cohorts, time_unit):
        calls.append({"key": rng_key, "posterior": posterior, "cohorts": cohorts, "time_unit": time_unit})
        return state["return"]

    try:
        import twinsim.predictive as module
    except ImportError:
        module = types.ModuleType("twinsim.predictive")
        monkeypatch.setitem(sys.modules, "twinsim.predictive", module)
    monkeypatch.setattr(module, "biomarker_ppc_arrays", biomarker_ppc_arrays, raising=False)
    return calls, state


def check_png(path):
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = imread(path)
    assert image.shape[0] >= 300 and image.shape[1] >= 400 and image[..., :3].std() > 0.05


def test_report_has_the_model_checks(run_result, fake_predictive, tmp_path):
    calls, _ = fake_predictive
    written = write_report(run_result, tmp_path)
    names = sorted(p.relative_to(tmp_path).as_posix() for p in written)
    assert names == ["figures/biomarker_predictive.png", "figures/covariate_marginals.png", "figures/km_predictive.png",
                     "figures/rejection.png", "report.html", "report.md"]
    for name in ("covariate_marginals", "biomarker_predictive"):
        check_png(tmp_path / "figures" / f"{name}.png")
    (call,) = calls
    assert call["posterior"] is run_result.posterior and call["time_unit"] == "months"
    assert call["cohorts"] == BIOMARKER_COHORTS
    np.testing.assert_array_equal(jax.random.key_data(call["key"]),
                                  jax.random.key_data(check_key(11, KEY_BIOMARKER_CHECK)))
    md = (tmp_path / "report.md").read_text()
    check = md.split("## Model check\n", 1)[1].split("\n## ", 1)[0]
    assert "](figures/km_predictive.png)" in check
    assert "**Covariate marginals.**" in check and "](figures/covariate_marginals.png)" in check
    assert "**Biomarker by visit.**" in check and "](figures/biomarker_predictive.png)" in check
    assert f"`fold_in(fold_in(jax.random.key(11), 3), {KEY_COVARIATE_CHECK})`" in check
    # the biomarker's shifted visit is listed, with its table (header + 20 rows)
    assert "3 of 20 statistics" in check and "visit 24 median" in check and "missed a visit" in check
    assert "| visit (weeks) | statistic | observed |" in check
    assert sum(line.startswith("| 24 |") for line in check.splitlines()) == 4
    page = (tmp_path / "report.html").read_text()
    assert page.count('src="data:image/png;base64,') == 4 and "<strong>Biomarker by visit.</strong>" in page


def test_covariate_sentence_counts_the_table(run_result, fake_predictive, tmp_path):
    _, state = fake_predictive
    state["return"] = None  # no biomarker model: no figure, no paragraph
    written = write_report(run_result, tmp_path)
    assert not (tmp_path / "figures" / "biomarker_predictive.png").exists()
    md = (tmp_path / "report.md").read_text()
    assert "Biomarker by visit" not in md
    t = covariate_check_table(run_result.historical.covariates, run_result.posterior.covariate_model,
                              rng_key=check_key(11, KEY_COVARIATE_CHECK))
    assert list(t.loc[t["covariate"] == "karnof", "statistic"])[-1] == "share missing"
    out = int((~t["inside"]).sum())
    assert f"**Covariate marginals.** {out} of {len(t)} checked statistics" in md
    # without the historical data (a saved posterior) there is no covariate check
    no_hist = dataclasses.replace(run_result, historical=None)
    written = write_report(no_hist, tmp_path / "nohist")
    assert not any("covariate_marginals" in p.name for p in written)
    assert "Covariate marginals" not in (tmp_path / "nohist" / "report.md").read_text()
