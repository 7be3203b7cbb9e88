"""Reading and checking tables: files (CSV, Parquet, SAS transport), filters, outcome columns.

Event convention: an event column is 1 = event observed, 0 = right censored.  Every
problem raises :class:`~twinsim.errors.DataError` whose message starts with the field
(``where``) it concerns.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError
from ._common import missing_column, show, unique
from .builtin import read_builtin

__all__ = ["read_table", "apply_filter", "event_array", "time_array", "require_columns"]

_READERS = {
    (".parquet", ".pq"): "parquet",
    (".csv", ".csv.gz"): "csv",
    (".xpt",): "xport",
}


#: What pandas' XPORT reader returns for an IBM zero: 16**-65, the smallest IBM double
#: (pandas issue #50670, open); no clinical value is that small, so it is read as 0.
_IBM_ZERO_AS_READ = 2.0 ** -260


def _read_xport(path: Path) -> pd.DataFrame:
    """A SAS transport (XPORT v5) file, text columns decoded (UTF-8, else Latin-1).

    Numeric zeros are restored: ``pandas.read_sas`` turns the IBM zero (eight zero bytes,
    as SAS writes 0) into 5.4e-79, which would make e.g. ``CNSR = 0`` fail the 0/1 check.
    """
    try:
        frame = pd.read_sas(path, format="xport", encoding="utf-8")
    except UnicodeDecodeError:
        frame = pd.read_sas(path, format="xport", encoding="latin-1")
    for c in frame.columns:
        if pd.api.types.is_float_dtype(frame[c]):
            x = frame[c].to_numpy()
            frame[c] = np.where(np.abs(x) == _IBM_ZERO_AS_READ, 0.0, x)
    return frame


def read_table(source: Any, base_dir: str | os.PathLike | None, where: str) -> tuple[pd.DataFrame, str]:
    """Read ``source`` into a new DataFrame (never the caller's object) and a label for it.

    Parameters
    ----------
    source : str, path or pd.DataFrame
        ``builtin:NAME``, a ``.csv`` / ``.csv.gz`` / ``.parquet`` / ``.pq`` / ``.xpt`` (SAS
        transport) path, or a DataFrame.  Relative paths are resolved against ``base_dir``.
    base_dir : path or None
    where : str
        The field the source comes from; prefixes every error message.

    Returns
    -------
    (pd.DataFrame with a RangeIndex, str)
    """
    if isinstance(source, pd.DataFrame):
        return source.reset_index(drop=True).copy(), f"DataFrame({source.shape[0]}x{source.shape[1]})"
    if isinstance(source, str) and source.startswith("builtin:"):
        name = source[len("builtin:"):]
        return read_builtin(name, where), f"builtin:{name.strip().lower()}"
    if not isinstance(source, (str, os.PathLike)):
        raise DataError(
            f"{where}: cannot read data from a {type(source).__name__} ({source!r:.80}). Give "
            "builtin:NAME, a path to a .csv, .parquet or .xpt file, a pandas DataFrame, or "
            "{'adam': {'adsl': PATH, 'adtte': PATH, 'paramcd': CODE}}."
        )
    path = Path(source).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = Path(base_dir).expanduser() / path
    path = path.resolve()
    name = path.name.lower()
    kind = next((k for ends, k in _READERS.items() if name.endswith(ends)), None)
    if kind is None:
        raise DataError(
            f"{where}: unsupported file type {path.suffix or '(none)'!r} for {str(source)!r}. "
            "Save the data as .csv, .parquet or SAS transport .xpt (or pass a pandas DataFrame)."
        )
    if not path.is_file():
        raise DataError(
            f"{where}: file {str(source)!r} not found (resolved to {str(path)!r}). Check the "
            "path; relative paths are resolved against the scenario file's folder."
        )
    reader = {"parquet": pd.read_parquet, "csv": pd.read_csv, "xport": _read_xport}[kind]
    try:
        frame = reader(path)
    except Exception as exc:  # parser errors of pandas/pyarrow: report, do not trace back
        raise DataError(
            f"{where}: could not read {str(path)!r} ({type(exc).__name__}: {exc}). Check that "
            "the file is a valid, non-empty table in the format its extension says."
        ) from exc
    return frame.reset_index(drop=True), str(path)


def require_columns(frame: pd.DataFrame, columns: Mapping[Any, str]) -> None:
    """Raise the close-match error for the first of ``{column: field}`` not in ``frame``."""
    for name, where in columns.items():
        if name not in frame.columns:
            raise missing_column(where, name, frame.columns)


def apply_filter(frame: pd.DataFrame, flt: Mapping | None, where: str) -> pd.DataFrame:
    """Keep the rows whose columns equal the value (or are in the list) for every entry."""
    if not flt:
        return frame
    if not isinstance(flt, Mapping):
        raise DataError(
            f"{where}: expected a mapping {{column: value | [values]}}, got {flt!r}. "
            "Write e.g. filter: {arms: 0} or filter: {arms: [0, 1]}."
        )
    mask = np.ones(len(frame), dtype=bool)
    for column, value in flt.items():
        if column not in frame.columns:
            raise missing_column(where, column, frame.columns)
        if isinstance(value, Mapping):
            raise DataError(
                f"{where}.{column}: got {value!r}, but filters are equality or membership "
                "only. Give a value or a list of values."
            )
        values = list(value) if isinstance(value, (list, tuple, set, frozenset, np.ndarray,
                                                   pd.Series)) else [value]
        mask &= frame[column].isin(values).to_numpy()
    if not mask.any():
        present = "; ".join(f"{c!r} has {show(unique(frame[c]))}" for c in flt)
        raise DataError(
            f"{where}: filter {dict(flt)!r} selects none of the {len(frame)} rows. Values "
            f"present: {present}. Use values that exist (text '0' does not equal number 0)."
        )
    return frame.loc[mask]


def event_array(col: pd.Series, where: str) -> np.ndarray:
    """The event column as int8, checked to be 0/1 (1 = event observed, 0 = censored)."""
    if pd.api.types.is_bool_dtype(col):
        col = col.astype(np.int8)
    bad = [v for v in unique(col) if isinstance(v, (str, bytes)) or not (v == 0 or v == 1)]
    if bad:
        raise DataError(
            f"{where}: column {col.name!r} must be coded 0/1 but has {show(bad)} (values "
            f"present: {show(unique(col))}). Recode so that 1 = event observed, "
            "0 = censored (e.g. status 1/2 -> status - 1; a censoring flag -> 1 - flag)."
        )
    return col.to_numpy(dtype=np.int8)


def time_array(col: pd.Series, where: str, time_unit: str) -> np.ndarray:
    """The duration column as float64, checked to be numeric, finite and > 0."""
    if not pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
        raise DataError(
            f"{where}: column {col.name!r} is not numeric (dtype {col.dtype}, values "
            f"{show(unique(col))}). Give follow-up times as numbers in {time_unit}."
        )
    time = col.to_numpy(dtype=np.float64)
    bad = ~(np.isfinite(time) & (time > 0))
    if bad.any():
        raise DataError(
            f"{where}: {int(bad.sum())} row(s) of {col.name!r} are not finite and > 0 (row "
            f"index {show(list(col.index[bad]))}; values {show(time[bad].tolist())}). Times "
            "must be positive: a patient with an event on day 0 can be given a small positive "
            "time such as 0.5, or drop the row."
        )
    return time
