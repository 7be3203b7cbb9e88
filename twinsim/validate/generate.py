"""Synthetic patient tables from a fitted generator: covariates, follow-up time and event.

The posterior predictive gives each synthetic patient baseline covariates and an *uncensored*
event time (:func:`twinsim.simulate.sample_patients`).  Real tables are censored, so a table
meant to be compared with real patients (validation, export) is censored the way the real
follow-up was: censoring times are drawn from the **reverse Kaplan-Meier** of the data the
model was fitted on (the Kaplan-Meier of the censoring times, events treated as censored
observations of them), independently of the event time.  Assumption: censoring independent of
the event time and of the covariates (non-informative, covariate-free censoring), which is
what the reverse Kaplan-Meier estimates.  Mass the reverse KM leaves beyond the last observed
time (the longest follow-up ended in an event) is put at that time: nobody is followed beyond
the real study's longest follow-up.

Conditions (``where``) and oversampling (``oversample``) draw from the generator's own
conditional distribution by rejection: patients are generated in fixed-size batches and kept
when they match, so a conditional patient is exactly a generator patient given the condition.
Conditions are parsed, never evaluated.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import partial

import jax
import numpy as np
import pandas as pd

from ..errors import DataError, ScenarioError

__all__ = ["Condition", "parse_condition", "parse_oversample", "reverse_km_sampler", "synthetic_table",
           "BATCH_MIN", "MAX_BATCHES"]

#: Smallest rejection-sampling batch, and the most batches tried before giving up.
BATCH_MIN, MAX_BATCHES = 2000, 200

_CLAUSE = re.compile(r"^\s*([A-Za-z_][\w.\-]*)\s*(<=|>=|!=|==|=|<|>)\s*(.+?)\s*$")


def _value(text: str):
    try:
        return float(text)
    except ValueError:
        return text.strip().strip("'\"")


@dataclass(frozen=True)
class Condition:
    """A conjunction of simple clauses on columns, e.g. ``gender=0``, ``age>=40 & race=0,1``.

    ``column=v1,v2`` is membership; ``!=``, ``<``, ``<=``, ``>``, ``>=`` compare numbers.
    Missing values never match.
    """

    clauses: tuple[tuple[str, str, tuple], ...]
    text: str

    def columns(self) -> list[str]:
        return [c for c, _, _ in self.clauses]

    def mask(self, frame: pd.DataFrame, *, where: str = "condition") -> np.ndarray:
        """Boolean array (len(frame),): the rows that satisfy every clause."""
        keep = np.ones(len(frame), dtype=bool)
        for col, op, values in self.clauses:
            if col not in frame.columns:
                raise DataError(f"{where} {self.text!r}: no column {col!r}; the columns are {list(frame.columns)}.")
            s = frame[col]
            if op in ("=", "=="):
                if pd.api.types.is_numeric_dtype(s) and all(isinstance(v, float) for v in values):
                    m = np.isin(s.to_numpy(dtype=float), np.asarray(values, dtype=float))
                else:
                    m = s.astype(object).map(lambda v: v in values or str(v) in map(str, values)).to_numpy(bool)
            else:
                if not pd.api.types.is_numeric_dtype(s) or not isinstance(values[0], float):
                    raise DataError(f"{where} {self.text!r}: {op!r} needs a numeric column and a number; "
                                    f"{col!r} is {s.dtype} and the value {values[0]!r}. Use {col}=LEVEL for levels.")
                x = s.to_numpy(dtype=float)
                v = values[0]
                with np.errstate(invalid="ignore"):
                    m = {"!=": x != v, "<": x < v, "<=": x <= v, ">": x > v, ">=": x >= v}[op]
                m = m & np.isfinite(x)
            keep &= m
        return keep


def parse_condition(text: str, *, where: str = "--where") -> Condition:
    """Parse ``COL=V[,V...]``, ``COL<V`` ... clauses joined by ``&`` or `` and `` (no evaluation)."""
    if not isinstance(text, str) or not text.strip():
        raise ScenarioError(f"{where}: empty condition; write e.g. 'gender=0' or 'age>=40 & race=0'.")
    clauses = []
    for part in re.split(r"\s*&\s*|\s+and\s+", text.strip()):
        m = _CLAUSE.match(part)
        if m is None:
            raise ScenarioError(f"{where}: cannot read {part!r} in {text!r}; write COLUMN=VALUE, COLUMN=V1,V2, "
                                "or COLUMN<VALUE (also <=, >, >=, !=), joined by '&'.")
        col, op, rhs = m.groups()
        values = tuple(_value(v) for v in rhs.split(",")) if op in ("=", "==") else (_value(rhs),)
        if op not in ("=", "==") and not isinstance(values[0], float):
            raise ScenarioError(f"{where}: {part!r} compares with {rhs!r}, which is not a number; "
                                f"use {col}=LEVEL for a category.")
        clauses.append((col, op, values))
    return Condition(tuple(clauses), text.strip())


def parse_oversample(text: str, *, where: str = "--oversample") -> tuple[Condition, float]:
    """``'CONDITION:FACTOR'`` (e.g. ``'gender=0:3'``): the subgroup's patients times FACTOR (> 1)."""
    cond, sep, factor = str(text).rpartition(":")
    try:
        f = float(factor)
    except ValueError:
        f = math.nan
    if not sep or not math.isfinite(f) or f <= 1:
        raise ScenarioError(f"{where}: {text!r} should be CONDITION:FACTOR with a factor > 1, e.g. 'gender=0:3' "
                            "(three times as many patients with gender 0).")
    return parse_condition(cond, where=where), f


