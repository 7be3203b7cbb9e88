"""Inference: historical data -> :class:`Posterior` (NUTS, diagnostics, save/load).

This subpackage is the only part of twinsim that calls ArviZ (diagnostics, NetCDF I/O),
so that a move to ArviZ 1.x touches only ``twinsim/fit/``; ArviZ is imported once, in
:mod:`twinsim.fit._common`, and no module outside the subpackage imports it.

Modules, by role:

- :mod:`~twinsim.fit.posterior`: the :class:`Posterior` container (draws,
  standardisation, save/load to NetCDF);
- :mod:`~twinsim.fit.inference`: :func:`fit` and :func:`fit_data` (validation of the
  inputs, running NUTS or SVI, building the :class:`Posterior`);
- :mod:`~twinsim.fit.svi`: :func:`~twinsim.fit.svi.run_svi`, variational inference with
  its ELBO and Pareto k-hat diagnostics;
- :mod:`~twinsim.fit.joint`: :func:`fit_joint_model`, the joint biomarker + survival model;
- :mod:`~twinsim.fit.compare`: PSIS-LOO and the model comparison table;
- :mod:`~twinsim.fit.diagnostics`: the ArviZ summary and :func:`check_convergence`.

The outcome models live in :mod:`twinsim.models`; they are fitted here on covariates
standardised by the historical mean and standard deviation (``ddof=0``; a constant
column gets standard deviation 1).  The fitted :class:`Posterior` keeps everything the
simulator needs: flat posterior draws of the family's parameters and ``beta``, the
standardisation, the covariate copula and the historical follow-up, plus diagnostics
and provenance.

Event convention: ``event`` is 1 = event observed, 0 = right censored, everywhere in
this subpackage (the conversion to NumPyro's *censored* flag happens in
:mod:`twinsim.models`).

Randomness enters only through the keyword ``rng_key`` (a JAX random key, e.g.
``jax.random.key(seed)``); the same key gives bitwise identical draws.
"""

from .diagnostics import check_convergence
from .federated import (FederatedPlan, SiteStatistics, SiteSummary, combine, federated_plan,
                        fit_site, site_statistics)
from .compare import compare_models, psis_loo
from .inference import fit, fit_data
from .joint import fit_joint_model
from .posterior import Posterior

__all__ = ["Posterior", "fit", "fit_data", "fit_joint_model", "check_convergence", "compare_models", "psis_loo",
           "SiteStatistics", "FederatedPlan", "SiteSummary", "site_statistics", "federated_plan",
           "fit_site", "combine"]
