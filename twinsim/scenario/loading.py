"""Reading scenarios: YAML, ``--set`` overrides, validation with field-naming messages."""

from __future__ import annotations

import copy
import difflib
from pathlib import Path
from typing import Any, Sequence

import yaml
from pydantic import BaseModel, ValidationError

from ..errors import ScenarioError
from .schema import Scenario

def _format_loc(loc: tuple, raw: dict) -> str:
    out: list[str] = []
    node: Any = raw
    for part in loc:
        if isinstance(part, int) and isinstance(node, list) and part < len(node):
            item = node[part]
            name = item.get("name") if isinstance(item, dict) else None
            out.append(f"[{name}]" if name else f"[{part}]")
            node = item
            continue
        if isinstance(part, str) and ("[" in part or "function" in part):
            continue  # pydantic's union branch labels
        out.append(("." if out else "") + str(part))
        node = node.get(part) if isinstance(node, dict) else None
    return "".join(out)


def _allowed_fields(loc: tuple) -> list[str]:
    model: Any = Scenario
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return []
        ann = field.annotation
        candidates = [ann, *getattr(ann, "__args__", ())]
        for c in candidates:
            if isinstance(c, type) and issubclass(c, BaseModel):
                model = c
                break
            for cc in getattr(c, "__args__", ()):
                if isinstance(cc, type) and issubclass(cc, BaseModel):
                    model = cc
                    break
    return list(getattr(model, "model_fields", {}))


def _validation_message(err: ValidationError, raw: dict, origin: str) -> str:
    lines = []
    seen = set()
    for e in err.errors():
        loc = _format_loc(e["loc"], raw)
        if e["type"] == "extra_forbidden":
            key = str(e["loc"][-1])
            allowed = _allowed_fields(e["loc"])
            hint = difflib.get_close_matches(key, allowed, n=1)
            msg = f"unknown field {key!r}"
            if hint:
                msg += f"; did you mean {hint[0]!r}?"
            if allowed:
                msg += f" (allowed here: {', '.join(allowed)})"
        else:
            msg = e["msg"].removeprefix("Value error, ")
            if e["type"] not in ("missing",) and "input" in e and not isinstance(e["input"], (dict, list)):
                msg += f" (received {e['input']!r})"
        if (loc, msg) in seen:
            continue
        seen.add((loc, msg))
        lines.append(f"{loc}: {msg}" if loc else msg)
    if len(lines) > 6:
        lines = lines[:6] + [f"... and {len(lines) - 6} more"]
    return f"{origin}: invalid scenario. " + "; ".join(lines) + ". See docs/scenario-reference.md for every field."


def parse_scenario(raw: Any, *, origin: str = "scenario", base_dir: Path | None = None) -> Scenario:
    """Validate a scenario given as a dict; ``origin`` names it in error messages."""
    if not isinstance(raw, dict):
        raise ScenarioError(f"{origin}: a scenario is a YAML mapping of sections (name, seed, trial, designs...); got {type(raw).__name__}.")
    try:
        sc = Scenario.model_validate(raw)
    except ValidationError as err:
        raise ScenarioError(_validation_message(err, raw, origin)) from None
    except ScenarioError:
        raise
    except ValueError as err:  # e.g. ModelError from a field validator
        raise ScenarioError(f"{origin}: {err}") from None
    sc._base_dir = Path(base_dir) if base_dir is not None else Path.cwd()
    return sc


def _parse_value(text: str, where: str):
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ScenarioError(f"{where}: value {text!r} is not valid YAML ({err}).") from None


def apply_override(raw: dict, dotted: str, value: Any, *, where: str = "--set") -> dict:
    """Return a copy of ``raw`` with ``dotted.path`` set to ``value``.

    A design is addressed by its name (``designs.hybrid.real_control``); missing
    intermediate mappings are created (``trial.dropout.probability``).
    """
    out = copy.deepcopy(raw)
    parts = dotted.split(".")
    if not dotted or any(p == "" for p in parts):
        raise ScenarioError(f"{where} {dotted!r}: give a dotted path such as trial.n_treatment=300.")
    node: Any = out
    for i, part in enumerate(parts[:-1]):
        if isinstance(node, list):
            match = [d for d in node if isinstance(d, dict) and d.get("name") == part]
            if not match:
                names = [d.get("name") for d in node if isinstance(d, dict)]
                raise ScenarioError(
                    f"{where} {dotted!r}: no entry named {part!r} under {'.'.join(parts[:i])}; names are {', '.join(map(str, names))}."
                )
            node = match[0]
        elif isinstance(node, dict):
            if node.get(part) is None:
                node[part] = {}
            node = node[part]
        else:
            raise ScenarioError(f"{where} {dotted!r}: {'.'.join(parts[:i])} is a value, not a section.")
    last = parts[-1]
    if isinstance(node, list):
        raise ScenarioError(f"{where} {dotted!r}: address a design by name, e.g. designs.NAME.real_control.")
    node[last] = value
    return out


def load_scenario(
    path: str | Path,
    *,
    overrides: Sequence[str] = (),
    replicates: int | None = None,
    seed: int | None = None,
) -> Scenario:
    """Read, override and validate a scenario file.

    Parameters
    ----------
    path : path to a YAML file
    overrides : ``["dotted.path=VALUE", ...]`` with VALUE parsed as YAML (``--set``)
    replicates, seed : shortcuts for ``--set replicates=N`` / ``--set seed=S``
    """
    path = Path(path)
    if not path.is_file():
        raise ScenarioError(f"scenario file {str(path)!r} does not exist; give the path of a YAML scenario (see scenarios/).")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ScenarioError(f"{path}: not valid YAML{at}: {getattr(err, 'problem', err)}. Fix the syntax and run again.") from None
    if not isinstance(raw, dict):
        raise ScenarioError(f"{path}: a scenario is a YAML mapping of sections (name, seed, trial, designs...).")
    for item in overrides:
        if "=" not in item:
            raise ScenarioError(f"--set {item!r}: write it as dotted.path=VALUE, e.g. --set trial.n_treatment=200.")
        key, text = item.split("=", 1)
        raw = apply_override(raw, key.strip(), _parse_value(text, f"--set {key}"))
    if replicates is not None:
        raw = apply_override(raw, "replicates", replicates)
    if seed is not None:
        raw = apply_override(raw, "seed", seed)
    return parse_scenario(raw, origin=str(path), base_dir=path.resolve().parent)