def reverse_km_sampler(time, event):
    """Sampler of censoring times from the reverse Kaplan-Meier of ``(time, event)``.

    Parameters
    ----------
    time : array (n,), > 0
    event : array (n,), 1 = event observed, 0 = censored

    Returns
    -------
    function ``sample(key, n) -> ndarray (n,)``: censoring times, drawn by inverting the
    reverse-KM distribution function at uniform draws; draws beyond its total mass get the
    largest observed time.  At tied times events are taken to come first (the usual KM
    convention), so a censoring at a tied time is not removed from the risk set by the event.
    """
    t = np.asarray(time, dtype=float)
    c = 1 - np.asarray(event, dtype=int)  # censoring "events"
    order = np.lexsort((c, t))            # time, events (c=0) before censorings at ties
    t, c = t[order], c[order]
    n = len(t)
    at_risk = n - np.arange(n)
    surv = np.cumprod(1.0 - c / at_risk)  # reverse KM after each row
    cdf = 1.0 - surv
    t_max = float(t[-1]) if n else 0.0

    def sample(key, m: int) -> np.ndarray:
        u = np.asarray(jax.random.uniform(key, (m,)), dtype=float)
        pos = np.searchsorted(cdf, u, side="left")
        return np.where(pos < n, t[np.minimum(pos, n - 1)], t_max)

    return sample


@partial(jax.jit, static_argnums=2)
def _draw(key, model, n: int):
    from ..simulate import sample_patients

    return sample_patients(key, model, n)


def _raw_table(key, posterior, model, n: int, time_col: str, event_col: str, censor) -> pd.DataFrame:
    k_pat, k_cen = jax.random.split(key)
    if posterior.joint is not None:  # covariates, trajectory and event time from the joint model
        from ..predictive import sample_trajectories

        traj = sample_trajectories(k_pat, posterior, int(n))
        frame, t = traj["covariates"].reset_index(drop=True), np.asarray(traj["time"], dtype=float)
    else:
        x, t = _draw(k_pat, model, int(n))
        frame = (posterior.covariate_model.to_frame(np.asarray(x)) if len(posterior.covariate_names)
                 else pd.DataFrame(index=range(n)))
        t = np.asarray(t, dtype=float)
    if censor is None:
        frame[time_col], frame[event_col] = t, np.ones(n, dtype=int)
    else:
        c = censor(k_cen, n)
        frame[time_col], frame[event_col] = np.minimum(t, c), (t <= c).astype(int)
    if posterior.joint is not None:
        from .biomarker import synthetic_biomarker

        bm = synthetic_biomarker(jax.random.fold_in(k_cen, 1), posterior, traj, frame[time_col].to_numpy())
        frame = pd.concat([frame, bm], axis=1)
    return frame


