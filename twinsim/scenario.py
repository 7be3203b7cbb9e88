"""Scenario files: YAML -> validated, frozen :class:`Scenario`, overrides and the grid.

The field names are the contract of ``docs/scenario-reference.md`` (generated from these
models by ``python -m twinsim.scenario``).  Everything here is inert: no data are read and
no random numbers drawn.  Errors are :class:`~twinsim.errors.ScenarioError` with a
one-paragraph message naming the field, the value received and the fix.
"""

from __future__ import annotations

import copy
import difflib
import itertools
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Literal, Sequence, Union

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from .errors import ScenarioError
from .models import OUTCOME_MODELS, TIME_UNITS, get_outcome_model

__all__ = [
    "Scenario",
    "Historical",
    "AdamSource",
    "Model",
    "Inference",
    "Control",
    "Trial",
    "Accrual",
    "Dropout",
    "Cut",
    "Effect",
    "Drift",
    "Design",
    "Analysis",
    "Grid",
    "load_scenario",
    "parse_scenario",
    "apply_override",
    "build_grid",
    "scenario_reference",
]

TimeUnit = Literal["days", "weeks", "months", "years"]
assert set(TimeUnit.__args__) == set(TIME_UNITS)  # keep the two lists in step
Scalar = Union[bool, int, float, str]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------- sections


class AdamSource(_Section):
    """CDISC ADaM input: ADSL (one row per subject) joined to ADTTE on USUBJID."""

    adsl: str = Field(description="Path to ADSL (CSV or Parquet), relative to the scenario file.")
    adtte: str = Field(description="Path to ADTTE (CSV or Parquet).")
    paramcd: str = Field(description="ADTTE PARAMCD of the endpoint; AVAL is the duration, CNSR = 1 censored.")


class Historical(_Section):
    """The patient-level data the generative model learns from."""

    data: Union[str, AdamSource] = Field(
        description="`builtin:NAME` (actg175, gbsg2, lung), a CSV/Parquet path relative to "
        "the scenario file, or `adam: {adsl, adtte, paramcd}`."
    )
    filter: dict[str, Union[Scalar, list[Scalar]]] = Field(
        default_factory=dict,
        description="Rows kept: `{column: value}` (equality) or `{column: [values]}` (membership). "
        "No expression is evaluated.",
    )
    duration: str | None = Field(None, description="Column holding follow-up time (> 0).")
    event: str | None = Field(None, description="Column holding the event indicator: 1 = event observed, 0 = censored.")
    time_unit: TimeUnit = Field("days", description="Unit of `duration`.")
    covariates: list[str] = Field(default_factory=list, description="Baseline covariates (numeric columns) of the model.")
    missing: Literal["error", "drop"] = Field(
        "error", description="Rows with a missing value in a used column: `error` (default) or `drop` (reported)."
    )

    @model_validator(mode="after")
    def _columns_named(self):
        if isinstance(self.data, str):
            for f in ("duration", "event"):
                if getattr(self, f) is None:
                    raise ValueError(f"`{f}` is required: name the column of the data holding it")
        return self


class Inference(_Section):
    """Posterior inference settings."""

    method: Literal["nuts"] = Field("nuts", description="Inference algorithm (NUTS; SVI arrives with issue 3).")
    chains: int = Field(2, ge=1, le=16, description="Independent Markov chains.")
    warmup: int = Field(500, ge=1, description="Warm-up (adaptation) iterations per chain.")
    draws: int = Field(500, ge=1, description="Posterior draws kept per chain.")
    target_accept: float = Field(0.8, gt=0, lt=1, description="NUTS target acceptance probability; raise towards 0.95 on divergences.")


class Model(_Section):
    """The Bayesian generative model of the historical patients."""

    outcome: str = Field("weibull", description="Outcome family: " + ", ".join(OUTCOME_MODELS) + ".")
    covariates: Literal["copula"] = Field("copula", description="Generator of synthetic baseline covariates.")
    inference: Inference = Field(default_factory=Inference)
    posterior: str | None = Field(
        None, description="Reuse a posterior saved by `twinsim fit` (path relative to the scenario file) instead of fitting."
    )

    @field_validator("outcome")
    @classmethod
    def _known_outcome(cls, v):
        get_outcome_model(v)  # raises ModelError with the list of families
        return v


