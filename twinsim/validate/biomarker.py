"""Biomarker trajectories in the compared tables: one column per scheduled visit.

A real table has, for each patient and visit, the measured value when the patient was still
under observation at the visit (visit time <= follow-up time) and was measured there, and NaN
otherwise.  A synthetic patient of a joint model has a value at every visit; to compare like
with like, the synthetic values are **measured** the way the real ones were:

1. not after the patient's (censored) follow-up time;
2. at each visit with the probability a logistic regression fitted to the real training
   patients under observation there gives, on the transformed previous *measured* value and an
   indicator of having none (the missing-at-random measurement model of the joint model:
   whether CD4 is measured at week 96 depends on the week-20 value; Robins, Rotnitzky & Zhao
   1995).

The fidelity rows of each visit column (standardised difference, KS, Wasserstein among the
measured) are then comparable between the synthetic table and the holdout, which went through
the same measurement process.  Columns are named ``"{biomarker}@{visit time}"`` (in the data's
time unit), e.g. ``cd4@140``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["visit_columns", "wide_values", "wide_biomarker", "synthetic_biomarker", "measurement_model", "measure"]


def visit_columns(name: str, visit_times) -> list[str]:
    """Column names ``name@t`` of the visits (``t`` formatted with ``%g``)."""
    return [f"{name}@{float(t):g}" for t in visit_times]


def wide_values(patient, time, value, follow_up, visit_times) -> np.ndarray:
    """Measurements ``(patient, time, value)`` as an array (n, k), one column per visit.

    Each measurement goes to its nearest scheduled visit (ties: the earlier; several at one
    visit: the latest); NaN where not measured or where the visit is after the patient's
    follow-up time ``follow_up`` (n,).
    """
    from ..predictive import visit_of_measurement

    visits = np.asarray(visit_times, float)
    follow_up = np.asarray(follow_up, float)
    out = np.full((follow_up.size, visits.size), np.nan)
    time = np.asarray(time, float)
    if time.size:
        v = visit_of_measurement(time, visits)
        order = np.argsort(time, kind="stable")
        out[np.asarray(patient)[order], v[order]] = np.asarray(value, float)[order]
    out[visits[None, :] > follow_up[:, None]] = np.nan
    return out


def wide_biomarker(data, visit_times) -> pd.DataFrame:
    """A real TrialData's biomarker as one column per visit (:func:`wide_values`), rows as ``data``'s."""
    b = data.biomarker
    out = wide_values(b.patient, b.time, b.value, data.time, visit_times)
    return pd.DataFrame(out, columns=visit_columns(b.name, visit_times))


def synthetic_biomarker(rng_key, posterior, traj: dict, follow_up) -> pd.DataFrame:
    """Visit columns of synthetic patients from :func:`twinsim.predictive.sample_trajectories`,
    measured like the patients the posterior was fitted on (module notes)."""
    j = posterior.joint
    visits = np.asarray(j["visit_times"], float)
    obs = j["observed"]
    real = wide_values(obs["patient"], obs["time"], obs["value"], posterior.observed_time, visits)
    model = measurement_model(real, visits[None, :] <= np.asarray(posterior.observed_time, float)[:, None], visits,
                              j["transform"])
    observed = visits[None, :] <= np.asarray(follow_up, float)[:, None]
    values = measure(rng_key, np.asarray(traj["biomarker"], float), observed, model, j["transform"])
    return pd.DataFrame(values, columns=visit_columns(j["biomarker"], visits))


def _previous(values: np.ndarray, v: int, transform: str) -> np.ndarray:
    """Transformed most recent measured value before visit ``v`` (NaN: none)."""
    from ..models.joint import bm_transform

    prev = np.full(values.shape[0], np.nan)
    for u in range(v):
        seen = np.isfinite(values[:, u])
        prev[seen] = np.asarray(bm_transform(np.clip(values[seen, u], 0, None), transform))
    return prev


def _design(prev: np.ndarray, centre: float) -> np.ndarray:
    none = ~np.isfinite(prev)
    return np.column_stack([np.where(none, 0.0, prev - centre), none.astype(float)])


def measurement_model(values: np.ndarray, observed: np.ndarray, visit_times, transform: str) -> list[dict]:
    """Per visit, the logistic regression of being measured on the previous measured value.

    Parameters
    ----------
    values : array (n, k), real values per visit (NaN = not measured)
    observed : array (n, k), bool: under observation at the visit (visit time <= follow-up)
    visit_times : (k,)
    transform : the joint model's transform (``sqrt``, ``log``, ``identity``)

    Returns
    -------
    list of k dicts ``{"intercept", "coef" (2,), "centre"}`` (an intercept-only model when the
    covariates do not vary, e.g. at baseline; penalty 1e-6 on the slopes against separation).
    """
    from .fidelity import logistic_l2

    out = []
    for v in range(len(visit_times)):
        risk = observed[:, v]
        prev = _previous(values, v, transform)[risk]
        y = np.isfinite(values[risk, v]).astype(float)
        centre = float(np.nanmean(prev)) if np.isfinite(prev).any() else 0.0
        x = _design(prev, centre)
        keep = [j for j in range(2) if np.ptp(x[:, j]) > 0] if len(x) else []
        share = float(np.clip(y.mean() if len(y) else 1.0, 1e-6, 1 - 1e-6))
        if len(y) == 0 or y.min() == y.max() or not keep:
            out.append({"intercept": float(np.log(share / (1 - share))), "coef": np.zeros(2), "centre": centre})
            continue
        b0, w = logistic_l2(x[:, keep], y, l2=1e-6)
        coef = np.zeros(2)
        coef[keep] = w
        out.append({"intercept": float(b0), "coef": coef, "centre": centre})
    return out


def measure(rng_key, values: np.ndarray, observed: np.ndarray, model: list[dict], transform: str) -> np.ndarray:
    """Synthetic values (n, k) with NaN where the patient is not under observation or, drawn from
    ``model`` (:func:`measurement_model`) visit by visit, not measured."""
    import jax

    out = np.where(observed, values, np.nan)
    u = np.asarray(jax.random.uniform(rng_key, values.shape))
    for v, m in enumerate(model):
        prev = _previous(out, v, transform)
        p = 1.0 / (1.0 + np.exp(-(m["intercept"] + _design(prev, m["centre"]) @ m["coef"])))
        out[:, v] = np.where(observed[:, v] & (u[:, v] < p), out[:, v], np.nan)
    return out


def biomarker_by_visit(tables: dict, columns) -> pd.DataFrame:
    """Per visit column and table: patients under observation, share measured, quartiles of the measured values.

    ``tables`` maps a name (e.g. train, holdout, synthetic) to a table with the visit ``columns``
    and ``time``; a visit's time is parsed from its column name (``name@t``).
    """
    rows = []
    for col in columns:
        t_visit = float(str(col).rsplit("@", 1)[1])
        for name, t in tables.items():
            under = np.asarray(t["time"], float) >= t_visit
            vals = np.asarray(t[col], float)[under]
            seen = vals[np.isfinite(vals)]
            q = np.quantile(seen, [0.25, 0.5, 0.75]) if seen.size else [np.nan] * 3
            rows.append({"visit": col, "table": name, "under_observation": int(under.sum()),
                         "measured_share": float(seen.size / max(under.sum(), 1)), "q25": q[0], "median": q[1],
                         "q75": q[2]})
    return pd.DataFrame(rows)
