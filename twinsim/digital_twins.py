r"""Digital twins: each patient's predicted outcome under control, from baseline data alone.

A twin is the posterior predictive of a patient's outcome under the historical control
model (a fitted :class:`~twinsim.fit.Posterior`), given only what is known at
randomisation: the baseline covariates and, for a joint biomarker model, the baseline
biomarker value.  For every posterior draw ``s`` the patient's conditional survival is

.. math::

    S_s(t \mid x) = E_z\big[S_s(t \mid \eta_s + z)\big],\qquad
    \eta_s = \tilde x^\top\beta_s,\quad z \sim N(m_s, v_s),

where ``z`` gathers the patient-level terms that are not observed: a new study's effect
``N(0, study_sd^2)`` (several historical studies) and the joint model's random-effects
term of the log hazard (``N(0, frailty_sd^2)``, or its conditional law given the baseline
biomarker).  The expectation is a Gauss-Hermite sum (``n_nodes`` nodes), exact with one
node when there is no such term and for the log-normal family (``sigma^2 + v``).  From ``S_s`` come, per draw, the survival at each milestone,
the median (bisection in log time between the medians of the quadrature components) and
the RMST up to ``horizon`` (Gauss-Legendre on segments split at the piecewise-exponential
knots); :func:`twins` reports their posterior mean and central interval.  Equations,
assumptions and column meanings are in ``docs/twins.md``.

Event convention: not used here (no outcome data is read), but the survival functions are
those of :mod:`twinsim.models.outcome` fitted with ``event`` 1 = event observed.  No
randomness: every result is a deterministic function of the posterior draws.
"""

from __future__ import annotations

import logging
import math
import warnings
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from .errors import DataError, ModelError, StatisticalWarning
from .models import get_family, time_factor
from .models.joint import TRANSFORMS

__all__ = ["twins", "twin_draws", "default_milestones"]

logger = logging.getLogger("twinsim.digital_twins")

#: Gauss-Legendre nodes per quadrature segment of the RMST integral.
_GL_NODES = 48
#: Bisection steps of the median in log time (float64 resolution is reached well before).
_BISECTIONS = 60
#: Elements of the largest intermediate array per batch of patients (memory bound).
_BATCH_ELEMENTS = 4_000_000


# --------------------------------------------------------------------------- inputs


def default_milestones(posterior, time_unit: str) -> tuple[float, ...]:
    """Quartiles of the historical follow-up in ``time_unit``, to two significant digits."""
    t = np.asarray(posterior.observed_time, float) * time_factor(posterior.time_unit, time_unit)
    q = np.quantile(t, [0.25, 0.5, 0.75])
    return tuple(sorted({float(f"{v:.2g}") for v in q if v > 0})) or (float(np.median(t)),)


def _positive_times(values, name: str) -> np.ndarray:
    arr = np.atleast_1d(np.asarray(values, dtype=float)).ravel()
    if arr.size == 0 or not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ModelError(f"{name} must be finite times > 0 (in time_unit); got {list(np.atleast_1d(values))!r}. "
                         "Give e.g. milestones=(6, 12, 24) for months.")
    return arr


def _columns_present(frame: pd.DataFrame, names, id_col) -> None:
    missing = [c for c in names if c not in frame.columns]
    if id_col is not None and id_col not in frame.columns:
        missing.append(id_col)
    if missing:
        raise DataError(
            f"patients: column(s) {missing} are missing; the model needs the baseline covariates "
            f"{list(names)}{' and the id column ' + repr(id_col) if id_col is not None else ''}. "
            f"The file has columns {list(map(str, frame.columns))[:20]}; add or rename them.")


