r"""Continuous endpoints: simulated two-arm trials analysed unadjusted, by ANCOVA on the
baseline value, and by PROCOVA (ANCOVA on each patient's digital-twin prediction).

PROCOVA (Schuler, Walsh, Hall, Walsh, Fisher 2022, *Int J Biostat* 18(2):329-356; EMA
qualification opinion 2022) adjusts the randomised comparison for a prognostic score, the
prediction of each patient's outcome under control made by a model trained on historical
controls.  Randomisation makes the treatment indicator independent of any baseline score,
so the test keeps its level whatever the score's quality; a score correlated ``rho`` with
the outcome shrinks the residual variance by ``1 - rho^2``, hence the planning formula of
Borm, Fransen and Lemmens (2007, *J Clin Epidemiol* 60:1234-1238):
``n_adjusted = (1 - rho^2) n_unadjusted``.

The planning model (:class:`NormalControl`) generates, per patient, the control outcome
``y``, its digital twin ``m`` and a baseline measurement ``b`` jointly normal,

.. math::

    y = \mu + \sigma(\rho Z_1 + \sqrt{1-\rho^2} Z_2), \qquad m = \mu + \sigma\rho Z_1, \qquad
    b = r\,(y - \mu)/\sigma + \sqrt{1-r^2} Z_3,

so that the twin is *calibrated* (``E[y | m] = m``), ``corr(m, y) = rho`` and
``corr(b, y) = r`` (``baseline_correlation``; ``corr(b, m) = r rho``).  A treated patient's
outcome is ``y + delta``.  Every analysis is ordinary least squares with the treatment
indicator and the adjustment covariate(s), tested by the t statistic of the treatment
coefficient on ``n - k`` degrees of freedom (Student's t: exact under normal errors).

Randomness only through explicit JAX keys: replicate ``r`` uses ``fold_in(key, r)``.
The kernel is pure JAX, vmapped over replicates, with fixed shapes (a design's patients
beyond its size carry weight 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

from .errors import ModelError

#: Analysis code of each design method (index into :data:`ANALYSES`).
_CODE = {"none": 0, "ancova": 1, "procova": 2}

__all__ = ["NormalControl", "ANALYSES", "ContinuousResult", "ols_treatment", "simulate_continuous",
           "borm_sample_size", "ttest_sample_size", "power_ttest", "normal_control", "simulate_grid_continuous",
           "prognostic_correlation"]

#: Analyses of a continuous endpoint: the adjustment columns besides intercept and treatment.
ANALYSES = ("unadjusted", "ancova", "procova")


@dataclass(frozen=True)
class NormalControl:
    """Planning model of a continuous control outcome, its digital twin and a baseline value.

    Parameters
    ----------
    mean, sd : float
        Mean and SD (> 0) of the control outcome ``y`` (e.g. CD4 count at week 20).
    prognostic_correlation : float in [0, 1)
        ``rho = corr(m, y)`` of the digital twin ``m`` (calibrated: ``E[y | m] = m``).
    baseline_correlation : float in (-1, 1)
        ``corr(b, y)`` of the baseline measurement ``b`` (its scale is irrelevant to the
        analyses: ANCOVA is invariant to it): ``b = r y_std + sqrt(1 - r^2) Z3`` with
        ``y_std`` the standardised outcome, so it carries no information about ``y``
        beyond its correlation.
    """

    mean: float = 0.0
    sd: float = 1.0
    prognostic_correlation: float = 0.0
    baseline_correlation: float = 0.0

    def __post_init__(self):
        if not (math.isfinite(self.sd) and self.sd > 0):
            raise ModelError(f"sd must be a finite number > 0; got {self.sd!r}.")
        if not 0.0 <= self.prognostic_correlation < 1.0:
            raise ModelError(f"prognostic_correlation must be in [0, 1); got {self.prognostic_correlation!r}.")
        if not -1.0 < self.baseline_correlation < 1.0:
            raise ModelError(f"baseline_correlation must be in (-1, 1); got {self.baseline_correlation!r}.")

    def draw(self, key, n: int):
        """``(y, m, b)`` of ``n`` control patients (pure JAX, shapes (n,))."""
        rho, r = self.prognostic_correlation, self.baseline_correlation
        z = jax.random.normal(key, (3, n))
        y_std = rho * z[0] + math.sqrt(1 - rho**2) * z[1]
        y = self.mean + self.sd * y_std
        m = self.mean + self.sd * rho * z[0]
        b = r * y_std + math.sqrt(1 - r**2) * z[2]  # corr(b, y) = r, unit variance
        return y, m, b


class ContinuousResult(NamedTuple):
    """One analysis of one trial (scalars; stacked (R, ...) after vmap)."""

    estimate: jax.Array   #: treatment - control mean difference (adjusted)
    se: jax.Array         #: its OLS standard error
    t: jax.Array          #: estimate / se; positive favours a higher outcome under treatment


def ols_treatment(y, group, covariates, weight):
    """OLS of ``y`` on intercept, treatment and covariates; the treatment coefficient.

    Parameters
    ----------
    y : array (n,)
    group : array (n,), 1 = treatment, 0 = control
    covariates : array (n, k) (k may be 0)
    weight : array (n,), 0 or 1 (0 removes the patient: fixed-shape masking)

    Returns
    -------
    ContinuousResult
        Residual variance on ``sum(weight) - 2 - k`` degrees of freedom (weights must be 0/1).
    """
    x = jnp.concatenate([jnp.ones_like(y)[:, None], group[:, None], covariates], axis=1)
    w = weight[:, None]
    xtx = (x * w).T @ x
    coef = jnp.linalg.solve(xtx, (x * w).T @ y)
    resid = (y - x @ coef) * weight
    df = jnp.sum(weight) - x.shape[1]
    s2 = jnp.sum(resid**2) / df
    se = jnp.sqrt(s2 * jnp.linalg.inv(xtx)[1, 1])
    return ContinuousResult(coef[1], se, coef[1] / se)


def _trial(key, model: NormalControl, n_treat: int, n_control: int, delta: float, max_t: int, max_c: int):
    k_t, k_c = jax.random.split(key)
    y_t, m_t, b_t = model.draw(k_t, max_t)
    y_c, m_c, b_c = model.draw(k_c, max_c)
    y = jnp.concatenate([y_t + delta, y_c])
    m, b = jnp.concatenate([m_t, m_c]), jnp.concatenate([b_t, b_c])
    group = jnp.concatenate([jnp.ones(max_t), jnp.zeros(max_c)])
    weight = jnp.concatenate([jnp.arange(max_t) < n_treat, jnp.arange(max_c) < n_control]).astype(float)
    empty = jnp.zeros((y.shape[0], 0))
    return (ols_treatment(y, group, empty, weight), ols_treatment(y, group, b[:, None], weight),
            ols_treatment(y, group, m[:, None], weight))


@partial(jax.jit, static_argnames=("model", "max_t", "max_c"))
def _replicates(keys, model, n_treat, n_control, delta, max_t, max_c):
    return jax.vmap(_trial, in_axes=(0, None, None, None, None, None, None))(
        keys, model, n_treat, n_control, delta, max_t, max_c)


def simulate_continuous(key, model: NormalControl, *, n_treatment: int, n_control: int, mean_difference: float,
                        replicates: int, alpha: float = 0.05) -> dict:
    """Simulate two-arm trials and analyse each by the three :data:`ANALYSES`.

    Parameters
    ----------
    key : jax random key
    model : NormalControl
    n_treatment, n_control : int >= 2
    mean_difference : float
        True treatment effect on the outcome's scale (0 gives type I error).
    replicates : int
    alpha : float
        Two-sided level; decision ``|t| > t_{1 - alpha/2, n - k}``.

    Returns
    -------
    dict analysis -> dict of arrays (replicates,): ``estimate``, ``se``, ``t``, ``reject``;
    plus ``rejection_rate``, ``mcse``, ``bias``, ``coverage`` (floats).
    """
    for name, v in (("n_treatment", n_treatment), ("n_control", n_control), ("replicates", replicates)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < (2 if name != "replicates" else 1):
            raise ModelError(f"{name} must be an integer >= {2 if name != 'replicates' else 1}; got {v!r}.")
    keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(key, jnp.arange(replicates))
    out = _replicates(keys, model, n_treatment, n_control, float(mean_difference), int(n_treatment), int(n_control))
    res = {}
    for name, r, k in zip(ANALYSES, out, (0, 1, 1)):
        df = n_treatment + n_control - 2 - k
        crit = stats.t.ppf(1 - alpha / 2, df)
        est, se, t = (np.asarray(a) for a in r)
        reject = np.abs(t) > crit
        rate = float(reject.mean())
        cover = np.abs(est - mean_difference) <= crit * se
        res[name] = {"estimate": est, "se": se, "t": t, "reject": reject, "rejection_rate": rate,
                     "mcse": math.sqrt(rate * (1 - rate) / replicates), "bias": float(est.mean() - mean_difference),
                     "coverage": float(cover.mean()), "df": df}
    return res


def power_ttest(n_per_arm: float, effect_size: float, alpha: float = 0.05, *, covariates: int = 0) -> float:
    """Exact power of the two-sided two-sample t test (noncentral t), equal arms.

    ``effect_size`` = difference / residual SD; ``covariates`` adjustment covariates (each
    costs one degree of freedom, as in ANCOVA with a fixed residual SD).
    """
    df = 2 * n_per_arm - 2 - covariates
    nc = effect_size * math.sqrt(n_per_arm / 2)
    crit = stats.t.ppf(1 - alpha / 2, df)
    return float(stats.nct.sf(crit, df, nc) + stats.nct.cdf(-crit, df, nc))


def ttest_sample_size(effect_size: float, power: float = 0.8, alpha: float = 0.05, *, covariates: int = 0) -> int:
    """Smallest n per arm whose exact t-test power (:func:`power_ttest`) reaches ``power``."""
    if effect_size <= 0:
        raise ModelError(f"effect_size must be > 0 (difference / SD); got {effect_size!r}.")
    z = stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)
    n = max(2 + covariates, int(math.floor(2 * (z / effect_size) ** 2)))  # normal approximation, then step up
    while power_ttest(n, effect_size, alpha, covariates=covariates) < power:
        n += 1
    return n


def prognostic_correlation(prediction, outcome, *, level: float = 0.9) -> tuple[float, float]:
    """Out-of-sample correlation of twin predictions with observed outcomes, and a conservative value.

    Parameters
    ----------
    prediction, outcome : arrays (n,)
        Each held-out patient's twin prediction (from a model not fitted to that patient:
        cross-fitting) and observed outcome; pairs with a missing value are dropped.
    level : float in (0, 1)
        One-sided confidence level of the conservative value.

    Returns
    -------
    (rho, rho_low)
        Pearson's correlation and the lower limit of its one-sided ``level`` interval by
        Fisher's z transformation, ``tanh(atanh(rho) - z_level / sqrt(n - 3))`` (Fisher 1921):
        the value to plan with, so that the planned sample size is too large, not too small,
        when rho was estimated high by chance.
    """
    x, y = np.asarray(prediction, float), np.asarray(outcome, float)
    ok = np.isfinite(x) & np.isfinite(y)
    n = int(ok.sum())
    if n < 4:
        raise ModelError(f"prognostic_correlation needs at least 4 complete pairs; got {n}.")
    if not 0 < level < 1:
        raise ModelError(f"level must be in (0, 1); got {level!r}.")
    rho = float(np.corrcoef(x[ok], y[ok])[0, 1])
    low = math.tanh(math.atanh(rho) - stats.norm.ppf(level) / math.sqrt(n - 3))
    return rho, low


def borm_sample_size(n_unadjusted: float, rho: float) -> float:
    """Borm et al. (2007): patients an ANCOVA on a covariate correlated ``rho`` with the
    outcome needs to match the power of the unadjusted analysis with ``n_unadjusted``:
    ``(1 - rho^2) n_unadjusted`` (large-sample; one degree of freedom more is spent)."""
    if not -1.0 < rho < 1.0:
        raise ModelError(f"rho must be in (-1, 1); got {rho!r}.")
    return (1.0 - rho**2) * float(n_unadjusted)


# --------------------------------------------------------------------------- scenarios


def normal_control(control) -> NormalControl:
    """The planning model of a scenario's ``control: {distribution: normal, ...}``."""
    return NormalControl(mean=float(control.mean or 0.0), sd=float(control.sd),
                         prognostic_correlation=float(control.prognostic_correlation or 0.0),
                         baseline_correlation=float(control.baseline_correlation or 0.0))


