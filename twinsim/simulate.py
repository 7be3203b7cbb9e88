"""Simulation: one pure JAX kernel per trial, vmapped over replicates.

A replicate draws one patient pool and analyses it under every design and grid point
("configuration"), so designs are compared on common random numbers: the first
``real_control`` concurrent controls of every design are the same patients, and so are
the first ``treatment`` treated patients and the first ``synthetic_control`` synthetic
ones.  Grid points share the pool too (an effect sweep changes event times through the
hazard multiplier only), which makes power curves smooth in the effect.

Generative process of one replicate (times in ``trial.time_unit``)
-----------------------------------------------------------------
1. The "true" parameters of the concurrent population: one posterior draw ``s``.
2. Real patients (treatment and concurrent control): covariates from the copula, event
   time from the PH model of draw ``s`` with hazard multiplied by ``drift`` (controls) or
   ``drift * hazard_ratio`` (treatment).
   With a joint biomarker model every patient (real or synthetic) also gets their own
   random-effects term in the log hazard, ``N(0, frailty_sd^2)`` (see ``PatientModel``).
3. Synthetic controls: covariates from the copula, each with its own posterior draw
   (a posterior predictive draw), no drift: they are what the historical data predict.
4. Every patient gets an entry time uniform over the design's accrual period and an
   exponential dropout time; synthetic controls are treated as if enrolled concurrently.
5. The analysis time (cut) is the calendar time of the ``cut.events``-th event among the
   design's real patients, or ``cut.time``.  Patients not yet enrolled are excluded;
   follow-up is censored at dropout or the cut.

Keys: ``jax.random.key(seed)`` -> ``fold_in(root, 2)`` is the simulation root; replicate
``r`` uses ``fold_in(sim_root, r)``, so the first R replicates are the same whatever the
total, and every design and grid point sees the same replicate key.
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass
from functools import partial
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import xarray as xr
from scipy.special import ndtri

from .analysis import cox_adjusted, decide, kth_smallest, logrank_cox
from .errors import StatisticalWarning
from .models import get_family
from .models.covariates import CovariateArrays, CovariateModel, sample_raw
from .models.encoding import encode
from .scenario import Grid, Scenario

log = logging.getLogger("twinsim.simulate")

__all__ = [
    "PatientModel",
    "DesignConfig",
    "Sizes",
    "simulate_trial",
    "simulate_trial_data",
    "analyse_trial",
    "SimulatedTrial",
    "simulate_replicates",
    "design_configs",
    "patient_model_from_posterior",
    "patient_model_from_control",
    "simulate_grid",
    "KEY_FIT",
    "KEY_SIMULATE",
    "KEY_REPORT",
    "sample_patients",
    "predictive_km",
    "reject_rule",
]

#: The covariate generator of a model without covariates (assumed control distributions).
_NO_COVARIATES = CovariateModel.fit(pd.DataFrame(index=range(2)))

#: ``fold_in`` constants of the key tree under ``jax.random.key(seed)``.
KEY_FIT, KEY_SIMULATE, KEY_REPORT = 1, 2, 3


@jax.tree_util.register_pytree_node_class
@dataclass(frozen=True)
class PatientModel:
    """Arrays the kernel needs to generate patients (a pytree; ``family`` is static).

    ``params`` (dict of (S, ...) arrays) and ``beta`` (S, p) are posterior draws of the
    outcome family :attr:`family` in trial time units on standardised covariates;
    ``consts`` the family's constants (knots) in trial time units; ``covariates`` the
    covariate generator and encoder (:class:`~twinsim.models.covariates.CovariateArrays`);
    ``mean``, ``sd`` (p,) the standardisation of the design columns; ``study_sd`` (S,) the
    between-study SD (zeros for one source); ``frailty_sd`` (S,) the SD of a per-patient
    normal term of the log hazard (the random effects of a joint biomarker model,
    :attr:`twinsim.fit.Posterior.frailty_sd`), or None (none; the kernel then draws nothing
    for it).
    """

    family: str
    params: dict
    beta: jax.Array
    consts: dict
    covariates: CovariateArrays
    mean: jax.Array
    sd: jax.Array
    study_sd: jax.Array
    frailty_sd: jax.Array | None = None

    def tree_flatten(self):
        return ((self.params, self.beta, self.consts, self.covariates, self.mean, self.sd, self.study_sd,
                 self.frailty_sd), self.family)

    @classmethod
    def tree_unflatten(cls, family, children):
        return cls(family, *children)

    @property
    def n_draws(self) -> int:
        return int(self.beta.shape[0])


class DesignConfig(NamedTuple):
    """One configuration (design x grid point); fields are scalars, or (C,) when stacked."""

    n_treat: jax.Array
    n_real: jax.Array
    n_syn: jax.Array
    syn_weight: jax.Array
    log_hr: jax.Array
    log_drift: jax.Array
    accrual: jax.Array       # accrual duration for this design
    dropout_rate: jax.Array  # exponential rate (0 = none)
    cut_events: jax.Array    # event-driven cut (when Sizes.event_driven)
    cut_time: jax.Array      # calendar cut (otherwise)
    adjust: jax.Array        # 1 = Cox adjusted for the digital twin (procova), 2 = for every covariate (adjusted), 0 = none


class Sizes(NamedTuple):
    """Static (compile-time) sizes: pools are padded to the largest design and grid point."""

    max_treat: int
    max_real: int
    max_syn: int
    event_driven: bool
    adjusted: bool = False   # some design is procova: also fit the twin-adjusted Cox
    covariate_adjusted: bool = False  # some design is adjusted: also fit the covariate-adjusted Cox


class TrialOutcome(NamedTuple):
    z: jax.Array
    log_hr: jax.Array
    se: jax.Array
    valid: jax.Array
    real_events: jax.Array
    cut_time: jax.Array
    n_analysed: jax.Array


def patient_model_from_posterior(posterior, time_unit: str) -> PatientModel:
    """Kernel arrays from a fitted :class:`~twinsim.fit.Posterior` (times in ``time_unit``)."""
    d = posterior.draws(time_unit)
    beta = d.pop("beta")
    return PatientModel(
        posterior.outcome,
        {k: jnp.asarray(v, float) for k, v in d.items()},
        jnp.asarray(beta, float),
        {k: jnp.asarray(v, float) for k, v in posterior.consts_in(time_unit).items()},
        posterior.covariate_model.arrays,
        jnp.asarray(posterior.covariate_mean, float), jnp.asarray(posterior.covariate_sd, float),
        jnp.asarray(posterior.study_sd, float),
        None if posterior.frailty_sd is None else jnp.asarray(posterior.frailty_sd, float),
    )


def patient_model_from_control(control) -> PatientModel:
    """Kernel arrays for an assumed control distribution (one draw, no covariates)."""
    return PatientModel(
        "weibull", {"log_scale": jnp.array([control.log_scale]), "log_shape": jnp.array([control.log_shape])},
        jnp.zeros((1, 0)), {}, _NO_COVARIATES.arrays, jnp.zeros((0,)), jnp.ones((0,)),
        jnp.zeros((1,)),
    )


def _frailty(key, model: PatientModel, n: int, draw_index):
    """Each patient's own normal log-hazard term ``frailty_sd[draw] * z`` (0 without one).

    Its key is ``fold_in(key, 11)``, so models without it draw exactly what they did before.
    """
    if model.frailty_sd is None:
        return 0.0
    return model.frailty_sd[draw_index] * jax.random.normal(jax.random.fold_in(key, 11), (n,))


def _draw_pool(key, model: PatientModel, n: int, draw_index, study_u):
    """Latent patients: (log E, eta, their draw's parameters), entry fraction, dropout, twin.

    The twin is the patient's predicted log hazard under control from the covariates alone,
    ``x' mean(beta)`` over the posterior draws (what a digital-twin model fitted to the
    historical data predicts; the true ``eta`` uses the replicate's own draw, the study
    effect and the patient's frailty, which no twin sees).

    ``draw_index`` is one posterior draw for all (real patients) or one per patient
    (synthetic); ``study_u`` the population's study effect (scalar or (n,)).
    """
    kx, ke, ka, kd = jax.random.split(key, 4)
    x = encode(sample_raw(kx, n, model.covariates), model.covariates)
    x = (x - model.mean) / model.sd
    beta = model.beta[draw_index]
    eta = (jnp.sum(x * beta, axis=-1) if beta.ndim == 2 else x @ beta) + study_u + _frailty(key, model, n, draw_index)
    p = jax.tree_util.tree_map(lambda a: a[draw_index], model.params)
    log_e = jnp.log(jax.random.exponential(ke, (n,)))
    twin = x @ jnp.mean(model.beta, axis=0)  # the digital twin: predicted log hazard (posterior mean beta)
    return (log_e, eta, p), jax.random.uniform(ka, (n,)), jax.random.exponential(kd, (n,)), (twin, x)


def _follow_up(model: PatientModel, latent, log_mult, entry_frac, dropout_e, n, cfg: DesignConfig, max_n):
    """Event time under the hazard multiplier, entry and dropout, padded to ``max_n``."""
    log_e, eta, p = latent
    t = get_family(model.family).time_at(log_e - log_mult, p, eta, model.consts)
    entry = entry_frac * cfg.accrual
    drop = jnp.where(cfg.dropout_rate > 0, dropout_e / jnp.where(cfg.dropout_rate > 0, cfg.dropout_rate, 1.0), jnp.inf)
    in_design = jnp.arange(max_n) < n
    return t, entry, drop, in_design


class SimulatedTrial(NamedTuple):
    """One simulated trial as analysed: patients padded to the largest design (a pytree).

    ``time`` (n,) follow-up in trial time units; ``event`` (n,) 1 = event observed;
    ``group`` (n,) 1 = treatment; ``weight`` (n,) 1 for real patients, the design's weight
    for synthetic controls, 0 for patients outside the design or not enrolled by the cut;
    ``cut_time`` the calendar time of the analysis; ``real_events`` events among real
    patients; ``twin`` (n,) each patient's digital twin (predicted log hazard under control);
    ``x`` (n, p) the standardised baseline covariates; ``adjust`` 1 when the design analyses
    by the twin-adjusted Cox (procova), 2 by the covariate-adjusted Cox (adjusted).
    Patients are ordered treatment, real controls, synthetic controls.
    """

    time: jax.Array
    event: jax.Array
    group: jax.Array
    weight: jax.Array
    cut_time: jax.Array
    real_events: jax.Array
    twin: jax.Array
    x: jax.Array
    adjust: jax.Array


def _draw_pools(key, model: PatientModel, sizes: Sizes):
    """Latent patients of one replicate: the truth draw, then treatment, control, synthetic pools.

    With several historical studies the concurrent population is a new study: one study
    effect ``N(0, study_sd^2)`` shared by its real patients; each synthetic control gets
    its own (the predictive of a patient from a new study).
    """
    k_truth, k_t, k_c, k_s, k_idx = jax.random.split(key, 5)
    n_draws = model.beta.shape[0]
    s = jax.random.randint(k_truth, (), 0, n_draws)
    syn_idx = jax.random.randint(k_idx, (sizes.max_syn,), 0, n_draws)
    z = jax.random.normal(jax.random.fold_in(key, 7), (1 + sizes.max_syn,))
    u_truth = model.study_sd[s] * z[0]
    u_syn = model.study_sd[syn_idx] * z[1:]
    return (
        _draw_pool(k_t, model, sizes.max_treat, s, u_truth),
        _draw_pool(k_c, model, sizes.max_real, s, u_truth),
        _draw_pool(k_s, model, sizes.max_syn, syn_idx, u_syn),
    )


def _censor(model: PatientModel, pools, cfg: DesignConfig, sizes: Sizes) -> SimulatedTrial:
    """Apply one configuration to the pools: effect, drift, accrual, dropout, cut, censoring."""
    (lt_t, a_t, d_t, tw_t), (lt_c, a_c, d_c, tw_c), (lt_s, a_s, d_s, tw_s) = pools
    trt = _follow_up(model, lt_t, cfg.log_hr + cfg.log_drift, a_t, d_t, cfg.n_treat, cfg, sizes.max_treat)
    ctl = _follow_up(model, lt_c, cfg.log_drift, a_c, d_c, cfg.n_real, cfg, sizes.max_real)
    syn = _follow_up(model, lt_s, 0.0, a_s, d_s, cfg.n_syn, cfg, sizes.max_syn)

    if sizes.event_driven:
        cal = [jnp.where(inside & (t <= drop), entry + t, jnp.inf) for t, entry, drop, inside in (trt, ctl)]
        # inf when fewer events ever occur: then all follow-up is analysed
        cut = kth_smallest(jnp.concatenate(cal), cfg.cut_events)
    else:
        cut = cfg.cut_time

    def censor(pool):
        t, entry, drop, inside = pool
        enrolled = inside & (entry < cut)
        event = enrolled & (t <= drop) & (entry + t <= cut)
        time = jnp.where(event, t, jnp.minimum(drop, cut - entry))
        return time, event, enrolled

    (tt, et, it), (tc, ec, ic), (ts, es, is_) = censor(trt), censor(ctl), censor(syn)
    return SimulatedTrial(
        time=jnp.concatenate([tt, tc, ts]),
        event=jnp.concatenate([et, ec, es]),
        group=jnp.concatenate([jnp.ones_like(tt), jnp.zeros_like(tc), jnp.zeros_like(ts)]),
        weight=jnp.concatenate([it * 1.0, ic * 1.0, is_ * cfg.syn_weight]),
        cut_time=cut,
        real_events=jnp.sum(et) + jnp.sum(ec),
        twin=jnp.concatenate([tw_t[0], tw_c[0], tw_s[0]]),
        x=jnp.concatenate([tw_t[1], tw_c[1], tw_s[1]]),
        adjust=cfg.adjust,
    )


def analyse_trial(trial: SimulatedTrial, adjusted: bool = False, covariate_adjusted: bool = False) -> TrialOutcome:
    """The kernel's analysis of one simulated trial (log-rank and Cox on continuous times).

    With ``adjusted`` (static: some design is procova) the Cox model adjusted for the twin
    (:func:`~twinsim.analysis.cox_adjusted`) is fitted too, and a trial with
    ``trial.adjust == 1`` reports its treatment estimate, SE and Wald Z (as ``z``) instead;
    likewise ``covariate_adjusted`` (some design is adjusted) with every covariate, for
    ``trial.adjust == 2``.
    """
    res = logrank_cox(trial.time, trial.event, trial.group, trial.weight, ties=False)  # no ties: continuous times
    z, log_hr, se, valid = res.z, res.log_hr, res.se, res.valid
    for on, code, cov in ((adjusted, 1, trial.twin), (covariate_adjusted, 2, trial.x)):
        if on:
            adj = cox_adjusted(trial.time, trial.event, trial.group, cov, trial.weight)
            use = trial.adjust == code
            z, log_hr = jnp.where(use, adj.z, z), jnp.where(use, adj.log_hr, log_hr)
            se, valid = jnp.where(use, adj.se, se), jnp.where(use, adj.valid, valid)
    return TrialOutcome(z, log_hr, se, valid, trial.real_events, trial.cut_time, jnp.sum(trial.weight > 0))


def simulate_trial_data(key, model: PatientModel, config: DesignConfig, sizes: Sizes) -> SimulatedTrial:
    """Per-patient data of one simulated trial under one configuration (scalar fields).

    The same patients :func:`simulate_trial` analyses for that key: use it to inspect a
    simulated trial or to analyse it with another tool.
    """
    return _censor(model, _draw_pools(key, model, sizes), config, sizes)


def simulate_trial(key, model: PatientModel, configs: DesignConfig, sizes: Sizes) -> TrialOutcome:
    """Simulate one trial and analyse it under each configuration.

    Parameters
    ----------
    key : jax.random key (one replicate)
    model : PatientModel
    configs : DesignConfig with (C,) fields
    sizes : Sizes (static)

    Returns
    -------
    TrialOutcome with (C,) fields.
    """
    pools = _draw_pools(key, model, sizes)
    return jax.lax.map(lambda cfg: analyse_trial(_censor(model, pools, cfg, sizes), sizes.adjusted,
                                                 sizes.covariate_adjusted), configs)


@partial(jax.jit, static_argnames=("sizes",))
def simulate_replicates(keys, model: PatientModel, configs: DesignConfig, sizes: Sizes) -> TrialOutcome:
    """:func:`simulate_trial` vmapped over a batch of replicate keys: fields (B, C)."""
    return jax.vmap(simulate_trial, in_axes=(0, None, None, None))(keys, model, configs, sizes)


# --------------------------------------------------------------------------- scenarios


@dataclass(frozen=True)
class ConfigTable:
    """Configurations of a grid: stacked kernel inputs plus their labels."""

    configs: DesignConfig
    sizes: Sizes
    designs: tuple[str, ...]
    grid: Grid
    alpha: np.ndarray        # (D, *grid.shape)
    true_log_hr: np.ndarray  # (*grid.shape,)


def reject_rule(z, log_hr, se, valid, alpha, *, test: str, alternative: str):
    """The decision of one analysed trial (arrays broadcast; numpy or xarray).

    ``test: logrank`` rejects on the log-rank ``z`` (for a procova design the kernel put the
    adjusted Wald Z there); ``test: cox`` on the Wald ``log_hr / se``, and a replicate whose
    Cox fit failed (``valid`` False) counts as not rejected.
    """
    stat = z if test == "logrank" else log_hr / se
    reject = decide(stat, alpha, alternative)
    return reject & (valid | (test == "logrank"))


def design_configs(grid: Grid) -> ConfigTable:
    """Turn every (design, grid point) of a scenario grid into kernel inputs."""
    first = grid.points[0]
    designs = tuple(d.name for d in first.designs)
    rows = []
    for name in designs:
        for _, sc in grid:
            d = sc.design(name)
            tr = sc.trial
            n_t = d.treatment if d.treatment is not None else tr.n_treatment
            n_s = d.synthetic_control if d.method != "none" else 0
            acc = tr.accrual.duration if tr.accrual.duration is not None else (n_t + d.real_control) / tr.accrual.rate
            rows.append(
                (n_t, d.real_control, n_s, d.synthetic_weight, math.log(sc.effect.hazard_ratio[0]),
                 math.log(sc.drift.hazard_ratio[0]), acc, tr.dropout.rate if tr.dropout else 0.0,
                 tr.cut.events or 0, tr.cut.time or 0.0, {"procova": 1.0, "adjusted": 2.0}.get(d.method, 0.0))
            )
    cols = list(zip(*rows))
    ints = {0, 1, 2, 8}
    configs = DesignConfig(*[jnp.asarray(c, jnp.int32 if i in ints else float) for i, c in enumerate(cols)])
    event_driven = first.trial.cut.events is not None
    sizes = Sizes(int(max(cols[0])), int(max(cols[1])), int(max(cols[2])), event_driven, 1.0 in cols[10],
                  2.0 in cols[10])
    shape = grid.shape
    alpha = np.array([sc.analysis.alpha for _design in designs for _idx, sc in grid]).reshape((len(designs), *shape))
    true_log_hr = np.array([math.log(sc.effect.hazard_ratio[0]) for _, sc in grid]).reshape(shape)
    return ConfigTable(configs, sizes, designs, grid, alpha, true_log_hr)


def first_cut_events(grid: Grid):
    """The event target(s) of an event-driven grid, for messages."""
    targets = sorted({sc.trial.cut.events for _, sc in grid})
    return targets[0] if len(targets) == 1 else targets


def _batch_size(sizes: Sizes, n_configs: int, replicates: int, budget_bytes: float = 4e8) -> int:
    per_replicate = (sizes.max_treat + sizes.max_real + sizes.max_syn) * 8 * 40 + n_configs * 64
    # batches of a few hundred keep intermediates in cache: 1.5x faster than thousands (docs/performance.md)
    return int(max(1, min(replicates, budget_bytes // per_replicate, 128)))


def simulate_grid(
    scenario: Scenario,
    model: PatientModel,
    *,
    rng_key,
    grid: Grid,
    progress: Callable[[int, int], None] | None = None,
) -> xr.Dataset:
    """Simulate ``scenario.replicates`` trials and analyse them at every design and grid point.

    Parameters
    ----------
    scenario : Scenario (its test, alternative and replicates are used)
    model : PatientModel in ``scenario.trial.time_unit``
    rng_key : the simulation root key (``fold_in(jax.random.key(seed), KEY_SIMULATE)``)
    grid : Grid from :func:`twinsim.scenario.build_grid`
    progress : optional callback ``progress(done, total)`` after each batch

    Returns
    -------
    Dataset with dims ``design``, the grid dimensions and ``replicate``: ``reject``,
    ``z`` (log-rank), ``log_hr``, ``se``, ``ci_lower``, ``ci_upper``, ``valid``,
    ``real_events``, ``cut_time``, ``n_analysed``; coordinate ``true_log_hr``.
    """
    table = design_configs(grid)
    n_conf = len(table.designs) * int(np.prod(grid.shape))
    reps = scenario.replicates
    batch = _batch_size(table.sizes, n_conf, reps)
    log.info("simulating %d replicates x %d configurations in batches of %d (sizes %s)", reps, n_conf, batch, table.sizes)
    parts = []
    for start in range(0, reps, batch):
        # fixed batch shape (pad the last batch) so the kernel compiles once
        idx = jnp.arange(start, start + batch)
        keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(rng_key, idx)
        out = simulate_replicates(keys, model, table.configs, table.sizes)
        take = min(batch, reps - start)
        parts.append(jax.tree_util.tree_map(lambda a: np.asarray(a[:take]), out))
        if progress is not None:
            progress(start + take, reps)
    out = TrialOutcome(*[np.concatenate([getattr(p, f) for p in parts]) for f in TrialOutcome._fields])

    shape = (reps, len(table.designs), *grid.shape)
    dims = ("replicate", "design", *grid.dims)
    order = (1, *range(2, 2 + len(grid.dims)), 0)

    def arr(x):
        return np.transpose(np.asarray(x).reshape(shape), order)

    dims = tuple(dims[i] for i in order)
    coords = {"design": list(table.designs), "replicate": np.arange(reps)}
    coords.update({k: np.asarray(v, float) for k, v in grid.dims.items()})
    ds = xr.Dataset(
        {
            "z": (dims, arr(out.z)),
            "log_hr": (dims, arr(out.log_hr)),
            "se": (dims, arr(out.se)),
            "valid": (dims, arr(out.valid)),
            "real_events": (dims, arr(out.real_events).astype(np.int32)),
            "cut_time": (dims, arr(out.cut_time)),
            "n_analysed": (dims, arr(out.n_analysed)),
        },
        coords=coords,
    )
    ds = ds.assign_coords(true_log_hr=(tuple(grid.dims), table.true_log_hr))
    if table.sizes.event_driven:
        short = np.isinf(ds["cut_time"]).mean("replicate")
        if bool((short > 0).any()):
            worst = short.where(short == short.max(), drop=True)
            where = ", ".join(f"{k}={v.values.ravel()[0]}" for k, v in worst.coords.items() if k in worst.dims)
            warnings.warn(
                f"trial.cut.events: in {float(short.max()):.0%} of the trials at ({where}) the design never reached "
                f"{first_cut_events(grid)} events among real patients; those trials were analysed with all follow-up. "
                "Lower trial.cut.events, enrol more patients, or use trial.cut.time.",
                StatisticalWarning,
                stacklevel=2,
            )
    alpha = xr.DataArray(table.alpha, dims=("design", *grid.dims), coords={k: ds.coords[k] for k in ("design", *grid.dims)})
    an = scenario.analysis
    ds["reject"] = reject_rule(ds["z"], ds["log_hr"], ds["se"], ds["valid"], alpha, test=an.test,
                               alternative=an.alternative)
    level = alpha if an.alternative == "two-sided" else 2 * alpha
    zq = ndtri(1 - level / 2)
    ds["ci_lower"] = ds["log_hr"] - zq * ds["se"]
    ds["ci_upper"] = ds["log_hr"] + zq * ds["se"]
    ds["alpha"] = alpha
    ds["z"].attrs["description"] = ("log-rank Z (weighted for power_prior; for procova and adjusted designs the Wald Z "
                                     "of the adjusted Cox model); negative favours treatment")
    ds["log_hr"].attrs["description"] = ("Cox (Efron) log hazard ratio, treatment / control (procova: adjusted for "
                                         "the digital twin; adjusted: for every covariate)")
    ds["ci_lower"].attrs["description"] = "Wald interval at level 1 - alpha (two-sided) or 1 - 2 alpha (one-sided)"
    ds["real_events"].attrs["description"] = "events among real patients at the analysis"
    ds["cut_time"].attrs["description"] = f"calendar time of the analysis ({scenario.trial.time_unit}); inf = all follow-up"
    return ds


# --------------------------------------------------------------------------- predictive


def sample_patients(rng_key, model: PatientModel, n: int, *, draw: int | None = None):
    """Posterior predictive patients: covariates (original units) and uncensored event times.

    Parameters
    ----------
    rng_key : jax random key
    model : PatientModel (times in its unit)
    n : int, number of patients
    draw : int or None
        One posterior draw for every patient (a replicated data set, as in a posterior
        predictive check), or None: each patient gets its own draw (synthetic controls).
        With several historical studies the patients of one draw share one new-study
        effect; with ``draw=None`` each patient has its own.

    Returns
    -------
    (covariates (n, p_raw), time (n,)) as JAX arrays: raw covariate rows (numeric values,
    categorical level codes, NaN where missing; :meth:`CovariateModel.to_frame` turns them
    into a DataFrame) and event times.
    """
    k_idx, k_x, k_e = jax.random.split(rng_key, 3)
    idx = jax.random.randint(k_idx, (n,), 0, model.n_draws) if draw is None else jnp.full((n,), draw)
    z = jax.random.normal(jax.random.fold_in(rng_key, 7), (n,))
    u = model.study_sd[idx] * (z if draw is None else z[0])
    x = sample_raw(k_x, n, model.covariates)
    design = (encode(x, model.covariates) - model.mean) / model.sd
    eta = jnp.sum(design * model.beta[idx], axis=-1) + u + _frailty(rng_key, model, n, idx)
    p = jax.tree_util.tree_map(lambda a: a[idx], model.params)
    log_e = jnp.log(jax.random.exponential(k_e, (n,)))
    return x, get_family(model.family).time_at(log_e, p, eta, model.consts)


@partial(jax.jit, static_argnames=("n", "cohorts"))
def predictive_km(rng_key, model: PatientModel, grid, *, n: int, cohorts: int):
    """Kaplan-Meier curves of ``cohorts`` replicated data sets of ``n`` patients.

    Cohort ``c`` uses one posterior draw (chosen at random) for all its patients, so the
    spread of the curves carries parameter uncertainty and sampling variation.

    Returns
    -------
    array (cohorts, len(grid)) of survival probabilities.
    """
    from .analysis import km_on_grid

    def one(key):
        k_draw, k_pat = jax.random.split(key)
        s = jax.random.randint(k_draw, (), 0, model.n_draws)
        _, t = sample_patients(k_pat, model, n, draw=s)
        return km_on_grid(t, jnp.ones_like(t), grid)

    keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(rng_key, jnp.arange(cohorts))
    return jax.vmap(one)(keys)
