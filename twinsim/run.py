"""Running a scenario end to end: data -> posterior -> simulated trials -> summary -> files.

This module only orchestrates the stages (``data``, ``fit``, ``simulate``, ``analysis``,
``report``); it holds no statistics of its own.  Outputs are written to a temporary folder
beside the target and moved into place only when complete, so a failed run never leaves
a half-written output folder and never touches an earlier one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import jax
import numpy as np
import pandas as pd
import xarray as xr
import yaml

from . import __version__
from .analysis import operating_characteristics
from .continuous import normal_control, simulate_grid_continuous
from .data import TrialData, load_data
from .errors import ModelError, ScenarioError, TwinsimError
from .fit import Posterior, compare_models, fit_data, fit_joint_model
from .scenario import Grid, Scenario, build_grid
from .simulate import (
    KEY_FIT,
    KEY_SIMULATE,
    PatientModel,
    patient_model_from_control,
    patient_model_from_posterior,
    simulate_grid,
)

log = logging.getLogger("twinsim.run")

__all__ = ["RunResult", "check_out_dir", "resolved_scenario", "load_historical", "fit_models", "fit_scenario", "run_scenario", "summary_frame", "write_outputs"]

#: Columns of summary.csv that the scenario contract fixes (docs/outputs.md), in order.
SUMMARY_COLUMNS = ["replicates", "rejection_rate", "mcse", "mean_estimate", "bias", "rmse", "coverage"]
#: Further columns twinsim adds after those.
EXTRA_COLUMNS = ["alpha", "empirical_se", "mean_se", "failed", "mean_real_events", "mean_cut_time"]


@dataclass(frozen=True)
class RunResult:
    """Everything a run produced, in memory."""

    scenario: Scenario
    grid: Grid
    results: xr.Dataset        #: per replicate (dims design, grid dims, replicate)
    summary: pd.DataFrame      #: one row per design and grid point (summary.csv)
    model: PatientModel        #: kernel arrays in trial time units
    posterior: Posterior | None
    historical: TrialData | None
    provenance: dict = field(default_factory=dict)
    comparison: pd.DataFrame | None = None  #: PSIS-LOO table when several families were fitted


def load_historical(scenario: Scenario) -> TrialData:
    """Load and check the scenario's historical data (raises DataError on bad input).

    Every form of ``historical.data`` (``builtin:NAME``, a file, ``adam: {...}``, a list of
    sources) and the sections ``study``, ``id``, ``biomarker`` and ``missing`` map onto
    :func:`twinsim.data.load_data` one to one; its ``event`` is 1 = event observed,
    0 = censored (ADaM's CNSR is converted there).  Relative paths are resolved against
    the scenario file's folder.
    """
    h = scenario.historical
    plain = h.model_dump(mode="python", exclude_none=True)  # data as str / {adam: {...}} / list of those
    return load_data(
        plain["data"], duration=h.duration, event=h.event, covariates=list(h.covariates), filter=dict(h.filter),
        time_unit=h.time_unit, missing=h.missing, study=h.study, id=h.id, biomarker=plain.get("biomarker"),
        base_dir=scenario.base_dir, field="historical",
    )


def fit_models(
    scenario: Scenario, *, historical: TrialData | None = None, progress_bar: bool = False, rng_key=None
) -> tuple[Posterior, pd.DataFrame | None, dict[str, Posterior]]:
    """Fit the scenario's model(s); compare them by PSIS-LOO when more than one.

    Every family is fitted with the same key, ``rng_key`` or by default
    ``fold_in(jax.random.key(seed), KEY_FIT)``, so the chosen family's fit is the one a
    scenario naming it alone would give.

    Returns
    -------
    (chosen posterior, comparison table or None, all fits by family)
        The chosen family is ``model.outcome``, or with ``outcome: auto`` the one with the
        highest ``elpd_loo``.  The table is :func:`twinsim.fit.compare_models` plus a
        ``chosen`` column.
    """
    m = scenario.model
    if m.posterior is not None:
        path = Path(m.posterior)
        path = path if path.is_absolute() else scenario.base_dir / path
        post = Posterior.load(path)
        if post.outcome != m.outcome and "outcome" in m.model_fields_set:
            raise ModelError(f"model.posterior {str(path)!r} holds a {post.outcome} model but model.outcome is {m.outcome!r}; remove one of them.")
        return post, None, {post.outcome: post}
    data = historical if historical is not None else load_historical(scenario)
    inf = m.inference
    key = jax.random.fold_in(jax.random.key(scenario.seed), KEY_FIT) if rng_key is None else rng_key
    if m.joint is not None:
        log.info("fitting the joint biomarker + weibull model")
        post = fit_joint_model(data, rng_key=key, transform=m.joint.transform, visits=m.joint.visits,
                               chains=inf.chains, warmup=inf.warmup, draws=inf.draws,
                               target_accept=inf.target_accept, seed=scenario.seed)
        return post, None, {post.outcome: post}
    fits = {}
    for family in m.families:
        log.info("fitting the %s model", family)
        fits[family] = fit_data(
            data, outcome=family, rng_key=key, **inf.fit_kwargs, progress_bar=progress_bar, seed=scenario.seed,
            pieces=m.pieces, knots=m.knots, study_prior_sd=m.study_prior_sd,
        )
    if len(fits) == 1:
        (post,) = fits.values()
        return post, None, fits
    table = compare_models(fits)
    chosen = table.index[0] if m.outcome == "auto" else m.outcome
    table["chosen"] = table.index == chosen
    return fits[chosen], table, fits


def fit_scenario(scenario: Scenario, *, historical: TrialData | None = None, progress_bar: bool = False) -> Posterior:
    """Fit (or load) the scenario's generative model: the chosen posterior of :func:`fit_models`.

    The fit key is ``fold_in(jax.random.key(seed), KEY_FIT)``.
    """
    return fit_models(scenario, historical=historical, progress_bar=progress_bar)[0]


def summary_frame(oc: xr.Dataset, grid: Grid) -> pd.DataFrame:
    """Operating characteristics as the summary.csv table (one row per design and grid point)."""
    frame = oc.drop_vars(["true_log_hr", "true_effect"], errors="ignore").to_dataframe().reset_index()
    cols = ["design", *grid.dims, *SUMMARY_COLUMNS, *[c for c in EXTRA_COLUMNS if c in frame]]
    return frame[cols]


def _hash_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _versions(posterior: Posterior | None) -> dict:
    import numpyro

    versions = {
        "twinsim": __version__, "python": platform.python_version(), "jax": jax.__version__,
        "numpyro": numpyro.__version__, "numpy": np.__version__, "xarray": xr.__version__, "pandas": pd.__version__,
    }
    if posterior is not None:  # arviz's version comes from the fit (arviz is used in twinsim/fit/ only)
        versions.update({f"fit_{k}": v for k, v in posterior.provenance.get("versions", {}).items()})
    return versions


def run_scenario(
    scenario: Scenario,
    *,
    posterior: Posterior | None = None,
    historical: TrialData | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> RunResult:
    """Run a scenario: fit or load the model, simulate every design and grid point, summarise.

    Parameters
    ----------
    scenario : Scenario
    posterior : Posterior, optional
        Use this instead of fitting (e.g. one fitted earlier in the same session).
    historical : TrialData, optional
        Already loaded historical data (otherwise loaded from the scenario).
    progress : callable ``progress(stage, done, total)``, optional

    Returns
    -------
    RunResult
    """
    grid = build_grid(scenario)  # validates every grid point before any work
    comparison = None
    if scenario.trial.endpoint == "continuous":
        model = normal_control(scenario.control)
    elif scenario.control is not None:
        model = patient_model_from_control(scenario.control)
    else:
        if posterior is None:
            if historical is None and scenario.model.posterior is None:
                historical = load_historical(scenario)
            if progress:
                progress("fit", 0, 1)
            posterior, comparison, _fits = fit_models(scenario, historical=historical)
            if progress:
                progress("fit", 1, 1)
        needs = [d.name for d in scenario.designs if d.method in ("procova", "adjusted")]
        if needs and not len(posterior.covariate_names):
            raise ScenarioError(
                f"design(s) {', '.join(needs)} adjust for baseline covariates (procova: through the digital twin), but "
                "the generative model has none; add prognostic baseline covariates to historical.covariates."
            )
        model = patient_model_from_posterior(posterior, scenario.trial.time_unit)

    key = jax.random.fold_in(jax.random.key(scenario.seed), KEY_SIMULATE)
    cb = (lambda done, total: progress("simulate", done, total)) if progress else None
    if scenario.trial.endpoint == "continuous":
        results = simulate_grid_continuous(scenario, rng_key=key, grid=grid, progress=cb)
    else:
        results = simulate_grid(scenario, model, rng_key=key, grid=grid, progress=cb)
    oc = operating_characteristics(results)
    oc["alpha"] = results["alpha"]
    summary = summary_frame(oc, grid)

    scenario_text = yaml.safe_dump(resolved_scenario(scenario), sort_keys=False)
    prov = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": _versions(posterior),
        "seed": scenario.seed,
        "replicates": scenario.replicates,
        "scenario_sha256": _hash_text(scenario_text),
        "key_tree": {"root": f"jax.random.key({scenario.seed})", "fit": f"fold_in(root, {KEY_FIT})",
                     "simulate": f"fold_in(root, {KEY_SIMULATE})", "replicate r": "fold_in(simulate, r)"},
        "grid": {k: list(v) for k, v in grid.dims.items()},
    }
    if scenario.control is not None:
        prov["model"] = {"control": scenario.control.model_dump(exclude_none=True)}
    else:
        prov["model"] = {
            "outcome": posterior.outcome,
            "covariates": list(posterior.covariate_names),
            "covariate_generator": "gaussian copula with empirical marginals (twinsim.models.CovariateModel)",
            "covariate_missing": posterior.covariate_model.missing,
            "inference": posterior.inference,
            "data_source": posterior.provenance.get("data_source"),
            "data_hash": posterior.provenance.get("data_hash"),
            "n": posterior.provenance.get("n"),
            "n_events": posterior.provenance.get("n_events"),
            "diagnostics": _diagnostics_summary(posterior),
            "fitted": posterior.provenance.get("created"),
        }
        if posterior.consts:
            prov["model"]["consts"] = {k: np.asarray(v).tolist() for k, v in posterior.consts.items()}
        if posterior.study is not None:
            prov["model"]["studies"] = list(posterior.study["labels"])
        if posterior.joint is not None:
            j = posterior.joint
            prov["model"]["joint"] = {"biomarker": j["biomarker"], "transform": j["transform"],
                                      "visit_times": np.asarray(j["visit_times"]).tolist(),
                                      "measurements": int(np.asarray(j["observed"]["value"]).size)}
        if comparison is not None:
            prov["model"]["comparison"] = comparison.reset_index().to_dict(orient="records")
    results.attrs.update({
        "title": f"twinsim results: {scenario.name}",
        "twinsim_version": __version__,
        "seed": scenario.seed,
        "scenario": scenario_text,
        # timestamps stay in provenance.json: the same scenario and seed give identical results.nc
        "provenance": json.dumps(_without_timestamps(prov), default=str),
    })
    return RunResult(scenario, grid, results, summary, model, posterior, historical, prov, comparison)


def _diagnostics_summary(posterior: Posterior) -> dict:
    """The fit's convergence figures for the provenance: R-hat, ESS and divergences (MCMC), or the
    ELBO's relative change and the Pareto k-hat (SVI)."""
    inf, d = posterior.inference, posterior.diagnostics
    if inf.get("method") == "svi":
        return {k: inf.get(k) for k in ("khat", "khat_max", "elbo_rel_change", "elbo_rtol")}
    out = {"max_r_hat": float(np.nanmax(d["r_hat"])) if "r_hat" in d and d["r_hat"].notna().any() else None}
    for col in ("ess_bulk", "ess_tail"):
        out[f"min_{col}"] = float(d[col].min()) if col in d else None
    out["divergences"] = int(posterior.divergences)
    return out


def _without_timestamps(prov: dict) -> dict:
    out = {k: v for k, v in prov.items() if k != "created"}
    if isinstance(out.get("model"), dict):
        out["model"] = {k: v for k, v in out["model"].items() if k != "fitted"}
    return out


def resolved_scenario(scenario: Scenario) -> dict:
    """The scenario as plain data with relative file paths made absolute.

    What ``scenario.yaml`` in an output folder holds: ``twinsim run DIR/scenario.yaml``
    then finds the same data from anywhere.
    """
    raw = scenario.to_dict()

    def absolute(path: str) -> str:
        p = Path(path)
        return str(p if p.is_absolute() else (scenario.base_dir / p).resolve())

    if scenario.historical is not None:
        raw["historical"] = scenario.historical.with_absolute_paths(scenario.base_dir).model_dump(
            mode="json", exclude_none=True
        )
    model = raw.get("model")
    if model and model.get("posterior"):
        model["posterior"] = absolute(model["posterior"])
    return raw


def check_out_dir(out_dir: str | os.PathLike) -> None:
    """Refuse an output folder that exists and is not an earlier twinsim output.

    Called before any work (by the CLI) and again when writing.
    """
    out = Path(out_dir)
    if not out.exists():
        return
    if out.is_dir() and (not any(out.iterdir()) or (out / "provenance.json").is_file()):
        return
    raise TwinsimError(
        f"--out {str(out)!r} exists and is not an earlier twinsim output folder; "
        "choose a new folder (twinsim never overwrites files it did not write)."
    )


def write_outputs(result: RunResult, out_dir: str | os.PathLike, *, report: bool = True) -> Path:
    """Write summary.csv, results.nc, scenario.yaml, provenance.json and the report.

    Everything goes to a temporary sibling folder first and is moved into ``out_dir``
    only when complete.  An existing ``out_dir`` is replaced only if it is empty or an
    earlier twinsim output (it holds ``provenance.json``); anything else is refused.
    """
    with output_folder(out_dir) as tmp:
        result.summary.to_csv(tmp / "summary.csv", index=False)
        if result.comparison is not None:
            result.comparison.to_csv(tmp / "model_comparison.csv")
        result.results.to_netcdf(tmp / "results.nc")
        (tmp / "scenario.yaml").write_text(yaml.safe_dump(resolved_scenario(result.scenario), sort_keys=False))
        (tmp / "provenance.json").write_text(json.dumps(result.provenance, indent=2, default=str) + "\n")
        if result.posterior is not None and result.scenario.model.posterior is None:
            result.posterior.save(tmp / "posterior.nc")
        if report:
            from .report import write_report

            write_report(result, tmp)
    return Path(out_dir)


@contextmanager
def output_folder(out_dir: str | os.PathLike):
    """Write an output folder whole or not at all: yields a temporary sibling folder, moved to
    ``out_dir`` when the block completes (an earlier output there is replaced only then) and
    removed if it fails.  ``out_dir`` must pass :func:`check_out_dir`."""
    out = Path(out_dir)
    check_out_dir(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes 0700; the output is an ordinary folder
    try:
        yield tmp
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            os.rename(out, old / "previous")
            os.rename(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
