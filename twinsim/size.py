"""Sample-size search: the smallest size of a trial field that reaches a target power, per design.

``twinsim size`` (and :func:`size_search`) varies one integer field of a scenario (the event
target, the treatment arm, a design's concurrent controls) and finds, for each design, the
smallest value whose power reaches ``target_power``, with its Monte Carlo uncertainty.

The search itself (bracket, probit fit on ``sqrt(size)`` near the answer, replicates placed at
and either side of the fitted root, stop at a relative standard error ``tol``) is
:func:`twinsim.size_probit.search_roots`; this module supplies the simulator to it.  The
answer is ``ceil(x*)`` with its interval; the power at that size is then evaluated directly
on fresh replicates as a check.

Random numbers
--------------
Replicate ``r`` uses ``fold_in(fold_in(jax.random.key(seed), KEY_SIMULATE), r)`` as in
:func:`twinsim.simulate.simulate_grid`; the search numbers its blocks consecutively (the
first block is replicates ``0..n-1``, the next ``n..``, and the final check follows), so
**every evaluation uses its own independent replicates** and the binomial likelihood of the
fit is exact (no correlation between sizes to correct for).  Within one block all designs
share the replicates (common random numbers across designs, as everywhere in twinsim).

The table, closed-form comparison, figure and files are in :mod:`twinsim.size_report`.
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass, field
from typing import Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from scipy import stats

from .continuous import _CODE, _grid_replicates, normal_control
from .errors import ScenarioError, StatisticalWarning
from .scenario import Grid, Scenario, apply_override, parse_scenario
from .simulate import (
    KEY_SIMULATE, DesignConfig, PatientModel, Sizes, _batch_size, design_configs, patient_model_from_control,
    patient_model_from_posterior, reject_rule, simulate_replicates,
)
from .size_probit import RootSearch, search_roots

log = logging.getLogger("twinsim.size")

__all__ = ["SizeResult", "size_search", "resolve_vary", "ScenarioEvaluator", "INTEGER_FIELDS"]

#: Integer fields ``--vary`` accepts (``NAME`` is a design; ``{design}`` or the bare name = each design's own).
INTEGER_FIELDS = ("trial.n_treatment", "trial.cut.events", "designs.NAME.real_control",
                  "designs.NAME.synthetic_control", "designs.NAME.treatment", "designs.NAME.n_per_arm")
_DESIGN_FIELDS = ("real_control", "synthetic_control", "treatment", "n_per_arm")
#: ``n_per_arm`` is not a scenario field: it sets a design's ``treatment`` and ``real_control`` together (1:1).


# --------------------------------------------------------------------------- the scenario's field


def resolve_vary(scenario: Scenario, vary: str, designs: Sequence[str] | None = None) -> dict[str, str]:
    """Map each searched design to the dotted path varied for it.

    ``trial.n_treatment`` / ``trial.cut.events``: the same field, searched once per design.
    ``designs.NAME.F``: that design only.  ``designs.{design}.F`` or the bare ``F``
    (real_control, synthetic_control, treatment): each design's own field.
    """
    names = [d.name for d in scenario.designs]
    parts = vary.split(".")
    if vary in _DESIGN_FIELDS:
        parts = ["designs", "{design}", vary]
    allowed = ", ".join(INTEGER_FIELDS) + " (or designs.{design}.FIELD / the bare FIELD for each design's own)"
    if len(parts) == 3 and parts[0] == "designs":
        if parts[2] not in _DESIGN_FIELDS:
            raise ScenarioError(f"--vary {vary!r}: {parts[2]!r} is not an integer design field that can be searched; "
                                f"use one of {allowed}.")
        if parts[1] == "{design}":
            chosen = list(designs) if designs else names
            paths = {n: f"designs.{n}.{parts[2]}" for n in chosen}
        elif parts[1] in names:
            if designs and list(designs) != [parts[1]]:
                raise ScenarioError(f"--vary {vary!r} varies design {parts[1]!r} only, but designs {list(designs)} were "
                                    "asked for; use --vary designs.{design}." + parts[2] + " to vary each design's own.")
            paths = {parts[1]: vary}
        else:
            raise ScenarioError(f"--vary {vary!r}: no design named {parts[1]!r}; designs are {', '.join(names)}.")
    elif vary in ("trial.n_treatment", "trial.cut.events"):
        if vary == "trial.cut.events" and scenario.trial.cut.events is None:
            raise ScenarioError(f"--vary {vary!r}: the scenario's analysis is at a calendar time (trial.cut.time), not "
                                "at an event count; vary trial.n_treatment or a design's real_control, or set "
                                "--set trial.cut.events=N --set trial.cut.time=null.")
        chosen = list(designs) if designs else names
        paths = {n: vary for n in chosen}
    else:
        raise ScenarioError(f"--vary {vary!r} is not an integer field that can be searched; use one of {allowed}.")
    unknown = [n for n in paths if n not in names]
    if unknown:
        raise ScenarioError(f"--design: no design named {', '.join(map(repr, unknown))}; designs are {', '.join(names)}.")
    return paths


def _current_value(sc: Scenario, design: str, path: str) -> int:
    d = sc.design(design)
    if path.endswith(".n_per_arm"):
        return int(d.real_control)
    if path == "trial.cut.events":
        return int(sc.trial.cut.events)
    if path == "trial.n_treatment" or (path.endswith(".treatment") and d.treatment is None):
        return int(sc.trial.n_treatment)
    return int(getattr(d, path.split(".")[-1]))


class ScenarioEvaluator:
    """Rejection counts of each design at design-specific sizes, on consecutive replicate blocks.

    One compiled kernel serves the whole search: the configurations are always one per
    design, and the pools are padded to the largest size any design can reach (``upper``).
    """

    def __init__(self, scenario: Scenario, paths: dict[str, str], lower, upper, *, rng_key,
                 model: PatientModel | None = None):
        self.scenario, self.paths, self.model = scenario, paths, model
        self.designs = list(paths)
        self.root = rng_key
        self.next_replicate = 0
        self.unreached = {}  # (design, value) -> trials whose event target was never reached
        self._rows: dict[tuple[str, int], DesignConfig] = {}
        self._sizes: dict[tuple[str, int], Sizes] = {}
        self._raw = scenario.to_dict()
        for d, lo, hi in zip(self.designs, lower, upper):
            self.row(d, int(lo)), self.row(d, int(hi))
        # pad every pool to the largest size any design reaches (booleans: any)
        self.sizes = Sizes(*[max(getattr(z, f) for z in self._sizes.values()) for f in Sizes._fields])
        self.block = _batch_size(self.sizes, len(self.designs), 1 << 20)
        a = scenario.analysis
        self.alpha, self.alternative, self.test = a.alpha, a.alternative, a.test

    def point(self, design: str, value: int) -> Scenario:
        """The scenario with ``design``'s field set to ``value`` (validated)."""
        path = self.paths[design]
        if path.endswith(".n_per_arm"):  # both arms of the design, 1:1
            base = path.rsplit(".", 1)[0]
            raw = apply_override(self._raw, base + ".treatment", int(value), where="--vary")
            raw = apply_override(raw, base + ".real_control", int(value), where="--vary")
        else:
            raw = apply_override(self._raw, path, int(value), where="--vary")
        return parse_scenario(raw, origin=f"--vary {path}={int(value)}", base_dir=self.scenario.base_dir)

    def row(self, design: str, value: int) -> DesignConfig:
        """``design``'s kernel configuration at ``value`` (fields as Python scalars)."""
        key = (design, int(value))
        if key not in self._rows and self.scenario.trial.endpoint == "continuous":
            sc = self.point(design, value)
            d = sc.design(design)
            n_t = d.treatment if d.treatment is not None else sc.trial.n_treatment
            code = _CODE[d.method]
            self._rows[key] = ContinuousRow(n_t, d.real_control, sc.effect.mean_difference[0], code,
                                            n_t + d.real_control - 2 - (code > 0))
            self._sizes[key] = Sizes(n_t, d.real_control, 0, False)
        if key not in self._rows:
            sc = self.point(design, value)
            grid = Grid({"hazard_ratio": sc.effect.hazard_ratio, "drift": sc.drift.hazard_ratio}, (sc,), ((0, 0),))
            table = design_configs(grid)
            i = table.designs.index(design)
            self._dtypes = [np.asarray(c).dtype for c in table.configs]
            self._rows[key] = DesignConfig(*[np.asarray(c)[i].item() for c in table.configs])
            self._sizes[key] = table.sizes
        return self._rows[key]

    def real_patients(self, design: str, value: int) -> int:
        row = self.row(design, value)
        return int(row.n_treat + row.n_real)  # treatment + concurrent controls

    def __call__(self, values, n: int) -> np.ndarray:
        if self.scenario.trial.endpoint == "continuous":
            return self._continuous(values, n)
        rows = [self.row(d, int(x)) for d, x in zip(self.designs, values)]
        configs = DesignConfig(*[jnp.asarray(c, dtype) for c, dtype in zip(zip(*rows), self._dtypes)])
        counts = np.zeros(len(rows), np.int64)
        unreached = np.zeros(len(rows), np.int64)
        start = self.next_replicate
        for s in range(start, start + n, self.block):
            keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(self.root, jnp.arange(s, s + self.block))
            out = simulate_replicates(keys, self.model, configs, self.sizes)
            take = min(self.block, start + n - s)
            rej = reject_rule(*(np.asarray(a)[:take] for a in (out.z, out.log_hr, out.se, out.valid)), self.alpha,
                              test=self.test, alternative=self.alternative)
            counts += rej.sum(axis=0)
            unreached += np.isinf(np.asarray(out.cut_time)[:take]).sum(axis=0)
        self.next_replicate = start + n
        for d, x, u in zip(self.designs, values, unreached):
            self.unreached[(d, int(x))] = self.unreached.get((d, int(x)), 0) + int(u)
        return counts


    def _continuous(self, values, n: int) -> np.ndarray:
        """Rejections of a continuous endpoint's designs (t tests; one patient pool per replicate)."""
        rows = [self.row(d, int(x)) for d, x in zip(self.designs, values)]
        configs = (jnp.asarray([r.n_treat for r in rows], jnp.int32), jnp.asarray([r.n_real for r in rows], jnp.int32),
                   jnp.asarray([r.delta for r in rows], float), jnp.asarray([r.code for r in rows], jnp.int32))
        crit = stats.t.ppf(1 - self.alpha / 2, np.array([r.df for r in rows]))
        model = normal_control(self.scenario.control)
        counts = np.zeros(len(rows), np.int64)
        start = self.next_replicate
        for s in range(start, start + n, self.block):
            keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(self.root, jnp.arange(s, s + self.block))
            out = _grid_replicates(keys, model, configs, self.sizes.max_treat, self.sizes.max_real)
            take = min(self.block, start + n - s)
            t = np.asarray(out.t)[:take]
            counts += ((np.abs(t) > crit) & np.isfinite(t)).sum(axis=0)
        self.next_replicate = start + n
        return counts