def _covariates(posterior, frame: pd.DataFrame):
    """Design matrix (n, p) standardised, per-patient range flags and a mask of usable rows.

    Unknown categorical levels have no coefficient: those rows are flagged and their twin
    is NaN.  Numeric values outside the historical [min, max] are flagged but predicted
    (extrapolation along the fitted linear predictor).
    """
    cm = posterior.covariate_model
    n = len(frame)
    notes: list[list[str]] = [[] for _ in range(n)]
    usable = np.ones(n, bool)
    work = frame[list(cm.names)].copy()
    for j, name in enumerate(cm.names):
        s = work[name]
        if cm.categorical[j]:
            levels = list(cm.levels[j])
            if all(isinstance(lv, str) for lv in levels) and not pd.api.types.is_string_dtype(s):
                s = work[name] = s.map(lambda v: v if pd.isna(v) else str(v))  # CSV read "1" as 1
            codes = np.asarray(pd.Categorical(s, categories=levels).codes)
            unseen = s.notna().to_numpy() & (codes < 0)
            for i in np.flatnonzero(unseen):
                notes[i].append(f"{name}: {s.iloc[i]!r} is not a historical level")
            usable &= ~unseen
            if unseen.any():  # placeholder level so the row encodes; its twin is set to NaN
                work[name] = pd.Categorical(np.where(unseen, levels[0], s.astype(object)), categories=levels)
        else:
            if not (pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s)):
                raise DataError(f"patients.{name}: expected numbers (the model was fitted on a numeric "
                                f"column); got dtype {s.dtype}, e.g. {s.dropna().iloc[:3].tolist()!r}. Fix the column.")
            v = s.to_numpy(dtype=float, na_value=np.nan)
            lo, hi = cm.knot_value[j, 0], cm.knot_value[j, cm.n_knots[j] - 1]
            for i in np.flatnonzero(v < lo):
                notes[i].append(f"{name}: {v[i]:g} < historical min {lo:g}")
            for i in np.flatnonzero(v > hi):
                notes[i].append(f"{name}: {v[i]:g} > historical max {hi:g}")
        if cm.missing_index[j] < 0 and s.isna().any():
            rows = np.flatnonzero(s.isna().to_numpy())
            raise DataError(
                f"patients.{name}: {rows.size} missing value(s) (rows {rows[:8].tolist()}), but the historical "
                "data had none, so the model has no missing indicator for it. Impute or drop those patients.")
    x = cm.design(work, field="patients")
    return (x - posterior.covariate_mean) / posterior.covariate_sd, notes, usable


def _baseline_biomarker(joint: dict, frame: pd.DataFrame, notes):
    """Transformed baseline biomarker (n,) (NaN = not given) from the column named as the biomarker."""
    name, transform = joint["biomarker"], joint["transform"]
    n = len(frame)
    if name not in frame.columns:
        return np.full(n, np.nan)
    s = frame[name]
    if not pd.api.types.is_numeric_dtype(s):
        raise DataError(f"patients.{name}: the baseline biomarker must be numeric; got dtype {s.dtype}.")
    v = s.to_numpy(dtype=float, na_value=np.nan)
    bad = np.isfinite(v) & ((v < 0) if transform == "sqrt" else (v <= 0) if transform == "log" else False)
    if np.isinf(v).any() or bad.any():
        raise DataError(
            f"patients.{name}: baseline biomarker values must be finite and "
            f"{'>= 0' if transform == 'sqrt' else '> 0' if transform == 'log' else 'real'} for the model's "
            f"{transform!r} transform; rows {np.flatnonzero(bad | np.isinf(v))[:8].tolist()} are not. Fix them "
            "or leave them empty (the twin is then not conditioned on the biomarker).")
    obs = joint["observed"]
    at0 = np.asarray(obs["value"], float)[np.asarray(obs["time"], float) == 0.0]
    if at0.size:
        lo, hi = at0.min(), at0.max()
        for i in np.flatnonzero(np.isfinite(v) & ((v < lo) | (v > hi))):
            notes[i].append(f"{name} (baseline biomarker): {v[i]:g} outside historical [{lo:g}, {hi:g}]")
    with np.errstate(invalid="ignore", divide="ignore"):
        y = {"sqrt": np.sqrt, "log": np.log, "identity": lambda a: a}[transform](v)
    return np.where(np.isfinite(v), y, np.nan)


# --------------------------------------------------------------------------- joint model algebra


def _raw_mean(mu, var, transform: str):
    """``E[g^{-1}(Y)]`` for ``Y ~ N(mu, var)``: the expected raw value (``sqrt``: of ``max(Y, 0)^2``,
    the clipping of :func:`~twinsim.models.joint.bm_inverse`)."""
    if transform == "identity":
        return mu
    if transform == "log":
        return np.exp(mu + 0.5 * var)
    from scipy.special import ndtr

    sd = np.sqrt(var)
    r = mu / sd
    return (mu**2 + var) * ndtr(r) + mu * sd * np.exp(-0.5 * r**2) / math.sqrt(2 * math.pi)


