"""Tests of twinsim.data: builtin facts, file round trips, hashing and every error path.

Reference counts are from docs/references.md ("Real data shipped with lifelines"):
hand-derived expectations; the missing-value counts are re-derived independently with
pandas on lifelines' own loader.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import lifelines
import numpy as np
import pandas as pd
import pytest
from lifelines.datasets import load_gbsg2, load_lung

from twinsim.data import BUILTIN_DATASETS, Biomarker, TrialData, builtin_frame, list_datasets, load_data
from twinsim.errors import DataError, ScenarioError, StatisticalWarning

ACTG_COVS = ["age", "wtkg", "karnof", "cd40", "cd80", "symptom", "gender", "race", "str2"]


def actg(**kwargs) -> TrialData:
    kwargs.setdefault("duration", "days")
    kwargs.setdefault("event", "cens")
    return load_data("builtin:actg175", **kwargs)


def small_frame() -> pd.DataFrame:
    """40 patients, 30 events, deterministic (no random state)."""
    n = 40
    return pd.DataFrame({
        "t": np.arange(1, n + 1, dtype=float) * 7.5,
        "e": np.array([1, 1, 1, 0] * (n // 4)),
        "x": np.linspace(-1.0, 1.0, n),
        "g": ["a", "b"] * (n // 2),
        "flag": [True, False] * (n // 2),
    })


# --------------------------------------------------------------------------- builtin facts


def test_actg175_counts_references_md():
    # references.md: 2139 patients, 521 events; days 14-1231; arm 0: 532 patients, 181 events
    data = actg(covariates=ACTG_COVS)
    assert (data.n, data.n_events) == (2139, 521)
    assert data.time.min() == 14 and data.time.max() == 1231
    arm0 = actg(covariates=ACTG_COVS, filter={"arms": 0})
    assert (arm0.n, arm0.n_events) == (532, 181)
    assert arm0.source == "builtin:actg175 filter={'arms': 0}"
    assert arm0.covariate_names == tuple(ACTG_COVS)
    assert list(arm0.covariates.columns) == ACTG_COVS
    assert isinstance(arm0.covariates.index, pd.RangeIndex)
    assert (arm0.covariates.dtypes == np.float64).all()
    assert arm0.time.dtype == np.float64 and arm0.event.dtype == np.int8
    assert "Unnamed: 0" not in builtin_frame("actg175").columns


def test_actg175_matches_file_in_lifelines():
    raw = pd.read_csv(Path(lifelines.__file__).parent / "datasets" / "ACTG175.csv")
    raw = raw[raw["arms"] == 0]
    data = actg(covariates=["age", "cd40"], filter={"arms": 0})
    np.testing.assert_array_equal(data.time, raw["days"].to_numpy(float))
    np.testing.assert_array_equal(data.event, raw["cens"].to_numpy())
    np.testing.assert_array_equal(data.covariates["cd40"], raw["cd40"].to_numpy(float))


def test_filter_membership_list():
    raw = builtin_frame("actg175")
    data = actg(filter={"arms": [0, 3]})
    sel = raw[raw["arms"].isin([0, 3])]
    assert data.n == len(sel) and data.n_events == int(sel["cens"].sum())
    both = actg(filter={"arms": [1], "gender": 1})
    sel = raw[(raw["arms"] == 1) & (raw["gender"] == 1)]
    assert both.n == len(sel) and both.n_events == int(sel["cens"].sum())


def test_gbsg2_counts_and_recoding():
    # references.md: 686 patients, 299 events
    data = load_data("builtin:gbsg2", duration="time", event="cens",
                     covariates=["horTh", "age", "menostat", "tgrade", "pnodes"])
    assert (data.n, data.n_events) == (686, 299)
    raw, coded = load_gbsg2(), builtin_frame("gbsg2")
    assert all(pd.api.types.is_numeric_dtype(coded[c]) for c in coded.columns)
    assert pd.api.types.is_integer_dtype(coded["tgrade"])
    np.testing.assert_array_equal(coded["horTh"], (raw["horTh"] == "yes").astype(int))
    np.testing.assert_array_equal(coded["menostat"], (raw["menostat"] == "Post").astype(int))
    np.testing.assert_array_equal(coded["tgrade"], raw["tgrade"].map({"I": 1, "II": 2, "III": 3}))
    assert set(coded["tgrade"]) == {1, 2, 3} and set(coded["horTh"]) == {0, 1}


def test_lung_counts():
    # references.md: 228 patients, 165 deaths
    data = load_data("builtin:lung", duration="time", event="status", covariates=["age", "sex"])
    assert (data.n, data.n_events) == (228, 165)


def test_list_datasets_and_builtins():
    table = list_datasets()
    assert list(table.columns) == ["name", "rows", "events", "duration", "event", "columns",
                                   "description"]
    facts = table.set_index("name")[["rows", "events"]].to_dict("index")
    assert facts == {"actg175": {"rows": 2139, "events": 521},
                     "gbsg2": {"rows": 686, "events": 299},
                     "lung": {"rows": 228, "events": 165}}
    assert set(BUILTIN_DATASETS) == {"actg175", "gbsg2", "lung"}
    assert all(v["time_unit"] == "days" for v in BUILTIN_DATASETS.values())
    # builtin_frame returns a copy: editing it does not change the next load
    frame = builtin_frame("lung")
    frame["time"] = -1
    assert (builtin_frame("builtin:lung")["time"] > 0).all()


# --------------------------------------------------------------------------- files, hashing


def test_csv_parquet_round_trip_and_hash(tmp_path):
    raw = builtin_frame("actg175")
    raw.to_csv(tmp_path / "a.csv", index=False)
    raw.to_parquet(tmp_path / "a.parquet")
    kw = dict(duration="days", event="cens", covariates=ACTG_COVS, filter={"arms": 0})
    ref = actg(**kw)
    from_csv = load_data("a.csv", base_dir=tmp_path, **kw)
    from_pq = load_data(tmp_path / "a.parquet", **kw)
    from_df = load_data(raw, **kw)
    for other in (from_csv, from_pq, from_df):
        np.testing.assert_array_equal(other.time, ref.time)
        np.testing.assert_array_equal(other.event, ref.event)
        pd.testing.assert_frame_equal(other.covariates, ref.covariates)
        assert other.hash() == ref.hash()
    assert from_csv.source == f"{(tmp_path / 'a.csv').resolve()} filter={{'arms': 0}}"
    assert from_csv == load_data(str(tmp_path / "a.csv"), **kw)
    assert from_csv != from_pq  # same content, different source
    assert len(ref.hash()) == 64 and int(ref.hash(), 16) >= 0

    changed = raw.copy()
    changed.loc[changed.index[changed["arms"] == 0][5], "days"] += 1
    assert load_data(changed, **kw).hash() != ref.hash()
    # time unit and covariate names are part of the content
    assert actg(**{**kw, "time_unit": "weeks"}).hash() != ref.hash()
    assert actg(**{**kw, "covariates": ACTG_COVS[::-1]}).hash() != ref.hash()


def test_hash_known_value_is_stable():
    # A fixed, hand-built input: its digest must not change across runs or machines.
    data = TrialData(time=np.array([1.0, 2.5]), event=np.array([1, 0]),
                     covariates=pd.DataFrame({"x": [0.0, -0.0]}), time_unit="days", source="t")
    same = TrialData(time=[1, 2.5], event=[True, False],
                     covariates=pd.DataFrame({"x": [0, 0]}, index=[7, 9]), time_unit="days",
                     source="t")
    assert data == same and data.hash() == same.hash() and hash(data) == hash(same)
    # pinned: the canonical byte format is part of provenance; change it only on purpose
    assert data.hash() == "f81e4063e7445dd97ef735575ddda8ac1b4ead6deddc427f94f1449998893f8f"
    assert data.hash() == TrialData(data.time, data.event, data.covariates, "days", "u").hash()


def test_trialdata_properties_and_frame():
    with pytest.warns(StatisticalWarning):  # 30 events for 4 parameters
        data = load_data(small_frame(), duration="t", event="e", covariates=["x", "flag"])
    assert (data.n, data.n_events, data.n_dropped) == (40, 30, 0)
    frame = data.to_frame()
    assert list(frame.columns) == ["time", "event", "x", "flag"]
    assert set(data.covariates["flag"]) == {0.0, 1.0}
    assert not data.time.flags.writeable and not data.event.flags.writeable
    with pytest.raises(Exception):
        data.time_unit = "weeks"  # frozen


def test_event_booleans_accepted():
    df = small_frame()
    df["e"] = df["e"].astype(bool)
    data = load_data(df, duration="t", event="e")
    assert data.n_events == 30 and data.event.dtype == np.int8


def test_source_dataframe_not_modified():
    df = small_frame()
    before = df.copy()
    load_data(df, duration="t", event="e", covariates=["x"], filter={"e": 1})
    pd.testing.assert_frame_equal(df, before)


# --------------------------------------------------------------------------- missing values


def test_missing_error_names_columns_and_fix():
    with pytest.raises(DataError) as err:
        load_data("builtin:lung", duration="time", event="status",
                  covariates=["ph.ecog", "wt.loss"])
    msg = str(err.value)
    assert msg.startswith("historical")
    assert "'ph.ecog': 1" in msg and "'wt.loss': 14" in msg and "missing: drop" in msg


def test_missing_drop_lung(caplog):
    raw = load_lung()  # independent count with pandas on lifelines' own loader
    keep = raw[["time", "status", "ph.ecog", "wt.loss"]].notna().all(axis=1)
    with caplog.at_level(logging.INFO, logger="twinsim.data"):
        data = load_data("builtin:lung", duration="time", event="status",
                         covariates=["ph.ecog", "wt.loss"], missing="drop")
    assert data.n_dropped == int((~keep).sum()) == 15
    assert data.n == int(keep.sum())
    np.testing.assert_array_equal(data.time, raw.loc[keep, "time"].to_numpy(float))
    np.testing.assert_array_equal(data.covariates["wt.loss"], raw.loc[keep, "wt.loss"])
    assert data.n_events == int(raw.loc[keep, "status"].sum())
    assert any("dropped 15" in r.getMessage() for r in caplog.records)
    # NaN in unused columns (meal.cal) drops nothing
    assert load_data("builtin:lung", duration="time", event="status", covariates=["age"],
                     missing="drop").n_dropped == 0


def test_unknown_missing_option():
    with pytest.raises(DataError, match="historical.missing.*'drop'"):
        actg(missing="impute")


# --------------------------------------------------------------------------- error paths


def test_missing_column_suggests_close_match():
    with pytest.raises(DataError) as err:
        actg(duration="dayz")
    msg = str(err.value)
    assert msg.startswith("historical.duration:") and "'dayz'" in msg
    assert "did you mean 'days'?" in msg.lower() and "cd40" in msg
    with pytest.raises(DataError, match=r"^scenario\.covariates: .*'cd4O'.*'cd40'"):
        actg(covariates=["age", "cd4O"], field="scenario")
    with pytest.raises(DataError, match=r"^historical\.event: .*'status'"):
        actg(event="status")


def test_non_positive_time():
    df = small_frame()
    df.loc[[3, 11], "t"] = [0.0, -2.0]
    with pytest.raises(DataError) as err:
        load_data(df, duration="t", event="e")
    msg = str(err.value)
    assert msg.startswith("historical.duration:") and "2 row(s)" in msg
    assert "3, 11" in msg and "0.5" in msg
    df.loc[[3, 11], "t"] = [np.inf, 1.0]
    with pytest.raises(DataError, match="finite"):
        load_data(df, duration="t", event="e")


def test_event_coded_1_2():
    df = small_frame()
    df["e"] = df["e"] + 1
    with pytest.raises(DataError) as err:
        load_data(df, duration="t", event="e")
    msg = str(err.value)
    assert msg.startswith("historical.event:") and "'e'" in msg and "2" in msg
    assert "1 = event observed, 0 = censored" in msg
    df["e"] = np.where(df["e"] == 2, "yes", "no")
    with pytest.raises(DataError, match="historical.event.*'yes'"):
        load_data(df, duration="t", event="e")


def test_text_covariate_is_categorical_and_clashes_are_errors():
    # text columns became categorical covariates (issue 3); clashes stay errors
    with pytest.warns(StatisticalWarning):  # 30 events, 3 parameters
        data = load_data(small_frame(), duration="t", event="e", covariates=["x", "g"])
    assert data.categorical == ("g",) and list(data.covariates["g"].cat.categories) == ["a", "b"]
    with pytest.raises(DataError, match="historical.covariates.*once"):
        load_data(small_frame(), duration="t", event="e", covariates=["x", "e"])
    with pytest.raises(DataError, match=r"^historical\.event: 't' is also the duration"):
        load_data(small_frame(), duration="t", event="t")
    df = small_frame()
    df["when"] = pd.Timestamp("2024-01-01")
    with pytest.raises(DataError) as err:
        load_data(df, duration="t", event="e", covariates=["when"])
    msg = str(err.value)
    assert msg.startswith("historical.covariates:") and "'when'" in msg and "neither numeric nor text" in msg


def test_too_few_events_and_warning():
    df = small_frame()
    df["e"] = 0
    df.loc[:4, "e"] = 1  # 5 events
    with pytest.raises(DataError, match=r"^historical\.data: .*5 events.*min_events=10"):
        load_data(df, duration="t", event="e")
    # 30 events, 2 covariates -> 4 parameters, 30 < 40: the fit leans on the prior
    with pytest.warns(StatisticalWarning, match="lean on the prior"):
        load_data(small_frame(), duration="t", event="e", covariates=["x", "flag"])
    with warnings.catch_warnings():
        warnings.simplefilter("error", StatisticalWarning)
        actg(covariates=ACTG_COVS, filter={"arms": 0})  # 181 events, 11 parameters: no warning
    with pytest.warns(StatisticalWarning, match="constant"):
        actg(covariates=["age", "arms"], filter={"arms": 0})


def test_unknown_builtin():
    with pytest.raises(DataError, match=r"^historical\.data: .*'actg176'.*builtin:actg175"):
        load_data("builtin:actg176", duration="days", event="cens")
    with pytest.raises(DataError, match="builtin:gbsg2"):
        builtin_frame("nope")


def test_filter_errors():
    with pytest.raises(DataError, match=r"^historical\.filter: .*'arm'.*did you mean 'arms'"):
        actg(filter={"arm": 0})
    with pytest.raises(DataError) as err:
        actg(filter={"arms": 7})
    msg = str(err.value)
    assert msg.startswith("historical.filter:") and "{'arms': 7}" in msg and "0, 1, 2, 3" in msg
    with pytest.raises(DataError, match="equality or membership"):
        actg(filter={"arms": {">": 0}})


def test_file_errors(tmp_path):
    with pytest.raises(DataError) as err:
        load_data("nothere.csv", base_dir=tmp_path, duration="t", event="e")
    assert str(err.value).startswith("historical.data:")
    assert str((tmp_path / "nothere.csv").resolve()) in str(err.value)
    (tmp_path / "d.xlsx").write_text("x")
    with pytest.raises(DataError, match=r"historical\.data: unsupported file type '\.xlsx'"):
        load_data(tmp_path / "d.xlsx", duration="t", event="e")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match="could not read"):
        load_data(tmp_path / "empty.csv", duration="t", event="e")
    with pytest.raises(DataError, match="cannot read data from a dict"):
        load_data({"adsl": "x"}, duration="t", event="e")


def test_unknown_time_unit():
    with pytest.raises(DataError) as err:
        actg(time_unit="fortnights")
    msg = str(err.value)
    assert msg.startswith("historical.time_unit:") and "'fortnights'" in msg
    assert all(u in msg for u in ("days", "weeks", "months", "years"))


# --------------------------------------------------------------------------- categorical covariates


@pytest.mark.filterwarnings("ignore::twinsim.errors.StatisticalWarning")
def test_categorical_covariates_sorted_observed_categories():
    # reference: pandas' own unique values, sorted (hand-built frame)
    df = small_frame()
    df["grade"] = (["high", "low", "mid", "low"] * 10)
    df["site"] = pd.Categorical(["z", "a"] * 20, categories=["z", "q", "a"])  # unsorted, 'q' unused
    with pytest.warns(StatisticalWarning, match="about 7 model parameters"):  # 2 + x + grade 2 + site 1 + flag
        data = load_data(df, duration="t", event="e", covariates=["x", "grade", "site", "flag"])
    assert data.categorical == ("grade", "site")
    assert list(data.covariates["grade"].cat.categories) == sorted(set(df["grade"])) == ["high", "low", "mid"]
    assert list(data.covariates["site"].cat.categories) == ["a", "z"]  # sorted, observed only
    np.testing.assert_array_equal(data.covariates["grade"].astype(str), df["grade"])
    np.testing.assert_array_equal(data.covariates["site"].astype(str), df["site"].astype(str))
    assert data.covariates["x"].dtype == np.float64 and data.covariates["flag"].dtype == np.float64
    # the same content as text in a CSV hashes the same; a changed label changes it
    assert load_data(df.assign(site=df["site"].astype(str)), duration="t", event="e",
                     covariates=["x", "grade", "site", "flag"]).hash() == data.hash()
    assert load_data(df.assign(grade=df["grade"].replace("mid", "medium")), duration="t", event="e",
                     covariates=["x", "grade", "site", "flag"]).hash() != data.hash()


@pytest.mark.filterwarnings("ignore::twinsim.errors.StatisticalWarning")
def test_categorical_missing_values_follow_the_policy():
    df = small_frame()
    df["g"] = df["g"].astype(object)
    df.loc[[2, 5], "g"] = None
    with pytest.raises(DataError, match=r"^historical\.covariates: missing values.*'g': 2.*missing: model"):
        load_data(df, duration="t", event="e", covariates=["g"])
    kept = load_data(df, duration="t", event="e", covariates=["g"], missing="model")
    assert kept.n == 40 and kept.covariates["g"].isna().sum() == 2
    assert list(kept.covariates["g"].cat.categories) == ["a", "b"]
    dropped = load_data(df, duration="t", event="e", covariates=["g"], missing="drop")
    assert (dropped.n, dropped.n_dropped) == (38, 2)


# --------------------------------------------------------------------------- missing: model


def test_missing_model_keeps_rows_lung():
    raw = load_lung()  # independent count with pandas on lifelines' own loader
    data = load_data("builtin:lung", duration="time", event="status",
                     covariates=["ph.ecog", "wt.loss"], missing="model")
    assert (data.n, data.n_dropped) == (len(raw), 0) == (228, 0)
    assert data.covariates.isna().sum().to_dict() == raw[["ph.ecog", "wt.loss"]].isna().sum().to_dict()
    assert data.covariates.isna().sum().to_dict() == {"ph.ecog": 1, "wt.loss": 14}
    np.testing.assert_array_equal(data.covariates["wt.loss"], raw["wt.loss"])  # NaN where missing
    assert data.covariates.dtypes.eq(np.float64).all()
    # NaN hashes canonically: the same data hash the same, and differ from a completed copy
    again = load_data(raw.copy(), duration="time", event="status", covariates=["ph.ecog", "wt.loss"],
                      missing="model")
    assert again.hash() == data.hash()
    filled = raw.fillna({"ph.ecog": 0.0, "wt.loss": 0.0})
    assert load_data(filled, duration="time", event="status",
                     covariates=["ph.ecog", "wt.loss"]).hash() != data.hash()


@pytest.mark.filterwarnings("ignore::twinsim.errors.StatisticalWarning")
def test_missing_model_still_rejects_missing_outcome():
    df = small_frame()
    df.loc[[4, 9], "t"] = np.nan
    df.loc[[1], "x"] = np.nan
    with pytest.raises(DataError) as err:
        load_data(df, duration="t", event="e", covariates=["x"], missing="model")
    msg = str(err.value)
    assert msg.startswith("historical.duration: missing values") and "'t': 2" in msg
    assert "missing: drop" in msg and "'x'" not in msg  # the covariate is fine under model
    dropped = load_data(df, duration="t", event="e", covariates=["x"], missing="drop")
    assert (dropped.n, dropped.n_dropped) == (37, 3)
    with pytest.raises(DataError, match=r"^historical\.covariates: \['x'\] have no observed value"):
        load_data(df.assign(x=np.nan).dropna(subset=["t"]), duration="t", event="e", covariates=["x"],
                  missing="model")


def test_missing_model_booleans_and_nullable_integers_stay_numeric():
    # hand-built: a boolean column with a gap is object dtype in pandas; an Int64 column holds pd.NA
    df = small_frame()
    df["flag"] = df["flag"].astype(object)
    df.loc[3, "flag"] = None
    df["k"] = pd.array([1, None] * 20, dtype="Int64")
    with pytest.warns(StatisticalWarning):  # 30 events for 4 parameters
        data = load_data(df, duration="t", event="e", covariates=["flag", "k"], missing="model")
    assert data.covariates.dtypes.eq(np.float64).all() and data.categorical == ()
    assert data.covariates.isna().sum().to_dict() == {"flag": 1, "k": 20}
    np.testing.assert_array_equal(data.covariates["flag"].iloc[:3], [1.0, 0.0, 1.0])


# --------------------------------------------------------------------------- studies


def test_study_column_codes_follow_sorted_values():
    raw = builtin_frame("actg175")  # reference: the arms column itself
    data = actg(covariates=["age"], study="arms")
    np.testing.assert_array_equal(data.study, raw["arms"].to_numpy())
    assert data.study_labels == ("0", "1", "2", "3") and data.n_studies == 4
    frame = data.to_frame()
    assert list(frame.columns[:3]) == ["time", "event", "study"]
    assert (frame["study"].astype(str) == raw["arms"].astype(str)).all()
    one = actg(study="arms", filter={"arms": 2})
    assert one.study is None and one.study_labels == () and one.n_studies == 1
    # the study is content: it enters the hash, and only when present
    assert data.hash() != actg(covariates=["age"]).hash()
    with pytest.raises(DataError, match=r"^historical\.study: column 'arm'.*did you mean 'arms'"):
        actg(study="arm")


def test_list_of_sources_is_several_studies(tmp_path):
    raw = builtin_frame("actg175")
    raw[raw["arms"] == 0].to_csv(tmp_path / "zdv.csv", index=False)
    raw[raw["arms"] == 3].to_parquet(tmp_path / "ddi.parquet")
    kw = dict(duration="days", event="cens", covariates=["age", "cd40"], base_dir=tmp_path)
    data = load_data(["zdv.csv", "ddi.parquet"], **kw)
    ref = pd.concat([raw[raw["arms"] == 0], raw[raw["arms"] == 3]])  # reference: pandas concat
    np.testing.assert_array_equal(data.time, ref["days"].to_numpy(float))
    np.testing.assert_array_equal(data.event, ref["cens"].to_numpy())
    np.testing.assert_array_equal(data.covariates["cd40"], ref["cd40"].to_numpy(float))
    np.testing.assert_array_equal(data.study, (ref["arms"] == 3).to_numpy().astype(int))
    assert data.study_labels == ("0", "1") and "[0] " in data.source and "; [1] " in data.source
    named = load_data([{"name": "ZDV", "data": "zdv.csv"}, {"name": "ddI", "data": "ddi.parquet"}], **kw)
    assert named.study_labels == ("ZDV", "ddI") and np.array_equal(named.study, data.study)
    single = load_data(["zdv.csv"], **kw)
    assert single.study is None and single.hash() == load_data("zdv.csv", **kw).hash()
    with pytest.raises(DataError, match=r"^historical\.study: give either a study column or a list"):
        load_data(["zdv.csv", "ddi.parquet"], study="arms", **kw)
    with pytest.raises(DataError, match=r"^historical\.data: study labels must be unique; repeated \['1'\]"):
        load_data([{"name": "1", "data": "zdv.csv"}, "ddi.parquet"], **kw)
    with pytest.raises(DataError, match=r"^historical\.covariates \(historical\.data\[1\]\): column 'age' .*'agee'"):
        load_data(["zdv.csv", raw.rename(columns={"age": "agee"})], **{**kw, "covariates": ["age"]})


def test_sources_combine_categories_and_reject_mixed_types():
    a, b = small_frame(), small_frame()
    a["g"], b["g"] = "only_a", "only_b"
    data = load_data([a, b], duration="t", event="e", covariates=["g"])
    assert list(data.covariates["g"].cat.categories) == ["only_a", "only_b"]
    np.testing.assert_array_equal(data.covariates["g"].cat.codes, [0] * 40 + [1] * 40)
    b["g"] = 1.0
    with pytest.raises(DataError) as err:
        load_data([a, b], duration="t", event="e", covariates=["g"])
    msg = str(err.value)
    assert msg.startswith("historical.covariates: column 'g' is numeric in source(s) ['1'] but text in ['0']")


# --------------------------------------------------------------------------- biomarker layouts

CD4_WIDE = {"name": "cd4", "columns": {"cd40": 0, "cd420": 20, "cd496": 96}, "visit_unit": "weeks"}


def _long_cd4(raw: pd.DataFrame) -> pd.DataFrame:
    """The ACTG CD4 counts in long layout, built with pandas (independent of twinsim)."""
    long = raw.melt(id_vars="pidnum", value_vars=["cd40", "cd420", "cd496"], var_name="visit",
                    value_name="cd4")
    long["week"] = long["visit"].map({"cd40": 0, "cd420": 20, "cd496": 96})
    return long.dropna(subset=["cd4"]).sample(frac=1.0, random_state=np.random.default_rng(175))


def test_biomarker_layouts_give_identical_arrays(tmp_path):
    raw = builtin_frame("actg175")
    _long_cd4(raw).to_csv(tmp_path / "cd4.csv", index=False)  # shuffled rows
    wide = actg(biomarker=CD4_WIDE)
    long = actg(id="pidnum", base_dir=tmp_path, biomarker={
        "name": "cd4", "long": "cd4.csv", "id": "pidnum", "time": "week", "value": "cd4", "visit_unit": "weeks"})
    root = Path(__file__).resolve().parents[1] / "examples" / "adam"
    adlb = load_data({"adam": {"adsl": str(root / "adsl.csv"), "adtte": str(root / "adtte.csv"),
                               "paramcd": "TTEVENT", "adlb": str(root / "adlb.csv"), "biomarker": "CD4"}})
    for other in (long, adlb):
        np.testing.assert_array_equal(other.time, wide.time)
        for f in ("patient", "time", "value"):
            np.testing.assert_array_equal(getattr(other.biomarker, f), getattr(wide.biomarker, f))
    assert wide.biomarker == long.biomarker and wide.hash() == long.hash()
    # counts: reference = non-missing values counted by pandas; cd496 is missing for 797
    b = wide.biomarker
    assert b.m == int(raw[["cd40", "cd420", "cd496"]].notna().sum().sum())
    assert b.counts().to_dict() == {0.0: 2139, 140.0: 2139, 672.0: 2139 - 797}  # weeks -> days
    assert wide.n == 2139 and wide.n_dropped == 0  # missing biomarker values drop no patient
    np.testing.assert_array_equal(b.value[b.time == 672.0],
                                  raw.loc[raw["cd496"].notna(), "cd496"].to_numpy())


def test_biomarker_with_filter_and_several_studies(tmp_path):
    raw = builtin_frame("actg175")
    ref = actg(biomarker=CD4_WIDE, filter={"arms": [0, 3]})
    parts = [raw[raw["arms"] == 0], raw[raw["arms"] == 3]]
    both = load_data(parts, duration="days", event="cens", biomarker=CD4_WIDE)
    # the same patients in another order: compare per patient id
    order = np.concatenate([np.flatnonzero(raw.loc[raw["arms"].isin([0, 3]), "arms"].to_numpy() == a) for a in (0, 3)])
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    re = pd.DataFrame({"patient": rank[ref.biomarker.patient], "time": ref.biomarker.time,
                       "value": ref.biomarker.value}).sort_values(["patient", "time"])
    np.testing.assert_array_equal(both.biomarker.patient, re["patient"])
    np.testing.assert_array_equal(both.biomarker.value, re["value"])
    cd4 = _long_cd4(raw)
    cd4[cd4["pidnum"].isin(pd.concat(parts)["pidnum"])].to_csv(tmp_path / "cd4.csv", index=False)
    spec = {"name": "cd4", "long": "cd4.csv", "id": "pidnum", "time": "week", "value": "cd4"}
    long = load_data(parts, duration="days", event="cens", id="pidnum", biomarker=spec, base_dir=tmp_path)
    assert long.biomarker == both.biomarker
    cd4[cd4["pidnum"].isin(parts[0]["pidnum"])].to_csv(tmp_path / "cd4_zdv.csv", index=False)
    with pytest.raises(DataError, match=r"^historical\.id: ids .* occur in several sources"):
        load_data([parts[0], parts[0]], duration="days", event="cens", id="pidnum",
                  biomarker={**spec, "long": "cd4_zdv.csv"}, base_dir=tmp_path)


def test_measurements_after_followup_policy(caplog):
    raw = builtin_frame("actg175")
    # reference (pandas): nominal week 20 = day 140, week 96 = day 672
    after = raw[["cd420"]].notna().to_numpy()[:, 0] & (raw["days"] < 140).to_numpy()
    after96 = raw["cd496"].notna().to_numpy() & (raw["days"] < 672).to_numpy()
    n_after = int(after.sum() + after96.sum())
    assert n_after == 21 + 193
    with caplog.at_level(logging.INFO, logger="twinsim.data"):
        kept = actg(biomarker=CD4_WIDE)
    assert kept.biomarker.m == 5620 and any(f"{n_after} measurement(s)" in r.getMessage() for r in caplog.records)
    dropped = actg(biomarker={**CD4_WIDE, "after_followup": "drop"})
    assert dropped.biomarker.m == 5620 - n_after
    assert (dropped.biomarker.time <= dropped.time[dropped.biomarker.patient]).all()
    with pytest.raises(DataError) as err:
        actg(id="pidnum", biomarker={**CD4_WIDE, "after_followup": "error"})
    msg = str(err.value)
    first = raw.loc[after | after96, "pidnum"].min()
    assert msg.startswith(f"historical.biomarker: {n_after} measurement(s) of 'cd4' are dated after")
    assert f"{int(after.sum() + after96.sum() - (after & after96).sum())} patient(s)" in msg
    assert str(first) in msg and "after_followup: drop" in msg


def test_biomarker_errors(tmp_path):
    raw = builtin_frame("actg175")
    bad = raw.astype({"cd420": float})
    bad.loc[5, "cd420"] = np.inf
    with pytest.raises(DataError, match=r"^historical\.biomarker\.columns: column 'cd420' holds infinite values .*5"):
        load_data(bad, duration="days", event="cens", biomarker=CD4_WIDE)
    with pytest.raises(DataError, match=r"^historical\.biomarker\.columns: column 'cd4_96'.*did you mean"):
        actg(biomarker={**CD4_WIDE, "columns": {"cd40": 0, "cd4_96": 96}})
    with pytest.raises(DataError, match=r"^historical\.biomarker\.columns\.cd420: visit time -20"):
        actg(biomarker={**CD4_WIDE, "columns": {"cd40": 0, "cd420": -20}})
    with pytest.raises(DataError, match=r"^historical\.biomarker\.columns: several columns share visit time"):
        actg(biomarker={**CD4_WIDE, "columns": {"cd40": 0, "cd420": 0}})
    with pytest.raises(DataError, match=r"^historical\.biomarker\.name: required"):
        actg(biomarker={"columns": {"cd40": 0}})
    with pytest.raises(DataError, match=r"^historical\.biomarker: unknown key\(s\) \['col'\]"):
        actg(biomarker={"name": "cd4", "col": {"cd40": 0}})
    long = _long_cd4(raw)
    spec = {"name": "cd4", "long": "cd4.csv", "id": "pidnum", "time": "week", "value": "cd4"}

    def load_long(table, **kw):
        table.to_csv(tmp_path / "cd4.csv", index=False)
        return actg(base_dir=tmp_path, biomarker=spec, **{"id": "pidnum", **kw})

    neg = long.copy()
    neg.iloc[0, neg.columns.get_loc("week")] = -4
    with pytest.raises(DataError, match=r"^historical\.biomarker\.time: 1 visit time\(s\) in 'week' are missing, negative"):
        load_long(neg)
    with pytest.raises(DataError, match=r"^historical\.biomarker\.long: 1 \(id, visit\) pair\(s\) have several"):
        load_long(pd.concat([long, long.iloc[[3]]]))
    stranger = pd.concat([long, pd.DataFrame({"pidnum": [1], "week": [0], "cd4": [500.0]})])
    with pytest.raises(DataError, match=r"^historical\.biomarker\.long: 1 id\(s\) of the long table are not patients.*1"):
        load_long(stranger)
    with pytest.raises(DataError, match=r"^historical\.id: a long biomarker table is joined on the patient id"):
        load_long(long, id=None)
    with pytest.raises(DataError, match=r"^historical\.id: column 'pidnum' must identify each patient"):
        load_data(pd.concat([raw, raw.iloc[[0]]]), duration="days", event="cens", id="pidnum",
                  biomarker=spec, base_dir=tmp_path)
    with pytest.raises(DataError, match=r"^historical\.biomarker: give `columns` \(wide\) or `long`"):
        actg(biomarker={"after_followup": "drop"})
    # patients filtered out keep their measurements out of the data, without an error
    assert load_long(long, filter={"arms": 1}).biomarker.m == int(raw.loc[raw["arms"] == 1, ["cd40", "cd420", "cd496"]].notna().sum().sum())


# --------------------------------------------------------------------------- the containers


def test_biomarker_container_sorts_and_checks():
    b = Biomarker("x", patient=[1, 0, 1], time=[5.0, 0.0, 0.0], value=[3.0, 1.0, 2.0])
    np.testing.assert_array_equal(b.patient, [0, 1, 1])
    np.testing.assert_array_equal(b.time, [0.0, 0.0, 5.0])
    np.testing.assert_array_equal(b.value, [1.0, 2.0, 3.0])
    assert b.patient.dtype == np.int64 and not b.value.flags.writeable
    assert b == Biomarker("x", [0, 1, 1], [0, 0, 5], [1, 2, 3]) and b != Biomarker("y", [0, 1, 1], [0, 0, 5], [1, 2, 3])
    assert list(b.to_frame().columns) == ["patient", "time", "value"] and b.subset(b.time > 0).m == 1
    for kwargs, pattern in (
        (dict(patient=[0, 0], time=[1.0, 1.0], value=[1.0, 2.0]), "two measurements at the same time"),
        (dict(patient=[0], time=[-1.0], value=[1.0]), r"\.time: 1 visit time"),
        (dict(patient=[0], time=[1.0], value=[np.nan]), r"\.value: 1 value\(s\) are not finite"),
        (dict(patient=[-1], time=[1.0], value=[1.0]), r"\.patient: must hold row indices"),
        (dict(patient=[0.5], time=[1.0], value=[1.0]), r"\.patient: must hold row indices"),
        (dict(patient=[0, 1], time=[1.0], value=[1.0]), "one entry per measurement"),
    ):
        with pytest.raises(DataError, match=pattern):
            Biomarker("x", **kwargs)


def test_trialdata_new_fields_checked_and_hashed():
    base = dict(time=np.array([1.0, 2.5, 3.0]), event=np.array([1, 0, 1]),
                covariates=pd.DataFrame({"x": [0.0, 1.0, 2.0]}), time_unit="days", source="t")
    plain = TrialData(**base)
    bio = Biomarker("m", [0, 2], [0.0, 1.0], [4.0, 5.0])
    with_bio = TrialData(**base, biomarker=bio)
    with_study = TrialData(**base, study=np.array([0, 1, 0]), study_labels=("a", "b"))
    hashes = {plain.hash(), with_bio.hash(), with_study.hash(),
              TrialData(**base, biomarker=Biomarker("m", [0, 2], [0.0, 1.0], [4.0, 5.5])).hash(),
              TrialData(**base, study=np.array([1, 0, 0]), study_labels=("a", "b")).hash()}
    assert len(hashes) == 5  # each new piece of content changes the digest
    assert with_bio != plain and with_study != plain and with_bio == TrialData(**base, biomarker=bio)
    single = TrialData(**base, study=np.array([0, 0, 0]), study_labels=("only",))
    assert single.study is None and single.study_labels == () and single.hash() == plain.hash()
    for kwargs, pattern in (
        (dict(study=np.array([0, 2, 0]), study_labels=("a", "b")), r"^TrialData\.study: need one integer code"),
        (dict(study=np.array([0, 1]), study_labels=("a", "b")), r"^TrialData\.study: need one integer code"),
        (dict(study_labels=("a",)), r"^TrialData\.study_labels: given without study codes"),
        (dict(biomarker=Biomarker("m", [3], [0.0], [1.0])), r"^TrialData\.biomarker: patient indices must be rows 0\.\.2"),
        (dict(covariates=pd.DataFrame({"x": [0.0, np.inf, 1.0]})), r"^TrialData\.covariates: column 'x' holds infinite"),
        (dict(covariates=pd.DataFrame({"x": [0.0, 1.0]})), r"^TrialData\.covariates: need 3 rows"),
        (dict(covariates=pd.DataFrame({"study": [0.0, 1.0, 1.0]}), study=np.array([0, 1, 0]), study_labels=("a", "b")),
         r"no column named 'event' or 'study' or 'time'"),
    ):
        with pytest.raises(DataError, match=pattern):
            TrialData(**{**base, **kwargs})
    # text given directly becomes a sorted Categorical; NaN is allowed (missing: model)
    direct = TrialData(**{**base, "covariates": pd.DataFrame({"g": ["b", None, "a"], "y": [np.nan, 1, 2]})})
    assert list(direct.covariates["g"].cat.categories) == ["a", "b"] and direct.covariates["y"].isna().sum() == 1


def test_scenario_forms_for_studies_biomarker_and_missing(tmp_path):
    import yaml

    from twinsim.run import load_historical
    from twinsim.scenario import parse_scenario

    raw = builtin_frame("actg175")
    raw[raw["arms"] == 0].to_csv(tmp_path / "zdv.csv", index=False)
    raw[raw["arms"] == 3].to_csv(tmp_path / "ddi.csv", index=False)
    text = """
