"""Synthetic tables (twinsim.validate.generate), holdout splits and split summaries (runner).

References: lifelines' KaplanMeierFitter on the censoring times (the reverse Kaplan-Meier the
censoring sampler inverts), hand counts (conditions, stratified splits, the majority rule),
and the generator's own unconditional draws filtered by the condition (rejection sampling
must reproduce them: two-sample KS).
"""

import jax
import numpy as np
import pandas as pd
import pytest
from lifelines import KaplanMeierFitter
from scipy import stats

from twinsim.data import Biomarker, TrialData
from twinsim.errors import DataError, ScenarioError
from twinsim.fit import fit
from twinsim.validate.generate import parse_condition, parse_oversample, reverse_km_sampler, synthetic_table
from twinsim.validate.runner import holdout_split, subset_data, summarise_splits


def test_reverse_km_sampler_matches_lifelines_censoring_distribution():
    """Censoring times drawn by inverting the reverse KM have the distribution lifelines estimates for
    the censoring times (events as censored observations of them).  Tolerance: the DKW bound at level
    1e-4 for m = 40,000 draws, sqrt(log(2/1e-4) / (2 m)) = 0.0079."""
    rng = np.random.default_rng(1)
    n = 300
    t_event, t_cens = rng.weibull(1.3, n) * 10, rng.uniform(2, 14, n)
    time, event = np.minimum(t_event, t_cens).round(1), (t_event <= t_cens).astype(int)
    draws = reverse_km_sampler(time, event)(jax.random.key(0), 40_000)
    # tie convention: events come first at a tied time, so censorings there are placed just after them
    km = KaplanMeierFitter().fit(time + 1e-9 * (event == 0), 1 - event)
    grid = np.unique(time)
    cdf_ref = 1 - km.survival_function_at_times(grid + 2e-9).to_numpy()
    cdf_emp = np.searchsorted(np.sort(draws), grid, side="right") / len(draws)
    # the reverse KM leaves mass beyond the last time when the longest follow-up is an event: it sits at t_max
    assert np.max(np.abs(cdf_emp[:-1] - cdf_ref[:-1])) < np.sqrt(np.log(2 / 1e-4) / (2 * len(draws)))
    assert set(np.unique(draws)) <= set(np.unique(time[event == 0])) | {time.max()}


def test_parse_condition_masks_by_hand():
    frame = pd.DataFrame({"gender": [0, 1, 1, 0, np.nan], "age": [25, 41, 60, 39, 50],
                          "race": pd.Categorical(["a", "b", "a", "c", "b"])})
    assert parse_condition("gender=0").mask(frame).tolist() == [True, False, False, True, False]
    assert parse_condition("age>=40 & race=a,b").mask(frame).tolist() == [False, True, True, False, True]
    assert parse_condition("age<40 and gender!=1").mask(frame).tolist() == [True, False, False, True, False]
    cond, factor = parse_oversample("race=c:2.5")
    assert factor == 2.5 and cond.mask(frame).tolist() == [False, False, False, True, False]
    for bad in ("age >> 3", "", "gender=0:1", "gender=0:x", "race<a"):
        with pytest.raises(ScenarioError):
            parse_oversample(bad) if ":" in bad else parse_condition(bad)
    with pytest.raises(DataError, match="no column 'sex'"):
        parse_condition("sex=0").mask(frame)


@pytest.fixture(scope="module")
def posterior():
    """A Weibull model with two covariates fitted to 200 simulated patients (a small NUTS run)."""
    rng = np.random.default_rng(3)
    n = 200
    x = pd.DataFrame({"age": rng.normal(50, 10, n), "sex": rng.integers(0, 2, n).astype(float)})
    t = rng.weibull(1.2, n) * 20 * np.exp(-0.5 * x["sex"].to_numpy())
    c = rng.uniform(5, 40, n)
    return fit(np.minimum(t, c), (t <= c).astype(int), x, outcome="weibull", rng_key=jax.random.key(0),
               chains=1, warmup=200, draws=200)


