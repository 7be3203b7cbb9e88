"""MCMC diagnostics: the ArviZ summary of a run and the convergence check that warns
(:class:`~twinsim.errors.ConvergenceWarning`) when it looks poor.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from ..errors import ConvergenceWarning
from ._common import az, logger
from .posterior import Posterior

__all__ = ["check_convergence"]

#: Column order of :attr:`Posterior.diagnostics`.
_DIAG_COLUMNS = [
    "param", "mean", "sd", "hdi_3%", "hdi_97%", "r_hat", "ess_bulk", "ess_tail",
    "mcse_mean", "mcse_sd",
]


def _summarise(idata: "az.InferenceData", var_names: list[str]) -> tuple[pd.DataFrame, int]:
    """ArviZ summary of ``var_names`` (columns of :attr:`Posterior.diagnostics`) and the
    number of divergent transitions after warmup."""
    summary = az.summary(idata, var_names=var_names, kind="all", round_to="none")
    diagnostics = summary.reset_index(names="param")
    diagnostics = diagnostics[[c for c in _DIAG_COLUMNS if c in diagnostics.columns]]
    diagnostics = diagnostics.reset_index(drop=True)
    divergences = int(idata.sample_stats["diverging"].values.sum())
    return diagnostics, divergences


def check_convergence(
    posterior: Posterior, *, rhat_max: float = 1.01, ess_min: float | None = None
) -> list[str]:
    """Check R-hat, bulk/tail ESS and divergences; warn once if anything looks poor.

    Thresholds follow Vehtari, Gelman, Simpson, Carpenter and Buerkner (2021),
    "Rank-normalization, folding, and localization: an improved R-hat", Bayesian
    Analysis 16(2): R-hat below 1.01 and bulk and tail ESS above 100 per chain.

    Parameters
    ----------
    posterior : Posterior
    rhat_max : float
        Largest acceptable rank-normalised split R-hat (needs 2 or more chains).
    ess_min : float, optional
        Smallest acceptable bulk and tail ESS; default 100 * chains.

    Returns
    -------
    list of str
        The problems found (empty when none).  When not empty, one
        :class:`~twinsim.errors.ConvergenceWarning` lists them with what to change.
    """
    return _check_convergence(posterior, rhat_max=rhat_max, ess_min=ess_min, stacklevel=3)


def _check_convergence(posterior, *, rhat_max, ess_min, stacklevel) -> list[str]:
    inf = posterior.inference
    chains = int(inf.get("chains", 1) or 1)
    if ess_min is None:
        ess_min = 100.0 * chains
    problems: list[str] = []
    sampling = False
    diag = posterior.diagnostics
    params = diag["param"] if "param" in diag.columns else pd.Series(diag.index, index=diag.index)
    for i in range(len(diag)):
        name = str(params.iloc[i])
        row = diag.iloc[i]
        if chains >= 2 and "r_hat" in diag.columns:
            r = float(row["r_hat"])
            if not np.isfinite(r) or r > rhat_max:
                problems.append(f"r_hat of {name} is {r:.3f} (> {rhat_max})")
                sampling = True
        for col in ("ess_bulk", "ess_tail"):
            if col in diag.columns:
                v = float(row[col])
                if not np.isfinite(v) or v < ess_min:
                    problems.append(f"{col} of {name} is {v:.0f} (< {ess_min:.0f})")
                    sampling = True
    if chains < 2:
        logger.info("r_hat needs 2 or more chains; with 1 chain only ESS and divergences are checked")
    if posterior.divergences > 0:
        problems.append(f"{posterior.divergences} divergent transition(s) after warmup")
    if problems:
        advice = []
        if sampling:
            advice.append(
                f"increase model.inference.warmup / draws (now {inf.get('warmup')} / "
                f"{inf.get('draws')}; doubling both is a good first step)"
                + (" or run more chains" if chains < 4 else "")
            )
        if posterior.divergences > 0:
            ta = float(inf.get("target_accept", 0.8))
            if ta < 0.95:
                advice.append(
                    f"divergences: raise model.inference.target_accept to 0.95 (now {ta})"
                )
            else:
                advice.append(
                    f"divergences: raise model.inference.target_accept to 0.99 (now {ta}) and "
                    "check the data for extreme times or nearly collinear covariates"
                )
        msg = (
            f"MCMC diagnostics of the {posterior.outcome} model suggest the posterior is "
            f"unreliable ({chains} chain(s) x {inf.get('draws')} draws after "
            f"{inf.get('warmup')} warmup): " + "; ".join(problems)
            + ". What to change: " + "; ".join(advice) + "."
        )
        warnings.warn(msg, ConvergenceWarning, stacklevel=stacklevel)
    return problems
