"""The scenario schema: pydantic sections with their defaults, bounds and cross-checks.

Every field here is part of the contract documented in ``docs/scenario-reference.md``
(generated from these models: ``twinsim reference``).  Models are frozen and forbid
unknown fields.  The ``historical`` section lives in :mod:`.historical` (re-exported here).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

from pydantic import Field, PrivateAttr, field_validator, model_validator

from ..models import OUTCOME_MODELS, get_outcome_model
from ._base import TimeUnit, _Section
from .historical import AdamData, AdamSource, BiomarkerSpec, Historical, HistoricalSource
from .validation import Collapse, SubgroupBands, Validation

__all__ = [
    "Accrual", "AdamData", "AdamSource", "Analysis", "BiomarkerSpec", "Control", "Cut", "Design",
    "Drift", "Dropout", "Effect", "Historical", "HistoricalSource", "Inference", "Joint", "Model", "Scenario",
    "Trial", "Validation", "Collapse", "SubgroupBands",
]


# --------------------------------------------------------------------------- sections


class Inference(_Section):
    """Posterior inference settings."""

    method: Literal["nuts", "svi"] = Field(
        "nuts", description="Inference algorithm: `nuts` (exact MCMC, the default) or `svi` (variational: a "
        "Gaussian approximation fitted by stochastic optimisation, for large data; checked by the ELBO's "
        "convergence and the Pareto k-hat, see docs/models.md).",
    )
    chains: int = Field(2, ge=1, le=16, description="NUTS: independent Markov chains.")
    warmup: int = Field(500, ge=1, description="NUTS: warm-up (adaptation) iterations per chain.")
    draws: int = Field(500, ge=1, description="Posterior draws kept per chain (NUTS) or drawn from the fitted guide (SVI, at least 100).")
    target_accept: float = Field(0.8, gt=0, lt=1, description="NUTS target acceptance probability; raise towards 0.95 on divergences.")
    guide: Literal["multivariate_normal", "lowrank", "normal"] = Field(
        "multivariate_normal", description="SVI: automatic guide: full-covariance Gaussian (default; few "
        "parameters), diagonal plus low rank, or mean-field `normal` (thousands of latents, e.g. random effects).",
    )
    steps: int = Field(5000, ge=10, description="SVI: optimisation steps.")
    learning_rate: float = Field(0.01, gt=0, description="SVI: initial step size of clipped Adam (decays over the second half).")

    @model_validator(mode="after")
    def _svi_draws(self):
        if self.method == "svi" and self.draws < 100:
            raise ValueError("with method `svi`, `draws` must be at least 100 (the Pareto k-hat is fitted to their tail)")
        return self

    @property
    def fit_kwargs(self) -> dict:
        """Keyword arguments of :func:`twinsim.fit.fit` for these settings."""
        kw = {"method": self.method, "draws": self.draws}
        if self.method == "nuts":
            kw.update(chains=self.chains, warmup=self.warmup, target_accept=self.target_accept)
        else:
            kw.update(guide=self.guide, steps=self.steps, learning_rate=self.learning_rate)
        return kw

    @property
    def label(self) -> str:
        """One line for progress displays."""
        if self.method == "svi":
            return f"SVI ({self.guide} guide, {self.steps} steps, {self.draws} draws)"
        return f"NUTS ({self.chains} chain(s) × {self.warmup} warmup + {self.draws} draws)"


class Joint(_Section):
    """A joint model of the biomarker in `historical.biomarker` and survival (shared random effects)."""

    transform: Literal["sqrt", "log", "identity"] = Field(
        "sqrt", description="Scale on which the biomarker is linear in time with normal errors: `sqrt` (counts such "
        "as CD4), `log` (positive, skewed) or `identity`.",
    )
    visits: list[float] | None = Field(
        None, description="Visit times (in `historical.time_unit`) of the synthetic patients' trajectories; default "
        "the distinct measurement times of the data (at most 12).",
    )


class Model(_Section):
    """The Bayesian generative model of the historical patients."""

    outcome: str = Field(
        "weibull",
        description="Outcome family: " + ", ".join(OUTCOME_MODELS) + "; or `auto`: fit every family in "
        "`compare` and keep the one with the highest PSIS-LOO elpd.",
    )
    compare: list[str] = Field(
        default_factory=list,
        description="Families to fit and compare by PSIS-LOO (table in the report and from `twinsim fit`). "
        "With `outcome: auto` it defaults to all families.",
    )
    pieces: int = Field(5, ge=1, le=50, description="piecewise_exponential: number of pieces, cut at quantiles of the event times.")
    knots: list[float] | None = Field(
        None, description="piecewise_exponential: cut points in `historical.time_unit` (instead of `pieces`)."
    )
    study_prior_sd: float = Field(
        0.5, gt=0, description="Several studies: scale of the half-normal prior of the between-study SD "
        "(log hazard for PH families, log time for lognormal).",
    )
    covariates: Literal["copula"] = Field("copula", description="Generator of synthetic baseline covariates.")
    joint: Joint | None = Field(
        None, description="Fit a joint model of the biomarker trajectory (random intercept and slope) and Weibull "
        "survival sharing those random effects (docs/models-joint.md); needs `historical.biomarker` (or ADaM ADLB), "
        "`outcome: weibull`, one study and NUTS.",
    )
    inference: Inference = Field(default_factory=Inference)
    posterior: str | None = Field(
        None, description="Reuse a posterior saved by `twinsim fit` (path relative to the scenario file) instead of fitting."
    )

    @field_validator("outcome")
    @classmethod
    def _known_outcome(cls, v):
        if v != "auto":
            get_outcome_model(v)  # raises ModelError with the list of families
        return v

    @field_validator("compare")
    @classmethod
    def _known_families(cls, v):
        for name in v:
            get_outcome_model(name)
        if len(set(v)) != len(v):
            raise ValueError("list each family once in `compare`")
        return v

    @model_validator(mode="after")
    def _joint_supported(self):
        if self.joint is not None:
            if self.outcome != "weibull" or self.compare:
                raise ValueError("`joint` is a Weibull model: set `outcome: weibull` and remove `compare` (PSIS-LOO "
                                 "compares survival-only families)")
            if self.inference.method != "nuts":
                raise ValueError("`joint` is fitted by NUTS; set `inference.method: nuts`")
        return self

    @property
    def families(self) -> list[str]:
        """Families to fit: the compared ones, the chosen outcome first when fixed."""
        if self.outcome == "auto":
            return list(self.compare) or list(OUTCOME_MODELS)
        return [self.outcome] + [f for f in self.compare if f != self.outcome]


class Control(_Section):
    """An assumed control distribution, for planning without data (no covariates)."""

    distribution: Literal["exponential", "weibull", "normal"] = Field(
        description="`exponential` or `weibull` time to event; `normal` for a continuous endpoint.")
    median: float | None = Field(None, gt=0, description="Median time to event, in `trial.time_unit`.")
    scale: float | None = Field(None, gt=0, description="Scale (instead of median), in `trial.time_unit`.")
    shape: float | None = Field(None, gt=0, description="Weibull shape (required for weibull; 1 for exponential).")
    mean: float | None = Field(None, description="normal: mean of the control outcome (default 0).")
    sd: float | None = Field(None, gt=0, description="normal: SD of the control outcome (required).")
    prognostic_correlation: float | None = Field(
        None, ge=0, lt=1, description="normal: correlation rho of each patient's digital twin with the outcome "
        "(a calibrated twin, E[y | twin] = twin; default 0). Used by `method: procova`.")
    baseline_correlation: float | None = Field(
        None, gt=-1, lt=1, description="normal: correlation of the baseline measurement with the outcome "
        "(default 0). Used by `method: ancova`.")

    @model_validator(mode="after")
    def _one_location(self):
        normal_fields = [f for f in ("mean", "sd", "prognostic_correlation", "baseline_correlation")
                         if getattr(self, f) is not None]
        if self.distribution == "normal":
            wrong = [f for f in ("median", "scale", "shape") if getattr(self, f) is not None]
            if wrong:
                raise ValueError(f"a normal control has `mean` and `sd`, not {', '.join(wrong)}")
            if self.sd is None:
                raise ValueError("a normal control needs `sd`, the SD of the control outcome")
            return self
        if normal_fields:
            raise ValueError(f"{', '.join(normal_fields)} belong to a normal control (continuous endpoint)")
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

    endpoint: Literal["time_to_event", "continuous"] = Field(
        "time_to_event", description="`time_to_event` (log-rank / Cox) or `continuous` (an outcome measured once per "
        "patient, analysed by t test, ANCOVA or PROCOVA; needs `control: {distribution: normal}` and "
        "`effect.mean_difference`; docs/methods.md).")
    time_unit: TimeUnit = Field("months", description="Unit of every time in `trial`, `control`.")
    n_treatment: int = Field(ge=1, description="Treatment patients (a design's `treatment` overrides it).")
    accrual: Accrual | None = Field(None, description="Time to event: accrual (required).")
    dropout: Dropout | None = Field(None, description="Loss to follow-up; none if omitted.")
    cut: Cut | None = Field(None, description="Time to event: when the data are analysed (required).")

    @model_validator(mode="after")
    def _endpoint_fields(self):
        if self.endpoint == "time_to_event":
            missing = [f for f in ("accrual", "cut") if getattr(self, f) is None]
            if missing:
                raise ValueError(f"a time-to-event trial needs {' and '.join(f'`{m}`' for m in missing)}")
        else:
            extra = [f for f in ("accrual", "dropout", "cut") if getattr(self, f) is not None]
            if extra:
                raise ValueError(f"a continuous endpoint is measured once per patient: remove {', '.join(extra)}")
        return self


def _as_tuple(v):
    return tuple(v) if isinstance(v, (list, tuple)) else (v,)


def _positive_tuple(v) -> tuple[float, ...]:
    v = _as_tuple(v)
    if not v or any(not isinstance(x, (int, float)) or isinstance(x, bool) or not (x > 0 and math.isfinite(x)) for x in v):
        raise ValueError("hazard ratios must be positive finite numbers, one or a list")
    return tuple(float(x) for x in v)


class _HazardRatios(_Section):
    """A hazard ratio or a list of them (a grid dimension); validated once here."""

    hazard_ratio: tuple[float, ...] = (1.0,)

    @field_validator("hazard_ratio", mode="before")
    @classmethod
    def _check(cls, v):
        return _positive_tuple(v)


class Effect(_HazardRatios):
    """True treatment effect."""

    hazard_ratio: tuple[float, ...] = Field(
        (1.0,), description="Treatment vs true concurrent control hazard ratio; a list is a grid dimension. 1 gives type I error."
    )
    mean_difference: tuple[float, ...] | None = Field(
        None, description="Continuous endpoint: treatment minus control mean of the outcome; a list is a grid "
        "dimension. 0 gives type I error.",
    )

    @field_validator("mean_difference", mode="before")
    @classmethod
    def _finite(cls, v):
        if v is None:
            return None
        v = _as_tuple(v)
        if not v or any(not isinstance(x, (int, float)) or isinstance(x, bool) or not math.isfinite(x) for x in v):
            raise ValueError("mean differences must be finite numbers, one or a list")
        return tuple(float(x) for x in v)


class Drift(_HazardRatios):
    """How far the true concurrent control population is from the historical one."""

    hazard_ratio: tuple[float, ...] = Field(
        (1.0,), description="True concurrent control hazard / historical hazard; 1 = no drift. A list is a grid dimension."
    )


class Design(_Section):
    """One way of composing the control evidence."""

    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]*$", description="Unique name; addresses the design in `sweep` and `--set`.")
    real_control: int = Field(0, ge=0, description="Concurrent randomised controls.")
    synthetic_control: int = Field(0, ge=0, description="Controls drawn from the posterior predictive.")
    treatment: int | None = Field(None, ge=1, description="Treatment patients in this design (default `trial.n_treatment`).")
    method: Literal["pool", "power_prior", "none", "procova", "ancova", "adjusted"] | None = Field(
        None,
        description="How synthetic controls enter: `pool` (as if real), `power_prior` (weight `a0` each), "
        "`none` (ignored). Default `none` without synthetic controls; required with them. `procova`: no synthetic "
        "controls; the real patients' analysis is adjusted for each patient's digital twin (time to event: Cox with the "
        "twin's predicted log hazard; continuous: ANCOVA on the twin's prediction; docs/methods.md). `ancova` "
        "(continuous only): ANCOVA on the baseline measurement. `adjusted` (time to event only): Cox adjusted for "
        "every baseline covariate of the model.",
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
        if self.method in ("procova", "ancova", "adjusted") and self.synthetic_control > 0:
            raise ValueError(f"method {self.method} adjusts the analysis of the real patients and adds no synthetic "
                             "controls: set synthetic_control to 0")
        if self.real_control + (self.synthetic_control if self.method != "none" else 0) == 0:
            raise ValueError("the design has no control patients in its analysis: set real_control or synthetic_control")
        return self

    @property
    def synthetic_weight(self) -> float:
        return {"pool": 1.0, "power_prior": self.a0, "none": 0.0, "procova": 0.0, "ancova": 0.0,
                "adjusted": 0.0}[self.method]


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
    validation: Validation = Field(default_factory=Validation, description="Section `validation` below: settings of "
                                   "`twinsim validate` (ignored by `twinsim run`).")

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
            if self.model.joint is not None and self.model.posterior is None:
                h = self.historical
                if not h.has_biomarker:
                    raise ValueError("`model.joint` needs a biomarker: add `historical.biomarker` (wide `columns` or a "
                                     "`long` table) or ADaM `adam.adlb` + `adam.biomarker`")
                if h.study is not None or h.study_labels is not None:
                    raise ValueError("`model.joint` does not model several historical studies yet; give one source "
                                     "without `study`, or drop `model.joint`")
        if self.trial.endpoint == "continuous":
            self._check_continuous()
        else:
            if self.control is not None and self.control.distribution == "normal":
                raise ValueError("a normal control describes a continuous endpoint: set `trial.endpoint: continuous`")
            if self.effect.mean_difference is not None:
                raise ValueError("`effect.mean_difference` is for a continuous endpoint (`trial.endpoint: continuous`); "
                                 "a time-to-event effect is `effect.hazard_ratio`")
            if any(d.method == "ancova" for d in self.designs):
                raise ValueError("method ancova is for a continuous endpoint; for time to event use procova")
            if self.control is not None and any(d.method in ("procova", "adjusted") for d in self.designs):
                raise ValueError("methods procova and adjusted need baseline covariates (and, for procova, digital "
                                 "twins), i.e. a generative model fitted to historical patients with covariates "
                                 "(`historical` + `model`); an assumed `control` has none")
        names = [d.name for d in self.designs]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"design names must be unique; repeated: {', '.join(dup)}")
        for path, values in self.sweep.items():
            _check_sweep_path(self, path, values)
        return self

    def _check_continuous(self) -> None:
        if self.control is None or self.control.distribution != "normal":
            raise ValueError("a continuous endpoint is simulated from an assumed `control: {distribution: normal, mean, sd, "
                             "prognostic_correlation, baseline_correlation}` (fitted continuous models come later)")
        if self.effect.mean_difference is None:
            raise ValueError("a continuous endpoint needs `effect.mean_difference` (0 gives type I error)")
        if self.effect.hazard_ratio != (1.0,) or self.drift.hazard_ratio != (1.0,):
            raise ValueError("hazard ratios (effect or drift) do not apply to a continuous endpoint; use "
                             "`effect.mean_difference` (drift is not yet supported for continuous endpoints)")
        adjusted = [d.name for d in self.designs if d.method == "adjusted"]
        if adjusted:
            raise ValueError(f"design(s) {', '.join(adjusted)}: method adjusted (Cox on every covariate) is for time to "
                             "event; a continuous endpoint adjusts for its baseline with method ancova")
        synthetic = [d.name for d in self.designs if d.method in ("pool", "power_prior")]
        if synthetic:
            raise ValueError(f"design(s) {', '.join(synthetic)}: synthetic controls are not yet supported for a continuous "
                             "endpoint; use method none (t test), ancova or procova")
        if self.analysis.test != "logrank" and "test" in self.analysis.model_fields_set:
            raise ValueError("`analysis.test` is for time to event; a continuous endpoint is tested by the t test of "
                             "its (adjusted) mean difference")
        if self.analysis.alternative != "two-sided":
            raise ValueError("a continuous endpoint is tested two-sided for now; set `analysis.alternative: two-sided`")

    @property
    def effect_dim(self) -> str:
        """Name of the effect's grid dimension: ``hazard_ratio`` or ``mean_difference``."""
        return "mean_difference" if self.trial.endpoint == "continuous" else "hazard_ratio"

    @property
    def null_effect(self) -> float:
        """The effect value of the null hypothesis: 1 (hazard ratio) or 0 (mean difference)."""
        return 0.0 if self.trial.endpoint == "continuous" else 1.0

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
