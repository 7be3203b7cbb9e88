"""The checked containers: :class:`TrialData` (one row per patient) and :class:`Biomarker`.

Event convention: ``TrialData.event`` is 1 = event observed, 0 = right censored.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError
from ..models import TIME_UNITS
from ._common import show

__all__ = ["TrialData", "Biomarker"]

_HASH_FORMAT = "twinsim.TrialData/1"


def _readonly(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


def _json_value(v: Any) -> Any:
    """A category value as JSON keeps it (1 and "1" differ); anything else as its str."""
    v = v.item() if isinstance(v, np.generic) else v
    return v if isinstance(v, (str, int, float, bool)) else str(v)


# --------------------------------------------------------------------------- Biomarker


@dataclass(frozen=True, eq=False)
class Biomarker:
    """Longitudinal measurements of one biomarker, in long layout.

    Only measurements actually observed are rows: a visit without a value has no row.
    Rows are stored sorted by patient, then time (the constructor sorts), so the same
    measurements give the same arrays whatever layout they were read from.

    Attributes
    ----------
    name : str
        Name of the biomarker (e.g. ``"cd4"``).
    patient : np.ndarray, shape (m,), int64
        Row index of the patient in the :class:`TrialData` holding this biomarker.
    time : np.ndarray, shape (m,), float64
        Visit time, finite and >= 0, in the TrialData's ``time_unit`` (from its time 0).
    value : np.ndarray, shape (m,), float64
        Measured value, finite.

    Raises
    ------
    DataError
        Unequal lengths, negative patient indices, negative or non-finite times,
        non-finite values, or two measurements of one patient at the same time.
    """

    name: str
    patient: np.ndarray
    time: np.ndarray
    value: np.ndarray

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise DataError(f"Biomarker.name: give a non-empty string; got {self.name!r}.")
        patient = np.asarray(self.patient).reshape(-1)
        time = np.array(self.time, dtype=np.float64).reshape(-1)
        value = np.array(self.value, dtype=np.float64).reshape(-1)
        if not (patient.size == time.size == value.size):
            raise DataError(
                f"Biomarker {self.name!r}: patient, time and value need one entry per measurement; "
                f"got {patient.size}, {time.size} and {value.size}."
            )
        integral = np.issubdtype(patient.dtype, np.integer) or (
            np.issubdtype(patient.dtype, np.floating) and bool(np.isfinite(patient).all())
            and np.array_equal(patient, np.round(patient)))
        if patient.size and (not integral or patient.min() < 0):
            raise DataError(
                f"Biomarker {self.name!r}.patient: must hold row indices (integers >= 0); got "
                f"{show(np.unique(patient))}."
            )
        patient = patient.astype(np.int64)
        bad = ~(np.isfinite(time) & (time >= 0))
        if bad.any():
            raise DataError(
                f"Biomarker {self.name!r}.time: {int(bad.sum())} visit time(s) are negative or not "
                f"finite ({show(time[bad].tolist())}); visit times count from the patient's time 0 "
                "and must be >= 0. Drop pre-baseline visits or shift the visit numbering."
            )
        bad = ~np.isfinite(value)
        if bad.any():
            raise DataError(
                f"Biomarker {self.name!r}.value: {int(bad.sum())} value(s) are not finite "
                f"({show(value[bad].tolist())}); give a missing measurement as no row (or NaN "
                "in a wide column), never as infinity."
            )
        order = np.lexsort((time, patient))
        patient, time, value = patient[order], time[order], value[order]
        dup = (np.diff(patient) == 0) & (np.diff(time) == 0)
        if dup.any():
            rows = np.flatnonzero(dup)
            raise DataError(
                f"Biomarker {self.name!r}: {int(dup.sum())} patient(s) have two measurements at the "
                f"same time (patient row, time: {show(list(zip(patient[rows].tolist(), time[rows].tolist())))}). "
                "Keep one value per patient and visit (e.g. the mean, or the first)."
            )
        object.__setattr__(self, "patient", _readonly(patient))
        object.__setattr__(self, "time", _readonly(time))
        object.__setattr__(self, "value", _readonly(value))

    @property
    def m(self) -> int:
        """Number of measurements."""
        return int(self.patient.size)

    def counts(self) -> pd.Series:
        """Number of measurements at each visit time (index: time, sorted)."""
        return pd.Series(self.time).value_counts().sort_index().rename("measurements")

    def to_frame(self) -> pd.DataFrame:
        """The measurements as a DataFrame with columns ``patient``, ``time``, ``value``."""
        return pd.DataFrame({"patient": self.patient.copy(), "time": self.time.copy(),
                             "value": self.value.copy()})

    def subset(self, keep: np.ndarray) -> "Biomarker":
        """The measurements where the boolean mask ``keep`` (shape (m,)) is true."""
        keep = np.asarray(keep, dtype=bool)
        return Biomarker(self.name, self.patient[keep], self.time[keep], self.value[keep])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Biomarker):
            return NotImplemented
        return (self.name == other.name and np.array_equal(self.patient, other.patient)
                and np.array_equal(self.time, other.time)
                and np.array_equal(self.value, other.value))

    __hash__ = None  # mutable-free but array-valued: hash a TrialData instead

    def __repr__(self) -> str:
        n_pat = int(np.unique(self.patient).size)
        return f"Biomarker(name={self.name!r}, measurements={self.m}, patients={n_pat})"


# --------------------------------------------------------------------------- covariates


def _covariate_column(col: pd.Series, name: str) -> pd.Series:
    """One covariate as float64 (numbers, booleans) or a Categorical with sorted categories."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        cats = list(col.cat.categories)
        try:
            ordered = sorted(cats)
        except TypeError:
            ordered = sorted(cats, key=str)
        return col.cat.reorder_categories(ordered, ordered=False) if ordered != cats or col.cat.ordered else col
    if pd.api.types.is_bool_dtype(col) or pd.api.types.is_numeric_dtype(col):
        out = col.astype(np.float64)
        if np.isinf(out.to_numpy()).any():
            raise DataError(
                f"TrialData.covariates: column {name!r} holds infinite values; replace them with finite "
                "numbers (or NaN for missing, with missing: model) or leave the covariate out."
            )
        return out
    if pd.api.types.is_object_dtype(col) or pd.api.types.is_string_dtype(col):
        values = col.dropna()
        if all(isinstance(v, str) for v in values):
            return pd.Series(pd.Categorical(col, categories=sorted(set(values))), name=col.name)
    raise DataError(
        f"TrialData.covariates: column {name!r} (dtype {col.dtype}, values {show(pd.unique(col.dropna()))}) "
        "is neither numeric nor categorical; give numbers, booleans, text or a pandas Categorical."
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
    covariates : pd.DataFrame, shape (n, p)
        Baseline covariates in the requested order, with a RangeIndex. Numeric columns
        are float64 (NaN = missing, allowed; infinity is not); categorical columns are
        pandas Categorical with sorted categories (NaN = missing).
    time_unit : str
        A key of :data:`twinsim.models.TIME_UNITS`.
    source : str
        Human-readable origin, e.g. ``"builtin:actg175 filter={'arms': 0}"``.
    n_dropped : int
        Rows dropped for missing values (``missing="drop"``).
    biomarker : Biomarker or None
        Longitudinal measurements; ``biomarker.patient`` indexes the rows here and
        ``biomarker.time`` is in ``time_unit``.
    study : np.ndarray, shape (n,), int64, or None
        Study of each patient, codes 0..K-1 (K >= 2, every code used); None for one study.
    study_labels : tuple of str, length K
        Label of each study code; ``()`` when ``study`` is None.

    Notes
    -----
    The constructor copies and checks its inputs (so a TrialData is always valid) and
    makes the arrays read-only; treat ``covariates`` as read-only too. A ``study`` with a
    single label is stored as ``study=None, study_labels=()``. Equality compares all
    fields (arrays by value); :meth:`hash` digests the content only (not ``source`` or
    ``n_dropped``).
    """

    time: np.ndarray
    event: np.ndarray
    covariates: pd.DataFrame
    time_unit: str
    source: str
    n_dropped: int = 0
    biomarker: Biomarker | None = None
    study: np.ndarray | None = None
    study_labels: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        time = np.array(self.time, dtype=np.float64).reshape(-1)
        event = np.asarray(self.event)
        if time.size != event.size or not np.isin(event, (0, 1)).all():
            raise DataError(
                "TrialData.event: must hold one 0/1 value per time (1 = event observed, "
                f"0 = censored); got {event.size} values ({show(np.unique(event))}) for "
                f"{time.size} times. Build TrialData with load_data, which says what to fix."
            )
        event = np.array(event, dtype=np.int8).reshape(-1)
        if not (np.isfinite(time) & (time > 0)).all():
            raise DataError("TrialData.time: every time must be finite and > 0; use load_data.")
        cov = pd.DataFrame(self.covariates)
        if cov.shape[1] == 0:
            cov = pd.DataFrame(index=pd.RangeIndex(time.size))
        reserved = {"time", "event"} | ({"study"} if self.study is not None else set())
        names = [str(c) for c in cov.columns]
        if len(cov) != time.size or reserved & set(names) or len(set(names)) < len(names):
            raise DataError(
                f"TrialData.covariates: need {time.size} rows, unique column names and no column named "
                f"{' or '.join(map(repr, sorted(reserved)))}; got {len(cov)} rows, columns "
                f"{list(cov.columns)}. Rename or re-slice."
            )
        cov = cov.reset_index(drop=True)
        cov = pd.DataFrame({n: _covariate_column(cov[c], n) for c, n in zip(cov.columns, names)},
                           index=pd.RangeIndex(time.size))
        if self.time_unit not in TIME_UNITS:
            raise DataError(
                f"TrialData.time_unit: {self.time_unit!r} is not a time unit; use one of "
                f"{', '.join(TIME_UNITS)}."
            )
        study, labels = self._checked_study(time.size)
        if self.biomarker is not None:
            b = self.biomarker
            if not isinstance(b, Biomarker):
                raise DataError(f"TrialData.biomarker: expected a Biomarker or None; got {type(b).__name__}.")
            if b.m and b.patient.max() >= time.size:
                raise DataError(
                    f"TrialData.biomarker: patient indices must be rows 0..{time.size - 1}; got up to "
                    f"{int(b.patient.max())}. Index the measurements by the row of the patient."
                )
        object.__setattr__(self, "time", _readonly(time))
        object.__setattr__(self, "event", _readonly(event))
        object.__setattr__(self, "covariates", cov)
        object.__setattr__(self, "n_dropped", int(self.n_dropped))
        object.__setattr__(self, "study", study)
        object.__setattr__(self, "study_labels", labels)

    def _checked_study(self, n: int) -> tuple[np.ndarray | None, tuple[str, ...]]:
        labels = tuple(self.study_labels)
        if self.study is None:
            if labels:
                raise DataError("TrialData.study_labels: given without study codes; give both or neither.")
            return None, ()
        study = np.asarray(self.study)
        k = len(labels)
        if (study.shape != (n,) or not np.issubdtype(study.dtype, np.integer)
                or not all(isinstance(x, str) for x in labels) or len(set(labels)) < k
                or not np.array_equal(np.unique(study), np.arange(k))):
            raise DataError(
                f"TrialData.study: need one integer code per patient ({n}), taking every value 0..K-1 "
                f"for K unique string labels; got shape {study.shape}, dtype {study.dtype}, codes "
                f"{show(np.unique(study))} and labels {labels!r}. Build it with load_data(study=...)."
            )
        if k == 1:
            return None, ()
        return _readonly(study.astype(np.int64)), labels

    # ------------------------------------------------------------------ views

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

    @property
    def categorical(self) -> tuple[str, ...]:
        """Names of the categorical covariates (pandas Categorical columns), in order."""
        return tuple(c for c in self.covariates.columns
                     if isinstance(self.covariates[c].dtype, pd.CategoricalDtype))

    @property
    def n_studies(self) -> int:
        """Number of studies (1 when ``study`` is None)."""
        return max(len(self.study_labels), 1)

    def hash(self) -> str:
        """SHA-256 hex digest of the content (time, event, covariates, time_unit, ...).

        The bytes are a JSON header (format tag, time unit, n, covariate names) followed
        by little-endian float64 times, int8 events and float64 covariate columns, so the
        digest is stable across runs, machines and file formats.  Content added since
        the first format enters only when present, so digests of data without it are
        unchanged: categorical columns (categories in the header, int64 codes with -1 =
        missing), the biomarker (name and m in the header; int64 patients, float64 times
        and values) and studies (labels in the header; int64 codes).  A missing numeric
        value hashes as the one canonical NaN.  ``source`` and ``n_dropped`` are not
        part of it.
        """
        info: dict[str, Any] = {"format": _HASH_FORMAT, "time_unit": self.time_unit, "n": self.n,
                                "covariates": list(self.covariate_names)}
        cats = {c: [_json_value(v) for v in self.covariates[c].cat.categories] for c in self.categorical}
        if cats:
            info["categories"] = cats
        if self.biomarker is not None:
            info["biomarker"] = {"name": self.biomarker.name, "m": self.biomarker.m}
        if self.study is not None:
            info["study_labels"] = list(self.study_labels)
        header = json.dumps(info, sort_keys=True, separators=(",", ":")).encode("utf-8")
        h = hashlib.sha256()
        h.update(len(header).to_bytes(8, "little") + header)
        h.update(np.ascontiguousarray(self.time, dtype="<f8").tobytes())
        h.update(np.ascontiguousarray(self.event, dtype="i1").tobytes())
        for name in self.covariate_names:
            col = self.covariates[name]
            if name in cats:
                h.update(np.ascontiguousarray(col.cat.codes.to_numpy(), "<i8").tobytes())
                continue
            x = col.to_numpy() + 0.0  # + 0.0 turns -0.0 into 0.0
            x = np.where(np.isnan(x), np.nan, x)  # one NaN bit pattern
            h.update(np.ascontiguousarray(x, "<f8").tobytes())
        if self.biomarker is not None:
            b = self.biomarker
            for arr, dt in ((b.patient, "<i8"), (b.time + 0.0, "<f8"), (b.value + 0.0, "<f8")):
                h.update(np.ascontiguousarray(arr, dt).tobytes())
        if self.study is not None:
            h.update(np.ascontiguousarray(self.study, "<i8").tobytes())
        return h.hexdigest()

    def to_frame(self) -> pd.DataFrame:
        """A DataFrame with columns ``time``, ``event`` (1 = event observed), ``study``
        (labels, as a Categorical, only when there are several studies), then covariates."""
        out = pd.DataFrame({"time": self.time.copy(), "event": self.event.copy()})
        if self.study is not None:
            out["study"] = pd.Categorical.from_codes(self.study, categories=list(self.study_labels))
        return pd.concat([out, self.covariates.copy()], axis=1)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TrialData):
            return NotImplemented
        same_study = (self.study is None and other.study is None) or (
            self.study is not None and other.study is not None
            and np.array_equal(self.study, other.study))
        return (
            (self.time_unit, self.source, self.n_dropped, self.study_labels)
            == (other.time_unit, other.source, other.n_dropped, other.study_labels)
            and same_study
            and self.biomarker == other.biomarker
            and np.array_equal(self.time, other.time)
            and np.array_equal(self.event, other.event)
            and self.covariates.equals(other.covariates)
        )

    def __hash__(self) -> int:
        return int(self.hash()[:16], 16)

    def __repr__(self) -> str:
        extra = ""
        if self.biomarker is not None:
            extra += f", biomarker={self.biomarker.name!r} ({self.biomarker.m} measurements)"
        if self.study is not None:
            extra += f", studies={list(self.study_labels)}"
        return (f"TrialData(n={self.n}, events={self.n_events}, covariates="
                f"{list(self.covariate_names)}, time_unit={self.time_unit!r}, "
                f"source={self.source!r}, n_dropped={self.n_dropped}{extra})")