def _joint_terms(joint: dict, idx, x_std: np.ndarray, y0: np.ndarray, visits_s: np.ndarray):
    """Random-effects algebra of the joint model, per draw and patient.

    ``u ~ N(0, Sigma)``, ``Sigma = diag(tau) R diag(tau)``; with a baseline value
    ``y0 = b0 + x'gamma + u0 + eps`` (transformed scale, visit time 0) ``u | y0`` is normal with
    mean ``Sigma[:, 0] (y0 - m0) / (Sigma00 + sigma^2)`` and covariance
    ``Sigma - Sigma[:, 0] Sigma[0, :] / (Sigma00 + sigma^2)`` (bivariate normal conditioning).

    Returns
    -------
    frailty_mean, frailty_var : ndarray (S, n)
        Mean and variance of the log-hazard term ``(assoc / tau) . u`` (given ``y0`` where known).
    bm_mu, bm_var : ndarray (S, n, k)
        Mean and variance of a new measurement ``g(v)`` at each visit (``s = t / time_ref``).
    """
    jp = {k: np.asarray(v, float)[idx] for k, v in joint["params"].items()}
    tau, chol, sigma = jp["re_sd"], jp["re_corr_chol"], jp["bm_sigma"]
    corr = np.einsum("sij,skj->sik", chol, chol)
    cov = corr * tau[:, :, None] * tau[:, None, :]  # (S, 2, 2)
    gamma = jp["bm_gamma"] if jp["bm_gamma"].shape[-1] else np.zeros((len(idx), x_std.shape[1]))
    m0 = jp["bm_intercept"][:, None] + gamma @ x_std.T  # (S, n)
    has = np.isfinite(y0)
    v0 = cov[:, 0, 0] + sigma**2  # (S,)
    resid = np.where(has[None, :], np.nan_to_num(y0)[None, :] - m0, 0.0)
    eu = cov[:, None, :, 0] * (resid / v0[:, None])[:, :, None]  # (S, n, 2)
    shrink = cov[:, :, 0, None] * cov[:, None, 0, :] / v0[:, None, None]  # (S, 2, 2)
    cu = cov[:, None] - has[None, :, None, None] * shrink[:, None]  # (S, n, 2, 2)
    c = jp["assoc"] / tau  # (S, 2): log hazard per unit of u
    frailty_mean = np.einsum("sj,snj->sn", c, eu)
    frailty_var = np.einsum("sj,snjk,sk->sn", c, cu, c)
    s = visits_s[None, None, :]
    bm_mu = (m0 + eu[..., 0])[..., None] + (jp["bm_slope"][:, None, None] + eu[..., 1:]) * s
    bm_var = (cu[..., 0, 0, None] + 2 * s * cu[..., 0, 1, None] + s**2 * cu[..., 1, 1, None]
              + (sigma**2)[:, None, None])
    return frailty_mean, frailty_var, bm_mu, bm_var


# --------------------------------------------------------------------------- survival (JAX)


def _rmst_nodes(horizon: float, knots) -> tuple[np.ndarray, np.ndarray]:
    """Quadrature nodes and weights of ``int_0^horizon f(t) dt``.

    Segments split at the knots (the piecewise-exponential survival is smooth between them);
    the first segment uses ``t = a + (b - a) u^3`` so that ``t^k`` terms with a Weibull shape
    ``k < 1`` (unbounded derivative at 0) become smooth in ``u``.
    """
    x, w = np.polynomial.legendre.leggauss(_GL_NODES)
    u, w = (x + 1) / 2, w / 2
    inner = [] if knots is None else [float(k) for k in np.asarray(knots)[1:] if 0 < k < horizon]
    edges = np.array([0.0, *inner, horizon])
    t_all, w_all = [], []
    for j, (a, b) in enumerate(zip(edges[:-1], edges[1:])):
        if j == 0:
            t_all.append(a + (b - a) * u**3)
            w_all.append((b - a) * 3 * u**2 * w)
        else:
            t_all.append(a + (b - a) * u)
            w_all.append((b - a) * w)
    return np.concatenate(t_all), np.concatenate(w_all)


