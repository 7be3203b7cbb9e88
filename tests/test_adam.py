"""Tests of CDISC ADaM input (twinsim.data.adam), the shipped ADaM example and the
scenario form ``historical.data: {adam: {...}}``.

References (kinds as in the architecture notes):
* double programming: the ADaM tables are re-derived here with pandas from lifelines'
  ACTG175.csv (AVAL = days, CNSR = 1 - cens) and compared with ``load_data`` on
  ``builtin:actg175`` (the independent reader of the same numbers);
* hand-derived expectations: ACTG 175 counts in docs/references.md (arm 0: 532 patients,
  181 events) and the 797 missing cd496 values counted with pandas;
* the SAS transport writer below follows SAS technical note TS-140 (XPORT v5 record
  layout); pandas.read_sas is the reader it is checked against.
"""

from __future__ import annotations

import logging
import math
import runpy
import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from twinsim.data import builtin_frame, event_from_cnsr, load_data, read_adam
from twinsim.errors import DataError, ScenarioError
from twinsim.run import load_historical
from twinsim.scenario import load_scenario, parse_scenario
from twinsim.scenario.schema import AdamData

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "adam"
ADAM = {"adsl": str(EXAMPLE / "adsl.csv"), "adtte": str(EXAMPLE / "adtte.csv"), "paramcd": "TTEVENT"}
#: ADSL name -> builtin ACTG 175 column (examples/adam/make_adam_example.py)
ADSL_COVS = {"AGE": "age", "WTKG": "wtkg", "KARNOF": "karnof", "CD4BL": "cd40", "CD8BL": "cd80",
             "SYMPTOM": "symptom", "SEXN": "gender", "RACEN": "race", "STR2": "str2"}


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    """The example tables as written to examples/adam/ (read back with pandas)."""
    return {k: pd.read_csv(EXAMPLE / f"{k}.csv") for k in ("adsl", "adtte", "adlb")}


def adam(**override) -> dict:
    return {"adam": {**ADAM, **override}}


# --------------------------------------------------------------------------- the example


def test_example_files_equal_the_script_output(tmp_path):
    # the committed CSVs are exactly what the (deterministic) script writes
    script = runpy.run_path(str(EXAMPLE / "make_adam_example.py"))
    paths = script["write_tables"](tmp_path)
    assert [p.name for p in paths] == ["adsl.csv", "adtte.csv", "adlb.csv"]
    for p in paths:
        assert p.read_bytes() == (EXAMPLE / p.name).read_bytes(), f"rebuild {p.name}: python {EXAMPLE}/make_adam_example.py"
    assert sum(p.stat().st_size for p in paths) < 1_000_000


def test_example_tables_rederived_from_lifelines(tables):
    # double programming: the ADaM coding re-derived from the raw lifelines file
    raw = builtin_frame("actg175")
    adsl, adtte, adlb = tables["adsl"], tables["adtte"], tables["adlb"]
    assert len(adsl) == 2139 and adsl["USUBJID"].is_unique
    assert (adsl["USUBJID"] == "ACTG175-" + raw["pidnum"].astype(str)).all()
    assert (adsl["ARMCD"] == raw["arms"].map({0: "ZDV", 1: "ZDVDDI", 2: "ZDVZAL", 3: "DDI"})).all()
    assert (adsl["SEX"] == np.where(raw["gender"] == 1, "M", "F")).all()
    assert (adtte["AVAL"] == raw["days"]).all() and (adtte["CNSR"] == 1 - raw["cens"]).all()
    assert set(adtte["PARAMCD"]) == {"TTEVENT"}
    # one ADLB row per measured value: 2139 at weeks 0 and 20, 2139 - 797 at week 96
    assert int(raw["cd496"].isna().sum()) == 797
    assert adlb.groupby("AVISITN").size().to_dict() == {0: 2139, 20: 2139, 96: 2139 - 797}


# --------------------------------------------------------------------------- round trip