def synthetic_table(rng_key, posterior, n: int, *, censoring: str = "observed", time_col: str = "time",
                    event_col: str = "event", where: Condition | None = None, oversample=(),
                    time_unit: str | None = None) -> pd.DataFrame:
    """``n`` synthetic patients from a posterior's predictive, as a table like the real one.

    Parameters
    ----------
    rng_key : JAX key
    posterior : twinsim.fit.Posterior
    n : int
        Patients before oversampling (with ``where``: matching patients).
    censoring : {"observed", "none"}
        ``"observed"``: censor by the reverse Kaplan-Meier of the data the posterior was fitted
        on (``posterior.observed_time/event``; see the module notes); ``"none"``: event times
        uncensored, every ``event`` 1.
    time_col, event_col : str
        Names of the follow-up time (in ``time_unit``) and event (1 = event) columns.
    where : Condition, optional
        Keep only patients matching it (rejection from the generator).
    oversample : sequence of (Condition, factor)
        For each, add patients matching the condition until that subgroup has ``factor`` times
        the number it had in the table (rounded); conditions are applied in order.
    time_unit : str, optional
        Unit of the times (default the posterior's).

    Returns
    -------
    DataFrame: the covariates (categorical levels as in the fit), ``time_col``, ``event_col``;
    for a joint biomarker model also one column per scheduled visit, ``"{biomarker}@{visit}"``,
    measured like the fitted data (:mod:`twinsim.validate.biomarker`).
    """
    from ..simulate import patient_model_from_posterior

    n = int(n)
    if n < 1:
        raise DataError(f"-n {n}: the number of synthetic patients must be at least 1.")
    unit = time_unit or posterior.time_unit
    if posterior.joint is not None and unit != posterior.time_unit:
        raise DataError(f"time_unit={unit!r}: a joint model's synthetic visits are in its own unit "
                        f"({posterior.time_unit}); leave time_unit out.")
    model = patient_model_from_posterior(posterior, unit)
    censor = None
    if censoring == "observed":
        if np.size(posterior.observed_time) == 0:
            raise DataError("this posterior carries no observed follow-up (e.g. a federated posterior), so censoring "
                            "cannot follow the real data; use censoring='none'.")
        scale = 1.0
        if unit != posterior.time_unit:
            from ..models.units import time_factor
            scale = float(time_factor(posterior.time_unit, unit))
        censor = reverse_km_sampler(np.asarray(posterior.observed_time) * scale, posterior.observed_event)
    elif censoring != "none":
        raise ScenarioError(f"censoring={censoring!r}; use 'observed' or 'none'.")
    batch = max(BATCH_MIN, 2 * n)

    def matching(key, cond: Condition, m: int, what: str) -> pd.DataFrame:
        parts, got = [], 0
        for b in range(MAX_BATCHES):
            t = _raw_table(jax.random.fold_in(key, b), posterior, model, batch, time_col, event_col, censor)
            t = t[cond.mask(t, where=what)]
            parts.append(t)
            got += len(t)
            if got >= m:
                return pd.concat(parts, ignore_index=True).iloc[:m].reset_index(drop=True)
        share = got / (MAX_BATCHES * batch)
        raise DataError(f"{what} {cond.text!r}: only {got} of {MAX_BATCHES * batch} generated patients match "
                        f"(share {share:.2g}); the generator almost never produces such patients. Widen the condition.")

    k_main, k_over = jax.random.split(rng_key)
    if where is None:
        table = _raw_table(k_main, posterior, model, n, time_col, event_col, censor)
    else:
        table = matching(k_main, where, n, "--where")
    for i, (cond, factor) in enumerate(oversample):
        have = int(cond.mask(table, where="--oversample").sum())
        extra = int(round((factor - 1) * have))
        if have == 0:
            raise DataError(f"--oversample {cond.text!r}: no patient of the table matches, so there is nothing to "
                            "multiply; check the condition's column and levels.")
        if extra:
            table = pd.concat([table, matching(jax.random.fold_in(k_over, i), cond, extra, "--oversample")],
                              ignore_index=True)
    return table
