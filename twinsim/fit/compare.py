"""Model comparison by Pareto-smoothed importance-sampling leave-one-out cross-validation.

PSIS-LOO (Vehtari, Gelman & Gabry 2017, Statistics and Computing 27:1413) estimates the
expected log predictive density of a new patient, ``elpd_loo = sum_i log p(y_i | y_-i)``,
from the posterior draws of one fit.  Here ``y_i`` is the patient's right-censored
outcome: its pointwise log-likelihood is ``event log f(t) + (1 - event) log S(t)`` (event
1 = event observed), the same function the model is fitted with
(:meth:`twinsim.models.OutcomeFamily.loglik`), so families are compared on the same data
and the same likelihood terms.

:func:`compare_models` ranks fits by ``elpd_loo``; the standard error of a difference is
computed from the pointwise differences (``dse = sqrt(n var(d_i))``), as in ArviZ's
``compare``.  A Pareto k above 0.7 flags a patient whose leave-one-out estimate is
unreliable (a highly influential observation).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from ..errors import ModelError
from ._common import az

__all__ = ["psis_loo", "pointwise_loglik", "compare_models", "PARETO_K_MAX"]

#: Pareto k above which a patient's LOO estimate is unreliable (Vehtari et al. 2017).
PARETO_K_MAX = 0.7


def pointwise_loglik(family, params, beta, x_std, time, event, consts, study=None, study_codes=None):
    """Log-likelihood of every patient under every draw.

    Parameters
    ----------
    family : OutcomeFamily
    params : dict of (S, ...) arrays
    beta : (S, p)
    x_std : (n, p) standardised covariates
    time, event : (n,); event 1 = event observed, 0 = right censored
    consts : dict (e.g. knots)
    study, study_codes : the posterior's study dict and the patients' codes, or None

    Returns
    -------
    ndarray (S, n)
    """
    t = jnp.asarray(time, float)
    e = jnp.asarray(event, float)
    x = jnp.asarray(x_std, float)
    c = {k: jnp.asarray(v) for k, v in consts.items()}
    offset = (np.asarray(study["effect"])[:, np.asarray(study_codes)]
              if study is not None else np.zeros((beta.shape[0], t.shape[0])))

    def one(p, b, off):
        eta = (x @ b if x.shape[1] else jnp.zeros(t.shape[0])) + off
        return family.loglik(t, e, p, eta, c)

    p = {k: jnp.asarray(v) for k, v in params.items()}
    return np.asarray(jax.lax.map(lambda args: one(*args), (p, jnp.asarray(beta), jnp.asarray(offset)), batch_size=64))


def psis_loo(family, params, beta, x_std, time, event, consts, study=None, study_codes=None, *, chains: int = 1) -> dict:
    """PSIS-LOO of a fit: ``elpd_loo``, ``se``, ``p_loo``, ``pointwise`` (n,), ``pareto_k`` (n,).

    Arguments as :func:`pointwise_loglik`; ``chains`` splits the flat draws (chain-major)
    for ArviZ's effective-sample-size correction.
    """
    ll = pointwise_loglik(family, params, beta, x_std, time, event, consts, study, study_codes)
    s, n = ll.shape
    if s % chains:
        chains = 1
    shape = (chains, s // chains)
    # az.loo needs a posterior group (for its sample sizes); the draws' values are not used
    idata = az.from_dict(posterior={"draw_index": np.arange(s).reshape(shape)},
                         log_likelihood={"obs": ll.reshape(shape + (n,))})
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Estimated shape parameter of Pareto.*")
        warnings.filterwarnings("ignore", message=".*ArviZ is undergoing.*")
        res = az.loo(idata, pointwise=True)
    return {
        "elpd_loo": float(res["elpd_loo"]),
        "se": float(res["se"]),
        "p_loo": float(res["p_loo"]),
        "pointwise": np.asarray(res["loo_i"], float),
        "pareto_k": np.asarray(res["pareto_k"], float),
    }


def compare_models(posteriors: Mapping[str, object]) -> pd.DataFrame:
    """Rank fitted models by PSIS-LOO.

    Parameters
    ----------
    posteriors : mapping name -> Posterior
        Fits to the *same* patients (each with ``posterior.loo``).

    Returns
    -------
    DataFrame indexed by name, best first, with columns ``rank``, ``elpd_loo``, ``se``,
    ``p_loo``, ``elpd_diff`` (best minus this, >= 0), ``dse`` (standard error of the
    difference from pointwise differences), ``pareto_k_bad`` (patients with k > 0.7) and
    ``n``.
    """
    if not posteriors:
        raise ModelError("compare_models needs at least one fitted model.")
    loo = {}
    for name, post in posteriors.items():
        if getattr(post, "loo", None) is None:
            raise ModelError(f"model {name!r} has no PSIS-LOO result; refit it with twinsim.fit.fit.")
        loo[name] = post.loo
    sizes = {name: len(v["pointwise"]) for name, v in loo.items()}
    if len(set(sizes.values())) != 1:
        raise ModelError(f"models must be fitted to the same patients to be compared; sizes {sizes}.")
    order = sorted(loo, key=lambda k: -loo[k]["elpd_loo"])
    best = np.asarray(loo[order[0]]["pointwise"])
    rows = []
    for rank, name in enumerate(order):
        v = loo[name]
        diff = best - np.asarray(v["pointwise"])
        rows.append({
            "model": name, "rank": rank, "elpd_loo": v["elpd_loo"], "se": v["se"], "p_loo": v["p_loo"],
            "elpd_diff": float(diff.sum()), "dse": float(np.sqrt(len(diff) * np.var(diff))),
            "pareto_k_bad": int(np.sum(np.asarray(v["pareto_k"]) > PARETO_K_MAX)), "n": len(diff),
        })
    return pd.DataFrame(rows).set_index("model")
