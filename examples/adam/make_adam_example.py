"""Build the ADaM-shaped example tables from ACTG 175 (the copy shipped with lifelines).

    python examples/adam/make_adam_example.py [OUT_DIR]

writes ``adsl.csv``, ``adtte.csv`` and ``adlb.csv`` (default: the folder of this script).
The output is deterministic: the same lifelines data give byte-identical files (a test
rebuilds them and compares).  All 2139 patients of the four arms are kept (about 0.8 MB).

* ADSL, one row per subject: STUDYID, USUBJID ("ACTG175-" + pidnum), SUBJID, ARMCD / ARM
  (arms 0 ZDV, 1 ZDVDDI, 2 ZDVZAL, 3 DDI), ITTFL, AGE, SEX ("M"/"F", text: a categorical
  covariate) and SEXN (1 = M), RACE ("WHITE"/"NON-WHITE") and RACEN (1 = non-white),
  WTKG, KARNOF, SYMPTOM, STR2, HEMO, HOMO, DRUGS, CD4BL, CD8BL (baseline counts).
  Codings of ACTG 175 as documented with the data set (R package speff2trial):
  gender 1 = male, race 1 = non-white.
* ADTTE: PARAMCD "TTEVENT" (time to CD4 decline >= 50%, AIDS or death), AVAL = days,
  CNSR = 1 - cens (ADaM: 1 = censored, 0 = event).
* ADLB: PARAMCD "CD4" at AVISITN 0, 20, 96 (weeks), one row per measured value (cd496
  is missing for 797 patients, so those have no week-96 row): 5620 rows.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from twinsim.data import builtin_frame

STUDY = "ACTG175"
ARMS = {0: ("ZDV", "Zidovudine"), 1: ("ZDVDDI", "Zidovudine + didanosine"),
        2: ("ZDVZAL", "Zidovudine + zalcitabine"), 3: ("DDI", "Didanosine")}
PARAM = "Time to CD4 decline >= 50%, AIDS or death"
LAB = {"CD4": ("CD4 count (cells/mm3)", {"cd40": 0, "cd420": 20, "cd496": 96})}


def build_tables() -> dict[str, pd.DataFrame]:
    """ADSL, ADTTE and ADLB as DataFrames (keys ``adsl``, ``adtte``, ``adlb``)."""
    raw = builtin_frame("actg175")
    usubjid = STUDY + "-" + raw["pidnum"].astype(str)
    adsl = pd.DataFrame({
        "STUDYID": STUDY,
        "USUBJID": usubjid,
        "SUBJID": raw["pidnum"],
        "ARMCD": raw["arms"].map(lambda a: ARMS[a][0]),
        "ARM": raw["arms"].map(lambda a: ARMS[a][1]),
        "ITTFL": "Y",
        "AGE": raw["age"],
        "SEX": raw["gender"].map({1: "M", 0: "F"}),
        "SEXN": raw["gender"],
        "RACE": raw["race"].map({0: "WHITE", 1: "NON-WHITE"}),
        "RACEN": raw["race"],
        "WTKG": raw["wtkg"],
        "KARNOF": raw["karnof"],
        "SYMPTOM": raw["symptom"],
        "STR2": raw["str2"],
        "HEMO": raw["hemo"],
        "HOMO": raw["homo"],
        "DRUGS": raw["drugs"],
        "CD4BL": raw["cd40"],
        "CD8BL": raw["cd80"],
    })
    adtte = pd.DataFrame({
        "STUDYID": STUDY,
        "USUBJID": usubjid,
        "PARAMCD": "TTEVENT",
        "PARAM": PARAM,
        "AVAL": raw["days"],
        "CNSR": 1 - raw["cens"],  # ADaM: 1 = censored (lifelines' cens is 1 = event)
        "EVNTDESC": raw["cens"].map({1: "CD4 DECLINE, AIDS OR DEATH", 0: "CENSORED"}),
    })
    rows = []
    for code, (param, visits) in LAB.items():
        for column, week in visits.items():
            seen = raw[column].notna()
            rows.append(pd.DataFrame({
                "STUDYID": STUDY, "USUBJID": usubjid[seen], "PARAMCD": code, "PARAM": param,
                "AVISIT": f"WEEK {week}", "AVISITN": week, "AVAL": raw.loc[seen, column].astype(int),
                "_row": raw.index[seen],
            }))
    adlb = pd.concat(rows, ignore_index=True)
    adlb = adlb.sort_values(["_row", "PARAMCD", "AVISITN"], kind="stable").drop(columns="_row")
    return {"adsl": adsl, "adtte": adtte, "adlb": adlb.reset_index(drop=True)}


def write_tables(out_dir: str | Path) -> list[Path]:
    """Write ``adsl.csv``, ``adtte.csv``, ``adlb.csv`` into ``out_dir``; return their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, table in build_tables().items():
        path = out / f"{name}.csv"
        table.to_csv(path, index=False, lineterminator="\n")
        paths.append(path)
    return paths


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent
    for p in write_tables(target):
        print(f"wrote {p} ({p.stat().st_size / 1e3:.0f} kB)")