class ContinuousRow(NamedTuple):
    """A continuous-endpoint design at one size: arms, true difference, analysis code, t df."""

    n_treat: int
    n_real: int
    delta: float
    code: int
    df: int


# --------------------------------------------------------------------------- public API


@dataclass
class SizeResult:
    """Everything :func:`size_search` found (tables in memory; :func:`twinsim.size_report.write_size_outputs`
    writes them)."""

    scenario: Scenario
    vary: str
    paths: dict[str, str]          #: design -> dotted path varied
    target_power: float
    hazard_ratio: float
    drift: float
    level: float
    table: pd.DataFrame            #: one row per design (size.csv)
    evaluations: pd.DataFrame      #: every evaluated (design, size, block): replicates, rejections, power, mcse
    searches: dict[str, RootSearch]
    notes: list[str] = field(default_factory=list)
    provenance: dict = field(default_factory=dict)

    def curve(self, design: str, values) -> np.ndarray:
        """Fitted power of ``design`` at sizes ``values`` (NaN without a fit)."""
        fit = self.searches[design].fit
        return np.full(np.shape(values), np.nan) if fit is None else fit.power(values)


def _effect_values(sc: Scenario, hazard_ratio, drift) -> tuple[float, float, list[str]]:
    """The effect (hazard ratio, or mean difference for a continuous endpoint) and drift searched."""
    notes = []
    continuous = sc.trial.endpoint == "continuous"
    effects, null = (sc.effect.mean_difference, 0.0) if continuous else (sc.effect.hazard_ratio, 1.0)
    field = f"effect.{sc.effect_dim}"
    option = "--mean-difference" if continuous else "--hazard-ratio"
    if hazard_ratio is None:
        non_null = [h for h in effects if h != null]
        if not non_null:
            raise ScenarioError(f"{field} holds only {null:g} (no effect), so no size reaches a target power; "
                                f"give a non-null effect with {option} or --set {field}=VALUE.")
        hazard_ratio = non_null[0]
        if len(non_null) > 1:
            notes.append(f"{field} lists {list(non_null)}; the search uses the first, {hazard_ratio:g} "
                         f"(choose with {option}).")
    if drift is None:
        drift = sc.drift.hazard_ratio[0]
        if len(sc.drift.hazard_ratio) > 1:
            notes.append(f"drift.hazard_ratio lists {list(sc.drift.hazard_ratio)}; the search uses the first, {drift:g} "
                         "(choose with --drift).")
    if continuous:
        if not (math.isfinite(hazard_ratio) and hazard_ratio != 0):
            raise ScenarioError(f"--mean-difference {hazard_ratio!r}: give a non-zero finite difference such as 50.")
        if drift != 1.0:
            raise ScenarioError("--drift does not apply to a continuous endpoint yet.")
        return float(hazard_ratio), 1.0, notes
    for name, v in (("--hazard-ratio", hazard_ratio), ("--drift", drift)):
        if not (v > 0 and math.isfinite(v)):
            raise ScenarioError(f"{name} {v!r}: give a positive hazard ratio such as 0.7.")
    return float(hazard_ratio), float(drift), notes