def test_adam_round_trip_equals_builtin_arm0():
    # references.md: arm 0 (zidovudine) has 532 patients and 181 events
    ref = load_data("builtin:actg175", duration="days", event="cens", covariates=list(ADSL_COVS.values()),
                    filter={"arms": 0})
    data = load_data(adam(), covariates=list(ADSL_COVS), filter={"ARMCD": "ZDV"})
    assert (data.n, data.n_events) == (532, 181)
    np.testing.assert_array_equal(data.time, ref.time)
    np.testing.assert_array_equal(data.event, ref.event)
    np.testing.assert_array_equal(data.covariates.to_numpy(), ref.covariates.to_numpy())
    assert data.covariate_names == tuple(ADSL_COVS)
    assert data.biomarker is None and data.study is None and data.n_dropped == 0
    assert data.source.startswith("adam:") and "paramcd=TTEVENT" in data.source and "ZDV" in data.source
    # the categorical SEX is the builtin gender recoded (1 = M)
    sex = load_data(adam(), covariates=["SEX"], filter={"ARMCD": "ZDV"}).covariates["SEX"]
    assert isinstance(sex.dtype, pd.CategoricalDtype) and list(sex.cat.categories) == ["F", "M"]
    np.testing.assert_array_equal(sex == "M", ref.covariates["gender"] == 1)


def test_event_is_one_minus_cnsr(tables):
    # ADaM CNSR: 1 = censored, 0 = event; twinsim event: 1 = event observed
    cnsr = pd.Series([0, 1, 1, 0])
    np.testing.assert_array_equal(event_from_cnsr(cnsr), [1, 0, 0, 1])
    data = load_data(adam(), filter={"ARMCD": ["ZDV", "DDI"]})
    sel = tables["adsl"]["ARMCD"].isin(["ZDV", "DDI"]).to_numpy()
    np.testing.assert_array_equal(data.event, 1 - tables["adtte"]["CNSR"].to_numpy()[sel])


def test_parquet_xpt_and_dataframes_give_the_same_data(tmp_path, tables):
    ref = load_data(adam(), covariates=["AGE", "WTKG", "SEX"], filter={"ARMCD": "ZDV"})
    for name in ("adsl", "adtte"):
        tables[name].to_parquet(tmp_path / f"{name}.parquet")
        write_xpt(tables[name], tmp_path / f"{name}.xpt", name.upper())
    for kind in ("parquet", "xpt"):
        other = load_data({"adam": {"adsl": f"adsl.{kind}", "adtte": f"adtte.{kind}", "paramcd": "TTEVENT"}},
                          covariates=["AGE", "WTKG", "SEX"], filter={"ARMCD": "ZDV"}, base_dir=tmp_path)
        assert other.hash() == ref.hash(), kind  # same content, whatever the format
    frames = load_data({"adam": {"adsl": tables["adsl"], "adtte": tables["adtte"], "paramcd": "TTEVENT"}},
                       covariates=["AGE", "WTKG", "SEX"], filter={"ARMCD": "ZDV"})
    assert frames.hash() == ref.hash()


def test_adam_with_adlb_biomarker(tables):
    data = load_data(adam(adlb=ADAM["adsl"].replace("adsl", "adlb"), biomarker="CD4"), covariates=["AGE"])
    b = data.biomarker
    assert b.name == "CD4" and b.m == len(tables["adlb"]) == 3 * 2139 - 797
    # weeks -> days: AVISITN 96 is day 672
    assert b.counts().to_dict() == {0.0: 2139, 140.0: 2139, 672.0: 1342}


# --------------------------------------------------------------------------- error paths


def _write(tmp_path, **frames) -> dict:
    paths = {}
    for name, frame in frames.items():
        frame.to_csv(tmp_path / f"{name}.csv", index=False)
        paths[name] = str(tmp_path / f"{name}.csv")
    return paths


def _small(tables, n=80):
    adsl = tables["adsl"].iloc[:n].copy()
    adtte = tables["adtte"].iloc[:n].copy()
    adlb = tables["adlb"][tables["adlb"]["USUBJID"].isin(adsl["USUBJID"])].copy()
    return adsl, adtte, adlb