def test_synthetic_table_censoring_conditions_and_oversampling(posterior):
    key = jax.random.key(4)
    plain = synthetic_table(key, posterior, 3000, censoring="none")
    assert list(plain.columns) == ["age", "sex", "time", "event"] and plain["event"].eq(1).all()
    censored = synthetic_table(key, posterior, 3000)
    # same key: same patients, censored at min(T, C) with C from the observed follow-up
    assert np.all(censored["time"] <= plain["time"] + 1e-12)
    assert 0.2 < 1 - censored["event"].mean() < 0.9
    assert censored["time"].max() <= np.max(posterior.observed_time) + 1e-9

    only = synthetic_table(jax.random.key(5), posterior, 1000, where=parse_condition("sex=1 & age>=50"), censoring="none")
    assert len(only) == 1000 and (only["sex"] == 1).all() and (only["age"] >= 50).all()
    # rejection sampling = the generator's own conditional distribution: compare with a filtered natural sample
    big = synthetic_table(jax.random.key(6), posterior, 20_000, censoring="none")
    ref = big[(big["sex"] == 1) & (big["age"] >= 50)]
    for col in ("age", "time"):
        assert stats.ks_2samp(only[col], ref[col]).pvalue > 1e-3

    base = synthetic_table(jax.random.key(7), posterior, 500)
    over = synthetic_table(jax.random.key(7), posterior, 500, oversample=[parse_oversample("sex=0:3")])
    k = int((base["sex"] == 0).sum())
    pd.testing.assert_frame_equal(over.iloc[:500], base)  # the natural table first, unchanged
    assert len(over) == 500 + 2 * k and int((over["sex"] == 0).sum()) == 3 * k


def test_holdout_split_is_a_stratified_partition():
    event = np.r_[np.ones(101, int), np.zeros(60, int)]
    train, hold = holdout_split(event, 0.3, rng_key=jax.random.key(0))
    assert np.array_equal(np.sort(np.r_[train, hold]), np.arange(161))
    assert event[hold].sum() == round(0.3 * 101) and (1 - event[hold]).sum() == round(0.3 * 60)
    again = holdout_split(event, 0.3, rng_key=jax.random.key(0))
    assert np.array_equal(again[1], hold)
    assert not np.array_equal(holdout_split(event, 0.3, rng_key=jax.random.key(1))[1], hold)


def test_subset_data_reindexes_biomarker_and_studies():
    bio = Biomarker("cd4", np.array([0, 0, 1, 2, 3, 3]), np.array([0., 5, 0, 0, 0, 5]), np.arange(6.0))
    data = TrialData(time=np.arange(1.0, 5.0), event=np.array([1, 0, 1, 0]),
                     covariates=pd.DataFrame({"a": [1.0, 2, 3, 4]}), time_unit="days", source="t", biomarker=bio,
                     study=np.array([0, 1, 1, 2]), study_labels=("x", "y", "z"))
    sub = subset_data(data, [3, 1])
    assert sub.time.tolist() == [2.0, 4.0] and sub.covariates["a"].tolist() == [2.0, 4.0]
    assert sub.biomarker.patient.tolist() == [0, 1, 1] and sub.biomarker.value.tolist() == [2.0, 4.0, 5.0]
    assert sub.study.tolist() == [0, 1] and sub.study_labels == ("y", "z")


def test_summarise_splits_majority_rule():
    def table(v1, v2, v3):
        return pd.DataFrame({"metric": ["a", "b", "c"], "synthetic": [0.1, 0.2, 0.3], "holdout_floor": [0.0, 0.1, 0.2],
                             "tolerance": [0.05, 0.05, np.nan], "verdict": [v1, v2, v3]})
    out = summarise_splits([table("fail", "pass", "info"), table("fail", "fail", "info"), table("pass", "pass", "info")],
                           ["metric"], holdout="holdout_floor").set_index("metric")
    assert out.loc["a", "splits_worse"] == 2 and out.loc["a", "verdict"] == "fail"   # 2 of 3 > half
    assert out.loc["b", "splits_worse"] == 1 and out.loc["b", "verdict"] == "pass"
    assert out.loc["c", "verdict"] == "info" and out.loc["c", "splits"] == 0
    assert out.loc["a", "synthetic"] == pytest.approx(0.1) and out.loc["a", "holdout_max"] == 0.0
