"""The validation report: ``twinsim validate``'s tables and figures -> report.md / report.html.

Built from a :class:`twinsim.validate.runner.ValidationResult` as one list of blocks rendered
twice (Markdown and self-contained HTML), like the run report.  Every number is shown beside
the holdout floor, as mean and range over the repeated splits.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from .common import _fmt
from .document import FIGURES, _Block, _to_html, _to_markdown
from .figures import _save, _style

log = logging.getLogger("twinsim.report")

__all__ = ["write_validation_report", "validation_json", "plot_privacy", "plot_fidelity", "plot_estimands"]

_BLUE, _GREY, _RED, _BLACK = "#0072B2", "#8c8c8c", "#D55E00", "#222222"

PRIVACY_LABELS = {
    "dcr_exact_match_share": "exact copies of a training row (share)",
    "dcr_low_tail_share": "DCR below the holdout's 5th percentile (share)",
    "dcr_closer_to_train_share": "closer to a training than to a holdout row (share)",
    "nndr_low_tail_share": "NNDR below the holdout's 5th percentile (share)",
    "identifiability": "identifiability (Yoon et al. 2020)",
    "membership_inference_auc": "membership-inference attack AUC",
}


def _bad(metric: str, values: np.ndarray) -> np.ndarray:
    """The 'worse is larger' orientation fidelity_report judges by (magnitude for signed rows)."""
    return np.abs(values) if metric in ("smd", "optimism") else values


def _label(row) -> str:
    col = str(row.get("column", ""))
    return f"{row['metric']} [{col}]" if col not in ("", "all", "nan") else str(row["metric"])


# --------------------------------------------------------------------------- figures


def plot_privacy(privacy: pd.DataFrame, copier: pd.DataFrame):
    """Each privacy check: synthetic (range over splits), holdout floor (range), floor + tolerance, copier."""
    import matplotlib.pyplot as plt

    rows = privacy[privacy["metric"].isin(list(PRIVACY_LABELS))].reset_index(drop=True)  # shares and AUCs: one [0, 1] axis
    fig, ax = plt.subplots(figsize=(7.6, 0.55 * len(rows) + 1.6), layout="constrained")
    cop = copier.set_index("metric")
    for i, r in rows.iterrows():
        y = len(rows) - 1 - i
        ax.plot([r["holdout_min"], r["holdout_max"]], [y + 0.12] * 2, color=_GREY, lw=5, alpha=0.6, solid_capstyle="butt")
        ax.plot(r["holdout"], y + 0.12, "o", color=_GREY, ms=5, label="holdout floor (range over splits)" if i == 0 else None)
        sign = 1 if r.get("better", "lower") == "lower" else -1
        ax.plot(r["holdout"] + sign * r["tolerance"], y + 0.12, "|", color=_BLACK, ms=12, mew=1.5,
                label="floor + tolerance" if i == 0 else None)
        colour = _RED if r["verdict"] == "fail" else _BLUE
        ax.plot([r["synthetic_min"], r["synthetic_max"]], [y - 0.12] * 2, color=colour, lw=2)
        ax.plot(r["synthetic"], y - 0.12, "D", color=colour, ms=6, label="twinsim generator" if i == 0 else None)
        if r["metric"] in cop.index:
            ax.plot(cop.loc[r["metric"], "synthetic"], y - 0.12, "x", color=_RED, ms=8, mew=2,
                    label="memorising generator (positive control)" if i == 0 else None)
    ax.set_yticks(range(len(rows)), [PRIVACY_LABELS.get(m, m) for m in rows["metric"]][::-1], fontsize="small")
    ax.set_xlabel("value (lower is more private)")
    ax.set_xlim(-0.03, 1.03)
    _style(ax)
    fig.legend(loc="outside lower center", ncol=2, frameon=False, fontsize="small")
    ax.set_title("Privacy: synthetic patients beside an independent real sample", fontsize="medium")
    return fig


def plot_fidelity(fidelity: pd.DataFrame, first: dict, splits: list[dict]):
    """Left: Kaplan-Meier of training, holdout and synthetic patients (first split).  Right: each
    fidelity row's excess over its floor in tolerance units, one dot per split (> 1: worse than floor)."""
    import matplotlib.pyplot as plt

    from ..analysis import kaplan_meier

    fig, (ax_km, ax_ex) = plt.subplots(1, 2, figsize=(11, 0.16 * len(fidelity) + 3.2), layout="constrained",
                                       gridspec_kw={"width_ratios": [1, 1.2]})
    for name, colour, style in (("train", _BLACK, "-"), ("holdout", _GREY, "--"), ("synthetic", _BLUE, "-")):
        t = first[name]
        km = kaplan_meier(t["time"].to_numpy(), t["event"].to_numpy())
        ax_km.step(km.index.to_numpy(), km["survival"].to_numpy(), where="post", color=colour, ls=style,
                   label=f"{name} (n={len(t)})")
    ax_km.set_xlabel("time")
    ax_km.set_ylabel("Kaplan-Meier survival")
    ax_km.set_ylim(0, 1.02)
    ax_km.legend(frameon=False, fontsize="small")
    ax_km.set_title("Survival, first split", fontsize="medium")
    _style(ax_km)
    labels = [_label(r) for _, r in fidelity.iterrows()]
    for s, p in enumerate(splits):
        t = p["tables"]["fidelity"]
        t = t.assign(label=[_label(r) for _, r in t.iterrows()]).set_index("label")
        for i, lab in enumerate(labels):
            if lab not in t.index or not np.isfinite(t.loc[lab, "tolerance"]) or t.loc[lab, "tolerance"] <= 0:
                continue
            r = t.loc[lab]
            ex = (_bad(r["metric"], np.array([r["synthetic"]]))[0] - _bad(r["metric"], np.array([r["holdout"]]))[0]) / r["tolerance"]
            ax_ex.plot(ex, len(labels) - 1 - i, "o", ms=4, color=_RED if ex > 1 else _BLUE, alpha=0.75)
    ax_ex.axvline(1, color=_RED, lw=1, ls="--")
    ax_ex.axvline(0, color=_GREY, lw=0.8)
    ax_ex.set_yticks(range(len(labels)), labels[::-1], fontsize="x-small")
    ax_ex.set_xlabel("(synthetic - holdout floor) / tolerance; > 1 = worse than floor")
    ax_ex.set_title("Fidelity rows, one dot per split", fontsize="medium")
    _style(ax_ex)
    return fig