def _load_small(tmp_path, adsl, adtte, adlb=None, paramcd="TTEVENT", biomarker=None, **kw):
    frames = {"adsl": adsl, "adtte": adtte} if adlb is None else {"adsl": adsl, "adtte": adtte, "adlb": adlb}
    spec = {**_write(tmp_path, **frames), "paramcd": paramcd}
    if biomarker is not None:
        spec["biomarker"] = biomarker
    kw.setdefault("min_events", 1)
    return load_data({"adam": spec}, **kw)


def test_error_subject_in_adtte_not_in_adsl(tmp_path, tables):
    adsl, adtte, _ = _small(tables)
    with pytest.raises(DataError) as err:
        _load_small(tmp_path, adsl.iloc[2:], adtte)
    msg = str(err.value)
    assert msg.startswith("historical.data.adam.adtte:") and "2 subject(s)" in msg
    assert adtte["USUBJID"].iloc[0] in msg and "not in ADSL" in msg


def test_error_several_records_for_a_subject(tmp_path, tables):
    adsl, adtte, _ = _small(tables)
    with pytest.raises(DataError) as err:
        _load_small(tmp_path, adsl, pd.concat([adtte, adtte.iloc[[5]]]))
    msg = str(err.value)
    assert msg.startswith("historical.data.adam.adtte:") and adtte["USUBJID"].iloc[5] in msg
    assert "several records" in msg
    # another PARAMCD for the same subject is fine
    other = adtte.assign(PARAMCD="OS", PARAM="Overall survival")
    assert _load_small(tmp_path, adsl, pd.concat([adtte, other])).n == len(adsl)


def test_error_unknown_paramcd_lists_codes(tmp_path, tables):
    adsl, adtte, _ = _small(tables)
    with pytest.raises(DataError) as err:
        _load_small(tmp_path, adsl, adtte, paramcd="OS")
    msg = str(err.value)
    assert msg.startswith("historical.data.adam.paramcd:") and "'OS'" in msg
    assert "TTEVENT (Time to CD4 decline >= 50%, AIDS or death)" in msg


def test_error_cnsr_not_0_1_and_aval_not_positive(tmp_path, tables):
    adsl, adtte, _ = _small(tables)
    bad = adtte.copy()
    bad.loc[bad.index[3], "CNSR"] = 2
    with pytest.raises(DataError, match=r"^historical\.data\.adam\.adtte: CNSR must be 0 \(event\) or 1 "
                                        r"\(censored\) but has 2.*CNSR > 0"):
        _load_small(tmp_path, adsl, bad)
    bad = adtte.copy()
    bad.loc[bad.index[[4, 7]], "AVAL"] = [0, -3]
    with pytest.raises(DataError) as err:
        _load_small(tmp_path, adsl, bad)
    msg = str(err.value)
    assert msg.startswith("historical.data.adam.adtte: AVAL must be finite and > 0") and "2 record(s)" in msg
    assert adtte["USUBJID"].iloc[4] in msg and "0.5" in msg


def test_error_missing_columns(tmp_path, tables):
    adsl, adtte, adlb = _small(tables)
    with pytest.raises(DataError, match=r"^historical\.data\.adam\.adtte: column 'CNSR' is not in the data"):
        _load_small(tmp_path, adsl, adtte.drop(columns="CNSR"))
    with pytest.raises(DataError, match=r"^historical\.data\.adam\.adsl: column 'USUBJID'.*did you mean 'usubjid'"):
        _load_small(tmp_path, adsl.rename(columns={"USUBJID": "usubjid"}), adtte)
    with pytest.raises(DataError, match=r"^historical\.data\.adam\.adlb: column 'AVISITN'"):
        _load_small(tmp_path, adsl, adtte, adlb.drop(columns="AVISITN"), biomarker="CD4")
    with pytest.raises(DataError, match=r"^historical\.covariates: column 'AGEX'.*did you mean 'AGE'"):
        _load_small(tmp_path, adsl, adtte, covariates=["AGEX"])
    with pytest.raises(DataError, match=r"^historical\.filter: column 'ARM_CD'.*'ARMCD'"):
        _load_small(tmp_path, adsl, adtte, filter={"ARM_CD": "ZDV"})
    with pytest.raises(DataError, match=r"^historical\.data\.adam: missing \['paramcd'\]"):
        load_data({"adam": {"adsl": "a.csv", "adtte": "b.csv"}})
    with pytest.raises(DataError, match=r"^historical\.data\.adam: unknown key\(s\) \['adae'\]"):
        load_data({"adam": {**ADAM, "adae": "x.csv"}})