@partial(jax.jit, static_argnames=("family", "batch"))
def _survival_summaries(family: str, params, consts, loc, scale, milestones, tq, wq, nodes, weights, *, batch: int):
    """Per draw and patient: S at the milestones, median and RMST of the normal-mixture survival.

    ``params`` leaves (S, ...) of one family; ``loc``, ``scale`` (n, S): mean and SD of the
    patient's log-hazard (PH) / log-time (AFT) shift ``eta + z``; ``milestones`` (m,); ``tq``,
    ``wq`` (Q,) RMST quadrature; ``nodes``, ``weights`` (K,) normalised Gauss-Hermite.
    Returns ``surv`` (n, S, m), ``median`` (n, S), ``rmst`` (n, S).
    """
    fam = get_family(family)
    p = jax.tree_util.tree_map(lambda a: a.reshape((a.shape[0], 1, 1) + a.shape[1:]), params)  # (S, 1, 1, ...)
    log_log2 = math.log(math.log(2.0))

    def one(args):
        mu, sd = args  # (S,)
        q = p
        if family == "lognormal":  # a normal shift of log time keeps it log-normal: exact, one node
            q = dict(p, log_sigma=0.5 * jnp.log(jnp.exp(2 * p["log_sigma"]) + sd[:, None, None] ** 2))
            sd = jnp.zeros_like(sd)
        eta = mu[:, None, None] + sd[:, None, None] * nodes  # (S, 1, K)

        def surv(t):  # t broadcastable to (S, T, 1) -> (S, T)
            return fam.survival(t, q, eta, consts) @ weights

        s_m = surv(milestones[None, :, None])
        rmst = surv(tq[None, :, None]) @ wq
        comp = jnp.log(fam.time_at(jnp.full(eta.shape, log_log2), q, eta, consts))[:, 0, :]  # (S, K)
        lo, hi = comp.min(axis=-1), comp.max(axis=-1)

        def step(_, bounds):
            lo, hi = bounds
            mid = 0.5 * (lo + hi)
            above = surv(jnp.exp(mid)[:, None, None])[:, 0] > 0.5  # still above 1/2: median later
            return jnp.where(above, mid, lo), jnp.where(above, hi, mid)

        lo, hi = jax.lax.fori_loop(0, _BISECTIONS, step, (lo, hi))
        return s_m, jnp.exp(0.5 * (lo + hi)), rmst

    return jax.lax.map(one, (loc, scale), batch_size=batch)


# --------------------------------------------------------------------------- draws and summaries


def _thin(n_draws: int, max_draws: int | None) -> np.ndarray:
    if max_draws is None or max_draws >= n_draws:
        return np.arange(n_draws)
    if isinstance(max_draws, bool) or not isinstance(max_draws, (int, np.integer)) or max_draws < 1:
        raise ModelError(f"max_draws must be a positive integer or None (all draws); got {max_draws!r}.")
    return np.unique(np.linspace(0, n_draws - 1, int(max_draws)).round().astype(int))


