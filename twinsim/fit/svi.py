"""Stochastic variational inference (SVI): a fast alternative to NUTS, with the two
diagnostics that say whether the approximation can be trusted.

:func:`run_svi` fits any NumPyro model (the outcome models of :mod:`twinsim.models`, a
joint model with per-patient random effects, ...) by maximising the evidence lower bound
(ELBO) over an automatic Gaussian guide on the unconstrained latent space, then draws from
the fitted guide.  It is generic over the model function, its positional arguments and
keyword arguments; nothing here knows the outcome families.

Guides (``guide=``):

- ``"multivariate_normal"``: :class:`~numpyro.infer.autoguide.AutoMultivariateNormal`, a
  full-covariance Gaussian (d latent dimensions, d(d+3)/2 parameters).  The default: the
  outcome models have a handful of correlated parameters (``log_scale`` and ``log_shape``
  are strongly correlated).
- ``"lowrank"``: :class:`~numpyro.infer.autoguide.AutoLowRankMultivariateNormal`, diagonal
  plus low-rank covariance, for tens to hundreds of latent dimensions.
- ``"normal"``: :class:`~numpyro.infer.autoguide.AutoNormal`, independent Gaussians
  (mean-field), for models with thousands of latent variables (random effects).

Optimiser: :class:`numpyro.optim.ClippedAdam` (each gradient element clipped to
[-10, 10]) with the step size ``learning_rate`` for the first half of the steps, then
decaying geometrically to ``learning_rate / 1000`` at the last step (:func:`step_size`).
Both choices were measured on the Weibull PH model against NUTS (n = 1,000 to 100,000):

- without clipping, the huge gradients of the first steps (they grow with n) inflate
  Adam's second-moment estimate, which remembers them for ~1/(1 - 0.999) = 1000 steps, so
  the later steps are too small: at n = 100,000 after 3000 steps the posterior SDs were
  4-9x too wide; with clipping they were within 4% of NUTS;
- with a constant step size the guide's location keeps jittering by about one step size,
  0.2-0.5 posterior SD at n = 2000; the decay removes the jitter once the optimiser has
  arrived.  Decaying to 1/1000 rather than 1/100 (or 1/10) of the step size halved the
  largest remaining error of a posterior mean (9 covariates, n = 10,000, 3000 steps, four
  keys each: 0.06-0.11 against 0.08-0.22 NUTS posterior SD).

Diagnostics (recorded in :class:`SVIResult`; a :class:`~twinsim.errors.ConvergenceWarning`
says what to change when one fails):

- **ELBO convergence**: the relative change of the mean loss between the last two
  windows of 10% of the steps, ``|mean(prev) - mean(last)| / |mean(last)|``, flagged
  above :data:`ELBO_RTOL` = 1e-3.  Stan's ADVI stops at a relative ELBO change of 0.01
  (``tol_rel_obj``, Kucukelbir et al. 2017, JMLR 18(14)) between single noisy
  evaluations; our windows average 10% of the run, so their Monte Carlo noise is far
  smaller and a 10x stricter threshold still leaves margin: at convergence the change
  was below 1e-5 on the Weibull model from n = 1000 to 100,000, while a loss of a few
  hundred nats (n ~ 100) with a per-step noise of ~1 nat gives ~2e-4 over 500-step windows.
  This check only catches an optimiser still descending; because the loss grows with
  n, a relative change cannot see an error of a few nats at large n.  The k-hat below is
  the check of the approximation itself.
- **Pareto k-hat** (Yao, Vehtari, Simpson and Gelman 2018, "Yes, but did it work?:
  Evaluating variational inference", ICML): the shape of the generalised Pareto
  distribution fitted to the largest importance ratios ``log p(theta, y) - log q(theta)``
  over the guide's draws (:func:`arviz.psislw`).  Above :data:`KHAT_MAX` = 0.7 the
  approximation is poor and its draws should not be used; below 0.5 it is good.

Randomness enters only through the keyword ``rng_key`` (a JAX random key), split by
purpose into keys for the optimisation, the guide's draws, the model's pass over those
draws and the trace of the guide's structure; the same key gives bitwise identical
results.

Event convention: this module does not touch the data; the models it fits take ``event``
with 1 = event observed, 0 = right censored, as everywhere in twinsim.
"""