def test_subjects_without_endpoint_record(tmp_path, tables, caplog):
    adsl, adtte, _ = _small(tables)
    with pytest.raises(DataError) as err:
        _load_small(tmp_path, adsl, adtte.iloc[3:])
    msg = str(err.value)
    assert msg.startswith("historical.data.adam.adtte: 3 of the 80 selected ADSL subjects have no record")
    assert "missing: drop" in msg and adsl["USUBJID"].iloc[0] in msg
    with caplog.at_level(logging.INFO, logger="twinsim.data"):
        data = _load_small(tmp_path, adsl, adtte.iloc[3:], missing="drop")
    assert (data.n, data.n_dropped) == (77, 3)
    assert any("dropped 3 ADSL subject(s)" in r.getMessage() for r in caplog.records)
    np.testing.assert_array_equal(data.time, adtte["AVAL"].iloc[3:].to_numpy(float))


def test_adlb_errors(tmp_path, tables):
    adsl, adtte, adlb = _small(tables)
    with pytest.raises(DataError, match=r"^historical\.data\.adam\.biomarker: PARAMCD 'CD8' is not in ADLB.*CD4"):
        _load_small(tmp_path, adsl, adtte, adlb, biomarker="CD8")
    with pytest.raises(DataError, match=r"^historical\.data\.adam\.adlb: 1 subject\(s\) of ADLB are not in ADSL"):
        _load_small(tmp_path, adsl, adtte, pd.concat([adlb, tables["adlb"].iloc[[-1]]]), biomarker="CD4")
    with pytest.raises(DataError, match=r"^historical\.data\.adam\.adlb: 1 \(USUBJID, AVISITN\) pair"):
        _load_small(tmp_path, adsl, adtte, pd.concat([adlb, adlb.iloc[[2]]]), biomarker="CD4")
    neg = adlb.copy()
    neg.loc[neg.index[0], "AVISITN"] = -1  # a screening visit before time 0
    with pytest.raises(DataError, match=r"^historical\.data\.adam\.adlb\.time: 1 visit time\(s\) in 'AVISITN'.*screening"):
        _load_small(tmp_path, adsl, adtte, neg, biomarker="CD4")
    inf = adlb.astype({"AVAL": float})
    inf.loc[inf.index[1], "AVAL"] = np.inf
    with pytest.raises(DataError, match=r"^historical\.data\.adam\.adlb\.value: column 'AVAL' holds infinite"):
        _load_small(tmp_path, adsl, adtte, inf, biomarker="CD4")
    with pytest.raises(DataError, match="`adlb` and `biomarker` go together"):
        load_data({"adam": {**ADAM, "adlb": "x.csv"}})
    # a missing AVAL is a visit without a measurement: no row
    gap = adlb.copy()
    gap.loc[gap.index[:4], "AVAL"] = np.nan
    assert _load_small(tmp_path, adsl, adtte, gap, biomarker="CD4").biomarker.m == len(adlb) - 4


def test_error_duration_given_for_csv_part_only():
    with pytest.raises(DataError, match=r"^historical\.duration: required for historical\.data \(not ADaM\)"):
        load_data("builtin:actg175", event="cens")
    with pytest.raises(DataError, match=r"^historical\.id: with ADaM input the patient id is USUBJID"):
        load_data(adam(), id="SUBJID")


