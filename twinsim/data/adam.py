"""CDISC ADaM input: ADSL + ADTTE (+ ADLB/BDS for a biomarker) -> one row per subject.

Event convention: ADaM's ``CNSR`` is 1 = censored, 0 = event; twinsim's ``event`` is
1 = event observed, 0 = right censored.  :func:`event_from_cnsr` is the one place where
one becomes the other (``event = 1 - CNSR``).

The tables (CSV, Parquet or SAS transport ``.xpt``) are checked where ADaM data usually go
wrong: subjects in ADTTE or ADLB that are not in ADSL, several records of one subject for
the PARAMCD, a PARAMCD that is not there (the message lists those that are), CNSR not
0/1, AVAL <= 0, missing columns.  Every error names the field (``historical.data.adam.adtte``)
and says how to fix it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError
from ..models import TIME_UNITS
from ._common import logger, show, unique
from .tables import apply_filter, read_table, require_columns

__all__ = ["AdamTables", "read_adam", "event_from_cnsr", "ADAM_TIME", "ADAM_EVENT", "ADAM_KEYS"]

#: Column names, in the subject table :func:`read_adam` returns, of ADTTE's AVAL and of the
#: event derived from CNSR (names no ADSL variable can have: SAS names hold no dots).
ADAM_TIME = "ADTTE.AVAL"
ADAM_EVENT = "ADTTE.EVENT"
#: The keys of an ``adam`` mapping (required first).
ADAM_KEYS = ("adsl", "adtte", "paramcd", "adlb", "biomarker", "visit_unit")


def event_from_cnsr(cnsr: pd.Series) -> pd.Series:
    """twinsim's event indicator from ADaM's censoring flag: ``event = 1 - CNSR``.

    Parameters
    ----------
    cnsr : pd.Series
        ADTTE ``CNSR``: 1 = censored, 0 = event (checked to be 0/1 or missing).

    Returns
    -------
    pd.Series
        1 = event observed, 0 = right censored; missing stays missing.
    """
    return 1 - cnsr


@dataclass(frozen=True)
class AdamTables:
    """ADSL subjects with their endpoint, and the biomarker measurements, read and checked.

    Attributes
    ----------
    subjects : pd.DataFrame, (n, ...)
        The filtered ADSL rows that have an ADTTE record for the PARAMCD, RangeIndex, with
        columns :data:`ADAM_TIME` (AVAL, > 0 or missing) and :data:`ADAM_EVENT` (1 = event
        observed, 0 = censored, or missing) added.
    ids_all : pd.Index
        USUBJID of every ADSL row (before the filter).
    measurements : pd.DataFrame or None
        ADLB rows of the biomarker PARAMCD: columns ``USUBJID``, ``AVISITN`` (visit time in
        ``visit_unit``), ``AVAL``; None without ``adlb``.
    biomarker : str or None
        The biomarker PARAMCD.
    visit_unit : str
        Unit of ``AVISITN``.
    label : str
        Origin, for ``TrialData.source``.
    n_dropped : int
        Filtered ADSL subjects without an ADTTE record, dropped under ``missing="drop"``.
    """

    subjects: pd.DataFrame
    ids_all: pd.Index
    measurements: pd.DataFrame | None
    biomarker: str | None
    visit_unit: str
    label: str
    n_dropped: int


def _spec(adam: Any, where: str) -> dict:
    if not isinstance(adam, Mapping):
        raise DataError(
            f"{where}: expected a mapping {{adsl: PATH, adtte: PATH, paramcd: CODE}}, got "
            f"{type(adam).__name__} {adam!r:.80}."
        )
    unknown = sorted(set(map(str, adam)) - set(ADAM_KEYS))
    lacking = [k for k in ADAM_KEYS[:3] if adam.get(k) is None]
    if unknown or lacking:
        raise DataError(
            f"{where}: {'unknown key(s) ' + repr(unknown) if unknown else 'missing ' + repr(lacking)}. "
            f"An adam mapping has keys {', '.join(ADAM_KEYS)} (the first three required)."
        )
    spec = {k: adam.get(k) for k in ADAM_KEYS}
    spec["visit_unit"] = spec["visit_unit"] or "weeks"
    if (spec["adlb"] is None) != (spec["biomarker"] is None):
        raise DataError(f"{where}: `adlb` and `biomarker` go together: give the table and the PARAMCD "
                        "of the biomarker in it, or neither.")
    if spec["visit_unit"] not in TIME_UNITS:
        raise DataError(f"{where}.visit_unit: got {spec['visit_unit']!r}; use one of {', '.join(TIME_UNITS)}.")
    return spec


def _unknown_subjects(table: pd.DataFrame, ids: pd.Index, where: str, name: str) -> None:
    extra = unique(table.loc[~table["USUBJID"].isin(ids), "USUBJID"])
    if extra:
        raise DataError(
            f"{where}: {len(extra)} subject(s) of {name} are not in ADSL ({show(extra)}). Every "
            "ADaM subject must have one ADSL record: use the ADSL and " + name + " of the same "
            "data cut, or check USUBJID's spelling and type (text vs number)."
        )


def _paramcd_rows(table: pd.DataFrame, code: str, where: str, name: str) -> pd.DataFrame:
    rows = table.loc[table["PARAMCD"] == code]
    if rows.empty:
        codes = unique(table["PARAMCD"])
        if "PARAM" in table.columns:
            labels = table.drop_duplicates("PARAMCD").set_index("PARAMCD")["PARAM"]
            codes = [f"{c} ({labels.get(c)})" for c in codes]
        raise DataError(
            f"{where}: PARAMCD {code!r} is not in {name}. Available codes: {show(codes, 30)}. "
            "Give one of these (codes are case-sensitive)."
        )
    return rows


def _one_record(rows: pd.DataFrame, keys: list[str], where: str, what: str) -> None:
    dup = rows.duplicated(keys, keep=False)
    if dup.any():
        shown = rows.loc[dup, keys].drop_duplicates().itertuples(index=False, name=None)
        shown = [k[0] if len(k) == 1 else k for k in shown]
        raise DataError(
            f"{where}: {len(shown)} {what} have several records ({show(shown)}). Keep one record "
            "each (e.g. filter on an analysis flag such as ANL01FL before export)."
        )


def _read(path: Any, base_dir, where: str, name: str, columns: tuple[str, ...]) -> tuple[pd.DataFrame, str]:
    frame, label = read_table(path, base_dir, where)
    require_columns(frame, {c: where for c in columns})
    if frame["USUBJID"].isna().any():
        raise DataError(
            f"{where}: {int(frame['USUBJID'].isna().sum())} row(s) of {name} have no USUBJID. "
            "Every ADaM record needs its subject identifier."
        )
    return frame, label


def read_adam(
    adam: Mapping[str, Any],
    *,
    filter: Mapping[str, Any] | None = None,  # noqa: A002 - the scenario's field name
    missing: str = "error",
    base_dir: str | os.PathLike | None = None,
    where: str = "historical.data",
    filter_field: str = "historical.filter",
) -> AdamTables:
    """Read ADSL, ADTTE (and ADLB) and join them into one row per subject.

    Parameters
    ----------
    adam : mapping
        ``{adsl: PATH, adtte: PATH, paramcd: CODE}`` and optionally ``adlb: PATH``,
        ``biomarker: PARAMCD`` (together) and ``visit_unit`` (of AVISITN, default weeks).
        Paths are CSV, Parquet or SAS transport ``.xpt``, relative to ``base_dir``;
        DataFrames are accepted too.
    filter : mapping, optional
        ``{ADSL column: value | [values]}``, applied to ADSL before the join.
    missing : {"error", "drop", "model"}
        A filtered ADSL subject without an ADTTE record for ``paramcd`` is an error, or
        dropped (and counted) under ``"drop"``.
    base_dir : path, optional
    where, filter_field : str
        Fields the arguments come from, for error messages (``where`` + ``.adam.adtte``...).

    Returns
    -------
    AdamTables
        Subjects with ``ADTTE.AVAL`` and ``ADTTE.EVENT`` (1 = event observed, 0 =
        censored, converted from CNSR here), and the ADLB measurements.

    Raises
    ------
    DataError
        Missing columns, USUBJID missing or repeated in ADSL, subjects of ADTTE/ADLB not
        in ADSL, an unknown PARAMCD, several ADTTE records of a subject for the PARAMCD,
        CNSR not 0/1, AVAL <= 0, subjects without a record (unless ``missing="drop"``).
    """
    where = f"{where}.adam"
    spec = _spec(adam, where)
    adsl, adsl_label = _read(spec["adsl"], base_dir, f"{where}.adsl", "ADSL", ("USUBJID",))
    _one_record(adsl, ["USUBJID"], f"{where}.adsl", "USUBJID value(s)")
    ids_all = pd.Index(adsl["USUBJID"])
    for reserved in (ADAM_TIME, ADAM_EVENT):
        if reserved in adsl.columns:
            raise DataError(f"{where}.adsl: column {reserved!r} is reserved for the endpoint; rename it.")

    f_tte = f"{where}.adtte"
    adtte, _ = _read(spec["adtte"], base_dir, f_tte, "ADTTE", ("USUBJID", "PARAMCD", "AVAL", "CNSR"))
    _unknown_subjects(adtte, ids_all, f_tte, "ADTTE")
    tte = _paramcd_rows(adtte, spec["paramcd"], f"{where}.paramcd", "ADTTE")
    _one_record(tte, ["USUBJID"], f_tte, f"subject(s) with PARAMCD {spec['paramcd']!r}")
    cnsr = tte["CNSR"]
    bad = [v for v in unique(cnsr) if isinstance(v, (str, bytes)) or v not in (0, 1)]
    if bad:
        raise DataError(
            f"{f_tte}: CNSR must be 0 (event) or 1 (censored) but has {show(bad)} for PARAMCD "
            f"{spec['paramcd']!r}. If positive codes give censoring reasons, recode them to 1 "
            "(CNSR = 1 where CNSR > 0); twinsim takes event = 1 - CNSR."
        )
    aval = tte["AVAL"]
    if not pd.api.types.is_numeric_dtype(aval) or pd.api.types.is_bool_dtype(aval):
        raise DataError(f"{f_tte}: AVAL is not numeric (values {show(unique(aval))}); give durations as numbers.")
    bad = aval.notna() & ~(np.isfinite(aval.to_numpy(dtype=float)) & (aval.to_numpy(dtype=float) > 0))
    if bad.any():
        raise DataError(
            f"{f_tte}: AVAL must be finite and > 0 but {int(bad.sum())} record(s) of PARAMCD "
            f"{spec['paramcd']!r} are not (USUBJID {show(list(tte.loc[bad, 'USUBJID']))}; AVAL "
            f"{show(aval[bad].tolist())}). An event on day 0 can be given a small positive time "
            "such as 0.5, or the subject excluded."
        )

    subjects = apply_filter(adsl, filter, filter_field)
    endpoint = pd.DataFrame({"USUBJID": tte["USUBJID"].to_numpy(), ADAM_TIME: aval.to_numpy(dtype=float),
                             ADAM_EVENT: event_from_cnsr(cnsr.astype(float)).to_numpy()})
    subjects = subjects.merge(endpoint, on="USUBJID", how="left", validate="one_to_one", indicator=True)
    absent = (subjects.pop("_merge") == "left_only").to_numpy()
    n_dropped = 0
    if absent.any():
        ids = list(subjects.loc[absent, "USUBJID"])
        if missing != "drop":
            raise DataError(
                f"{f_tte}: {len(ids)} of the {len(subjects)} selected ADSL subjects have no record with "
                f"PARAMCD {spec['paramcd']!r} ({show(ids)}). Select the analysis population with "
                "`filter` (e.g. on ITTFL), or set `missing: drop` to drop them (counted)."
            )
        n_dropped = len(ids)
        logger.info("%s: dropped %d ADSL subject(s) without a %s record.", f_tte, n_dropped, spec["paramcd"])
        subjects = subjects.loc[~absent]
    subjects = subjects.reset_index(drop=True)

    measurements = None
    if spec["adlb"] is not None:
        f_lb = f"{where}.adlb"
        adlb, _ = _read(spec["adlb"], base_dir, f_lb, "ADLB", ("USUBJID", "PARAMCD", "AVISITN", "AVAL"))
        _unknown_subjects(adlb, ids_all, f_lb, "ADLB")
        lb = _paramcd_rows(adlb, spec["biomarker"], f"{where}.biomarker", "ADLB")
        _one_record(lb, ["USUBJID", "AVISITN"], f_lb,
                    f"(USUBJID, AVISITN) pair(s) of PARAMCD {spec['biomarker']!r}")
        measurements = lb[["USUBJID", "AVISITN", "AVAL"]].reset_index(drop=True)

    label = f"adam:{adsl_label} paramcd={spec['paramcd']}"
    return AdamTables(subjects, ids_all, measurements, spec["biomarker"], spec["visit_unit"], label, n_dropped)