def plot_estimands(estimands: pd.DataFrame):
    """Forest plot: each estimand on the training, holdout and synthetic tables (mean, range over splits)."""
    import matplotlib.pyplot as plt

    rows = estimands.reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(7.6, 0.42 * len(rows) + 1.6), layout="constrained")
    hr = rows["metric"] == "log_hr"
    for i, r in rows.iterrows():
        y = len(rows) - 1 - i
        if not hr[i]:  # other estimands are on their own scales: shown in the table
            continue
        if "train" in r and pd.notna(r.get("train")):
            ax.plot(r["train"], y + 0.2, "s", color=_BLACK, ms=5, label="training (reference)" if i == 0 else None)
        ax.plot([r["holdout_min"], r["holdout_max"]], [y] * 2, color=_GREY, lw=4, alpha=0.6)
        ax.plot(r["holdout"], y, "o", color=_GREY, ms=5, label="holdout" if i == 0 else None)
        colour = _RED if r["verdict"] == "fail" else _BLUE
        ax.plot([r["synthetic_min"], r["synthetic_max"]], [y - 0.2] * 2, color=colour, lw=2)
        ax.plot(r["synthetic"], y - 0.2, "D", color=colour, ms=5, label="synthetic" if i == 0 else None)
    ax.axvline(0, color=_GREY, lw=0.8)
    ax.set_yticks([len(rows) - 1 - i for i in range(len(rows)) if hr[i]],
                  [str(rows.loc[i, "column"]) for i in range(len(rows)) if hr[i]], fontsize="small")
    ax.set_xlabel("log hazard ratio (per training SD for numeric covariates)")
    ax.set_title("Cox model fitted to each table: mean and range over splits", fontsize="medium")
    _style(ax)
    fig.legend(loc="outside lower center", ncol=4, frameon=False, fontsize="small")
    return fig