# --------------------------------------------------------------------------- the scenario form


SCENARIO = """
name: adam-yaml
seed: 1
historical:
  data:
    adam:
      adsl: {adsl}
      adtte: {adtte}
      paramcd: TTEVENT
  filter: {{ARMCD: ZDV}}
  covariates: [AGE, KARNOF]
model: {{outcome: weibull}}
trial: {{n_treatment: 100, accrual: {{duration: 12}}, cut: {{events: 60}}}}
designs: [{{name: rct, real_control: 100}}]
"""


def test_yaml_adam_form_parses_and_loads(tmp_path):
    text = SCENARIO.format(adsl="../examples/adam/adsl.csv", adtte="../examples/adam/adtte.csv")
    sc = parse_scenario(yaml.safe_load(text), base_dir=ROOT / "scenarios")
    h = sc.historical
    assert isinstance(h.data, AdamData) and h.data.adam.paramcd == "TTEVENT"
    assert h.duration is None and h.event is None and h.data.adam.visit_unit == "weeks"
    data = load_historical(sc)
    ref = load_data(adam(), covariates=["AGE", "KARNOF"], filter={"ARMCD": "ZDV"})
    assert data == ref
    # dumped and re-read, the scenario keeps the `adam:` key; absolute paths survive a move
    again = parse_scenario(sc.to_dict())
    assert again.historical == h
    moved = h.with_absolute_paths(ROOT / "scenarios").model_dump(mode="json", exclude_none=True)
    assert moved["data"]["adam"]["adsl"] == str(EXAMPLE / "adsl.csv")


def test_yaml_adam_form_errors_name_the_field():
    raw = yaml.safe_load(SCENARIO.format(adsl="a.csv", adtte="b.csv"))
    del raw["historical"]["data"]["adam"]["paramcd"]
    with pytest.raises(ScenarioError, match=r"historical\.data\.adam\.paramcd: Field required"):
        parse_scenario(raw)
    raw = yaml.safe_load(SCENARIO.format(adsl="a.csv", adtte="b.csv"))
    raw["historical"]["data"] = raw["historical"]["data"]["adam"]  # the `adam:` key left out
    with pytest.raises(ScenarioError, match=r"historical\.data: a data source is .*adam: \{adsl"):
        parse_scenario(raw)
    raw = yaml.safe_load(SCENARIO.format(adsl="a.csv", adtte="b.csv"))
    raw["historical"]["duration"] = "AVAL"
    with pytest.raises(ScenarioError, match=r"historical: ADaM input takes the duration from ADTTE's AVAL"):
        parse_scenario(raw)
    raw = yaml.safe_load(SCENARIO.format(adsl="a.csv", adtte="b.csv"))
    raw["historical"]["data"]["adam"]["biomarker"] = "CD4"
    with pytest.raises(ScenarioError, match="`adlb` and `biomarker` go together"):
        parse_scenario(raw)


def test_shipped_adam_scenario_loads():
    sc = load_scenario(ROOT / "scenarios" / "actg175_adam.yaml")
    data = load_historical(sc)
    assert (data.n, data.n_events) == (532, 181)  # references.md: arm 0
    assert data.biomarker is not None and data.biomarker.name == "CD4"
    categorical = {"SEX", "RACE"}  # text columns of ADSL become pandas categories
    assert all(data.covariates[c].dtype == np.float64 for c in data.covariate_names if c not in categorical)
    assert {c: sorted(data.covariates[c].cat.categories) for c in categorical} == {
        "SEX": ["F", "M"], "RACE": ["NON-WHITE", "WHITE"]}
    # baseline CD4 reaches the model through the biomarker's week-0 value, not as a covariate
    assert "CD4BL" not in data.covariate_names and (data.biomarker.time == 0).sum() == 532


