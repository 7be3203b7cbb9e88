"""``twinsim validate``: repeated holdout splits, a fit per split, and every check beside its floor.

For each of ``validation.splits`` random splits of the historical patients (stratified by
event, ``validation.holdout`` of them held out):

1. the scenario's model is fitted on the training part only; the posterior records which
   rows it saw (``provenance["validation"]``);
2. as many synthetic patients as there are holdout patients are drawn from it, censored like
   the training follow-up (:func:`~twinsim.validate.generate.synthetic_table`);
3. fidelity, estimands, privacy and subgroups are computed for the synthetic table and for the
   holdout, both against the training table; privacy is also computed for a memorising
   generator (bootstrap copies of training rows) as a positive control: the checks must
   catch it on the same data.

Each row is then summarised over the splits (mean and range of the synthetic value and of the
holdout floor, and in how many splits it was worse than the floor).  A row **fails** when it
was worse than its floor in more than half of the splits; a section passes when no row fails.
The collapse harness runs on the first split.

Keys: ``root = fold_in(key(seed), KEY_VALIDATE)``; split ``s`` uses ``fold_in(root, s)`` and
within it ``fold_in(., purpose)`` for the purposes in :data:`PURPOSE`; the collapse harness
uses ``fold_in(root, KEY_COLLAPSE)``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable

import jax
import numpy as np
import pandas as pd

from ..data import TrialData
from ..data.trialdata import Biomarker
from ..errors import ScenarioError

log = logging.getLogger("twinsim.validate")

__all__ = ["KEY_VALIDATE", "KEY_COLLAPSE", "PURPOSE", "ValidationResult", "holdout_split", "subset_data",
           "patient_frame", "record_split", "summarise_splits", "validate_scenario"]

#: Fold-in constant of ``twinsim validate`` under the scenario seed (after KEY_FIT=1, KEY_SIMULATE=2, KEY_REPORT=3).
KEY_VALIDATE = 4
#: Fold-in of the collapse harness under the validation root (far from the split indices).
KEY_COLLAPSE = 100_000
#: Purposes within a split.
PURPOSE = {"split": 0, "fit": 1, "sample": 2, "fidelity": 3, "privacy": 4, "estimands": 5, "subgroups": 6,
           "copier": 7}
#: Internal names of the follow-up columns in the compared tables.
TIME, EVENT = "time", "event"


def holdout_split(event, share: float, *, rng_key) -> tuple[np.ndarray, np.ndarray]:
    """Random split of rows into training and holdout, stratified by the event indicator.

    Parameters
    ----------
    event : array (n,), 1 = event observed, 0 = censored
    share : float in (0, 1), the holdout share (rounded within each stratum)
    rng_key : JAX key

    Returns
    -------
    (train_rows, holdout_rows): sorted int arrays that partition ``range(n)``.
    """
    event = np.asarray(event)
    hold = []
    for i, level in enumerate((0, 1)):
        rows = np.flatnonzero(event == level)
        perm = np.asarray(jax.random.permutation(jax.random.fold_in(rng_key, i), len(rows)))
        hold.append(rows[perm[: int(round(share * len(rows)))]])
    hold = np.sort(np.concatenate(hold))
    train = np.setdiff1d(np.arange(len(event)), hold)
    return train, hold


def subset_data(data: TrialData, rows) -> TrialData:
    """The patients ``rows`` (sorted) of ``data`` as a TrialData (biomarker rows re-indexed, studies re-coded)."""
    rows = np.sort(np.asarray(rows, dtype=np.int64))
    bio = None
    if data.biomarker is not None:
        b = data.biomarker
        new = np.full(data.n, -1, dtype=np.int64)
        new[rows] = np.arange(len(rows))
        keep = new[b.patient] >= 0
        bio = Biomarker(b.name, new[b.patient[keep]], b.time[keep], b.value[keep])
    study, labels = None, ()
    if data.study is not None:
        codes = np.asarray(data.study)[rows]
        used = np.unique(codes)
        study = np.searchsorted(used, codes).astype(np.int64)
        labels = tuple(data.study_labels[int(u)] for u in used)
    return TrialData(time=data.time[rows], event=data.event[rows], covariates=data.covariates.iloc[rows],
                     time_unit=data.time_unit, source=f"{data.source} ({len(rows)} of {data.n} rows)",
                     biomarker=bio, study=study, study_labels=labels)


def record_split(posterior, scenario, data: TrialData, train_rows, holdout_rows, *, split: int, share: float) -> None:
    """Record in ``posterior.provenance["validation"]`` which patients the fit saw and how to reload them.

    The record holds the training and holdout row numbers of the loaded historical data, its
    content hash, the scenario's ``historical`` section and folder (so ``twinsim sample`` can
    rebuild both tables and check privacy against the holdout), the split and the seed.
    """
    from .card import record_generation

    posterior.provenance["validation"] = {
        "split": int(split), "holdout_share": float(share), "seed": int(scenario.seed), "source_hash": data.hash(),
        "n_source": int(data.n), "training_rows": [int(r) for r in train_rows],
        "holdout_rows": [int(r) for r in holdout_rows],
        "historical": scenario.historical.model_dump(mode="json", exclude_none=True),
        "base_dir": str(scenario.base_dir.resolve()),
    }
    record_generation(posterior, scenario)


def patient_frame(data: TrialData, visits=None) -> pd.DataFrame:
    """Covariates plus ``time`` and ``event`` (1 = event) columns: the table the checks compare.

    With ``visits`` (a joint model's visit schedule, in the data's time unit) and a biomarker,
    also one column per visit (:func:`twinsim.validate.biomarker.wide_biomarker`).
    """
    frame = data.covariates.reset_index(drop=True).assign(**{TIME: np.asarray(data.time), EVENT: np.asarray(data.event)})
    if visits is not None and data.biomarker is not None:
        from .biomarker import wide_biomarker

        frame = pd.concat([frame, wide_biomarker(data, visits)], axis=1)
    return frame


def visit_schedule(scenario, data: TrialData):
    """The joint model's visit schedule for ``data`` (``model.joint.visits`` or the distinct measurement
    times), or None without a joint model."""
    if scenario.model is None or scenario.model.joint is None or data.biomarker is None:
        return None
    from ..fit.joint import _visit_schedule

    return _visit_schedule(np.asarray(data.biomarker.time, float), scenario.model.joint.visits)


_GOOD = {"within floor", "pass"}
_BAD = {"worse than floor", "fail"}


def summarise_splits(tables: list[pd.DataFrame], keys: list[str], *, holdout: str = "holdout") -> pd.DataFrame:
    """One row per check over the splits: mean and range of the synthetic value and of the floor.

    Parameters
    ----------
    tables : one DataFrame per split, with the ``keys`` columns, ``synthetic``, the floor
        column ``holdout`` and ``verdict``, and optionally ``tolerance``.
    keys : columns identifying a check (e.g. ``["section", "metric", "column"]``).

    Returns
    -------
    DataFrame with ``keys``, ``synthetic`` (mean), ``synthetic_min``, ``synthetic_max``,
    ``holdout`` (mean), ``holdout_min``, ``holdout_max``, ``tolerance`` (mean), ``splits``,
    ``splits_worse`` (splits where the row was worse than its floor) and ``verdict``: ``fail``
    when worse in more than half of the splits with a verdict, ``pass`` when not, ``info``
    for rows without a verdict in any split.
    """
    frames = []
    for s, t in enumerate(tables):
        t = t.copy()
        t["split"] = s
        if "tolerance" not in t:
            t["tolerance"] = np.nan
        extra = [c for c in ("train", "better") if c in t]
        frames.append(t[[*keys, "split", "synthetic", holdout, "tolerance", "verdict", *extra]]
                      .rename(columns={holdout: "holdout"}))
    long = pd.concat(frames, ignore_index=True)
    long[keys] = long[keys].fillna("")
    g = long.groupby(keys, sort=False, dropna=False)
    out = g.agg(synthetic=("synthetic", "mean"), synthetic_min=("synthetic", "min"), synthetic_max=("synthetic", "max"),
                holdout=("holdout", "mean"), holdout_min=("holdout", "min"), holdout_max=("holdout", "max"),
                tolerance=("tolerance", "mean"),
                **({"train": ("train", "mean")} if "train" in long else {}),
                **({"better": ("better", "first")} if "better" in long else {}))
    judged = g["verdict"].agg(lambda v: int(v.isin(_GOOD | _BAD).sum()))
    worse = g["verdict"].agg(lambda v: int(v.isin(_BAD).sum()))
    out["splits"] = judged
    out["splits_worse"] = worse
    out["verdict"] = np.where(judged == 0, "info", np.where(worse * 2 > judged, "fail", "pass"))
    return out.reset_index()


def section_verdict(table: pd.DataFrame, what: str) -> dict:
    """``{"verdict": "pass" | "fail", "rows": n, "failed": [labels], "text": sentence}`` for a summarised section."""
    judged = table[table["verdict"] != "info"]
    bad = judged[judged["verdict"] == "fail"]
    label_cols = [c for c in ("subgroup", "level", "metric", "column") if c in table and c != "section"]
    labels = [" ".join(str(r[c]) for c in label_cols if str(r[c]) not in ("", "all", "nan")) for _, r in bad.iterrows()]
    verdict = "fail" if len(bad) else "pass"
    text = (f"{what}: all {len(judged)} checks within the holdout floor" if not len(bad) else
            f"{what}: {len(bad)} of {len(judged)} checks worse than the holdout floor in most splits: {', '.join(labels[:12])}"
            + (" ..." if len(labels) > 12 else ""))
    return {"verdict": verdict, "rows": int(len(judged)), "failed": labels, "text": text}


@dataclass
class ValidationResult:
    """Everything ``twinsim validate`` computed; tables are summaries over the splits."""

    scenario: object
    settings: dict
    splits: list[dict]                    #: per split: rows, sizes, and its per-split tables
    fidelity: pd.DataFrame
    estimands: pd.DataFrame
    privacy: pd.DataFrame
    copier_privacy: pd.DataFrame          #: the memorising generator's privacy summary (positive control)
    subgroups: pd.DataFrame
    collapse: pd.DataFrame | None
    verdicts: dict                        #: section -> section_verdict(...)
    posterior: object = None              #: the first split's posterior (records its training rows)
    historical: TrialData | None = None
    first: dict = field(default_factory=dict)  #: the first split's tables (train, holdout, synthetic)


def _max_rhat(post) -> float:
    r = np.asarray(post.diagnostics["r_hat"], float) if "r_hat" in post.diagnostics else np.array([np.nan])
    return float(np.nanmax(r)) if np.isfinite(r).any() else float("nan")  # NaN with one chain or SVI


def _fit(scenario, data: TrialData, key):
    """The scenario's model fitted to ``data``; a fixed ``model.outcome`` is fitted alone (no LOO comparison),
    ``outcome: auto`` chooses by PSIS-LOO on ``data`` (the training part only)."""
    from ..run import fit_models

    if scenario.model.outcome != "auto" and scenario.model.compare:
        scenario = scenario.model_copy(update={"model": scenario.model.model_copy(update={"compare": []})})
    return fit_models(scenario, historical=data, rng_key=key)[0]


def validate_scenario(scenario, *, historical: TrialData | None = None,
                      progress: Callable[[str, int, int], None] | None = None) -> ValidationResult:
    """Run every check of ``scenario.validation`` on the scenario's historical data.

    Parameters
    ----------
    scenario : Scenario with ``historical`` and ``model`` (not a planning ``control``, not a
        saved ``model.posterior``: a holdout must be split off before fitting)
    historical : TrialData, optional (loaded from the scenario otherwise)
    progress : callable ``progress(stage, done, total)``, optional

    Returns
    -------
    ValidationResult
    """
    from ..run import load_historical
    from .collapse import collapse
    from .estimands import estimand_report
    from .fidelity import fidelity_report
    from .generate import synthetic_table
    from .privacy import memorising_generator, privacy_report
    from .subgroups import subgroup_report, subgroup_specs

    if scenario.control is not None or scenario.historical is None:
        raise ScenarioError("validation needs historical patients: give `historical` and `model` (a planning "
                            "`control` has no patients to compare with).")
    if scenario.model.posterior is not None:
        raise ScenarioError(f"model.posterior names a saved posterior ({scenario.model.posterior}); validation must "
                            "split off a holdout before fitting, so it fits the model itself. Remove model.posterior "
                            "(or --set model.posterior=null).")
    v = scenario.validation
    data = historical if historical is not None else load_historical(scenario)
    if data.n < 40:
        raise ScenarioError(f"validation needs at least 40 historical patients to split; there are {data.n}.")
    covs = list(data.covariate_names)
    for name, cols in (("validation.sensitive", [v.sensitive] if v.sensitive else []), ("validation.known", v.known or [])):
        bad = [c for c in cols if c not in covs + [TIME, EVENT]]
        if bad:
            raise ScenarioError(f"{name}: {bad} not among the covariates {covs} (or time, event); name model covariates.")
    visits = visit_schedule(scenario, data)
    if visits is not None and scenario.model.joint.visits is None:  # every split's fit keeps the full schedule
        joint = scenario.model.joint.model_copy(update={"visits": [float(t) for t in visits]})
        scenario = scenario.model_copy(update={"model": scenario.model.model_copy(update={"joint": joint})})
    full = patient_frame(data, visits)
    spec = None if v.subgroups is None else [s if isinstance(s, str) else s.model_dump() for s in v.subgroups]
    root = jax.random.fold_in(jax.random.key(scenario.seed), KEY_VALIDATE)
    per_split, first, first_post = [], {}, None
    total = v.splits + (1 if v.collapse.generations else 0)
    for s in range(v.splits):
        if progress:
            progress("split", s, total)
        ks = jax.random.fold_in(root, s)
        k = {p: jax.random.fold_in(ks, i) for p, i in PURPOSE.items()}
        train_rows, hold_rows = holdout_split(data.event, v.holdout, rng_key=k["split"])
        train_data = subset_data(data, train_rows)
        post = _fit(scenario, train_data, k["fit"])
        record_split(post, scenario, data, train_rows, hold_rows, split=s, share=v.holdout)
        train, hold = full.iloc[train_rows].reset_index(drop=True), full.iloc[hold_rows].reset_index(drop=True)
        syn = synthetic_table(k["sample"], post, len(hold), time_col=TIME, event_col=EVENT)
        groups = subgroup_specs(train, spec, exclude=(TIME, EVENT))
        tables = {
            "fidelity": fidelity_report(train, hold, syn, rng_key=k["fidelity"], time=TIME, event=EVENT, alpha=v.alpha),
            "estimands": estimand_report(train, hold, syn, time=TIME, event=EVENT, columns=covs, tau=v.tau,
                                         rng_key=k["estimands"], alpha=v.alpha),
            "privacy": privacy_report(train, hold, syn, rng_key=k["privacy"], n_se=v.n_se, sensitive=v.sensitive,
                                      known=v.known),
            "copier_privacy": privacy_report(train, hold, memorising_generator(train, len(hold), rng_key=k["copier"]),
                                             rng_key=k["privacy"], n_se=v.n_se, sensitive=v.sensitive, known=v.known),
            "subgroups": subgroup_report(train, hold, syn, subgroups=groups, rng_key=k["subgroups"], time=TIME,
                                         event=EVENT, alpha=v.alpha),
        }
        per_split.append({"split": s, "n_train": len(train), "n_holdout": len(hold), "n_synthetic": len(syn),
                          "training_rows": train_rows, "holdout_rows": hold_rows, "tables": tables,
                          "diagnostics": {"divergences": int(post.divergences), "max_rhat": _max_rhat(post)}})
        if s == 0:
            first, first_post = {"train": train, "holdout": hold, "synthetic": syn}, post
    summ = {
        "fidelity": summarise_splits([p["tables"]["fidelity"] for p in per_split], ["section", "metric", "column"]),
        "estimands": summarise_splits([p["tables"]["estimands"] for p in per_split], ["section", "metric", "column"]),
        "privacy": summarise_splits([p["tables"]["privacy"] for p in per_split], ["metric"], holdout="holdout_floor"),
        "copier_privacy": summarise_splits([p["tables"]["copier_privacy"] for p in per_split], ["metric"],
                                           holdout="holdout_floor"),
        "subgroups": summarise_splits([p["tables"]["subgroups"] for p in per_split],
                                      ["subgroup", "level", "section", "metric", "column"]),
    }
    verdicts = {name: section_verdict(summ[name], title) for name, title in (
        ("fidelity", "Fidelity"), ("estimands", "Estimands"), ("privacy", "Privacy"), ("subgroups", "Subgroups"))}
    cop = summ["copier_privacy"]
    verdicts["copier"] = {"verdict": "caught" if (cop["verdict"] == "fail").any() else "missed",
                          "failed": cop.loc[cop["verdict"] == "fail", "metric"].tolist()}
    col_table = None
    if v.collapse.generations:
        if progress:
            progress("collapse", v.splits, total)
        col_table = _collapse(scenario, first, data, covs, jax.random.fold_in(root, KEY_COLLAPSE), collapse)
    if progress:
        progress("done", total, total)
    settings = {**v.model_dump(mode="json"), "n_patients": data.n, "data_source": data.source,
                "data_hash": data.hash()}
    return ValidationResult(scenario=scenario, settings=settings, splits=per_split, verdicts=verdicts,
                            collapse=col_table, posterior=first_post, historical=data, first=first, **summ)


def _collapse(scenario, first: dict, data: TrialData, covs: list[str], key, collapse) -> pd.DataFrame:
    """The collapse harness on the first split, with the scenario's model as the generator."""
    from ..data import load_data
    from .generate import synthetic_table

    v = scenario.validation

    bm = None
    if scenario.model.joint is not None:
        from .biomarker import visit_columns

        visits = scenario.model.joint.visits
        bm = {"name": data.biomarker.name, "visit_unit": data.time_unit,
              "columns": dict(zip(visit_columns(data.biomarker.name, visits), visits))}

    def fit(frame, k):
        d = load_data(frame, duration=TIME, event=EVENT, covariates=covs, time_unit=data.time_unit,
                      biomarker=bm, field="collapse generation")
        return _fit(scenario, d, k)

    def sample(post, n, k):
        return synthetic_table(k, post, n, time_col=TIME, event_col=EVENT)

    ref_sd = first["train"][covs].select_dtypes("number").std(ddof=0).replace(0, 1.0)  # categorical: per level

    def params(post):
        beta = np.asarray(post.beta).mean(axis=0) / np.asarray(post.covariate_sd)
        names = list(post.covariate_names)
        out = {f"log_hr[{c}]": float(b * ref_sd.get(c, 1.0)) for c, b in zip(names, beta)}
        if post.outcome == "weibull":
            out["weibull_shape"] = float(np.exp(np.asarray(post.log_shape)).mean())
        return out

    return collapse(first["train"], first["holdout"], fit=fit, sample=sample, generations=v.collapse.generations,
                    real_share=tuple(v.collapse.real_share), rng_key=key, time=TIME, event=EVENT, params=params)