# --------------------------------------------------------------------------- tables


def _range(mean, lo, hi, digits=3) -> str:
    if not np.isfinite(mean):
        return "-"
    if lo == hi:
        return _fmt(mean, digits)
    return f"{_fmt(mean, digits)} [{_fmt(lo, digits)}, {_fmt(hi, digits)}]"


def _display(table: pd.DataFrame, keys: list[str], *, copier: pd.DataFrame | None = None) -> pd.DataFrame:
    out = pd.DataFrame({k: table[k].astype(str) for k in keys})
    out["synthetic mean [range]"] = [_range(r.synthetic, r.synthetic_min, r.synthetic_max) for r in table.itertuples()]
    out["holdout floor mean [range]"] = [_range(r.holdout, r.holdout_min, r.holdout_max) for r in table.itertuples()]
    out["tolerance"] = [_fmt(x, 3) if np.isfinite(x) else "-" for x in table["tolerance"]]
    if copier is not None:
        c = copier.set_index("metric")
        out["memorising generator"] = [_fmt(c.loc[m, "synthetic"], 3) + (" (fail)" if c.loc[m, "verdict"] == "fail" else "")
                                       if m in c.index else "-" for m in table["metric"]]
    out["worse than floor"] = [f"{w} of {n}" if n else "-" for w, n in zip(table["splits_worse"], table["splits"])]
    out["verdict"] = table["verdict"]
    return out


def validation_json(result) -> dict:
    """Machine-readable verdicts and summaries (also read by the synthesis card of ``twinsim sample``)."""
    def records(t):
        return None if t is None else json.loads(t.to_json(orient="records"))

    return {
        "scenario": result.scenario.name, "seed": result.scenario.seed, "settings": result.settings,
        "verdicts": result.verdicts,
        "splits": [{"split": p["split"], "n_train": p["n_train"], "n_holdout": p["n_holdout"],
                    "n_synthetic": p["n_synthetic"], **p["diagnostics"]} for p in result.splits],
        "privacy": records(result.privacy), "copier_privacy": records(result.copier_privacy),
        "fidelity": records(result.fidelity), "estimands": records(result.estimands),
        "subgroups": records(result.subgroups), "collapse": records(result.collapse),
    }


def _verdict_items(result) -> list[str]:
    v = result.verdicts
    items = []
    for name in ("privacy", "fidelity", "estimands", "subgroups"):
        word = "**PASS**" if v[name]["verdict"] == "pass" else "**FAIL**"
        items.append(f"{word} {v[name]['text']}.")
    cop = v["copier"]
    if cop["verdict"] == "caught":
        items.append(f"Positive control: a memorising generator (bootstrap copies of the training rows) fails "
                     f"{len(cop['failed'])} privacy checks on the same splits ({', '.join(cop['failed'])}), so the "
                     "privacy section can catch copying at this sample size.")
    else:
        items.append("**Warning**: a memorising generator (bootstrap copies of the training rows) passed every privacy "
                     "check on these splits: the data are too few for the privacy section to catch copying.")
    return items