def _grid_trial(key, model: NormalControl, configs, max_t: int, max_c: int):
    """One replicate: one pool of patients, analysed under every configuration."""
    k_t, k_c = jax.random.split(key)
    y_t, m_t, b_t = model.draw(k_t, max_t)
    y_c, m_c, b_c = model.draw(k_c, max_c)
    group = jnp.concatenate([jnp.ones(max_t), jnp.zeros(max_c)])
    m, b = jnp.concatenate([m_t, m_c]), jnp.concatenate([b_t, b_c])
    empty = jnp.zeros((max_t + max_c, 0))

    def one(cfg):
        n_t, n_c, delta, code = cfg
        y = jnp.concatenate([y_t + delta, y_c])
        weight = jnp.concatenate([jnp.arange(max_t) < n_t, jnp.arange(max_c) < n_c]).astype(float)
        res = [ols_treatment(y, group, empty, weight), ols_treatment(y, group, b[:, None], weight),
               ols_treatment(y, group, m[:, None], weight)]
        pick = [jnp.stack(v)[code] for v in zip(*res)]
        return ContinuousResult(*pick)

    return jax.lax.map(one, configs)


@partial(jax.jit, static_argnames=("model", "max_t", "max_c"))
def _grid_replicates(keys, model, configs, max_t, max_c):
    return jax.vmap(_grid_trial, in_axes=(0, None, None, None, None))(keys, model, configs, max_t, max_c)


