"""Load and check historical time-to-event data: DataFrame / CSV / Parquet / builtin -> TrialData.

Event convention: everywhere in twinsim ``event`` is 1 = event observed, 0 = right
censored (lifelines' ``event_col`` convention, *not* NumPyro's censoring flag).  Every
input problem raises :class:`~twinsim.errors.DataError` with a one-paragraph message that
starts with the field concerned (``historical.duration`` ...), shows the value received
and says how to fix it.  Statistical caveats are
:class:`~twinsim.errors.StatisticalWarning`.  This module logs (logger ``twinsim.data``);
it never prints.

The bundled data sets are read from the installed lifelines package (no download):
``actg175``, ``gbsg2`` (recoded to numbers) and ``lung``; see :data:`BUILTIN_DATASETS`.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import logging
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from .errors import DataError, StatisticalWarning
from .models import TIME_UNITS

__all__ = ["TrialData", "load_data", "BUILTIN_DATASETS", "builtin_frame", "list_datasets"]

logger = logging.getLogger("twinsim.data")

_HASH_FORMAT = "twinsim.TrialData/1"
_SHOW = 8  # how many offending values / rows / columns an error message shows

#: The bundled real data sets: name -> description, duration and event columns, unit, reference.
BUILTIN_DATASETS: dict[str, dict[str, str]] = {
    "actg175": {
        "description": "ACTG 175 randomised HIV trial, 4 arms (arms 0 = zidovudine only, "
        "1 = zidovudine + didanosine, 2 = zidovudine + zalcitabine, 3 = didanosine only); "
        "cens 1 = event",
        "duration": "days", "event": "cens", "time_unit": "days",
        "reference": "Hammer SM et al., N Engl J Med 1996;335:1081-1090; "
        "lifelines/datasets/ACTG175.csv",
    },
    "gbsg2": {
        "description": "German Breast Cancer Study Group 2, node-positive breast cancer; "
        "recoded: horTh yes=1/no=0, menostat Post=1/Pre=0, tgrade I/II/III=1/2/3; cens 1 = event",
        "duration": "time", "event": "cens", "time_unit": "days",
        "reference": "Schumacher M et al., J Clin Oncol 1994;12:2086-2093; "
        "lifelines.datasets.load_gbsg2",
    },
    "lung": {
        "description": "NCCTG advanced lung cancer, observational; status 1 = death, "
        "0 = censored; NAs in several columns",
        "duration": "time", "event": "status", "time_unit": "days",
        "reference": "Loprinzi CL et al., J Clin Oncol 1994;12:601-607; "
        "lifelines.datasets.load_lung",
    },
}

_GBSG2_CODES = {"horTh": {"no": 0, "yes": 1}, "menostat": {"Pre": 0, "Post": 1},
                "tgrade": {"I": 1, "II": 2, "III": 3}}


def _show(values: Sequence[Any], k: int = _SHOW) -> str:
    """Comma-separated repr of the first ``k`` values, with a count of the rest."""
    values = list(values)
    text = ", ".join(repr(v.item() if isinstance(v, np.generic) else v) for v in values[:k])
    return text + (f", ... ({len(values) - k} more)" if len(values) > k else "")


def _unique(series: pd.Series) -> list:
    """The distinct non-missing values of ``series``, sorted where possible."""
    values = list(pd.unique(series.dropna()))
    try:
        return sorted(values)
    except TypeError:  # mixed types
        return values


def _missing_column(where: str, name: Any, columns: Sequence[Any]) -> DataError:
    """The error for a column that does not exist, with a close match when there is one."""
    names = [str(c) for c in columns]
    lower = {n.lower(): n for n in names}
    match = [lower[str(name).lower()]] if str(name).lower() in lower else (
        difflib.get_close_matches(str(name), names, n=1, cutoff=0.6))
    hint = f" (did you mean {match[0]!r}?)" if match else ""
    return DataError(
        f"{where}: column {name!r} is not in the data{hint}. Available columns: "
        f"{_show(names, 40)}. Use one of these names (names are case-sensitive)."
    )


# --------------------------------------------------------------------------- TrialData


@dataclass(frozen=True, eq=False)
class TrialData:
    """Checked historical time-to-event data, ready for fitting.

    Attributes
    ----------
    time : np.ndarray, shape (n,), float64
        Follow-up time, finite and > 0, in ``time_unit``.
    event : np.ndarray, shape (n,), int8
        1 = event observed, 0 = right censored.
    covariates : pd.DataFrame, shape (n, p), float64
        Baseline covariates in the requested order, with a RangeIndex.
    time_unit : str
        A key of :data:`twinsim.models.TIME_UNITS`.
    source : str
        Human-readable origin, e.g. ``"builtin:actg175 filter={'arms': 0}"``.
    n_dropped : int
        Rows dropped for missing values (``missing="drop"``).

    Notes
    -----
    The constructor copies and checks its inputs (so a TrialData is always valid) and
    makes ``time`` and ``event`` read-only; treat ``covariates`` as read-only too.
    Equality compares all fields (arrays by value); :meth:`hash` digests the content only
    (not ``source`` or ``n_dropped``).
    """

    time: np.ndarray
    event: np.ndarray
    covariates: pd.DataFrame
    time_unit: str
    source: str
    n_dropped: int = 0

    def __post_init__(self) -> None:
        time = np.array(self.time, dtype=np.float64).reshape(-1)
        event = np.asarray(self.event)
        if time.size != event.size or not np.isin(event, (0, 1)).all():
            raise DataError(
                "TrialData.event: must hold one 0/1 value per time (1 = event observed, "
                f"0 = censored); got {event.size} values ({_show(np.unique(event))}) for "
                f"{time.size} times. Build TrialData with load_data, which says what to fix."
            )
        event = np.array(event, dtype=np.int8).reshape(-1)
        if not (np.isfinite(time) & (time > 0)).all():
            raise DataError("TrialData.time: every time must be finite and > 0; use load_data.")
        cov = pd.DataFrame(self.covariates)
        if cov.shape[1] == 0:
            cov = pd.DataFrame(index=pd.RangeIndex(time.size))
        if len(cov) != time.size or {"time", "event"} & set(map(str, cov.columns)):
            raise DataError(
                f"TrialData.covariates: need {time.size} rows and no column named 'time' or "
                f"'event'; got {len(cov)} rows, columns {list(cov.columns)}. Rename or re-slice."
            )
        try:
            cov = cov.astype(np.float64).reset_index(drop=True)
        except (TypeError, ValueError) as exc:
            raise DataError(f"TrialData.covariates: not all numeric ({exc}); use load_data.") from exc
        cov.columns = [str(c) for c in cov.columns]
        if self.time_unit not in TIME_UNITS:
            raise DataError(
                f"TrialData.time_unit: {self.time_unit!r} is not a time unit; use one of "
                f"{', '.join(TIME_UNITS)}."
            )
        time.setflags(write=False)
        event.setflags(write=False)
        object.__setattr__(self, "time", time)
        object.__setattr__(self, "event", event)
        object.__setattr__(self, "covariates", cov)
        object.__setattr__(self, "n_dropped", int(self.n_dropped))

    @property
    def n(self) -> int:
        """Number of patients."""
        return int(self.time.size)

    @property
    def n_events(self) -> int:
        """Number of observed events (``event == 1``)."""
        return int(self.event.sum())

    @property
    def covariate_names(self) -> tuple[str, ...]:
        """Covariate column names, in order."""
        return tuple(self.covariates.columns)

    def hash(self) -> str:
        """SHA-256 hex digest of the content (time, event, covariates, time_unit).

        The bytes are a JSON header (format tag, time unit, n, covariate names) followed
        by little-endian float64 times, int8 events and float64 covariate columns, so the
        digest is stable across runs, machines and file formats.  ``source`` and
        ``n_dropped`` are not part of it.
        """
        header = json.dumps(
            {"format": _HASH_FORMAT, "time_unit": self.time_unit, "n": self.n,
             "covariates": list(self.covariate_names)},
            sort_keys=True, separators=(",", ":"),
        ).encode("utf-8")
        h = hashlib.sha256()
        h.update(len(header).to_bytes(8, "little") + header)
        h.update(np.ascontiguousarray(self.time, dtype="<f8").tobytes())
        h.update(np.ascontiguousarray(self.event, dtype="i1").tobytes())
        for name in self.covariate_names:  # + 0.0 turns -0.0 into 0.0
            h.update(np.ascontiguousarray(self.covariates[name].to_numpy() + 0.0, "<f8").tobytes())
        return h.hexdigest()

    def to_frame(self) -> pd.DataFrame:
        """A DataFrame with columns ``time``, ``event`` (1 = event observed), then covariates."""
        out = pd.DataFrame({"time": self.time.copy(), "event": self.event.copy()})
        return pd.concat([out, self.covariates.copy()], axis=1)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TrialData):
            return NotImplemented
        return (
            (self.time_unit, self.source, self.n_dropped)
            == (other.time_unit, other.source, other.n_dropped)
            and np.array_equal(self.time, other.time)
            and np.array_equal(self.event, other.event)
            and self.covariates.equals(other.covariates)
        )

    def __hash__(self) -> int:
        return int(self.hash()[:16], 16)

    def __repr__(self) -> str:
        return (f"TrialData(n={self.n}, events={self.n_events}, covariates="
                f"{list(self.covariate_names)}, time_unit={self.time_unit!r}, "
                f"source={self.source!r}, n_dropped={self.n_dropped})")


# --------------------------------------------------------------------------- builtins


@lru_cache(maxsize=None)
def _read_builtin(name: str) -> pd.DataFrame:
    import lifelines
    from lifelines import datasets

    if name == "actg175":
        frame = pd.read_csv(Path(lifelines.__file__).parent / "datasets" / "ACTG175.csv")
        return frame.drop(columns=[c for c in frame.columns if str(c).startswith("Unnamed")])
    if name == "gbsg2":
        frame = datasets.load_gbsg2()
        for column, codes in _GBSG2_CODES.items():
            coded = frame[column].map(codes)
            if coded.isna().any():  # lifelines changed its coding: fail loudly, not silently
                raise RuntimeError(f"gbsg2.{column}: unexpected values {_unique(frame[column])}")
            frame[column] = coded.astype(np.int64)
        return frame
    return datasets.load_lung()


def _builtin(name: str, where: str) -> pd.DataFrame:
    key = name.strip().lower()
    if key not in BUILTIN_DATASETS:
        raise DataError(
            f"{where}: unknown builtin data set {name!r}. Use one of "
            f"{', '.join('builtin:' + k for k in BUILTIN_DATASETS)}, or a .csv/.parquet path."
        )
    return _read_builtin(key).copy()


def builtin_frame(name: str) -> pd.DataFrame:
    """The raw table of a builtin data set (``gbsg2`` recoded to numbers), as a new copy.

    Parameters
    ----------
    name : str
        A key of :data:`BUILTIN_DATASETS` (``actg175``, ``gbsg2``, ``lung``); a
        ``builtin:`` prefix is accepted.

    Returns
    -------
    pd.DataFrame
        The table as shipped with lifelines; its event column (see
        :data:`BUILTIN_DATASETS`) is 1 = event observed, 0 = censored.
    """
    return _builtin(name.removeprefix("builtin:"), "builtin_frame")


def list_datasets() -> pd.DataFrame:
    """One row per builtin data set: name, rows, events, duration, event, columns, description.

    ``events`` counts ``event == 1`` (event observed); ``columns`` is a comma-separated list.
    """
    rows = []
    for name, info in BUILTIN_DATASETS.items():
        frame = _read_builtin(name)
        rows.append({
            "name": name, "rows": len(frame), "events": int(frame[info["event"]].sum()),
            "duration": info["duration"], "event": info["event"],
            "columns": ", ".join(map(str, frame.columns)), "description": info["description"],
        })
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- reading


def _read_source(source: Any, base_dir: str | os.PathLike | None, where: str) -> tuple[pd.DataFrame, str]:
    """Read ``source`` into a DataFrame (never the caller's object) and a label for it."""
    if isinstance(source, pd.DataFrame):
        return source.copy(), f"DataFrame({source.shape[0]}x{source.shape[1]})"
    if isinstance(source, str) and source.startswith("builtin:"):
        name = source[len("builtin:"):]
        return _builtin(name, where), f"builtin:{name.strip().lower()}"
    if not isinstance(source, (str, os.PathLike)):
        raise DataError(
            f"{where}: cannot read data from a {type(source).__name__} ({source!r:.80}). Give "
            "builtin:NAME, a path to a .csv or .parquet file, or a pandas DataFrame."
        )
    path = Path(source).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = Path(base_dir).expanduser() / path
    path = path.resolve()
    name = path.name.lower()
    if name.endswith((".parquet", ".pq")):
        reader = pd.read_parquet
    elif name.endswith((".csv", ".csv.gz")):
        reader = pd.read_csv
    else:
        raise DataError(
            f"{where}: unsupported file type {path.suffix or '(none)'!r} for {str(source)!r}. "
            "Save the data as .csv or .parquet (or pass a pandas DataFrame)."
        )
    if not path.is_file():
        raise DataError(
            f"{where}: file {str(source)!r} not found (resolved to {str(path)!r}). Check the "
            "path; relative paths are resolved against the scenario file's folder."
        )
    try:
        frame = reader(path)
    except Exception as exc:  # parser errors of pandas/pyarrow: report, do not trace back
        raise DataError(
            f"{where}: could not read {str(path)!r} ({type(exc).__name__}: {exc}). Check that "
            "the file is a valid, non-empty table in the format its extension says."
        ) from exc
    return frame.reset_index(drop=True), str(path)


def _apply_filter(frame: pd.DataFrame, flt: Mapping | None, where: str) -> pd.DataFrame:
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
            raise _missing_column(where, column, frame.columns)
        if isinstance(value, Mapping):
            raise DataError(
                f"{where}.{column}: got {value!r}, but filters are equality or membership "
                "only. Give a value or a list of values."
            )
        values = list(value) if isinstance(value, (list, tuple, set, frozenset, np.ndarray,
                                                   pd.Series)) else [value]
        mask &= frame[column].isin(values).to_numpy()
    if not mask.any():
        present = "; ".join(f"{c!r} has {_show(_unique(frame[c]))}" for c in flt)
        raise DataError(
            f"{where}: filter {dict(flt)!r} selects none of the {len(frame)} rows. Values "
            f"present: {present}. Use values that exist (text '0' does not equal number 0)."
        )
    return frame.loc[mask]


def _handle_missing(frame: pd.DataFrame, used: list, roles: dict, missing: str, field: str,
                    label: str) -> tuple[pd.DataFrame, int]:
    """Raise on, or drop, rows with missing values in the used columns; return rows kept, dropped."""
    is_na = frame[used].isna()
    if not is_na.to_numpy().any():
        return frame, 0
    counts = is_na.sum()
    detail = ", ".join(f"{c!r}: {int(k)}" for c, k in counts.items() if k)
    rows = is_na.any(axis=1).to_numpy()
    if missing == "error":
        first = next(c for c, k in counts.items() if k)
        raise DataError(
            f"{field}.{roles[first]}: missing values in the used columns ({detail}; "
            f"{int(rows.sum())} of {len(frame)} rows affected). Set `missing: drop` to drop "
            "those rows, impute them beforehand, or leave the affected covariates out."
        )
    logger.info("%s: dropped %d of %d rows with missing values (%s); %d rows remain.",
                label, int(rows.sum()), len(rows), detail, int((~rows).sum()))
    return frame.loc[~rows], int(rows.sum())


def _event_array(col: pd.Series, where: str) -> np.ndarray:
    """The event column as int8, checked to be 0/1 (1 = event observed, 0 = censored)."""
    if pd.api.types.is_bool_dtype(col):
        col = col.astype(np.int8)
    bad = [v for v in _unique(col) if isinstance(v, (str, bytes)) or not (v == 0 or v == 1)]
    if bad:
        raise DataError(
            f"{where}: column {col.name!r} must be coded 0/1 but has {_show(bad)} (values "
            f"present: {_show(_unique(col))}). Recode so that 1 = event observed, "
            "0 = censored (e.g. status 1/2 -> status - 1; a censoring flag -> 1 - flag)."
        )
    return col.to_numpy(dtype=np.int8)


def _time_array(col: pd.Series, where: str, time_unit: str) -> np.ndarray:
    """The duration column as float64, checked to be numeric, finite and > 0."""
    if not pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
        raise DataError(
            f"{where}: column {col.name!r} is not numeric (dtype {col.dtype}, values "
            f"{_show(_unique(col))}). Give follow-up times as numbers in {time_unit}."
        )
    time = col.to_numpy(dtype=np.float64)
    bad = ~(np.isfinite(time) & (time > 0))
    if bad.any():
        raise DataError(
            f"{where}: {int(bad.sum())} row(s) of {col.name!r} are not finite and > 0 (row "
            f"index {_show(list(col.index[bad]))}; values {_show(time[bad].tolist())}). Times "
            "must be positive: a patient with an event on day 0 can be given a small positive "
            "time such as 0.5, or drop the row."
        )
    return time


# --------------------------------------------------------------------------- load_data


def load_data(
    source: Any,
    *,
    duration: str,
    event: str,
    covariates: Sequence[str] | str = (),
    filter: Mapping[str, Any] | None = None,  # noqa: A002 - the scenario's field name
    time_unit: str = "days",
    missing: str = "error",
    base_dir: str | os.PathLike | None = None,
    min_events: int = 10,
    field: str = "historical",
) -> TrialData:
    """Load historical time-to-event data and check it.

    Parameters
    ----------
    source : str, path or pd.DataFrame
        ``"builtin:NAME"`` (see :data:`BUILTIN_DATASETS`), a ``.csv`` / ``.parquet`` path
        (relative paths are resolved against ``base_dir`` when given), or a DataFrame.
    duration : str
        Column of follow-up times (finite, > 0), in ``time_unit``.
    event : str
        Column coded 1 = event observed, 0 = right censored (booleans accepted).
    covariates : sequence of str
        Numeric (or boolean) covariate columns, returned as float64 in this order.
    filter : dict, optional
        ``{column: value | [values]}``: equality / membership, applied first.
    time_unit : str
        Unit of ``duration``; a key of :data:`twinsim.models.TIME_UNITS`.
    missing : {"error", "drop"}
        What to do with missing values in the used columns.
    base_dir : path, optional
        Folder that relative paths are resolved against (the scenario file's folder).
    min_events : int
        Fewer events than this is an error.
    field : str
        Scenario field the arguments come from; prefixes every error message.

    Returns
    -------
    TrialData

    Raises
    ------
    DataError
        For any input problem; the message names the field, the value and the fix.

    Warns
    -----
    StatisticalWarning
        When events < 10 * (covariates + 2), or a covariate is constant.
    """
    if missing not in ("error", "drop"):
        raise DataError(f"{field}.missing: got {missing!r}; use 'error' (default) or 'drop'.")
    if time_unit not in TIME_UNITS:
        raise DataError(
            f"{field}.time_unit: got {time_unit!r}; use one of {', '.join(TIME_UNITS)}."
        )
    frame, label = _read_source(source, base_dir, f"{field}.data")
    frame = _apply_filter(frame, filter, f"{field}.filter")
    if filter:
        label += f" filter={dict(filter)!r}"

    covs = [covariates] if isinstance(covariates, str) else list(covariates)
    roles = {duration: "duration", event: "event", **{c: "covariates" for c in covs}}
    for name in (duration, event, *covs):
        if name not in frame.columns:
            raise _missing_column(f"{field}.{roles[name]}", name, frame.columns)
    if duration == event:
        raise DataError(f"{field}.event: {event!r} is also the duration column. Give the "
                        "0/1 event column (1 = event observed, 0 = censored).")
    clash = sorted({c for c in covs if covs.count(c) > 1 or c in (duration, event)})
    if clash:
        raise DataError(
            f"{field}.covariates: {clash!r} appear twice among duration "
            f"({duration!r}), event ({event!r}) and covariates {covs!r}. List each column once; "
            "the outcome must not also be a covariate."
        )

    frame, n_dropped = _handle_missing(frame, [duration, event, *covs], roles, missing, field,
                                       label)
    frame = frame.infer_objects()  # e.g. booleans left as object by a dropped NaN
    event_arr = _event_array(frame[event], f"{field}.event")
    time_arr = _time_array(frame[duration], f"{field}.duration", time_unit)
    for name in covs:
        col = frame[name]
        if not pd.api.types.is_numeric_dtype(col):
            raise DataError(
                f"{field}.covariates: column {name!r} is not numeric (dtype {col.dtype}, "
                f"values {_show(_unique(col))}). Code it as numbers first (e.g. 0/1 for two "
                "levels, or one 0/1 column per level); categorical covariates are not yet supported."
            )
    cov = frame[covs].astype(np.float64).reset_index(drop=True)
    inf_cols = [c for c in covs if not np.isfinite(cov[c].to_numpy()).all()]
    if inf_cols:
        raise DataError(
            f"{field}.covariates: column(s) {inf_cols!r} hold infinite values. Replace them "
            "with finite numbers or leave those covariates out."
        )

    n_events = int(event_arr.sum())
    if n_events < min_events:
        raise DataError(
            f"{field}.data: {label} has {n_events} events among {len(event_arr)} patients "
            f"(after filter and missing handling); at least min_events={min_events} are needed. "
            "Use more data (widen the filter, more follow-up) or lower min_events knowingly."
        )
    n_params = len(covs) + 2
    if n_events < 10 * n_params:
        warnings.warn(
            f"{field}: {n_events} events for about {n_params} model parameters (fewer than 10 "
            "per parameter); the fit will lean on the prior. Use fewer covariates or more data.",
            StatisticalWarning, stacklevel=2,
        )
    constant = [c for c in covs if cov[c].nunique() <= 1]
    if constant:
        warnings.warn(
            f"{field}.covariates: {constant!r} constant in the selected rows (e.g. the filter "
            "column); they carry no information. Leave them out.",
            StatisticalWarning, stacklevel=2,
        )
    return TrialData(time=time_arr, event=event_arr, covariates=cov, time_unit=time_unit,
                     source=label, n_dropped=n_dropped)