def _build(result, figures: dict[str, str]) -> list[_Block]:
    from ..validate.subgroups import subgroup_summary

    s, sc = result.settings, result.scenario
    b = [_Block("h1", f"twinsim validation: {sc.name}")]
    b.append(_Block("p", (f"Historical data `{s['data_source']}` ({s['n_patients']} patients, SHA-256 "
                          f"`{s['data_hash'][:16]}...`). {s['splits']} random splits, stratified by event, each holding out "
                          f"{s['holdout']:.0%} of the patients before the `{result.posterior.outcome}` model was fitted "
                          "to the rest; as many synthetic patients as holdout patients were drawn from each fit. Every "
                          "figure is shown beside the **holdout floor**: the value an independent real sample gets. "
                          "Ranges are over the splits. A check fails when it is worse than its floor by more than its "
                          "tolerance in more than half of the splits (docs/validation.md).")))
    b.append(_Block("h2", "Verdicts"))
    b.append(_Block("list", "\n".join(_verdict_items(result))))

    b.append(_Block("h2", "Privacy"))
    b.append(_Block("p", "Distances are Euclidean on covariates, follow-up time and event, standardised by the "
                    "training table. Every check tests whether the synthetic patients are closer to the patients the "
                    "model saw than an independent real sample is. The memorising generator's column is the positive "
                    "control."))
    b.append(_Block("table", table=_display(result.privacy, ["metric"], copier=result.copier_privacy)))
    b.append(_Block("figure", "Privacy checks: the twinsim generator (blue diamonds, range over splits) beside the "
                    "holdout floor (grey) and its tolerance (black tick); red crosses: the memorising generator.",
                    path=figures["privacy"]))

    b.append(_Block("h2", "Fidelity"))
    b.append(_Block("p", "Marginals (standardised difference, Kolmogorov-Smirnov, Wasserstein), correlation differences, "
                    "a classifier's real-vs-synthetic AUC and Kaplan-Meier distances, each against the training table."))
    b.append(_Block("table", table=_display(result.fidelity, ["section", "metric", "column"])))
    b.append(_Block("figure", "Left: Kaplan-Meier curves of the first split. Right: each fidelity check's excess over "
                    "its holdout floor in units of its tolerance (one dot per split; beyond the dashed line = worse "
                    "than floor).", path=figures["fidelity"]))

    bm_cols = [c for c in result.first["train"].columns if "@" in str(c)]
    if bm_cols:
        from ..validate.biomarker import biomarker_by_visit

        table = biomarker_by_visit(result.first, bm_cols)
        b.append(_Block("p", "Biomarker by visit (first split): among patients still under observation at the visit, "
                        "the share measured and the quartiles of the measured values. Synthetic trajectories are "
                        "measured the way the training patients were (a logistic model of being measured on the "
                        "previous measured value), so the visit rows of the fidelity table compare like with like."))
        b.append(_Block("table", table=table.map(lambda x: _fmt(x, 3) if isinstance(x, float) else x)))

    b.append(_Block("h2", "Estimands"))
    b.append(_Block("p", "What an analyst would estimate from the table: Cox log hazard ratios of every covariate, the "
                    "restricted mean survival time, and the C-index on the holdout of a Cox model trained on synthetic "
                    "patients (floor: trained on the real training patients)."))
    b.append(_Block("table", table=_display(result.estimands, ["metric", "column"])))
    b.append(_Block("figure", "Cox log hazard ratios fitted to the training, holdout and synthetic tables.",
                    path=figures["estimands"]))

    b.append(_Block("h2", "Subgroups"))
    b.append(_Block("p", "Each fidelity check within each subgroup, against the subgroup's own holdout floor, so bias "
                    "the generator amplifies in a small subgroup is visible. Summary of the first split:"))
    summary = subgroup_summary(result.splits[0]["tables"]["subgroups"]).reset_index()  # indexed by level
    keep = [c for c in ("subgroup", "level", "n_train", "n_holdout", "n_synthetic", "share_train", "share_synthetic",
                        "share_holdout", "rows_checked", "rows_worse", "abs_optimism", "abs_optimism_floor",
                        "detection_auc", "detection_auc_floor", "max_abs_smd", "max_abs_smd_floor", "note")
            if c in summary]
    b.append(_Block("table", table=summary[keep].map(lambda x: _fmt(x, 3) if isinstance(x, float) else x)))
    failed = result.subgroups[result.subgroups["verdict"] == "fail"]
    if len(failed):
        b.append(_Block("table", table=_display(failed, ["subgroup", "level", "metric", "column"])))
    b.append(_Block("figure", "Subgroups (first split): synthetic values against the subgroup's holdout floor.",
                    path=figures["subgroups"]))

    if result.collapse is not None and "collapse" in figures:
        b.append(_Block("h2", "Collapse: retraining on synthetic output"))
        g = int(result.collapse["generation"].max())
        b.append(_Block("p", f"The model was refitted on its own synthetic patients for {g} generations (first split), "
                        "with and without keeping a share of the real training patients in every generation's "
                        "training set; each generation's synthetic patients are compared with the real training table, "
                        "against the holdout floor."))
        b.append(_Block("figure", "How the checks drift over generations of retraining on synthetic patients.",
                        path=figures["collapse"]))
    b.append(_Block("h2", "Provenance"))
    b.append(_Block("list", "\n".join([
        f"Scenario `{sc.name}`, seed {sc.seed}; validation settings: holdout {s['holdout']}, splits {s['splits']}, "
        f"alpha {s['alpha']}, privacy tolerance {s['n_se']} SE.",
        "Keys: fold_in(key(seed), 4) for validation; split s uses fold_in(., s) (docs/validation.md).",
        "Fits: " + "; ".join(f"split {p['split']}: {p['n_train']} training patients, {p['divergences']} divergences, "
                             f"max R-hat {_fmt(p['max_rhat'], 3)}" for p in
                             [{**q, **q['diagnostics']} for q in result.splits]),
    ])))
    return b