name: studies
seed: 1
historical:
  data: [{name: zdv, data: zdv.csv}, ddi.csv]
  duration: days
  event: cens
  covariates: [age, cd40]
  missing: model
  biomarker: {name: cd4, columns: {cd40: 0, cd420: 20, cd496: 96}, visit_unit: weeks}
model: {outcome: weibull}
trial: {n_treatment: 100, accrual: {duration: 12}, cut: {events: 60}}
designs: [{name: rct, real_control: 100}]
"""
    sc = parse_scenario(yaml.safe_load(text), base_dir=tmp_path)
    assert sc.historical.study_labels == ("zdv", "1")
    data = load_historical(sc)
    ref = load_data([{"name": "zdv", "data": raw[raw["arms"] == 0]}, {"name": "1", "data": raw[raw["arms"] == 3]}],
                    duration="days", event="cens", covariates=["age", "cd40"], biomarker=CD4_WIDE)
    assert data.hash() == ref.hash() and data.study_labels == ("zdv", "1")
    assert parse_scenario(sc.to_dict(), base_dir=tmp_path).historical == sc.historical
    moved = sc.historical.with_absolute_paths(tmp_path)
    assert moved.data[0].data == str(tmp_path / "zdv.csv") and moved.data[1] == str(tmp_path / "ddi.csv")
    bad = yaml.safe_load(text)
    bad["historical"]["study"] = "arms"
    with pytest.raises(ScenarioError, match="give either `study`"):
        parse_scenario(bad)
    bad = yaml.safe_load(text)
    bad["historical"]["biomarker"] = {"name": "cd4", "long": "cd4.csv", "id": "pidnum", "time": "week"}
    with pytest.raises(ScenarioError, match=r"historical\.biomarker: the long layout needs `value`"):
        parse_scenario(bad)
    bad["historical"]["biomarker"]["value"] = "cd4"
    with pytest.raises(ScenarioError, match=r"historical: a long biomarker table is joined on `id`"):
        parse_scenario(bad)