class Control(_Section):
    """An assumed control distribution, for planning without data (no covariates)."""

    distribution: Literal["exponential", "weibull"]
    median: float | None = Field(None, gt=0, description="Median time to event, in `trial.time_unit`.")
    scale: float | None = Field(None, gt=0, description="Scale (instead of median), in `trial.time_unit`.")
    shape: float | None = Field(None, gt=0, description="Weibull shape (required for weibull; 1 for exponential).")

    @model_validator(mode="after")
    def _one_location(self):
        if (self.median is None) == (self.scale is None):
            raise ValueError("give exactly one of `median` or `scale`")
        if self.distribution == "weibull" and self.shape is None:
            raise ValueError("a weibull control needs `shape`")
        if self.distribution == "exponential" and self.shape not in (None, 1, 1.0):
            raise ValueError("an exponential control has shape 1; use distribution: weibull for another shape")
        return self

    @property
    def log_scale(self) -> float:
        """Log of the scale parameter in trial time units."""
        k = self.shape or 1.0
        if self.scale is not None:
            return math.log(self.scale)
        return math.log(self.median) - math.log(math.log(2.0)) / k

    @property
    def log_shape(self) -> float:
        return math.log(self.shape or 1.0)


class Accrual(_Section):
    """Uniform accrual, given by its duration or its rate."""

    duration: float | None = Field(None, gt=0, description="Enrolment period: entry times uniform over [0, duration].")
    rate: float | None = Field(
        None, gt=0, description="Patients per time unit: a design with n real patients enrols over n / rate."
    )

    @model_validator(mode="after")
    def _one(self):
        if (self.duration is None) == (self.rate is None):
            raise ValueError("give exactly one of `duration` or `rate`")
        return self


class Dropout(_Section):
    """Exponential loss to follow-up, the same in every arm."""

    probability: float = Field(ge=0, lt=1, description="Probability of dropping out by time `by`.")
    by: float = Field(gt=0, description="Time (trial units) at which `probability` applies.")

    @property
    def rate(self) -> float:
        return -math.log1p(-self.probability) / self.by


class Cut(_Section):
    """When the data are analysed."""

    events: int | None = Field(None, ge=1, description="Analyse at the calendar time of this event among real trial patients.")
    time: float | None = Field(None, gt=0, description="Analyse at this calendar time after the first patient enters.")

    @model_validator(mode="after")
    def _one(self):
        if (self.events is None) == (self.time is None):
            raise ValueError("give exactly one of `events` or `time`")
        return self


class Trial(_Section):
    """The planned trial; treatment patients are always real."""

    time_unit: TimeUnit = Field("months", description="Unit of every time in `trial`, `control`.")
    n_treatment: int = Field(ge=1, description="Treatment patients (a design's `treatment` overrides it).")
    accrual: Accrual
    dropout: Dropout | None = Field(None, description="Loss to follow-up; none if omitted.")
    cut: Cut


def _as_tuple(v):
    return tuple(v) if isinstance(v, (list, tuple)) else (v,)


def _positive_tuple(v) -> tuple[float, ...]:
    v = _as_tuple(v)
    if not v or any(not isinstance(x, (int, float)) or isinstance(x, bool) or not (x > 0 and math.isfinite(x)) for x in v):
        raise ValueError("hazard ratios must be positive finite numbers, one or a list")
    return tuple(float(x) for x in v)


class Effect(_Section):
    """True treatment effect."""

    hazard_ratio: tuple[float, ...] = Field(
        (1.0,), description="Treatment vs true concurrent control hazard ratio; a list is a grid dimension. 1 gives type I error."
    )

    @field_validator("hazard_ratio", mode="before")
    @classmethod
    def _check(cls, v):
        return _positive_tuple(v)


class Drift(_Section):
    """How far the true concurrent control population is from the historical one."""

    hazard_ratio: tuple[float, ...] = Field(
        (1.0,), description="True concurrent control hazard / historical hazard; 1 = no drift. A list is a grid dimension."
    )

    @field_validator("hazard_ratio", mode="before")
    @classmethod
    def _check(cls, v):
        return _positive_tuple(v)


