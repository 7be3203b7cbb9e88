"""The ``historical`` section of the scenario schema: data sources (files, builtins,
CDISC ADaM, lists of sources), studies, ids and biomarkers.

Part of the contract documented in ``docs/scenario-reference.md``; re-exported by
:mod:`twinsim.scenario.schema`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal, Union

from pydantic import Field, field_validator, model_validator

from ._base import Scalar, TimeUnit, _Section



class BiomarkerSpec(_Section):
    """A longitudinal biomarker: wide columns or a long table (or, with ADaM, only its handling)."""

    name: str | None = Field(
        None, description="Name of the biomarker (e.g. `cd4`); required with `columns` or `long`, "
        "defaults to the ADLB PARAMCD (`adam.biomarker`) with ADaM input.",
    )
    columns: dict[str, float] | None = Field(
        None, description="Wide layout: `{column: visit time}` (visit time >= 0 in `visit_unit`), e.g. "
        "`{cd40: 0, cd420: 20, cd496: 96}`. A missing value is a visit without a measurement; it never drops the patient.",
    )
    long: str | None = Field(
        None, description="Long layout: path (CSV/Parquet/XPT, relative to the scenario file) of a table with "
        "one row per measurement, joined to the patients on `historical.id`.",
    )
    id: str | None = Field(None, description="Long layout: column of the long table holding the patient id.")
    time: str | None = Field(None, description="Long layout: column of the visit time (>= 0, in `visit_unit`).")
    value: str | None = Field(None, description="Long layout: column of the measured value (finite; missing = not measured).")
    visit_unit: TimeUnit = Field(
        "weeks", description="Unit of the visit times (converted to `historical.time_unit`). With ADaM, set `adam.visit_unit` instead."
    )
    after_followup: Literal["keep", "drop", "error"] = Field(
        "keep", description="Measurements dated after the patient's follow-up time (event or censoring): `keep` "
        "(default; counted in the log: a non-terminal event does not end the visits), `drop`, or `error`.",
    )

    @model_validator(mode="after")
    def _one_layout(self):
        if self.columns is not None and self.long is not None:
            raise ValueError("give `columns` (wide layout) or `long` (long layout), not both")
        long_cols = [f for f in ("id", "time", "value") if getattr(self, f) is not None]
        if self.long is not None:
            lacking = [f for f in ("id", "time", "value") if getattr(self, f) is None]
            if lacking:
                raise ValueError(f"the long layout needs `{'`, `'.join(lacking)}`: the columns of the long table")
        elif long_cols:
            raise ValueError(f"`{'`, `'.join(long_cols)}` belong to the long layout: add `long: PATH` or remove them")
        if self.columns is not None:
            if not self.columns:
                raise ValueError("`columns` is empty: give `{column: visit time}` for each measurement column")
            bad = {c: t for c, t in self.columns.items() if not (math.isfinite(t) and t >= 0)}
            if bad:
                raise ValueError(f"visit times must be finite and >= 0; got {bad}")
        if (self.columns is not None or self.long is not None) and not self.name:
            raise ValueError("`name` is required with `columns` or `long` (e.g. name: cd4)")
        return self

    @property
    def layout(self) -> str | None:
        """``"wide"``, ``"long"`` or None (the location comes from ADaM ``adlb``)."""
        return "wide" if self.columns is not None else "long" if self.long is not None else None


class AdamSource(_Section):
    """CDISC ADaM input: ADSL (one row per subject) joined to ADTTE on USUBJID."""

    adsl: str = Field(description="Path to ADSL (CSV, Parquet or SAS transport .xpt), relative to the scenario file.")
    adtte: str = Field(description="Path to ADTTE (CSV, Parquet or .xpt).")
    paramcd: str = Field(description="ADTTE PARAMCD of the endpoint; AVAL is the duration, CNSR = 1 censored (event = 1 - CNSR).")
    adlb: str | None = Field(None, description="Path to ADLB (or another BDS table) holding the biomarker: USUBJID, PARAMCD, AVISITN, AVAL.")
    biomarker: str | None = Field(None, description="PARAMCD of the biomarker in `adlb`; its AVISITN is the visit time in `visit_unit`.")
    visit_unit: TimeUnit = Field("weeks", description="Unit of ADLB's AVISITN.")

    @model_validator(mode="after")
    def _biomarker_pair(self):
        if (self.adlb is None) != (self.biomarker is None):
            raise ValueError("`adlb` and `biomarker` go together: the table and the PARAMCD of the biomarker in it")
        return self


class AdamData(_Section):
    """`data: {adam: {...}}`: the YAML form of CDISC ADaM input."""

    adam: AdamSource = Field(description="The ADaM tables; see `historical.data: adam`.")


class _DataField(_Section):
    """Validation shared by sections holding a `data` field (one form at a time, clear errors)."""

    @staticmethod
    def _validated(model, value, loc: tuple):
        from pydantic import ValidationError

        try:
            return model.model_validate(value)
        except ValidationError as err:  # re-raise with the entry's position in the location
            raise ValidationError.from_exception_data(err.title, [
                {"type": e["type"], "loc": (*loc, *e["loc"]), "input": e["input"], **({"ctx": e["ctx"]} if "ctx" in e else {})}
                for e in err.errors()
            ]) from None

    @classmethod
    def _one_source(cls, v, loc: tuple, named: bool):
        """Validate one source entry as the form its shape says; ``loc`` is its list position."""
        try:
            return cls._one_source_form(v, loc, named)
        except ValueError as err:
            if loc and not hasattr(err, "errors"):  # a plain ValueError: say which entry
                raise ValueError(f"entry {loc[0]}: {err}") from None
            raise

    @classmethod
    def _one_source_form(cls, v, loc: tuple, named: bool):
        if isinstance(v, dict) and "adam" in v:
            return cls._validated(AdamData, v, loc)
        if named and isinstance(v, dict) and "data" in v:
            return cls._validated(HistoricalSource, v, loc)
        if isinstance(v, dict):
            hint = "{name: LABEL, data: SOURCE} or " if named else ""
            raise ValueError(
                f"a data source is builtin:NAME, a file path or {hint}adam: {{adsl: PATH, adtte: PATH, paramcd: CODE}}; "
                f"got a mapping with keys {sorted(map(str, v))}"
            )
        if not isinstance(v, (str, AdamData, HistoricalSource)):
            raise ValueError(
                "a data source is builtin:NAME, a file path or adam: {adsl: PATH, adtte: PATH, paramcd: CODE}"
                + (", or a list of these" if not named else "") + f"; got {type(v).__name__} {v!r:.60}"
            )
        return v


class HistoricalSource(_DataField):
    """One study of a multi-source `historical.data` list, with its own label."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_. -]*$", description="Label of the study (TrialData.study_labels).")
    data: Union[str, AdamData] = Field(description="`builtin:NAME`, a file path, or `adam: {...}`.")

    @field_validator("data", mode="before")
    @classmethod
    def _form(cls, v):
        return cls._one_source(v, (), named=False)


