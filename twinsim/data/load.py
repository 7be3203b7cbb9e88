"""``load_data``: any supported input -> one checked :class:`TrialData`.

Event convention: ``event`` is 1 = event observed, 0 = right censored (ADaM's CNSR is
converted in :func:`twinsim.data.adam.event_from_cnsr`, nowhere else).

A call reads each source (a file, a builtin, a DataFrame or ADaM tables; several sources
are several studies), filters it, handles missing values, checks the outcome, then
combines the sources: covariates become float64 or Categorical columns, study codes are
assigned and the biomarker measurements are gathered from their layout.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..errors import DataError, StatisticalWarning
from ..models import TIME_UNITS, time_factor
from ._common import logger, show, unique
from .adam import ADAM_EVENT, ADAM_TIME, read_adam
from .biomarker import build_biomarker, check_spec, from_long, from_wide, join_ids
from .tables import apply_filter, event_array, read_table, require_columns, time_array
from .trialdata import TrialData

__all__ = ["load_data", "MISSING_POLICIES"]

#: What ``missing=`` accepts: see :func:`load_data`.
MISSING_POLICIES = ("error", "drop", "model")


@dataclass
class _Part:
    """One source after reading, filtering and missing-value handling (rows kept only)."""

    frame: pd.DataFrame          # RangeIndex; the used columns and the biomarker columns
    time: np.ndarray             # (n_i,) float64, > 0
    event: np.ndarray            # (n_i,) int8, 1 = event observed
    label: str
    where: str                   # field of the source, e.g. historical.data[1]
    n_dropped: int
    ids: pd.Series | None        # patient id per row (for joins and messages)
    ids_all: pd.Index | None     # every id of the source before the filter
    adlb: pd.DataFrame | None    # USUBJID, AVISITN, AVAL of the biomarker (ADaM)
    adlb_code: str | None
    visit_unit: str | None


def _entries(source: Any, field: str) -> tuple[list[tuple[str, Any, str]], bool]:
    """``[(study label, source, field), ...]`` and whether the input was a list of sources."""
    if not isinstance(source, (list, tuple)):
        return [("0", source, f"{field}.data")], False
    if not source:
        raise DataError(f"{field}.data: the list of sources is empty; give at least one.")
    out = []
    for i, item in enumerate(source):
        label = str(i)
        if isinstance(item, Mapping) and "data" in item and "adam" not in item:
            extra = sorted(set(map(str, item)) - {"name", "data"})
            if extra:
                raise DataError(f"{field}.data[{i}]: unknown key(s) {extra}; a labelled source is "
                                "{name: LABEL, data: SOURCE}.")
            label = str(item["name"]) if item.get("name") is not None else label
            item = item["data"]
        out.append((label, item, f"{field}.data[{label}]"))
    labels = [e[0] for e in out]
    dup = sorted({x for x in labels if labels.count(x) > 1})
    if dup:
        raise DataError(f"{field}.data: study labels must be unique; repeated {dup} (an unnamed source is "
                        "labelled by its position 0, 1, ...). Give each {name: LABEL, data: ...} its own name.")
    return out, True


def _is_adam(src: Any) -> bool:
    return isinstance(src, Mapping) and set(src) == {"adam"}


def _missing(frame: pd.DataFrame, roles: dict, strict: list, used: list, missing: str,
             where: str) -> tuple[pd.DataFrame, int]:
    """Drop rows with a missing value in ``used`` (``drop``) or raise for those in ``strict``."""
    cols = used if missing == "drop" else strict
    is_na = frame[cols].isna()
    if not is_na.to_numpy().any():
        return frame, 0
    counts = is_na.sum()
    detail = ", ".join(f"{c!r}: {int(k)}" for c, k in counts.items() if k)
    rows = is_na.any(axis=1).to_numpy()
    if missing != "drop":
        first = next(c for c, k in counts.items() if k)
        fix = ("`missing: model` keeps rows with missing covariates only; a missing duration, event or "
               "study cannot be modelled. Set `missing: drop` to drop those rows, or complete the data."
               if missing == "model" else
               "Set `missing: drop` to drop those rows, `missing: model` to keep missing covariates as "
               "NaN for the covariate model, impute them beforehand, or leave the affected covariates out.")
        raise DataError(f"{roles[first]}: missing values in the used columns ({detail}; {int(rows.sum())} "
                        f"of {len(frame)} rows affected). {fix}")
    logger.info("%s: dropped %d of %d rows with missing values (%s); %d rows remain.",
                where, int(rows.sum()), len(rows), detail, int((~rows).sum()))
    return frame.loc[~rows], int(rows.sum())


def _load_part(src: Any, where: str, *, duration, event, covs, flt, missing, time_unit, study,
               id_col, base_dir, field, several) -> _Part:
    adlb = code = unit = None
    tag = f" ({where})" if several else ""  # which source a column message is about
    if _is_adam(src):
        if id_col not in (None, "USUBJID"):
            raise DataError(f"{field}.id: with ADaM input the patient id is USUBJID; got {id_col!r}. "
                            "Remove `id` (or set it to USUBJID).")
        tables = read_adam(src["adam"], filter=flt, missing=missing, base_dir=base_dir, where=where,
                           filter_field=f"{field}.filter{tag}")
        frame, label, n_dropped, ids_all = tables.subjects, tables.label, tables.n_dropped, tables.ids_all
        dur, ev, id_col = ADAM_TIME, ADAM_EVENT, "USUBJID"
        roles = {dur: f"{where}.adam.adtte", ev: f"{where}.adam.adtte"}
        adlb, code, unit = tables.measurements, tables.biomarker, tables.visit_unit
    else:
        for name, value in (("duration", duration), ("event", event)):
            if value is None:
                raise DataError(f"{field}.{name}: required for {where} (not ADaM): name the column holding "
                                f"the {'follow-up time' if name == 'duration' else 'event (1 = event observed, 0 = censored)'}.")
        frame, label = read_table(src, base_dir, where)
        ids_all = None
        if id_col is not None:
            require_columns(frame, {id_col: f"{field}.id{tag}"})
            ids_all = pd.Index(frame[id_col].dropna())
        frame = apply_filter(frame, flt, f"{field}.filter{tag}")
        dur, ev, n_dropped = duration, event, 0
        roles = {dur: f"{field}.duration{tag}", ev: f"{field}.event{tag}"}
        if dur == ev:
            raise DataError(f"{field}.event: {ev!r} is also the duration column. Give the "
                            "0/1 event column (1 = event observed, 0 = censored).")
    if flt:
        label += f" filter={dict(flt)!r}"
    extra = [study] if study is not None else []
    roles.update({c: f"{field}.covariates{tag}" for c in covs})
    roles.update({c: f"{field}.study" for c in extra})
    require_columns(frame, {c: roles[c] for c in (dur, ev, *covs, *extra)})
    clash = sorted({c for c in covs if covs.count(c) > 1 or c in (dur, ev, *extra)})
    if clash:
        raise DataError(
            f"{field}.covariates: {clash!r} appear twice among duration ({dur!r}), event ({ev!r}), "
            f"study and covariates {covs!r}. List each column once; the outcome must not also be a covariate."
        )
    strict = [dur, ev, *extra] + (covs if missing == "error" else [])
    frame, dropped = _missing(frame, roles, strict, [dur, ev, *covs, *extra], missing, label)
    n_dropped += dropped
    if frame.empty:
        raise DataError(f"{where}: no rows left after dropping those with missing values; use fewer "
                        "covariates or impute.")
    frame = frame.infer_objects()  # e.g. booleans left as object by a dropped NaN
    event_arr = event_array(frame[ev], roles[ev])
    time_arr = time_array(frame[dur], roles[dur], time_unit)
    frame = frame.reset_index(drop=True)
    ids = None
    if id_col is not None:
        ids = frame[id_col]
        bad = ids.isna() | ids.duplicated(keep=False)
        if bad.any():
            raise DataError(
                f"{field}.id: column {id_col!r} must identify each patient of {where} once; "
                f"{int(ids.isna().sum())} missing and repeated ids {show(unique(ids[ids.duplicated()]))}."
            )
    return _Part(frame, time_arr, event_arr, label, where, n_dropped, ids, ids_all, adlb, code, unit)


def _covariate(cols: Sequence[pd.Series], name: str, where: str, labels: Sequence[str]) -> pd.Series:
    """One covariate over all sources: float64, or Categorical with sorted observed categories."""
    kinds = []
    for col in cols:
        present = col.dropna()
        if isinstance(col.dtype, pd.CategoricalDtype):
            kinds.append("categorical")
        elif pd.api.types.is_bool_dtype(col) or pd.api.types.is_numeric_dtype(col) or (
                len(present) and all(isinstance(v, (bool, np.bool_)) for v in present)):  # booleans with NaN
            kinds.append("numeric" if len(present) else "empty")
        elif (pd.api.types.is_object_dtype(col) or pd.api.types.is_string_dtype(col)) and all(
                isinstance(v, str) for v in present):
            kinds.append("categorical" if len(present) else "empty")
        else:
            raise DataError(
                f"{where}: column {name!r} (dtype {col.dtype}, values {show(unique(col))}) is neither "
                "numeric nor text. Give numbers (or booleans) for a numeric covariate and text (or a "
                "pandas Categorical) for a categorical one."
            )
    if {"numeric", "categorical"} <= set(kinds):
        which = {k: [lab for lab, kk in zip(labels, kinds) if kk == k] for k in ("numeric", "categorical")}
        raise DataError(
            f"{where}: column {name!r} is numeric in source(s) {which['numeric']} but text in "
            f"{which['categorical']}. Code it the same way in every source."
        )
    if "categorical" in kinds:
        values = pd.concat([c.astype(object) for c in cols], ignore_index=True)
        values = values.where(values.notna(), None)
        try:
            categories = sorted(set(values.dropna()))
        except TypeError:
            raise DataError(f"{where}: the categories of {name!r} mix types ({show(unique(values.astype(str)))}); "
                            "give them all as text.") from None
        return pd.Series(pd.Categorical(values, categories=categories), name=name)
    out = pd.concat([c.astype(np.float64) for c in cols], ignore_index=True).rename(name)
    if np.isinf(out.to_numpy()).any():
        raise DataError(f"{where}: column(s) [{name!r}] hold infinite values. Replace them with finite "
                        "numbers (missing values as empty cells / NaN) or leave those covariates out.")
    return out


def _label(v: Any) -> str:
    v = v.item() if isinstance(v, np.generic) else v
    return str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)


def _biomarker(parts: list[_Part], spec: dict | None, time: np.ndarray, time_unit: str, base_dir,
               field: str):
    """Gather the measurements of every source into one Biomarker (None without one)."""
    with_adlb = [p for p in parts if p.adlb is not None]
    if spec is None and not with_adlb:
        return None
    spec = spec or check_spec({}, f"{field}.biomarker")
    where = f"{field}.biomarker"
    if spec["layout"] is not None and with_adlb:
        raise DataError(f"{where}: the biomarker is given twice, by `{spec['layout']}` and by ADaM `adlb`; keep one.")
    if spec["layout"] is None and not with_adlb:
        raise DataError(f"{where}: give `columns` (wide) or `long` (long table), or ADaM `adlb` + `biomarker`.")
    name = spec["name"]
    if name is None:
        codes = sorted({p.adlb_code for p in with_adlb})
        if len(codes) > 1:
            raise DataError(f"{where}.name: the sources' ADLB PARAMCDs differ ({codes}); name the biomarker.")
        name = codes[0]
    long = None
    if spec["layout"] == "long":
        if any(p.ids is None for p in parts):
            raise DataError(f"{field}.id: a long biomarker table is joined on the patient id: name the id column "
                            "of the data (`id: COLUMN`).")
        table, _ = read_table(spec["long"], base_dir, f"{where}.long")
        long = from_long(table, spec["id"], spec["time"], spec["value"], where)
        owners = pd.concat([pd.Series(p.ids_all.unique()) for p in parts], ignore_index=True)
        unknown = unique(long.loc[~long["id"].isin(owners), "id"])
        if unknown:
            raise DataError(f"{where}.long: {len(unknown)} id(s) of the long table are not patients of the data "
                            f"({show(unknown)}). Check `{field}.id` and `{where}.id` name matching columns of the "
                            "same type (text vs number).")
        shared = unique(owners[owners.duplicated()])
        if shared:
            raise DataError(f"{field}.id: ids {show(shared)} occur in several sources, so the long table cannot "
                            "tell whose measurements they are. Make the ids unique across sources.")
    rows, times, values, offset = [], [], [], 0
    for p in parts:
        if spec["layout"] == "wide":
            m = from_wide(p.frame, spec["columns"], f"{where}.columns")
            unit = spec["visit_unit"]
        elif spec["layout"] == "long":
            m = join_ids(long.loc[long["id"].isin(p.ids_all)], p.ids, f"{where}.long")
            unit = spec["visit_unit"]
        elif p.adlb is not None:
            raw = from_long(p.adlb, "USUBJID", "AVISITN", "AVAL", f"{p.where}.adam.adlb")
            m, unit = join_ids(raw, p.ids, f"{p.where}.adam.adlb"), p.visit_unit
        else:
            offset += len(p.time)
            continue
        rows.append(m["row"].to_numpy(dtype=np.int64) + offset)
        times.append(m["visit"].to_numpy(dtype=np.float64) * time_factor(unit, time_unit))
        values.append(m["value"].to_numpy(dtype=np.float64))
        offset += len(p.time)
    who: list = []
    for p in parts:
        who += list(p.ids) if p.ids is not None else list(range(len(who), len(who) + len(p.time)))
    return build_biomarker(name, np.concatenate(rows), np.concatenate(times), np.concatenate(values),
                           time, who, spec["after_followup"], where)


def load_data(
    source: Any,
    *,
    duration: str | None = None,
    event: str | None = None,
    covariates: Sequence[str] | str = (),
    filter: Mapping[str, Any] | None = None,  # noqa: A002 - the scenario's field name
    time_unit: str = "days",
    missing: str = "error",
    study: str | None = None,
    id: str | None = None,  # noqa: A002 - the scenario's field name
    biomarker: Mapping[str, Any] | None = None,
    base_dir: str | os.PathLike | None = None,
    min_events: int = 10,
    field: str = "historical",
) -> TrialData:
    """Load historical time-to-event data (one or several sources) and check it.

    Parameters
    ----------
    source : str, path, pd.DataFrame, mapping or list
        ``"builtin:NAME"`` (see :data:`BUILTIN_DATASETS`), a ``.csv`` / ``.parquet`` /
        ``.xpt`` path (relative paths are resolved against ``base_dir``), a DataFrame,
        ``{"adam": {"adsl": PATH, "adtte": PATH, "paramcd": CODE, ...}}`` (CDISC ADaM,
        see :func:`twinsim.data.adam.read_adam`), or a list of these, each a study
        (``{"name": LABEL, "data": SOURCE}`` labels one; otherwise its position is its label).
    duration : str
        Column of follow-up times (finite, > 0), in ``time_unit``; not for ADaM (AVAL).
    event : str
        Column coded 1 = event observed, 0 = right censored (booleans accepted); not for
        ADaM (event = 1 - CNSR).
    covariates : sequence of str
        Baseline covariates, in this order: numeric or boolean columns become float64,
        text or Categorical columns become Categorical with sorted observed categories.
    filter : dict, optional
        ``{column: value | [values]}``: equality / membership, applied first (to ADSL
        for ADaM), to every source.
    time_unit : str
        Unit of ``duration``; a key of :data:`twinsim.models.TIME_UNITS`.
    missing : {"error", "drop", "model"}
        Rows with a missing value in a used column: an error; dropped (counted in
        ``n_dropped``); or, for ``"model"``, kept with NaN in the covariates (a missing
        duration, event or study is still an error).
    study : str, optional
        Column labelling each patient's study (single source only); codes 0..K-1 follow
        the sorted values.
    id : str, optional
        Patient id column, joining a long biomarker table; USUBJID for ADaM.
    biomarker : mapping, optional
        ``{name, columns: {column: visit time}, visit_unit}`` (wide), ``{name, long: PATH or
        DataFrame, id, time, value, visit_unit}`` (long), or only ``{after_followup}`` /
        ``{name}`` with ADaM ``adlb``; ``after_followup`` is ``keep`` (default), ``drop``
        or ``error`` for measurements dated after the patient's follow-up time.
    base_dir : path, optional
        Folder that relative paths are resolved against (the scenario file's folder).
    min_events : int
        Fewer events than this is an error.
    field : str
        Scenario field the arguments come from; prefixes every error message.

    Returns
    -------
    TrialData
        With ``study``/``study_labels`` for several studies and ``biomarker`` when given.

    Raises
    ------
    DataError
        For any input problem; the message names the field, the value and the fix.

    Warns
    -----
    StatisticalWarning
        When events < 10 * (model parameters), or a covariate is constant.
    """
    if missing not in MISSING_POLICIES:
        raise DataError(f"{field}.missing: got {missing!r}; use 'error' (default), 'drop' or 'model'.")
    if time_unit not in TIME_UNITS:
        raise DataError(f"{field}.time_unit: got {time_unit!r}; use one of {', '.join(TIME_UNITS)}.")
    entries, several = _entries(source, field)
    if several and study is not None:
        raise DataError(f"{field}.study: give either a study column or a list of sources (one study each), "
                        "not both.")
    covs = [covariates] if isinstance(covariates, str) else list(covariates)
    spec = check_spec(biomarker, f"{field}.biomarker") if biomarker is not None else None
    kw = dict(duration=duration, event=event, covs=covs, flt=filter, missing=missing, time_unit=time_unit,
              study=study, id_col=id, base_dir=base_dir, field=field, several=several)
    parts = [_load_part(src, where, **kw) for _, src, where in entries]
    labels = [e[0] for e in entries]

    time = np.concatenate([p.time for p in parts])
    event_arr = np.concatenate([p.event for p in parts])
    cov = pd.DataFrame({c: _covariate([p.frame[c] for p in parts], c, f"{field}.covariates", labels)
                        for c in covs}, index=pd.RangeIndex(len(time)))
    empty = [c for c in covs if cov[c].isna().all()]
    if empty:
        raise DataError(f"{field}.covariates: {empty!r} have no observed value in the selected rows; "
                        "leave them out.")
    if several:
        codes = np.concatenate([np.full(len(p.time), i, dtype=np.int64) for i, p in enumerate(parts)])
        study_labels = tuple(labels)
        label = "; ".join(f"[{lab}] {p.label}" for lab, p in zip(labels, parts))
    elif study is not None:
        values = parts[0].frame[study]
        levels = unique(values)
        study_labels = tuple(_label(v) for v in levels)
        if len(set(study_labels)) < len(study_labels):
            raise DataError(f"{field}.study: values {show(levels)} of {study!r} give repeated labels as text.")
        codes = pd.Categorical(values, categories=levels).codes.astype(np.int64)
        label = parts[0].label
    else:
        codes, study_labels, label = None, (), parts[0].label
    bio = _biomarker(parts, spec, time, time_unit, base_dir, field)

    n_events = int(event_arr.sum())
    if n_events < min_events:
        raise DataError(
            f"{field}.data: {label} has {n_events} events among {len(event_arr)} patients "
            f"(after filter and missing handling); at least min_events={min_events} are needed. "
            "Use more data (widen the filter, more follow-up) or lower min_events knowingly."
        )
    n_params = 2 + sum(len(cov[c].cat.categories) - 1 if isinstance(cov[c].dtype, pd.CategoricalDtype) else 1
                       for c in covs)
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
    return TrialData(time=time, event=event_arr, covariates=cov, time_unit=time_unit, source=label,
                     n_dropped=sum(p.n_dropped for p in parts), biomarker=bio, study=codes,
                     study_labels=study_labels)