class Design(_Section):
    """One way of composing the control evidence."""

    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]*$", description="Unique name; addresses the design in `sweep` and `--set`.")
    real_control: int = Field(0, ge=0, description="Concurrent randomised controls.")
    synthetic_control: int = Field(0, ge=0, description="Controls drawn from the posterior predictive.")
    treatment: int | None = Field(None, ge=1, description="Treatment patients in this design (default `trial.n_treatment`).")
    method: Literal["pool", "power_prior", "none"] | None = Field(
        None,
        description="How synthetic controls enter: `pool` (as if real), `power_prior` (weight `a0` each), "
        "`none` (ignored). Default `none` without synthetic controls; required with them.",
    )
    a0: float | None = Field(None, ge=0, le=1, description="Power-prior weight of each synthetic patient (power_prior only).")

    @model_validator(mode="after")
    def _method(self):
        if self.method is None:
            if self.synthetic_control > 0:
                raise ValueError("`method` is required when synthetic_control > 0: one of pool, power_prior, none")
            object.__setattr__(self, "method", "none")
        if self.method == "power_prior" and self.a0 is None:
            raise ValueError("method power_prior needs `a0`, the weight of each synthetic patient in [0, 1]")
        if self.method != "power_prior" and self.a0 is not None:
            raise ValueError(f"`a0` applies to method power_prior only (method is {self.method})")
        if self.real_control + (self.synthetic_control if self.method != "none" else 0) == 0:
            raise ValueError("the design has no control patients in its analysis: set real_control or synthetic_control")
        return self

    @property
    def synthetic_weight(self) -> float:
        return {"pool": 1.0, "power_prior": self.a0, "none": 0.0}[self.method]


class Analysis(_Section):
    """The test, its level and direction."""

    test: Literal["logrank", "cox"] = Field("logrank", description="`logrank` (score test) or `cox` (Wald test of the Cox log hazard ratio).")
    alpha: float = Field(0.05, gt=0, lt=0.5, description="Significance level (total over both sides when two-sided).")
    alternative: Literal["two-sided", "less"] = Field(
        "two-sided", description="`less`: one-sided, treatment better = hazard ratio < 1."
    )


_SWEEPABLE = (
    "trial.n_treatment",
    "trial.accrual.duration",
    "trial.accrual.rate",
    "trial.dropout.probability",
    "trial.dropout.by",
    "trial.cut.events",
    "trial.cut.time",
    "analysis.alpha",
    "designs.NAME.real_control",
    "designs.NAME.synthetic_control",
    "designs.NAME.treatment",
    "designs.NAME.a0",
)


