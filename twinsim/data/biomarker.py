"""Biomarker measurements from the three layouts (wide columns, a long table, ADaM ADLB),
all ending in one long table of (patient row, visit time, value) and a :class:`Biomarker`.

Only measurements actually observed become rows: a missing value is a visit without a
measurement, and never drops the patient.  Checks: visit times finite and >= 0, values
finite, one value per patient and visit, ids of a long table known, and measurements
dated after the patient's follow-up time (``after_followup``: keep, drop or error).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..errors import DataError
from ..models import TIME_UNITS
from ._common import logger, missing_column, show
from .trialdata import Biomarker

__all__ = ["SPEC_KEYS", "check_spec", "from_wide", "from_long", "join_ids", "build_biomarker"]

#: Keys of a biomarker specification (the scenario's ``historical.biomarker``).
SPEC_KEYS = ("name", "columns", "long", "id", "time", "value", "visit_unit", "after_followup")
_POLICIES = ("keep", "drop", "error")


def check_spec(spec: Mapping[str, Any], where: str) -> dict:
    """The biomarker specification with defaults filled in; DataError if malformed.

    The layout is ``"wide"`` (``columns``), ``"long"`` (``long`` + ``id``, ``time``,
    ``value``) or None (only ``name`` / ``after_followup``: the measurements come from
    ADaM ADLB).
    """
    if not isinstance(spec, Mapping):
        raise DataError(f"{where}: expected a mapping such as {{name: cd4, columns: {{cd40: 0, cd420: 20}}}}; "
                        f"got {type(spec).__name__}.")
    unknown = sorted(set(map(str, spec)) - set(SPEC_KEYS))
    if unknown:
        raise DataError(f"{where}: unknown key(s) {unknown}; the keys are {', '.join(SPEC_KEYS)}.")
    out = {k: spec.get(k) for k in SPEC_KEYS}
    out["visit_unit"] = out["visit_unit"] or "weeks"
    out["after_followup"] = out["after_followup"] or "keep"
    if out["visit_unit"] not in TIME_UNITS:
        raise DataError(f"{where}.visit_unit: got {out['visit_unit']!r}; use one of {', '.join(TIME_UNITS)}.")
    if out["after_followup"] not in _POLICIES:
        raise DataError(f"{where}.after_followup: got {out['after_followup']!r}; use keep, drop or error.")
    if out["columns"] is not None and out["long"] is not None:
        raise DataError(f"{where}: give `columns` (wide layout) or `long` (long layout), not both.")
    if out["long"] is not None and any(out[k] is None for k in ("id", "time", "value")):
        raise DataError(f"{where}: the long layout needs `id`, `time` and `value`: the columns of the long table.")
    out["layout"] = "wide" if out["columns"] is not None else "long" if out["long"] is not None else None
    if out["layout"] and not out["name"]:
        raise DataError(f"{where}.name: required with `columns` or `long` (e.g. name: cd4).")
    if out["layout"] == "wide":
        cols = out["columns"]
        if not isinstance(cols, Mapping) or not cols:
            raise DataError(f"{where}.columns: give {{column: visit time}}, e.g. {{cd40: 0, cd420: 20}}; got {cols!r}.")
        times = {}
        for c, t in cols.items():
            try:
                t = float(t)
            except (TypeError, ValueError):
                t = float("nan")
            if not (np.isfinite(t) and t >= 0):
                raise DataError(f"{where}.columns.{c}: visit time {cols[c]!r} must be a finite number >= 0 "
                                f"(in {out['visit_unit']}).")
            times[c] = t
        same = sorted({t for t in times.values() if list(times.values()).count(t) > 1})
        if same:
            raise DataError(f"{where}.columns: several columns share visit time(s) {show(same)}; one column "
                            "per visit (a patient has one value per visit).")
        out["columns"] = times
    return out


def _numeric(col: pd.Series, where: str, what: str) -> np.ndarray:
    if not pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
        raise DataError(f"{where}: column {col.name!r} ({what}) is not numeric (dtype {col.dtype}, values "
                        f"{show(pd.unique(col.dropna()))}); give numbers.")
    return col.to_numpy(dtype=np.float64)


def _no_inf(value: np.ndarray, who: Sequence[Any], where: str, column: Any) -> None:
    bad = np.isinf(value)
    if bad.any():
        raise DataError(
            f"{where}: column {column!r} holds infinite values for {int(bad.sum())} measurement(s) "
            f"(patients {show([who[i] for i in np.flatnonzero(bad)])}). Give a value that was not "
            "measured as missing (empty / NaN), never as infinity."
        )


def from_wide(frame: pd.DataFrame, columns: Mapping[str, float], where: str) -> pd.DataFrame:
    """Wide columns (one per visit) -> long rows ``row`` (position in ``frame``), ``visit``, ``value``.

    Parameters
    ----------
    frame : pd.DataFrame, (n, ...)
        Patients, one per row, RangeIndex.
    columns : mapping {column: visit time (>= 0, visit units)}
    where : str
        Field of ``columns`` (``historical.biomarker.columns``), for messages.
    """
    pieces = []
    for col, visit in columns.items():
        if col not in frame.columns:
            raise missing_column(where, col, frame.columns)
        value = _numeric(frame[col], where, f"visit {visit:g}")
        _no_inf(value, list(range(len(frame))), where, col)
        seen = ~np.isnan(value)
        pieces.append(pd.DataFrame({"row": np.flatnonzero(seen), "visit": visit, "value": value[seen]}))
    return pd.concat(pieces, ignore_index=True)


def from_long(table: pd.DataFrame, id_col: str, time_col: str, value_col: str, where: str) -> pd.DataFrame:
    """A long table -> rows ``id``, ``visit``, ``value``; rows with a missing value are left out.

    Visit times must be present, finite and >= 0, values finite where present.
    """
    for role, col in (("id", id_col), ("time", time_col), ("value", value_col)):
        if col not in table.columns:
            raise missing_column(f"{where}.{role}", col, table.columns)
    ids = table[id_col]
    if ids.isna().any():
        raise DataError(f"{where}.id: {int(ids.isna().sum())} row(s) have no id in column {id_col!r}; every "
                        "measurement needs its patient.")
    visit = _numeric(table[time_col], f"{where}.time", "visit time")
    bad = ~(np.isfinite(visit) & (visit >= 0))
    if bad.any():
        raise DataError(
            f"{where}.time: {int(bad.sum())} visit time(s) in {time_col!r} are missing, negative or not "
            f"finite (ids {show(list(ids[bad]))}; values {show(visit[bad].tolist())}). Visit times count "
            "from the patient's time 0: drop pre-baseline (screening) visits or renumber them."
        )
    value = _numeric(table[value_col], f"{where}.value", "value")
    _no_inf(value, list(ids), f"{where}.value", value_col)
    seen = ~np.isnan(value)
    return pd.DataFrame({"id": ids.to_numpy()[seen], "visit": visit[seen], "value": value[seen]})


def join_ids(measurements: pd.DataFrame, ids: pd.Series, where: str) -> pd.DataFrame:
    """Rows ``id``, ``visit``, ``value`` -> ``row``, ``visit``, ``value`` for the ids in ``ids``.

    ``ids`` holds the id of each patient row (unique); measurements of other ids are left
    out (patients filtered out or dropped); callers check beforehand that every id is known.
    Two measurements of one patient at one visit are an error.
    """
    dup = measurements.duplicated(["id", "visit"], keep=False)
    if dup.any():
        pairs = list(measurements.loc[dup, ["id", "visit"]].drop_duplicates().itertuples(index=False, name=None))
        raise DataError(
            f"{where}: {len(pairs)} (id, visit) pair(s) have several measurements ({show(pairs)}). Keep one "
            "value per patient and visit (e.g. the mean, or the scheduled one)."
        )
    position = pd.Series(np.arange(len(ids)), index=pd.Index(ids.to_numpy()))
    keep = measurements["id"].isin(position.index).to_numpy()
    m = measurements.loc[keep]
    return pd.DataFrame({"row": position.loc[m["id"].to_numpy()].to_numpy(), "visit": m["visit"].to_numpy(),
                         "value": m["value"].to_numpy()})


def build_biomarker(
    name: str,
    rows: np.ndarray,
    time: np.ndarray,
    value: np.ndarray,
    followup: np.ndarray,
    who: Sequence[Any],
    policy: str,
    where: str,
) -> Biomarker:
    """The checked :class:`Biomarker`, applying the ``after_followup`` policy.

    Parameters
    ----------
    name : str
    rows, time, value : np.ndarray, shape (m,)
        Patient row, visit time (in ``time_unit``), value.
    followup : np.ndarray, shape (n,)
        Follow-up time of each patient (event or censoring), in ``time_unit``.
    who : sequence, length n
        How to name each patient in a message (id, or row index).
    policy : {"keep", "drop", "error"}
        For measurements dated after the patient's follow-up time.
    """
    after = time > followup[rows]
    if after.any():
        patients = sorted({who[r] for r in rows[after]}, key=str)
        text = (f"{where}: {int(after.sum())} measurement(s) of {name!r} are dated after the patient's "
                f"follow-up time (event or censoring) for {len(patients)} patient(s) ({show(patients)})")
        if policy == "error":
            raise DataError(
                text + ". Correct the dates, or set `after_followup: drop` to leave them out (or `keep`: "
                "after a non-terminal event the visits go on, and nominal visit times can fall after an "
                "early visit's actual day)."
            )
        if policy == "drop":
            logger.info("%s; dropped them.", text)
            rows, time, value = rows[~after], time[~after], value[~after]
        else:
            logger.info("%s; kept (after_followup: keep).", text)
    return Biomarker(name=name, patient=rows, time=time, value=value)