def simulate_grid_continuous(scenario, *, rng_key, grid, progress=None):
    """Simulate a continuous-endpoint scenario at every design and grid point.

    Replicate ``r`` uses ``fold_in(rng_key, r)`` and one pool of patients analysed by every
    design (the first ``n`` treated and control patients are shared: common random numbers).

    Returns
    -------
    xarray.Dataset with dims ``design``, the grid dimensions and ``replicate``: ``estimate``
    (mean difference), ``se``, ``z`` (the t statistic), ``valid``, ``reject``, ``ci_lower``,
    ``ci_upper`` (t interval at level 1 - alpha), ``n_analysed``, ``alpha``; coordinate
    ``true_effect``.
    """
    import xarray as xr

    designs = tuple(d.name for d in grid.points[0].designs)
    rows, df, alpha = [], [], []
    for name in designs:
        for _, sc in grid:
            d = sc.design(name)
            n_t = d.treatment if d.treatment is not None else sc.trial.n_treatment
            code = _CODE[d.method]
            rows.append((n_t, d.real_control, sc.effect.mean_difference[0], code))
            df.append(n_t + d.real_control - 2 - (code > 0))
            alpha.append(sc.analysis.alpha)
    cols = list(zip(*rows))
    configs = (jnp.asarray(cols[0], jnp.int32), jnp.asarray(cols[1], jnp.int32), jnp.asarray(cols[2], float),
               jnp.asarray(cols[3], jnp.int32))
    max_t, max_c = int(max(cols[0])), int(max(cols[1]))
    model = normal_control(scenario.control)
    reps = scenario.replicates
    batch = int(max(1, min(reps, 512)))
    parts = []
    for start in range(0, reps, batch):
        keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(rng_key, jnp.arange(start, start + batch))
        out = _grid_replicates(keys, model, configs, max_t, max_c)
        take = min(batch, reps - start)
        parts.append([np.asarray(a)[:take] for a in out])
        if progress is not None:
            progress(start + take, reps)
    est, se, t = (np.concatenate([p[i] for p in parts]) for i in range(3))

    shape = (reps, len(designs), *grid.shape)
    order = (1, *range(2, 2 + len(grid.dims)), 0)
    dims = tuple(("replicate", "design", *grid.dims)[i] for i in order)

    def arr(x):
        return np.transpose(np.asarray(x).reshape(shape), order)

    coords = {"design": list(designs), "replicate": np.arange(reps)}
    coords.update({k: np.asarray(v, float) for k, v in grid.dims.items()})
    conf_shape = (len(designs), *grid.shape)
    crit = stats.t.ppf(1 - np.asarray(alpha) / 2, np.asarray(df)).reshape(conf_shape)
    ds = xr.Dataset({"estimate": (dims, arr(est)), "se": (dims, arr(se)), "z": (dims, arr(t))}, coords=coords)
    crit_da = xr.DataArray(crit, dims=("design", *grid.dims), coords={k: ds.coords[k] for k in ("design", *grid.dims)})
    ds["valid"] = np.isfinite(ds["estimate"]) & np.isfinite(ds["se"]) & (ds["se"] > 0)
    ds["reject"] = (np.abs(ds["z"]) > crit_da) & ds["valid"]
    ds["ci_lower"] = ds["estimate"] - crit_da * ds["se"]
    ds["ci_upper"] = ds["estimate"] + crit_da * ds["se"]
    n_an = np.asarray(cols[0]) + np.asarray(cols[1])
    ds["n_analysed"] = xr.DataArray(n_an.reshape(conf_shape), dims=("design", *grid.dims),
                                    coords={k: ds.coords[k] for k in ("design", *grid.dims)}).broadcast_like(ds["z"])
    ds["alpha"] = xr.DataArray(np.asarray(alpha).reshape(conf_shape), dims=("design", *grid.dims),
                               coords={k: ds.coords[k] for k in ("design", *grid.dims)})
    truth = np.array([sc.effect.mean_difference[0] for _, sc in grid]).reshape(grid.shape)
    ds = ds.assign_coords(true_effect=(tuple(grid.dims), truth))
    ds["estimate"].attrs["description"] = "treatment - control mean difference (OLS; adjusted for ancova/procova)"
    ds["z"].attrs["description"] = "t statistic of the mean difference; positive: higher outcome under treatment"
    ds["ci_lower"].attrs["description"] = "t interval at level 1 - alpha"
    return ds
