"""Exporting synthetic patients: the privacy gate and the machine-readable synthesis card.

``twinsim sample`` writes a table of synthetic patients and, beside it, ``FILE.card.json``:
where the patients came from (source data hash, the rows the model saw), how (model, priors,
inference settings and diagnostics, seed and key derivation, package versions, generation
index), what was asked (size, conditions, oversampling) and how they fared (the privacy check
against the holdout the fit never saw, and the verdicts of ``twinsim validate`` when the
posterior came from it).

The gate: the export is **refused** (:class:`~twinsim.errors.PrivacyError`, nothing written)
when any privacy check fails, or when the posterior records no holdout to check against,
unless the user overrides it with a stated reason; the card then records the override.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import platform
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace

import jax
import numpy as np
import pandas as pd

from ..errors import DataError, PrivacyError

__all__ = ["CARD_FORMAT", "PRIORS", "source_tables", "privacy_gate", "synthesis_card", "write_export",
           "card_path", "generation_of", "record_generation", "check_gate", "subgroup_fidelity"]

CARD_FORMAT = "twinsim-synthesis-card/1"
#: Privacy rows that also react to fidelity (a concentrated generator has small distances without copying).
TAIL_ROWS = {"dcr_low_tail_share", "nndr_low_tail_share"}

#: The outcome families' priors (twinsim/models/outcome.py), for the card.
PRIORS = {
    "exponential": "log_scale - log(t_ref) ~ N(0, 3); beta_j ~ N(0, 1) per covariate SD",
    "weibull": "log_scale - log(t_ref) ~ N(0, 3); log_shape ~ N(0, 1); beta_j ~ N(0, 1) per covariate SD",
    "piecewise_exponential": "log_hazard[0] + log(t_ref) ~ N(0, 3); log_hazard[j] - log_hazard[j-1] ~ N(0, 1); "
                             "beta_j ~ N(0, 1) per covariate SD",
    "lognormal": "mu - log(t_ref) ~ N(0, 3); log_sigma ~ N(0, 1); beta_j ~ N(0, 1) per covariate SD (log time ratios)",
}
_STUDY_PRIOR = "study_sd ~ HalfNormal(study_prior_sd), study effects non-centred N(0, study_sd^2)"
_COVARIATES = ("Gaussian copula: each covariate's marginal is its empirical distribution (observed values as knots), "
               "dependence a latent normal correlation matrix (twinsim/models/covariates.py)")


def card_path(out: Path) -> Path:
    """The card beside a data file: ``synthetic.csv`` -> ``synthetic.csv.card.json``."""
    return out.with_name(out.name + ".card.json")


def generation_of(source) -> tuple[int, str | None]:
    """Generation index of a model fitted to the patients in ``source`` (a path).

    Generation 0 is a model fitted to real patients (no card beside the file); a model fitted
    to patients exported from a generation-g model (a card saying ``generation: g`` beside the
    file) is generation g + 1.  The collapse harness counts generations the same way.
    Returns ``(generation, the card's path or None)``.
    """
    try:
        card = card_path(Path(source))
    except TypeError:
        return 0, None
    if card.is_file():
        try:
            g = int(json.loads(card.read_text()).get("generation", 0))
        except (ValueError, OSError, AttributeError):
            g = 0
        return g + 1, str(card)
    return 0, None


def record_generation(posterior, scenario) -> None:
    """Set ``provenance["generation"]`` (and ``parent_card``) of a posterior fitted to ``scenario.historical``."""
    sources = scenario.historical.sources if scenario.historical is not None else []
    generation, card = 0, None
    if len(sources) == 1 and isinstance(sources[0], str) and not sources[0].startswith("builtin:"):
        path = Path(sources[0])
        generation, card = generation_of(path if path.is_absolute() else scenario.base_dir / path)
    posterior.provenance["generation"] = generation
    if card:
        posterior.provenance["parent_card"] = card


def source_tables(posterior):
    """The real training and holdout tables a posterior's fit recorded (``provenance["validation"]``).

    Returns
    -------
    (record, train, holdout): the provenance record and the two tables (covariates, ``time``,
    ``event``), or ``(None, None, None)`` when the posterior records no holdout.

    Raises
    ------
    DataError
        The recorded historical data cannot be read again, or its content changed since the fit.
    """
    from ..run import load_historical
    from ..scenario.historical import Historical
    from .runner import patient_frame, subset_data

    rec = posterior.provenance.get("validation")
    if not rec or "historical" not in rec:
        return None, None, None
    holder = SimpleNamespace(historical=Historical.model_validate(rec["historical"]), base_dir=Path(rec["base_dir"]))
    data = load_historical(holder)
    if data.hash() != rec["source_hash"]:
        raise DataError(f"the historical data the posterior was fitted on ({data.source}) changed since the fit (SHA-256 "
                        f"{data.hash()[:12]} now, {rec['source_hash'][:12]} then), so its holdout cannot be rebuilt. "
                        "Refit on the current data (twinsim fit --holdout, or twinsim validate).")
    visits = None if posterior.joint is None else np.asarray(posterior.joint["visit_times"], float)
    train = patient_frame(subset_data(data, rec["training_rows"]), visits)
    hold = patient_frame(subset_data(data, rec["holdout_rows"]), visits)
    return rec, train, hold


def privacy_gate(train, holdout, tables: dict, *, rng_key, n_se: float = 3.0, condition=None) -> dict:
    """Privacy reports of each synthetic table against the recorded holdout, and the overall verdict.

    Parameters
    ----------
    train, holdout : DataFrame, the real tables (columns as the synthetic ones)
    tables : ``{name: DataFrame}`` of synthetic tables to check (e.g. a natural sample of the
        generator and the exported table)
    rng_key : JAX key (fold_in by position)
    condition : Condition, optional; with it, tables named ``"exported"`` are checked against the
        real rows that match it (the export holds only, or more of, such patients)

    Returns
    -------
    ``{"verdict": "pass" | "fail", "failed": [...], "reports": {name: records}}``.
    """
    from .privacy import privacy_report

    reports, failed = {}, []
    for i, (name, syn) in enumerate(tables.items()):
        tr, ho, sy = train, holdout, syn
        if condition is not None and name.startswith("exported"):
            tr, ho, sy = (t[condition.mask(t)].reset_index(drop=True) for t in (train, holdout, syn))
            if min(len(tr), len(ho), len(sy)) < 20:
                reports[name] = {"skipped": f"fewer than 20 rows match {condition.text!r} in a table"}
                continue
        rep = privacy_report(tr, ho, sy[list(train.columns)], rng_key=jax.random.fold_in(rng_key, i), n_se=n_se)
        reports[name] = json.loads(rep.to_json(orient="records"))
        failed += [f"{name}: {m}" for m in rep.loc[rep["verdict"] == "fail", "metric"]]
    return {"verdict": "fail" if failed else "pass", "failed": failed, "reports": reports}


def subgroup_fidelity(train, holdout, table, condition, *, rng_key, min_rows: int = 20) -> dict:
    """Fidelity of the exported patients who match ``condition`` (a --where or --oversample subgroup).

    The matching rows of the export are compared with the matching training patients, beside the
    matching holdout patients (:func:`~twinsim.validate.fidelity.fidelity_report`, the subgroup's own
    floor), and the subgroup's share in the export is set beside its real share.

    Returns ``{"condition", "share_exported", "share_train", "share_holdout", "n_exported", "rows",
    "worse", "worse_rows"}`` or ``{"condition", "skipped": why}``.
    """
    from .fidelity import fidelity_report

    m_t, m_h, m_s = (condition.mask(t) for t in (train, holdout, table))
    out = {"condition": condition.text, "share_exported": float(m_s.mean()), "share_train": float(m_t.mean()),
           "share_holdout": float(m_h.mean()), "n_exported": int(m_s.sum())}
    if min(m_t.sum(), m_h.sum(), m_s.sum()) < min_rows:
        return {**out, "skipped": f"fewer than {min_rows} patients match in a table"}
    keep = [c for c in train.columns if c not in condition.columns()]
    rep = fidelity_report(train.loc[m_t, keep].reset_index(drop=True), holdout.loc[m_h, keep].reset_index(drop=True),
                          table.loc[m_s, keep].reset_index(drop=True), rng_key=rng_key, time="time", event="event")
    bad = rep[rep["verdict"] == "worse than floor"]
    return {**out, "rows": int((rep["verdict"] != "n/a").sum()), "worse": int(len(bad)),
            "worse_rows": [f"{r.metric}[{r.column}]" for r in bad.itertuples()]}


def _hash_rows(rows) -> str:
    return hashlib.sha256(json.dumps([int(r) for r in rows]).encode()).hexdigest()


def synthesis_card(*, posterior, table: pd.DataFrame, seed: int, request: dict, privacy: dict | None,
                   override: str | None, validation: dict | None = None, fidelity: list | None = None) -> dict:
    """The machine-readable record written beside exported synthetic patients."""
    import numpyro

    from .. import __version__

    prov, inf = posterior.provenance, dict(posterior.inference)
    rec = prov.get("validation")
    diag = posterior.diagnostics
    diagnostics = {"divergences": int(posterior.divergences)}
    for col, how in (("r_hat", np.nanmax), ("ess_bulk", np.nanmin), ("ess_tail", np.nanmin)):
        values = np.asarray(diag[col], float) if col in diag else np.array([np.nan])
        if np.isfinite(values).any():  # R-hat is NaN with one chain
            diagnostics[f"{'max' if how is np.nanmax else 'min'}_{col}"] = float(how(values))
    if posterior.loo:
        diagnostics["elpd_loo"] = float(posterior.loo.get("elpd_loo", np.nan))
    model = {"outcome": posterior.outcome, "priors": PRIORS.get(posterior.outcome, ""),
             "covariates": list(posterior.covariate_names), "covariate_generator": _COVARIATES,
             "time_unit": posterior.time_unit, "time_ref": prov.get("time_ref")}
    if posterior.study is not None:
        model["studies"] = {"labels": list(posterior.study["labels"]), "prior": _STUDY_PRIOR,
                            "study_prior_sd": prov.get("study_prior_sd")}
    if posterior.joint is not None:
        model["joint"] = {"biomarker": posterior.joint.get("biomarker"), "transform": posterior.joint.get("transform")}
    return {
        "format": CARD_FORMAT,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "generator": "twinsim posterior predictive",
        "generation": int(prov.get("generation", 0)),
        "rows": int(len(table)), "columns": [str(c) for c in table.columns],
        "request": request,
        "seed": int(seed),
        "keys": "fold_in(key(seed), 5): sample; fold_in(., 0) the exported table, fold_in(., 1) the natural "
                "sample checked for privacy, fold_in(., 2) the privacy checks, fold_in(., 3 + i) the fidelity "
                "check of the i-th --where/--oversample subgroup",
        "source": {
            "data_source": prov.get("data_source"), "data_hash": prov.get("data_hash"),
            "n_fitted": prov.get("n"), "n_events_fitted": prov.get("n_events"),
            "full_data_hash": rec.get("source_hash") if rec else None,
            "n_source": rec.get("n_source") if rec else None,
            "training_rows_sha256": _hash_rows(rec["training_rows"]) if rec else None,
            "n_holdout": len(rec["holdout_rows"]) if rec else 0,
            "parent_card": prov.get("parent_card"),
        },
        "model": model,
        "inference": inf,
        "diagnostics": diagnostics,
        "versions": {"twinsim": __version__, "python": platform.python_version(), "jax": jax.__version__,
                     "numpyro": numpyro.__version__, "numpy": np.__version__, "pandas": pd.__version__,
                     **{f"fit_{k}": v for k, v in prov.get("versions", {}).items()}},
        "privacy": privacy,
        "override": None if override is None else {
            "reason": override, "by": getpass.getuser(),
            "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "privacy_verdict": None if privacy is None else privacy["verdict"]},
        "subgroup_fidelity": fidelity,
        "validation": validation,
    }


def check_gate(privacy: dict | None, override: str | None) -> None:
    """Refuse (PrivacyError) a failed or impossible privacy check without an override."""
    if override is not None:
        return
    if privacy is None:
        raise PrivacyError(
            "the posterior records no holdout (it was fitted on every patient), so the privacy of its synthetic "
            "patients cannot be checked and the export is refused. Fit with a holdout (`twinsim fit SCENARIO "
            "--holdout 0.3`, or use the posterior.nc written by `twinsim validate`), or export anyway with "
            "--override-privacy 'REASON' (the reason is recorded in the synthesis card).")
    if privacy["verdict"] == "fail":
        tails_only = all(f.split(": ")[-1] in TAIL_ROWS for f in privacy["failed"])
        hint = (" Only distance-tail rows failed while the exchangeability checks (closer-to-training share, "
                "membership inference) passed: the synthetic patients are more concentrated near real ones than real "
                "patients are, which is usually a fidelity problem (too little spread, e.g. in a small subgroup) "
                "rather than copying; compare the spread of the subgroup's covariates." if tails_only else "")
        raise PrivacyError(
            f"the synthetic patients failed the privacy check ({'; '.join(privacy['failed'])}): they are closer to "
            "the patients the model saw than an independent real sample is, so the export is refused and nothing was "
            f"written.{hint} Inspect `twinsim validate`; to export anyway give --override-privacy 'REASON' (recorded "
            "in the synthesis card).")


def write_export(table: pd.DataFrame, card: dict, out: Path) -> list[Path]:
    """Write ``out`` (.csv or .parquet) and its card, each atomically (temporary file, then rename)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for path, write in ((card_path(out), lambda p: Path(p).write_text(json.dumps(card, indent=2, default=str) + "\n")),
                        (out, lambda p: table.to_parquet(p, index=False) if out.suffix == ".parquet"
                         else table.to_csv(p, index=False))):
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        os.close(fd)
        try:
            write(tmp)
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        written.append(path)
    return written