def _default_bounds(sc: Scenario, design: str, path: str, lower, upper) -> tuple[int, int]:
    v = _current_value(sc, design, path) or sc.trial.n_treatment
    lo = int(lower) if lower is not None else max(1, int(math.ceil(v / 4)))
    hi = int(upper) if upper is not None else 4 * v
    if path == "trial.cut.events" and upper is None:  # no more events than real patients
        d = sc.design(design)
        hi = min(hi, (d.treatment or sc.trial.n_treatment) + d.real_control)
    if not 1 <= lo < hi:
        raise ScenarioError(f"--lower {lo} / --upper {hi} for {path} ({design}): give 1 <= lower < upper.")
    return lo, hi


def size_search(
    scenario: Scenario,
    vary: str,
    *,
    target_power: float = 0.8,
    designs: Sequence[str] | None = None,
    lower: int | None = None,
    upper: int | None = None,
    hazard_ratio: float | None = None,
    drift: float | None = None,
    tol: float = 0.01,
    max_replicates: int = 20000,
    check_replicates: int = 2000,
    level: float = 0.95,
    posterior=None,
    progress: Callable[[str, int, int], None] | None = None,
) -> SizeResult:
    """For each design, the smallest value of the integer field ``vary`` whose power reaches ``target_power``.

    Parameters
    ----------
    scenario : Scenario (its seed, analysis, control or model; its replicates are not used)
    vary : dotted path, see :func:`resolve_vary` and :data:`INTEGER_FIELDS`
    target_power : in (0, 1)
    designs : names of the designs to search (default all)
    lower, upper : bounds of the field (default a quarter and four times each design's current
        value; for ``trial.cut.events`` at most the design's real patients)
    hazard_ratio : effect at which power is computed (default the scenario's first non-null value): a hazard
        ratio, or for a continuous endpoint a mean difference
    drift : drift hazard ratio (default the scenario's first)
    tol : target relative SE of the root (0.01: the size known to about +/- 2 %)
    max_replicates : simulated trials per design for the search (the check adds ``check_replicates``)
    check_replicates : fresh trials evaluating the power at each reported size directly
    level : confidence level of the reported interval
    posterior : Posterior, optional (otherwise fitted or loaded as ``twinsim run`` does)
    progress : optional ``progress(stage, done, total)`` with stages ``fit``, ``search`` and ``check``

    Returns
    -------
    SizeResult
    """
    from .run import fit_scenario
    from .size_report import size_table

    if not 0 < target_power < 1:
        raise ScenarioError(f"--target-power {target_power!r}: give a power between 0 and 1, e.g. 0.8.")
    if not 0 < level < 1:
        raise ScenarioError(f"level {level!r}: give a confidence level between 0 and 1, e.g. 0.95.")
    if tol <= 0:
        raise ScenarioError(f"tol {tol!r}: give a positive relative standard error, e.g. 0.01.")
    paths = resolve_vary(scenario, vary, designs)
    hr, dr, notes = _effect_values(scenario, hazard_ratio, drift)
    raw = scenario.to_dict()
    if scenario.trial.endpoint == "continuous":
        raw["effect"] = {**raw.get("effect", {}), "mean_difference": [hr]}
    else:
        raw["effect"] = {**raw.get("effect", {}), "hazard_ratio": [hr]}
        raw["drift"] = {**raw.get("drift", {}), "hazard_ratio": [dr]}
    for path, values in raw.pop("sweep", {}).items():
        if path not in paths.values():
            raw = apply_override(raw, path, values[0], where="sweep")
            notes.append(f"sweep {path} is fixed at its first value, {values[0]:g}.")
    sc = parse_scenario(raw, origin=f"{scenario.name} (size search)", base_dir=scenario.base_dir)
    bounds = [_default_bounds(sc, d, p, lower, upper) for d, p in paths.items()]
    lo, hi = np.array([b[0] for b in bounds]), np.array([b[1] for b in bounds])
    key = jax.random.fold_in(jax.random.key(sc.seed), KEY_SIMULATE)
    ev = ScenarioEvaluator(sc, paths, lo, hi, rng_key=key)  # validates both bounds of every design before any work

    if sc.trial.endpoint == "continuous":
        model = None  # the evaluator draws from the scenario's normal control
    elif sc.control is not None:
        model = patient_model_from_control(sc.control)
    else:
        if posterior is None:
            if progress:
                progress("fit", 0, 1)
            posterior = fit_scenario(sc)
            if progress:
                progress("fit", 1, 1)
        model = patient_model_from_posterior(posterior, sc.trial.time_unit)
    ev.model = model
    max_replicates = max(int(max_replicates), 8 * ev.block)
    cb = (lambda done, total: progress("search", done, total)) if progress else None
    results, evals = search_roots(ev, lo, hi, target=target_power, tol=tol, max_replicates=max_replicates,
                                  block=ev.block, level=level, progress=cb)
    search_end = ev.next_replicate
    log.info("size search of %s: %d trials per design in blocks of %d; %s", vary, search_end, ev.block,
             ", ".join(f"{d}: {r.root:.4g} ({r.status})" for d, r in zip(paths, results)))
    names = list(paths)
    evals["design"] = [names[i] for i in evals["design"]]

    # the check: the power at each reported size, directly, on fresh replicates
    n_check = max(ev.block, int(math.ceil(check_replicates / ev.block)) * ev.block)
    sizes = [r.size if r.size is not None else int(lo[i] if r.status == "below lower" else hi[i])
             for i, r in enumerate(results)]
    if progress:
        progress("check", 0, 1)
    check_counts = ev(np.array(sizes), n_check)
    if progress:
        progress("check", 1, 1)
    checks = pd.DataFrame({"design": names, "value": sizes, "replicates": n_check, "rejections": check_counts,
                           "step": -1, "probe": "check"})
    evals = pd.concat([evals, checks], ignore_index=True)
    evals["power"] = evals["rejections"] / evals["replicates"]
    evals["mcse"] = np.sqrt(evals["power"] * (1 - evals["power"]) / evals["replicates"])
    for (d, x), u in ev.unreached.items():
        if u and x in sizes and sizes[names.index(d)] == x:
            warnings.warn(f"trial.cut.events: design {d} at {paths[d]}={x} never reached its event target in {u} "
                          "trials; they were analysed with all follow-up.", StatisticalWarning, stacklevel=2)
    for d, r in zip(names, results):
        if r.status != "ok":
            warnings.warn(_status_message(d, paths[d], r, lo[names.index(d)], hi[names.index(d)], target_power, tol),
                          StatisticalWarning, stacklevel=2)
    prov = {"seed": sc.seed, "vary": vary, "paths": paths, "target_power": target_power, "hazard_ratio": hr,
            "drift": dr, "tol": tol, "max_replicates": max_replicates, "check_replicates": n_check,
            "level": level, "block": ev.block, "lower": dict(zip(names, lo.tolist())),
            "upper": dict(zip(names, hi.tolist())),
            "key_tree": {"root": f"jax.random.key({sc.seed})", "simulate": f"fold_in(root, {KEY_SIMULATE})",
                         "replicate r": "fold_in(simulate, r)",
                         "search": f"replicates 0..{search_end - 1} in consecutive blocks (evaluations)",
                         "check": f"replicates {search_end}..{ev.next_replicate - 1}"}}
    result = SizeResult(sc, vary, paths, target_power, hr, dr, level, pd.DataFrame(), evals,
                        dict(zip(names, results)), notes, prov)
    result.table = size_table(result, ev, lo, hi)
    return result


def _status_message(design, path, r: RootSearch, lo, hi, target, tol) -> str:
    if r.status == "above upper":
        return (f"{design}: the power stays below {target:g} up to {path}={hi} (fitted root {r.root:.4g}); "
                "raise --upper.")
    if r.status == "below lower":
        return (f"{design}: the power already exceeds {target:g} at {path}={lo} (fitted root {r.root:.4g}); "
                "lower --lower.")
    if r.status == "not increasing":
        return (f"{design}: the power does not increase with {path} over [{lo}, {hi}] (no slope above 2 SE), so "
                "there is no smallest size; vary another field (with an event-driven cut, vary trial.cut.events).")
    return (f"{design}: the search stopped at the replicate budget with a relative SE of {r.se_rel:.3g} (tol {tol:g}); "
            "raise --max-replicates for a tighter answer.")