class Scenario(_Section):
    """A whole study: data, model, trial, effects, designs and analysis."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description="Short identifier (used for output folders).")
    description: str = Field("", description="Free text, shown in the report.")
    seed: int = Field(ge=0, description="The one seed: every random number derives from `jax.random.key(seed)`.")
    replicates: int = Field(1000, ge=1, description="Simulated trials per grid point.")
    historical: Historical | None = None
    model: Model | None = None
    control: Control | None = None
    trial: Trial
    effect: Effect = Field(default_factory=Effect)
    drift: Drift = Field(default_factory=Drift)
    designs: list[Design] = Field(min_length=1)
    analysis: Analysis = Field(default_factory=Analysis)
    sweep: dict[str, list[float]] = Field(
        default_factory=dict,
        description="`{dotted.path: [values]}`: each is a grid dimension named by its path. Sweepable: "
        + ", ".join(_SWEEPABLE) + ".",
    )

    _base_dir: Path = PrivateAttr(default_factory=Path.cwd)

    @model_validator(mode="after")
    def _consistent(self):
        if self.control is not None:
            if self.historical is not None or self.model is not None:
                raise ValueError("give either `control` (an assumed distribution) or `historical` + `model`, not both")
        else:
            if self.model is None:
                raise ValueError("give `historical` and `model` (fit to data) or `control` (an assumed distribution)")
            if self.historical is None and self.model.posterior is None:
                raise ValueError("`historical` is required unless `model.posterior` names a saved posterior")
        names = [d.name for d in self.designs]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"design names must be unique; repeated: {', '.join(dup)}")
        for path, values in self.sweep.items():
            _check_sweep_path(self, path, values)
        return self

    @property
    def base_dir(self) -> Path:
        """Folder relative paths in the scenario are resolved against."""
        return self._base_dir

    def design(self, name: str) -> Design:
        for d in self.designs:
            if d.name == name:
                return d
        raise KeyError(name)

    def to_dict(self) -> dict:
        """The resolved scenario as plain data (what `scenario.yaml` in the output holds)."""
        return self.model_dump(mode="json", exclude_none=True)


def _check_sweep_path(sc: Scenario, path: str, values) -> None:
    parts = path.split(".")
    if path in ("effect.hazard_ratio", "drift.hazard_ratio"):
        raise ValueError(f"sweep {path!r}: give a list directly, e.g. `{path}: [1.0, 0.8]`, not under `sweep`")
    pattern = path
    if parts[0] == "designs" and len(parts) == 3:
        if parts[1] not in [d.name for d in sc.designs]:
            raise ValueError(
                f"sweep {path!r}: no design named {parts[1]!r}; designs are " + ", ".join(d.name for d in sc.designs)
            )
        pattern = f"designs.NAME.{parts[2]}"
    if pattern not in _SWEEPABLE:
        raise ValueError(f"sweep {path!r} is not a sweepable field; sweepable: " + ", ".join(_SWEEPABLE))
    if not values:
        raise ValueError(f"sweep {path!r} needs at least one value")
    if parts[:2] == ["trial", "accrual"] and getattr(sc.trial.accrual, parts[2]) is None:
        raise ValueError(f"sweep {path!r}: the scenario's accrual is not given by {parts[2]}")
    if parts[:2] == ["trial", "cut"] and getattr(sc.trial.cut, parts[2]) is None:
        raise ValueError(f"sweep {path!r}: the scenario's cut is not given by {parts[2]}")
    if parts[:2] == ["trial", "dropout"] and sc.trial.dropout is None:
        raise ValueError(f"sweep {path!r}: the scenario has no `trial.dropout` section to vary")


# --------------------------------------------------------------------------- loading


def _format_loc(loc: tuple, raw: dict) -> str:
    out: list[str] = []
    node: Any = raw
    for part in loc:
        if isinstance(part, int) and isinstance(node, list) and part < len(node):
            item = node[part]
            name = item.get("name") if isinstance(item, dict) else None
            out.append(f"[{name}]" if name else f"[{part}]")
            node = item
            continue
        if isinstance(part, str) and ("[" in part or "function" in part):
            continue  # pydantic's union branch labels
        out.append(("." if out else "") + str(part))
        node = node.get(part) if isinstance(node, dict) else None
    return "".join(out)


def _allowed_fields(loc: tuple) -> list[str]:
    model: Any = Scenario
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return []
        ann = field.annotation
        candidates = [ann, *getattr(ann, "__args__", ())]
        for c in candidates:
            if isinstance(c, type) and issubclass(c, BaseModel):
                model = c
                break
            for cc in getattr(c, "__args__", ()):
                if isinstance(cc, type) and issubclass(cc, BaseModel):
                    model = cc
                    break
    return list(getattr(model, "model_fields", {}))


def _validation_message(err: ValidationError, raw: dict, origin: str) -> str:
    lines = []
    seen = set()
    for e in err.errors():
        loc = _format_loc(e["loc"], raw)
        if e["type"] == "extra_forbidden":
            key = str(e["loc"][-1])
            allowed = _allowed_fields(e["loc"])
            hint = difflib.get_close_matches(key, allowed, n=1)
            msg = f"unknown field {key!r}"
            if hint:
                msg += f"; did you mean {hint[0]!r}?"
            if allowed:
                msg += f" (allowed here: {', '.join(allowed)})"
        else:
            msg = e["msg"].removeprefix("Value error, ")
            if e["type"] not in ("missing",) and "input" in e and not isinstance(e["input"], (dict, list)):
                msg += f" (received {e['input']!r})"
        if (loc, msg) in seen:
            continue
        seen.add((loc, msg))
        lines.append(f"{loc}: {msg}" if loc else msg)
    if len(lines) > 6:
        lines = lines[:6] + [f"... and {len(lines) - 6} more"]
    return f"{origin}: invalid scenario. " + "; ".join(lines) + ". See docs/scenario-reference.md for every field."


def parse_scenario(raw: Any, *, origin: str = "scenario", base_dir: Path | None = None) -> Scenario:
    """Validate a scenario given as a dict; ``origin`` names it in error messages."""
    if not isinstance(raw, dict):
        raise ScenarioError(f"{origin}: a scenario is a YAML mapping of sections (name, seed, trial, designs...); got {type(raw).__name__}.")
    try:
        sc = Scenario.model_validate(raw)
    except ValidationError as err:
        raise ScenarioError(_validation_message(err, raw, origin)) from None
    except ScenarioError:
        raise
    except ValueError as err:  # e.g. ModelError from a field validator
        raise ScenarioError(f"{origin}: {err}") from None
    sc._base_dir = Path(base_dir) if base_dir is not None else Path.cwd()
    return sc


def _parse_value(text: str, where: str):
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ScenarioError(f"{where}: value {text!r} is not valid YAML ({err}).") from None


def apply_override(raw: dict, dotted: str, value: Any, *, where: str = "--set") -> dict:
    """Return a copy of ``raw`` with ``dotted.path`` set to ``value``.

    A design is addressed by its name (``designs.hybrid.real_control``); missing
    intermediate mappings are created (``trial.dropout.probability``).
    """
    out = copy.deepcopy(raw)
    parts = dotted.split(".")
    if not dotted or any(p == "" for p in parts):
        raise ScenarioError(f"{where} {dotted!r}: give a dotted path such as trial.n_treatment=300.")
    node: Any = out
    for i, part in enumerate(parts[:-1]):
        if isinstance(node, list):
            match = [d for d in node if isinstance(d, dict) and d.get("name") == part]
            if not match:
                names = [d.get("name") for d in node if isinstance(d, dict)]
                raise ScenarioError(
                    f"{where} {dotted!r}: no entry named {part!r} under {'.'.join(parts[:i])}; names are {', '.join(map(str, names))}."
                )
            node = match[0]
        elif isinstance(node, dict):
            if node.get(part) is None:
                node[part] = {}
            node = node[part]
        else:
            raise ScenarioError(f"{where} {dotted!r}: {'.'.join(parts[:i])} is a value, not a section.")
    last = parts[-1]
    if isinstance(node, list):
        raise ScenarioError(f"{where} {dotted!r}: address a design by name, e.g. designs.NAME.real_control.")
    node[last] = value
    return out


def load_scenario(
    path: str | Path,
    *,
    overrides: Sequence[str] = (),
    replicates: int | None = None,
    seed: int | None = None,
) -> Scenario:
    """Read, override and validate a scenario file.

    Parameters
    ----------
    path : path to a YAML file
    overrides : ``["dotted.path=VALUE", ...]`` with VALUE parsed as YAML (``--set``)
    replicates, seed : shortcuts for ``--set replicates=N`` / ``--set seed=S``
    """
    path = Path(path)
    if not path.is_file():
        raise ScenarioError(f"scenario file {str(path)!r} does not exist; give the path of a YAML scenario (see scenarios/).")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ScenarioError(f"{path}: not valid YAML{at}: {getattr(err, 'problem', err)}. Fix the syntax and run again.") from None
    if not isinstance(raw, dict):
        raise ScenarioError(f"{path}: a scenario is a YAML mapping of sections (name, seed, trial, designs...).")
    for item in overrides:
        if "=" not in item:
            raise ScenarioError(f"--set {item!r}: write it as dotted.path=VALUE, e.g. --set trial.n_treatment=200.")
        key, text = item.split("=", 1)
        raw = apply_override(raw, key.strip(), _parse_value(text, f"--set {key}"))
    if replicates is not None:
        raw = apply_override(raw, "replicates", replicates)
    if seed is not None:
        raw = apply_override(raw, "seed", seed)
    return parse_scenario(raw, origin=str(path), base_dir=path.resolve().parent)


# --------------------------------------------------------------------------- grid


@dataclass(frozen=True)
class Grid:
    """The analysis grid: named dimensions and one resolved scenario per point.

    ``dims`` is ordered: ``hazard_ratio`` (effect), ``drift``, then each ``sweep`` path.
    ``points[i]`` is the scenario with point ``i``'s values set (row-major over ``dims``).
    """

    dims: dict[str, tuple[float, ...]]
    points: tuple[Scenario, ...]
    index: tuple[tuple[int, ...], ...]

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(v) for v in self.dims.values())

    def __iter__(self) -> Iterator[tuple[tuple[int, ...], Scenario]]:
        return iter(zip(self.index, self.points))


def build_grid(sc: Scenario) -> Grid:
    """Expand effect, drift and sweep lists into grid points (each re-validated)."""
    dims: dict[str, tuple[float, ...]] = {
        "hazard_ratio": tuple(sc.effect.hazard_ratio),
        "drift": tuple(sc.drift.hazard_ratio),
    }
    for path, values in sc.sweep.items():
        dims[path] = tuple(values)
    base = sc.to_dict()
    base.pop("sweep", None)
    points, index = [], []
    for idx in itertools.product(*(range(len(v)) for v in dims.values())):
        raw = copy.deepcopy(base)
        for (name, values), i in zip(dims.items(), idx):
            v = values[i]
            path = {"hazard_ratio": "effect.hazard_ratio", "drift": "drift.hazard_ratio"}.get(name, name)
            if name not in ("hazard_ratio", "drift") and float(v).is_integer() and _is_int_field(path):
                v = int(v)
            raw = apply_override(raw, path, v, where="sweep")
        label = ", ".join(f"{n}={dims[n][i]}" for n, i in zip(dims, idx))
        point = parse_scenario(raw, origin=f"grid point ({label})", base_dir=sc.base_dir)
        points.append(point)
        index.append(idx)
    return Grid(dims, tuple(points), tuple(index))


def _is_int_field(path: str) -> bool:
    return path.split(".")[-1] in ("n_treatment", "events", "real_control", "synthetic_control", "treatment")


# --------------------------------------------------------------------------- reference


_SECTION_HINT = {
    "historical": "Section `historical` below; with `model`, or give `control` instead.",
    "model": "Section `model` below.",
    "control": "Section `control` below: an assumed distribution instead of `historical` + `model`.",
    "trial": "Section `trial` below.",
    "effect": "Section `effect` below.",
    "drift": "Section `drift` below.",
    "designs": "A list of `designs[]` entries (below); compared side by side on the same simulated trials.",
    "analysis": "Section `analysis` below.",
    "inference": "Section `model.inference` below.",
    "accrual": "Section `trial.accrual` below.",
    "dropout": "Section `trial.dropout` below; none if omitted.",
    "cut": "Section `trial.cut` below.",
}


def scenario_reference() -> str:
    """Markdown reference of every scenario field, generated from the models."""
    sections = [
        ("(top level)", Scenario), ("historical", Historical), ("historical.data: adam", AdamSource),
        ("model", Model), ("model.inference", Inference), ("control", Control), ("trial", Trial),
        ("trial.accrual", Accrual), ("trial.dropout", Dropout), ("trial.cut", Cut),
        ("effect", Effect), ("drift", Drift), ("designs[]", Design), ("analysis", Analysis),
    ]
    out = [
        "# Scenario reference",
        "",
        "Generated from `twinsim/scenario.py` by `python -m twinsim.scenario > docs/scenario-reference.md`;",
        "a test checks it is current. Unknown fields are errors. Times are in `trial.time_unit`",
        "unless the field says otherwise.",
        "",
    ]
    for title, model in sections:
        doc = (model.__doc__ or "").strip().splitlines()[0]
        out += [f"## `{title}`", "", doc, "", "| field | type | default | meaning |", "|---|---|---|---|"]
        for fname, f in model.model_fields.items():
            ann = re.sub(r"\b[\w]+\.", "", str(f.annotation)).replace("<class '", "").replace("'>", "")
            ann = ann.replace("|", "or")
            if f.is_required():
                default = "required"
            elif f.default_factory in (dict, list):
                default = "`{}`" if f.default_factory is dict else "`[]`"
            elif f.default_factory is not None:
                default = "(section defaults)"
            else:
                default = f"`{f.default}`" if f.default is not None else "none"
            desc = f.description or _SECTION_HINT.get(fname, "")
            out.append(f"| `{fname}` | {ann} | {default} | {desc.replace('|', '/')} |")
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":  # pragma: no cover
    print(scenario_reference())