def _figure(obj):
    """The Figure of a plotting function's return value (a Figure, an Axes or an array of Axes)."""
    if hasattr(obj, "savefig"):
        return obj
    return np.asarray(obj).flat[0].figure if isinstance(obj, np.ndarray) else obj.figure


def write_validation_report(result, out_dir) -> list[Path]:
    """Write the figures, tables (CSV), ``validation.json``, ``report.md`` and ``report.html``."""
    from ..validate.collapse import plot_collapse
    from ..validate.figures import plot_subgroups

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written, figures = [], {}

    def save(name, fig):
        written.append(_save(fig, out / FIGURES / f"{name}.png"))
        figures[name] = f"{FIGURES}/{name}.png"
        import matplotlib.pyplot as plt
        plt.close(fig)

    save("privacy", plot_privacy(result.privacy, result.copier_privacy))
    save("fidelity", plot_fidelity(result.fidelity, result.first, result.splits))
    save("estimands", plot_estimands(result.estimands))
    save("subgroups", _figure(plot_subgroups(result.splits[0]["tables"]["subgroups"])))
    if result.collapse is not None:
        save("collapse", _figure(plot_collapse(result.collapse)))
    for name in ("fidelity", "estimands", "privacy", "copier_privacy", "subgroups", "collapse"):
        t = getattr(result, name)
        if t is not None:
            t.to_csv(out / f"{name}.csv", index=False)
            written.append(out / f"{name}.csv")
    per_split = []
    for p in result.splits:
        for name, t in p["tables"].items():
            per_split.append(t.assign(table=name, split=p["split"]))
    pd.concat(per_split, ignore_index=True).to_csv(out / "splits.csv", index=False)
    (out / "validation.json").write_text(json.dumps(validation_json(result), indent=2, default=str) + "\n")
    written += [out / "splits.csv", out / "validation.json"]
    blocks = _build(result, figures)
    (out / "report.md").write_text(_to_markdown(blocks), encoding="utf-8")
    (out / "report.html").write_text(_to_html(blocks, f"twinsim validation: {result.scenario.name}", out), encoding="utf-8")
    written += [out / "report.md", out / "report.html"]
    return written
