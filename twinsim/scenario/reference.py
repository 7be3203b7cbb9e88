"""The scenario reference (Markdown), generated from the schema so it cannot drift."""

from __future__ import annotations

import re

from .schema import (
    Accrual, AdamSource, Analysis, BiomarkerSpec, Control, Cut, Design, Drift, Dropout, Effect, Historical,
    HistoricalSource, Inference, Joint, Model, Scenario, Trial,
)
from .validation import Collapse, SubgroupBands, Validation

_SECTION_HINT = {
    "historical": "Section `historical` below; with `model`, or give `control` instead.",
    "model": "Section `model` below.",
    "control": "Section `control` below: an assumed distribution instead of `historical` + `model`.",
    "trial": "Section `trial` below.",
    "effect": "Section `effect` below.",
    "drift": "Section `drift` below.",
    "designs": "A list of `designs[]` entries (below); compared side by side on the same simulated trials.",
    "analysis": "Section `analysis` below.",
    "inference": "Section `model.inference` below.",
    "accrual": "Section `trial.accrual` below.",
    "dropout": "Section `trial.dropout` below; none if omitted.",
    "cut": "Section `trial.cut` below.",
}


def scenario_reference() -> str:
    """Markdown reference of every scenario field, generated from the models."""
    sections = [
        ("(top level)", Scenario), ("historical", Historical), ("historical.data: adam", AdamSource),
        ("historical.data[] entry", HistoricalSource), ("historical.biomarker", BiomarkerSpec),
        ("model", Model), ("model.inference", Inference), ("model.joint", Joint), ("control", Control), ("trial", Trial),
        ("trial.accrual", Accrual), ("trial.dropout", Dropout), ("trial.cut", Cut),
        ("effect", Effect), ("drift", Drift), ("designs[]", Design), ("analysis", Analysis),
        ("validation", Validation), ("validation.subgroups[] bands", SubgroupBands), ("validation.collapse", Collapse),
    ]
    out = [
        "# Scenario reference",
        "",
        "Generated from `twinsim/scenario/schema.py` by `twinsim reference > docs/scenario-reference.md`;",
        "a test checks it is current. Unknown fields are errors. Times are in `trial.time_unit`",
        "unless the field says otherwise.",
        "",
    ]
    for title, model in sections:
        doc = (model.__doc__ or "").strip().splitlines()[0]
        out += [f"## `{title}`", "", doc, "", "| field | type | default | meaning |", "|---|---|---|---|"]
        for fname, f in model.model_fields.items():
            ann = re.sub(r"\b[\w]+\.", "", str(f.annotation)).replace("<class '", "").replace("'>", "")
            ann = ann.replace("|", "or")
            if f.is_required():
                default = "required"
            elif f.default_factory in (dict, list):
                default = "`{}`" if f.default_factory is dict else "`[]`"
            elif f.default_factory is not None:
                default = "(section defaults)"
            else:
                default = f"`{f.default}`" if f.default is not None else "none"
            desc = f.description or _SECTION_HINT.get(fname, "")
            out.append(f"| `{fname}` | {ann} | {default} | {desc.replace('|', '/')} |")
        out.append("")
    return "\n".join(out)