def twin_draws(posterior, patients, *, milestones=None, horizon=None, time_unit: str | None = None,
               id: str | None = None, n_nodes: int = 40, max_draws: int | None = 1000) -> dict:
    """Per-draw twin quantities of every patient (see :func:`twins` for the arguments).

    Returns
    -------
    dict
        ``surv`` (S, n, m) survival at ``milestones``; ``median`` (S, n) and ``rmst`` (S, n)
        in ``time_unit``; ``eta`` (S, n) the patient's predicted linear predictor, ``x'beta``
        plus the conditional mean of the random-effects term given the baseline biomarker
        (0 without one); ``sd_z`` (S, n) the SD of the integrated normal term;
        ``biomarker`` (S, n, k) expected raw biomarker at each visit or None; ``usable``
        (n,) bool (False: unknown level, twin NaN); ``notes`` list of n lists of str (why a
        patient is out of range); ``conditioned`` (n,) bool; ``milestones`` (m,),
        ``horizon``, ``visits`` (k,) or None, ``time_unit``, ``draws`` (S,) indices used,
        ``ids`` (n,) or None, ``n_nodes`` (1 when there was nothing to integrate).
    """
    unit = time_unit or posterior.time_unit
    f = time_factor(posterior.time_unit, unit)  # validates the unit
    from .data.tables import read_table

    frame, _ = read_table(patients, None, "patients")
    _columns_present(frame, posterior.covariate_model.names, id)
    if len(frame) == 0:
        raise DataError("patients: the table has no rows; give one row per patient.")
    ms = _positive_times(default_milestones(posterior, unit) if milestones is None else milestones, "milestones")
    h = float(_positive_times(ms.max() if horizon is None else horizon, "horizon")[0])
    if isinstance(n_nodes, bool) or not isinstance(n_nodes, (int, np.integer)) or not 2 <= n_nodes <= 200:
        raise ModelError(f"n_nodes must be an integer in [2, 200] (Gauss-Hermite nodes); got {n_nodes!r}.")
    idx = _thin(posterior.n_draws, max_draws)
    x, notes, usable = _covariates(posterior, frame)
    n, s = len(frame), idx.size

    d = posterior.draws(unit)
    beta = d.pop("beta")[idx]
    params = {k: jnp.asarray(v[idx]) for k, v in d.items()}
    consts = {k: jnp.asarray(v, float) for k, v in posterior.consts_in(unit).items()}
    eta = beta @ x.T if x.shape[1] else np.zeros((s, n))  # (S, n)
    study_var = (np.asarray(posterior.study_sd, float)[idx] ** 2)[:, None]
    joint, bio, conditioned, visits = posterior.joint, None, np.zeros(n, bool), None
    if joint is not None:
        if joint["transform"] not in TRANSFORMS:
            raise ModelError(f"the posterior's biomarker transform {joint['transform']!r} is unknown.")
        y0 = _baseline_biomarker(joint, frame, notes)
        conditioned = np.isfinite(y0)
        vt = np.asarray(joint["visit_times"], float)
        f_mean, f_var, bm_mu, bm_var = _joint_terms(joint, idx, x, y0, vt / float(joint["time_ref"]))
        loc, var = eta + f_mean, np.maximum(f_var, 0.0) + study_var
        bio = _raw_mean(bm_mu, bm_var, joint["transform"])
        visits = vt * f
    else:
        loc, var = eta, np.broadcast_to(study_var, eta.shape)
    sd = np.sqrt(var)
    k = n_nodes if np.any(sd > 0) and posterior.outcome != "lognormal" else 1
    nodes, weights = np.polynomial.hermite_e.hermegauss(k) if k > 1 else (np.zeros(1), np.ones(1))
    weights = weights / weights.sum()
    tq, wq = _rmst_nodes(h, consts.get("knots"))
    per_patient = s * tq.size * k * (consts["knots"].shape[0] if "knots" in consts else 1)
    batch = int(max(1, min(n, _BATCH_ELEMENTS // per_patient)))
    logger.info("twins: %d patients x %d draws, %d Gauss-Hermite node(s), batches of %d", n, s, k, batch)
    surv, median, rmst = _survival_summaries(
        posterior.outcome, params, consts, jnp.asarray(loc.T), jnp.asarray(sd.T), jnp.asarray(ms),
        jnp.asarray(tq), jnp.asarray(wq), jnp.asarray(nodes), jnp.asarray(weights), batch=batch)
    surv = np.array(np.moveaxis(np.asarray(surv), 0, 1))  # writable copies
    median, rmst = np.array(np.asarray(median).T), np.array(np.asarray(rmst).T)
    nan = ~usable
    for arr in (surv, median, rmst, loc, sd) + ((bio,) if bio is not None else ()):
        arr[:, nan] = np.nan
    return {"surv": surv, "median": median, "rmst": rmst, "eta": loc, "sd_z": sd, "biomarker": bio,
            "usable": usable, "notes": notes, "conditioned": conditioned & usable, "milestones": ms,
            "horizon": h, "visits": visits, "time_unit": unit, "draws": idx, "n_nodes": k,
            "ids": None if id is None else frame[id].to_numpy()}


def _label(v: float) -> str:
    """Column label of a time: an integer as such, otherwise rounded to 3 decimals (``14.286``)."""
    return f"{int(round(v))}" if abs(v - round(v)) < 1e-9 * max(1.0, abs(v)) else f"{round(v, 3):g}"


def twins(posterior, patients, *, milestones=None, horizon=None, level: float = 0.9,
          time_unit: str | None = None, id: str | None = None, n_nodes: int = 40,
          max_draws: int | None = 1000) -> pd.DataFrame:
    """Digital twins: every patient's predicted control outcome with its uncertainty.

    Parameters
    ----------
    posterior : twinsim.fit.Posterior
        Fitted to historical controls (any family; a joint biomarker model adds biomarker
        predictions and conditions on the baseline value).
    patients : DataFrame or path (.csv, .parquet, .xpt)
        One row per patient with the raw baseline covariates the model was fitted on
        (:attr:`CovariateModel.names`, original units and levels); for a joint model
        optionally a column named as the biomarker holding the baseline (time 0) value.
    milestones : sequence of float > 0, optional
        Times (``time_unit``) at which to report survival; default the quartiles of the
        historical follow-up (:func:`default_milestones`).
    horizon : float > 0, optional
        Upper limit (``time_unit``) of the restricted mean survival time; default the last
        milestone.
    level : float in (0, 1)
        Probability of the central posterior intervals (``_lo``, ``_hi`` columns).
    time_unit : str, optional
        Unit of milestones, horizon, median, RMST and visit labels; default the posterior's.
    id : str, optional
        Column of ``patients`` copied to the output as its first column.
    n_nodes : int
        Gauss-Hermite nodes for the unobserved normal term (new-study effect, random effects).
    max_draws : int or None
        Evenly spaced posterior draws used (None = all); 1000 keeps the Monte Carlo error of
        a 90% interval end well below its width.

    Returns
    -------
    DataFrame (n rows, input order)
        ``[id]``, ``surv_<m>`` / ``surv_<m>_lo`` / ``surv_<m>_hi`` per milestone, ``median``,
        ``rmst`` (each with ``_lo``, ``_hi``), ``eta`` (``_lo``, ``_hi``), for a joint model
        ``<biomarker>_<visit>`` (``_lo``, ``_hi``) and ``biomarker_conditioned``;
        ``out_of_range`` (bool), ``out_of_range_covariates`` (text), ``time_unit``,
        ``rmst_horizon``.  Point values are posterior means over draws, intervals central
        posterior quantiles of the per-draw values.  ``attrs`` holds the settings.

    Raises
    ------
    DataError
        Missing covariate (or id) columns, missing values where the history had none, a
        non-numeric numeric column, invalid baseline biomarker values.
    ModelError
        Bad milestones, horizon, level, time unit or draw/node counts.

    Warns
    -----
    StatisticalWarning
        When patients lie outside the historical covariate range (extrapolation).
    """
    if not (isinstance(level, (int, float)) and 0.0 < float(level) < 1.0):
        raise ModelError(f"level must be a probability in (0, 1), e.g. 0.9; got {level!r}.")
    d = twin_draws(posterior, patients, milestones=milestones, horizon=horizon, time_unit=time_unit,
                   id=id, n_nodes=n_nodes, max_draws=max_draws)
    q = [(1 - level) / 2, (1 + level) / 2]
    out: dict[str, np.ndarray] = {}
    if d["ids"] is not None:
        out[id] = d["ids"]

    def put(name, draws):
        out[name] = draws.mean(axis=0)  # NaN for unusable patients (unknown level)
        lo, hi = np.quantile(draws, q, axis=0)
        out[f"{name}_lo"], out[f"{name}_hi"] = lo, hi

    for j, m in enumerate(d["milestones"]):
        put(f"surv_{_label(m)}", d["surv"][:, :, j])
    put("median", d["median"])
    put("rmst", d["rmst"])
    put("eta", d["eta"])
    if d["biomarker"] is not None:
        name = posterior.joint["biomarker"]
        for j, v in enumerate(d["visits"]):
            put(f"{name}_{_label(v)}", d["biomarker"][:, :, j])
        out["biomarker_conditioned"] = d["conditioned"]
    flagged = np.array([bool(nt) for nt in d["notes"]])
    out["out_of_range"] = flagged
    out["out_of_range_covariates"] = np.array(["; ".join(nt) for nt in d["notes"]], dtype=object)
    n = flagged.size
    out["time_unit"] = np.full(n, d["time_unit"], dtype=object)
    out["rmst_horizon"] = np.full(n, d["horizon"])
    frame = pd.DataFrame(out)
    frame.attrs.update({
        "time_unit": d["time_unit"], "level": float(level), "milestones": [float(m) for m in d["milestones"]],
        "horizon": d["horizon"], "draws": int(d["draws"].size), "gauss_hermite_nodes": int(d["n_nodes"]),
        "outcome": posterior.outcome, "eta": "log hazard shift" if posterior.family.kind == "ph"
        else "log time ratio (AFT: higher = longer survival)",
    })
    if flagged.any():
        unusable = int((~d["usable"]).sum())
        warnings.warn(
            f"{int(flagged.sum())} of {n} patients have baseline values outside the historical range (their twins "
            "extrapolate the fitted model; see the columns out_of_range and out_of_range_covariates)"
            + (f"; {unusable} with a categorical level the model never saw have NaN twins" if unusable else "")
            + ".", StatisticalWarning, stacklevel=2)
    return frame
