"""The analysis grid: effect, drift and sweep lists expanded into resolved scenarios."""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass
from typing import Iterator

from .loading import apply_override, parse_scenario
from .schema import Scenario


@dataclass(frozen=True)
class Grid:
    """The analysis grid: named dimensions and one resolved scenario per point.

    ``dims`` is ordered: the effect (``hazard_ratio``, or ``mean_difference`` for a continuous
    endpoint), ``drift``, then each ``sweep`` path.
    ``points[i]`` is the scenario with point ``i``'s values set (row-major over ``dims``).
    """

    dims: dict[str, tuple[float, ...]]
    points: tuple[Scenario, ...]
    index: tuple[tuple[int, ...], ...]

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(v) for v in self.dims.values())

    def __iter__(self) -> Iterator[tuple[tuple[int, ...], Scenario]]:
        return iter(zip(self.index, self.points))


def build_grid(sc: Scenario) -> Grid:
    """Expand effect, drift and sweep lists into grid points (each re-validated)."""
    effect = sc.effect.mean_difference if sc.trial.endpoint == "continuous" else sc.effect.hazard_ratio
    dims: dict[str, tuple[float, ...]] = {
        sc.effect_dim: tuple(effect),
        "drift": tuple(sc.drift.hazard_ratio),
    }
    for path, values in sc.sweep.items():
        dims[path] = tuple(values)
    base = sc.to_dict()
    base.pop("sweep", None)
    points, index = [], []
    for idx in itertools.product(*(range(len(v)) for v in dims.values())):
        raw = copy.deepcopy(base)
        for (name, values), i in zip(dims.items(), idx):
            v = values[i]
            path = {"hazard_ratio": "effect.hazard_ratio", "mean_difference": "effect.mean_difference",
                    "drift": "drift.hazard_ratio"}.get(name, name)
            if name not in ("hazard_ratio", "mean_difference", "drift") and float(v).is_integer() and _is_int_field(path):
                v = int(v)
            raw = apply_override(raw, path, v, where="sweep")
        label = ", ".join(f"{n}={dims[n][i]}" for n, i in zip(dims, idx))
        point = parse_scenario(raw, origin=f"grid point ({label})", base_dir=sc.base_dir)
        points.append(point)
        index.append(idx)
    return Grid(dims, tuple(points), tuple(index))


def _is_int_field(path: str) -> bool:
    return path.split(".")[-1] in ("n_treatment", "events", "real_control", "synthetic_control", "treatment")