from __future__ import annotations

import time as _time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.handlers import seed, substitute, trace
from numpyro.infer import SVI, Predictive, Trace_ELBO, init_to_median
from numpyro.infer.autoguide import (
    AutoLowRankMultivariateNormal,
    AutoMultivariateNormal,
    AutoNormal,
)
from numpyro.infer.util import log_density

from ..errors import ConvergenceWarning, ModelError
from ._common import _key_data, az, logger

__all__ = ["GUIDES", "ELBO_RTOL", "KHAT_MAX", "SVIResult", "run_svi", "step_size"]

#: Guide name -> NumPyro automatic guide class.
GUIDES: dict[str, type] = {
    "multivariate_normal": AutoMultivariateNormal,
    "lowrank": AutoLowRankMultivariateNormal,
    "normal": AutoNormal,
}

#: Largest acceptable relative change of the mean loss between the last two 10% windows.
ELBO_RTOL = 1e-3
#: Largest acceptable Pareto k-hat of the importance ratios (Yao et al. 2018).
KHAT_MAX = 0.7
#: Elementwise gradient clip of ClippedAdam.
CLIP_NORM = 10.0
#: Fraction of the steps run at the full step size before the decay starts.
DECAY_START = 0.5
#: Step size at the last step, relative to ``learning_rate``.
DECAY_FINAL = 0.001
#: Fewest draws from which k-hat is estimated (its tail then has 30 draws).
MIN_DRAWS = 100
#: Fewest steps (each 10% window then holds one step).
MIN_STEPS = 10
#: Elements of the observed sites evaluated at once when scoring the draws (memory bound).
_CHUNK_ELEMENTS = 4_000_000


@dataclass(frozen=True, eq=False)
class SVIResult:
    """Draws from a fitted variational approximation, with its diagnostics.

    Attributes
    ----------
    samples : dict of str -> ndarray (num_draws, ...)
        Every latent and deterministic site of the model (not the observed ones), drawn
        from the fitted guide, flat over draws, float64 for the outcome models.
    losses : ndarray (steps,)
        The loss (negative ELBO, in nats) at each step.
    guide : str
        Key of :data:`GUIDES`.
    steps : int
    learning_rate : float
        Initial step size (see :func:`step_size` for the schedule).
    num_draws : int
    elapsed_s : float
        Wall seconds of the whole call: compilation, optimisation, draws, diagnostics.
    elbo_rel_change : float
        ``|mean(prev) - mean(last)| / |mean(last)|`` over the last two windows of 10% of
        the steps (``inf`` when the losses are not finite).
    khat : float
        Pareto k-hat of the importance ratios ``log p - log q`` over the draws (``inf``
        when they are not finite).
    log_weights : ndarray (num_draws,)
        The unnormalised importance ratios ``log p(theta, y) - log q(theta)`` of the draws
        (nats), e.g. for Pareto-smoothed importance sampling.
    params : dict of str -> ndarray
        The fitted guide parameters (constrained).
    problems : tuple of str
        Failed diagnostics (empty when both pass).
    rng_key_data : list of int
        Raw bits of ``rng_key``, for the provenance record.
    """

    samples: dict[str, np.ndarray]
    losses: np.ndarray
    guide: str
    steps: int
    learning_rate: float
    num_draws: int
    elapsed_s: float
    elbo_rel_change: float
    khat: float
    log_weights: np.ndarray
    params: dict[str, np.ndarray] = field(repr=False)
    problems: tuple[str, ...] = ()
    rng_key_data: list[int] = field(default_factory=list)

    @property
    def elbo_converged(self) -> bool:
        """Whether the relative change of the mean loss is at most :data:`ELBO_RTOL`."""
        return bool(np.isfinite(self.elbo_rel_change) and self.elbo_rel_change <= ELBO_RTOL)

    @property
    def khat_ok(self) -> bool:
        """Whether the Pareto k-hat is at most :data:`KHAT_MAX`."""
        return bool(np.isfinite(self.khat) and self.khat <= KHAT_MAX)

    @property
    def converged(self) -> bool:
        """Both diagnostics pass."""
        return self.elbo_converged and self.khat_ok

    def inference_record(self) -> dict[str, Any]:
        """JSON-serialisable summary for :attr:`Posterior.inference` (``method = "svi"``)."""
        return {
            "method": "svi",
            "guide": self.guide,
            "steps": int(self.steps),
            "learning_rate": float(self.learning_rate),
            "schedule": (
                f"ClippedAdam(clip_norm={CLIP_NORM}); step size constant for the first "
                f"{DECAY_START:.0%} of the steps, then geometric decay to x{DECAY_FINAL}"
            ),
            "draws": int(self.num_draws),
            "chains": 1,
            "elbo_rel_change": float(self.elbo_rel_change),
            "elbo_rtol": ELBO_RTOL,
            "final_loss": float(self.losses[-1]),
            "khat": float(self.khat),
            "khat_max": KHAT_MAX,
            "elapsed_s": float(self.elapsed_s),
            "rng_key_data": list(self.rng_key_data),
        }