def test_read_adam_returns_subjects_and_measurements(tables):
    t = read_adam({**ADAM, "adlb": str(EXAMPLE / "adlb.csv"), "biomarker": "CD4", "visit_unit": "weeks"},
                  filter={"ARMCD": "DDI"})
    assert len(t.subjects) == int((tables["adsl"]["ARMCD"] == "DDI").sum())
    assert len(t.ids_all) == 2139 and t.biomarker == "CD4" and t.n_dropped == 0
    assert list(t.measurements.columns) == ["USUBJID", "AVISITN", "AVAL"]


# --------------------------------------------------------------------------- SAS transport writer


def _ibm(x: float) -> bytes:
    """IEEE double -> IBM System/370 double (TS-140); NaN -> SAS missing '.'; 0 -> 8 zero bytes."""
    if x != x:
        return b"\x2e" + b"\0" * 7
    if x == 0:
        return b"\0" * 8
    m, e = math.frexp(abs(x))  # |x| = m 2**e, 0.5 <= m < 1
    exp16 = -(-e // 4)  # |x| = f 16**exp16 with 1/16 <= f < 1
    frac = int(round(math.ldexp(m, e - 4 * exp16 + 56)))
    if frac >= 1 << 56:
        frac, exp16 = frac >> 4, exp16 + 1
    return bytes([(0x80 if x < 0 else 0) | (exp16 + 64)]) + frac.to_bytes(7, "big")


def write_xpt(frame: pd.DataFrame, path: Path, name: str) -> None:
    """A minimal SAS XPORT v5 file of one member (TS-140 record layout)."""
    def rec(text: str) -> bytes:
        return text.encode("ascii").ljust(80)

    stamp = "01JAN24:00:00:00"
    head = "HEADER RECORD*******{}HEADER RECORD!!!!!!!"
    out = [rec(head.format("LIBRARY ") + "0" * 30), rec("SAS     SAS     SASLIB  9.4     X64_10HO" + " " * 24 + stamp),
           rec(stamp), rec(head.format("MEMBER  ") + "000000000000000001600000000140"),
           rec(head.format("DSCRPTR ") + "0" * 30),
           rec("SAS     " + name.ljust(8) + "SASDATA 9.4     X64_10HO" + " " * 24 + stamp), rec(stamp),
           rec(head.format("NAMESTR ") + f"000000{frame.shape[1]:04d}" + "0" * 20)]
    cols, namestr, pos = [], b"", 0
    for i, c in enumerate(frame.columns):
        num = pd.api.types.is_numeric_dtype(frame[c])
        width = 8 if num else int(frame[c].astype(str).str.len().max())
        namestr += struct.pack(">hhhh8s40s8shhh2s8shhl52s", 1 if num else 2, 0, width, i + 1, c.encode().ljust(8),
                               b" " * 40, b" " * 8, 0, 0, 0, b"  ", b" " * 8, 0, 0, pos, b"\0" * 52)
        cols.append((num, width))
        pos += width
    out += [namestr + b" " * (-len(namestr) % 80), rec(head.format("OBS     ") + "0" * 30)]
    body = b"".join(_ibm(float(v)) if num else str(v).encode().ljust(w)
                    for row in frame.itertuples(index=False) for (num, w), v in zip(cols, row))
    Path(path).write_bytes(b"".join(out) + body + b" " * (-len(body) % 80))


def test_xpt_zero_and_missing_values(tmp_path):
    # pandas issue #50670: read_sas returns 16**-65 for an IBM zero; twinsim restores 0
    frame = pd.DataFrame({"USUBJID": ["A", "B", "C"], "X": [0.0, -2.5, np.nan], "Y": [1e-7, 0.0, 123456.789]})
    write_xpt(frame, tmp_path / "t.xpt", "T")
    assert pd.read_sas(tmp_path / "t.xpt", format="xport")["X"].iloc[0] == 2.0 ** -260  # the pandas bug
    from twinsim.data.tables import read_table

    back, label = read_table("t.xpt", tmp_path, "historical.data.adam.adsl")
    pd.testing.assert_frame_equal(back, frame)
    assert label == str((tmp_path / "t.xpt").resolve())
