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

from twinsim.data import BUILTIN_DATASETS, TrialData, builtin_frame, list_datasets, load_data
from twinsim.errors import DataError, StatisticalWarning

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


def test_non_numeric_covariate():
    with pytest.raises(DataError) as err:
        load_data(small_frame(), duration="t", event="e", covariates=["x", "g"])
    msg = str(err.value)
    assert msg.startswith("historical.covariates:") and "'g'" in msg and "'a', 'b'" in msg
    assert "numbers" in msg
    with pytest.raises(DataError, match="historical.covariates.*once"):
        load_data(small_frame(), duration="t", event="e", covariates=["x", "e"])
    with pytest.raises(DataError, match=r"^historical\.event: 't' is also the duration"):
        load_data(small_frame(), duration="t", event="t")


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