# --------------------------------------------------------------------------- validation


def _positive_int(name: str, value, minimum: int, why: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ModelError(
            f"model.inference.{name} must be an integer >= {minimum} ({why}); got {value!r}."
        )
    return int(value)


def _validate(model, model_args, model_kwargs, guide, steps, learning_rate, num_draws):
    if not callable(model):
        raise ModelError(
            f"model must be a NumPyro model function (e.g. twinsim.models.weibull_ph); got "
            f"{type(model).__name__} {model!r}."
        )
    if not isinstance(model_args, tuple):
        raise ModelError(
            f"model_args must be a tuple of the model's positional arguments, e.g. "
            f"(x, time, event); got {type(model_args).__name__}. Wrap them: tuple(args)."
        )
    if model_kwargs is None:
        model_kwargs = {}
    if not isinstance(model_kwargs, dict):
        raise ModelError(
            f"model_kwargs must be a dict of the model's keyword arguments, e.g. "
            f"{{'time_ref': 30.0}}; got {type(model_kwargs).__name__}."
        )
    if not isinstance(guide, str) or guide not in GUIDES:
        raise ModelError(
            f"model.inference.guide {guide!r} is unknown; use one of {', '.join(GUIDES)} "
            "(multivariate_normal for a few correlated parameters, lowrank for tens to "
            "hundreds, normal for thousands such as per-patient random effects)."
        )
    steps = _positive_int("steps", steps, MIN_STEPS, "each 10% window of the ELBO check needs a step")
    num_draws = _positive_int("num_draws", num_draws, MIN_DRAWS, "the Pareto k-hat needs at least 100 draws")
    try:
        lr = float(learning_rate)
        ok = np.isfinite(lr) and lr > 0 and not isinstance(learning_rate, bool)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ModelError(
            f"model.inference.learning_rate must be a finite number > 0 (0.01 is a good "
            f"start; lower it if the losses oscillate); got {learning_rate!r}."
        )
    return model_kwargs, steps, lr, num_draws


# --------------------------------------------------------------------------- pieces


def step_size(learning_rate: float, steps: int) -> Callable:
    """Step-size schedule: ``learning_rate`` for the first :data:`DECAY_START` of the
    steps, then geometric decay to ``learning_rate * DECAY_FINAL`` at step ``steps``.

    Parameters
    ----------
    learning_rate : float > 0
    steps : int >= 1

    Returns
    -------
    callable
        ``i -> step size`` for an integer step count ``i`` (traceable by JAX), as
        :mod:`numpyro.optim` accepts.
    """
    start = DECAY_START * steps
    span = max(steps - start, 1.0)

    def schedule(i):
        frac = jnp.clip((i - start) / span, 0.0, 1.0)
        return learning_rate * DECAY_FINAL**frac

    return schedule


def _elbo_rel_change(losses: np.ndarray) -> float:
    """|mean(prev) - mean(last)| / |mean(last)| over the last two 10% windows of ``losses``."""
    w = max(len(losses) // 10, 1)
    prev, last = losses[-2 * w:-w], losses[-w:]
    if not (np.all(np.isfinite(prev)) and np.all(np.isfinite(last))):
        return float("inf")
    m_prev, m_last = float(prev.mean()), float(last.mean())
    return abs(m_prev - m_last) / max(abs(m_last), np.finfo(float).tiny)


def _khat(log_weights: np.ndarray) -> float:
    """Pareto k-hat of importance ratios (arviz.psislw; draws independent, so reff = 1)."""
    lw = np.asarray(log_weights, dtype=float)
    if np.any(np.isnan(lw)) or np.any(lw == np.inf) or not np.any(np.isfinite(lw)):
        return float("inf")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # -inf ratios (zero weights) are fine
        _, k = az.psislw(lw, reff=1.0)
    k = float(np.asarray(k))
    return k if np.isfinite(k) else float("inf")


def _map_draws(fn, draws, chunk: int) -> np.ndarray:
    """``fn`` over the leading (draws) axis of ``draws``, ``chunk`` draws at a time."""
    return np.asarray(jax.jit(lambda d: jax.lax.map(fn, d, batch_size=chunk))(draws))


# --------------------------------------------------------------------------- run


def run_svi(
    model: Callable,
    model_args: tuple,
    model_kwargs: dict,
    *,
    rng_key,
    guide: str = "multivariate_normal",
    steps: int = 5000,
    learning_rate: float = 0.01,
    num_draws: int = 1000,
    progress_bar: bool = False,
) -> SVIResult:
    """Fit ``model`` by SVI with an automatic Gaussian guide and draw from the fit.

    Parameters
    ----------
    model : callable
        A NumPyro model, e.g. :func:`twinsim.models.weibull_ph` (which takes ``event``
        with 1 = event observed, 0 = right censored).
    model_args : tuple
        Its positional arguments, e.g. ``(x_std, time, event)`` with shapes (n, p), (n,),
        (n,).
    model_kwargs : dict
        Its keyword arguments, e.g. ``{"time_ref": 30.0}`` (None = none).
    rng_key : jax random key
        E.g. ``jax.random.key(seed)``; split by purpose (optimisation, draws, ...).  The
        same key gives bitwise identical results.
    guide : {"multivariate_normal", "lowrank", "normal"}
        Automatic guide (see the module docstring).
    steps : int >= 10
        Optimisation steps (each one evaluates the ELBO on one draw and the full data).
    learning_rate : float > 0
        Initial step size of ClippedAdam (see :func:`step_size`).
    num_draws : int >= 100
        Draws from the fitted guide.
    progress_bar : bool
        Show NumPyro's progress bar (for the CLI; library use keeps it off).

    Returns
    -------
    SVIResult
        All latent and deterministic sites as arrays (num_draws, ...), the losses (steps,),
        the ELBO and Pareto k-hat diagnostics.  When either fails, one
        :class:`~twinsim.errors.ConvergenceWarning` says what to change.

    Raises
    ------
    ModelError
        On an invalid argument, or a model without latent variables.
    """
    model_kwargs, steps, lr, num_draws = _validate(
        model, model_args, model_kwargs, guide, steps, learning_rate, num_draws
    )
    key_data = _key_data(rng_key)
    key_opt, key_draws, key_model, key_trace = jax.random.split(rng_key, 4)
    start = _time.perf_counter()

    auto_guide = GUIDES[guide](model, init_loc_fn=init_to_median)
    optim = numpyro.optim.ClippedAdam(step_size(lr, steps), clip_norm=CLIP_NORM)
    svi = SVI(model, auto_guide, optim, Trace_ELBO())
    logger.info("fitting %s by SVI: guide %s, %d steps, learning rate %g",
                getattr(model, "__name__", "model"), guide, steps, lr)
    try:
        run = svi.run(key_opt, steps, *model_args, progress_bar=progress_bar,
                      stable_update=True, **model_kwargs)
    except RuntimeError as err:
        if "latent" in str(err).lower() or "sample" in str(err).lower():
            raise ModelError(
                f"SVI needs a model with latent (unobserved) sample sites; "
                f"{getattr(model, '__name__', model)!r} failed: {err}"
            ) from err
        raise
    params = run.params
    losses = np.asarray(run.losses, dtype=float)

    # sites of the model (from the guide's trace of it) and of the guide
    proto = auto_guide.prototype_trace
    latent = [k for k, s in proto.items() if s["type"] == "sample" and not s["is_observed"]]
    deterministic = [k for k, s in proto.items() if s["type"] == "deterministic"]
    n_obs = sum(int(np.size(s["value"])) for s in proto.values()
                if s["type"] == "sample" and s["is_observed"])
    guide_trace = trace(seed(substitute(auto_guide, params), key_trace)).get_trace(
        *model_args, **model_kwargs
    )
    # the guide's free sample sites (its auxiliary latents, or the model's sites for
    # AutoNormal); the Delta sites it derives from them score their own Jacobian
    free = [k for k, s in guide_trace.items()
            if s["type"] == "sample" and not isinstance(s["fn"], dist.Delta)]

    # draws: the guide first (all its sites), then the model on the guide's latent values
    # for its deterministic sites: what Predictive(model, guide=..., params=...) does in
    # one call, split in two so that the guide's auxiliary draws are kept for log q.
    guide_draws = Predictive(auto_guide, params=params, num_samples=num_draws)(
        key_draws, *model_args, **model_kwargs
    )
    latent_draws = {k: guide_draws[k] for k in latent}
    model_draws = Predictive(
        model, posterior_samples=latent_draws, params=params,
        return_sites=latent + deterministic, parallel=False,
    )(key_model, *model_args, **model_kwargs)  # nothing left to draw: every latent is given
    samples = {k: np.asarray(model_draws[k]) for k in latent + deterministic}

    # importance ratios log p(theta, y) - log q(theta) on the constrained space, a chunk of
    # draws at a time so that memory stays bounded for large n or many latents
    per_draw = n_obs + sum(int(np.size(guide_draws[k][0])) for k in free)
    chunk = int(min(num_draws, max(1, _CHUNK_ELEMENTS // max(per_draw, 1))))

    def log_ratio(draw):
        latent_draw, free_draw = draw
        lp = log_density(model, model_args, model_kwargs, {**params, **latent_draw})[0]
        lq = log_density(auto_guide, model_args, model_kwargs, {**params, **free_draw})[0]
        return lp - lq

    log_weights = _map_draws(log_ratio, (latent_draws, {k: guide_draws[k] for k in free}), chunk)

    rel = _elbo_rel_change(losses)
    khat = _khat(log_weights)
    elapsed = _time.perf_counter() - start
    problems = []
    if not (np.isfinite(rel) and rel <= ELBO_RTOL):
        problems.append(
            f"the ELBO has not converged: the mean loss changed by {rel:.2e} (relative) "
            f"between the last two 10% windows of the {steps} steps (> {ELBO_RTOL:g})"
        )
    if not (np.isfinite(khat) and khat <= KHAT_MAX):
        problems.append(
            f"the Pareto k-hat of the importance ratios is {khat:.2f} (> {KHAT_MAX}): the "
            f"{guide} approximation is poor"
        )
    logger.info("SVI finished in %.1f s: final loss %.2f, ELBO relative change %.2e, k-hat %.2f",
                elapsed, losses[-1], rel, khat)
    result = SVIResult(
        samples=samples,
        losses=losses,
        guide=guide,
        steps=steps,
        learning_rate=lr,
        num_draws=num_draws,
        elapsed_s=elapsed,
        elbo_rel_change=rel,
        khat=khat,
        log_weights=log_weights,
        params={k: np.asarray(v) for k, v in params.items()},
        problems=tuple(problems),
        rng_key_data=key_data,
    )
    if problems:
        others = [g for g in GUIDES if g != guide]
        warnings.warn(
            f"SVI ({guide} guide, {steps} steps, learning rate {lr:g}) may be unreliable: "
            + "; ".join(problems)
            + f". What to change: increase model.inference.steps (now {steps}; doubling is a "
            f"good first step), lower model.inference.learning_rate (now {lr:g}) if the "
            f"losses oscillate, try another guide ({' or '.join(others)}), or fit by NUTS "
            "(model.inference.method = 'nuts'), which needs no approximation.",
            ConvergenceWarning,
            stacklevel=2,
        )
    return result