class Historical(_DataField):
    """The patient-level data the generative model learns from."""

    data: Union[str, AdamData, list[Union[str, AdamData, HistoricalSource]]] = Field(
        description="`builtin:NAME` (actg175, gbsg2, lung), a CSV/Parquet/XPT path relative to the scenario file, "
        "`adam: {adsl, adtte, paramcd}`, or a list of these (several studies; an entry `{name: LABEL, data: ...}` "
        "labels its study, otherwise the label is its position 0, 1, ...)."
    )
    filter: dict[str, Union[Scalar, list[Scalar]]] = Field(
        default_factory=dict,
        description="Rows kept: `{column: value}` (equality) or `{column: [values]}` (membership). "
        "No expression is evaluated. With ADaM, columns of ADSL (e.g. `{ARMCD: ZDV}`).",
    )
    duration: str | None = Field(None, description="Column holding follow-up time (> 0); not used for ADaM (AVAL).")
    event: str | None = Field(
        None, description="Column holding the event indicator: 1 = event observed, 0 = censored; not used for ADaM (1 - CNSR)."
    )
    time_unit: TimeUnit = Field("days", description="Unit of `duration` (of AVAL with ADaM).")
    covariates: list[str] = Field(
        default_factory=list,
        description="Baseline covariates of the model: numeric columns (float64) or categorical ones (text or "
        "pandas Categorical; kept as Categorical, categories sorted).",
    )
    missing: Literal["error", "drop", "model"] = Field(
        "error", description="Rows with a missing value in a used column: `error` (default), `drop` (counted in "
        "`n_dropped`), or `model` (rows kept, missing covariates stay NaN for the covariate model; a missing "
        "duration or event is still an error).",
    )
    study: str | None = Field(
        None, description="Column labelling the study (or site) of each patient: codes 0..K-1 in sorted order of "
        "its values. Not with a list of sources (each entry is a study).",
    )
    id: str | None = Field(
        None, description="Patient id column, joining a long biomarker table (`biomarker.long`); USUBJID with ADaM."
    )
    biomarker: BiomarkerSpec | None = Field(
        None, description="A longitudinal biomarker: `{name, columns: {col: visit time}, visit_unit}` (wide) or "
        "`{name, long: PATH, id, time, value, visit_unit}` (long); with ADaM `adam.adlb` + `adam.biomarker`.",
    )

    @field_validator("data", mode="before")
    @classmethod
    def _form(cls, v):
        if isinstance(v, list):
            if not v:
                raise ValueError("the list of sources is empty: give at least one")
            return [cls._one_source(item, (i,), named=True) for i, item in enumerate(v)]
        return cls._one_source(v, (), named=False)

    @property
    def sources(self) -> list:
        """The source entries (str, AdamData or HistoricalSource), one per study."""
        return list(self.data) if isinstance(self.data, list) else [self.data]

    @property
    def has_biomarker(self) -> bool:
        """Whether a biomarker is named (wide or long layout, or ADaM ADLB)."""
        if self.biomarker is not None and self.biomarker.layout is not None:
            return True
        plain = [s.data if isinstance(s, HistoricalSource) else s for s in self.sources]
        return any(isinstance(s, AdamData) and s.adam.adlb is not None for s in plain)

    @property
    def study_labels(self) -> tuple[str, ...] | None:
        """Study labels of a list of sources (name or position), or None for a single source."""
        if not isinstance(self.data, list):
            return None
        return tuple(s.name if isinstance(s, HistoricalSource) else str(i) for i, s in enumerate(self.data))

    @model_validator(mode="after")
    def _columns_named(self):
        plain = [s.data if isinstance(s, HistoricalSource) else s for s in self.sources]
        adam = [s.adam for s in plain if isinstance(s, AdamData)]
        if len(adam) < len(plain):
            for f in ("duration", "event"):
                if getattr(self, f) is None:
                    raise ValueError(f"`{f}` is required: name the column of the data holding it")
        elif self.duration is not None or self.event is not None:
            raise ValueError("ADaM input takes the duration from ADTTE's AVAL and the event from CNSR (event = 1 - CNSR): "
                             "remove `duration` and `event`")
        labels = self.study_labels
        if labels is not None:
            dup = sorted({x for x in labels if labels.count(x) > 1})
            if dup:
                raise ValueError(f"study labels must be unique; repeated: {', '.join(dup)} (an unnamed entry is labelled by its position)")
            if self.study is not None:
                raise ValueError("give either `study` (a column) or a list of sources (one study each), not both")
        b = self.biomarker
        with_adlb = [a for a in adam if a.adlb is not None]
        if b is not None and b.layout is not None and with_adlb:
            raise ValueError("the biomarker is given twice: by `biomarker.columns`/`biomarker.long` and by `adam.adlb`; keep one")
        if b is not None and b.layout is None:
            if not with_adlb:
                raise ValueError("`biomarker` needs `columns` (wide) or `long` (long table), or ADaM `adam.adlb` + `adam.biomarker`")
            if "visit_unit" in b.model_fields_set:
                raise ValueError("with ADaM the unit of AVISITN is `adam.visit_unit`; remove `biomarker.visit_unit`")
        if b is not None and b.layout == "long" and self.id is None and len(adam) < len(plain):
            raise ValueError("a long biomarker table is joined on `id`: name the patient id column of the data")
        return self

    def with_absolute_paths(self, base_dir: str | Path) -> "Historical":
        """A copy whose file paths (data files, ADaM tables, long biomarker table) are absolute.

        ``builtin:NAME`` stays as it is; relative paths are resolved against ``base_dir``
        (the scenario file's folder).
        """
        def absolute(path: str | None) -> str | None:
            if path is None or path.startswith("builtin:"):
                return path
            p = Path(path).expanduser()
            return str(p if p.is_absolute() else (Path(base_dir) / p).resolve())

        def source(s):
            if isinstance(s, HistoricalSource):
                return s.model_copy(update={"data": source(s.data)})
            if isinstance(s, AdamData):
                a = s.adam
                return AdamData(adam=a.model_copy(update={k: absolute(getattr(a, k)) for k in ("adsl", "adtte", "adlb")}))
            return absolute(s)

        data = [source(s) for s in self.data] if isinstance(self.data, list) else source(self.data)
        update = {"data": data}
        if self.biomarker is not None and self.biomarker.long is not None:
            update["biomarker"] = self.biomarker.model_copy(update={"long": absolute(self.biomarker.long)})
        return self.model_copy(update=update)
