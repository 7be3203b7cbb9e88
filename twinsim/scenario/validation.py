"""The ``validation`` section: how ``twinsim validate`` checks the synthetic patients.

Inert settings only (holdout share, number of splits, subgroups, attribute-inference columns,
the collapse harness); the checks themselves live in :mod:`twinsim.validate`.
"""

from __future__ import annotations

import math
from typing import Union

from pydantic import Field, field_validator, model_validator

from ._base import _Section

__all__ = ["Collapse", "SubgroupBands", "Validation"]


class SubgroupBands(_Section):
    """Numeric bands of one column as subgroups, e.g. `{column: age, bands: [30, 40]}`."""

    column: str = Field(description="A numeric covariate.")
    bands: list[float] = Field(min_length=1, description="Increasing cut points: `[30, 40]` gives age<30, 30<=age<40, age>=40.")

    @field_validator("bands")
    @classmethod
    def _increasing(cls, v):
        if any(not math.isfinite(x) for x in v) or any(b <= a for a, b in zip(v, v[1:])):
            raise ValueError(f"bands must be finite and strictly increasing; got {v}")
        return v


class Collapse(_Section):
    """The collapse harness: refit the model on its own synthetic output, generation after generation."""

    generations: int = Field(3, ge=0, le=20, description="Generations refitted on synthetic output (0 = no collapse run).")
    real_share: list[float] = Field(
        default_factory=lambda: [0.0, 0.5],
        description="Shares of real training patients kept in each generation's training set; one chain per value "
        "(0 = trained on synthetic patients only).",
    )

    @field_validator("real_share")
    @classmethod
    def _shares(cls, v):
        if not v or any(not (0 <= s < 1) for s in v) or len(set(v)) < len(v):
            raise ValueError(f"real_share needs distinct values in [0, 1); got {v}")
        return v


class Validation(_Section):
    """Checks of the synthetic patients by `twinsim validate`: fidelity, estimands, privacy, subgroups, collapse."""

    holdout: float = Field(0.5, ge=0.1, le=0.9, description="Share of the historical patients split off (stratified "
                           "by event) before fitting: the real sample every metric is compared with.")
    splits: int = Field(5, ge=1, le=50, description="Repeated random splits; each is fitted anew and every figure is "
                        "reported as mean and range over them.")
    subgroups: list[Union[str, SubgroupBands]] | None = Field(
        None, description="Columns whose levels are subgroups, or `{column, bands}` for numeric bands. Default: every "
        "covariate with 2-6 distinct values, plus `age` in tertiles when there is such a column.",
    )
    sensitive: str | None = Field(None, description="Column an attacker tries to infer (attribute-inference row); "
                                  "needs `known`.")
    known: list[str] | None = Field(None, description="Columns the attacker knows (quasi-identifiers), for `sensitive`.")
    tau: float | None = Field(None, gt=0, description="Horizon of the restricted mean survival time, in "
                              "`historical.time_unit`. Default: the shortest of the largest follow-up times of "
                              "the compared tables.")
    alpha: float = Field(0.05, gt=0, lt=0.5, description="Family-wise false-alarm rate of the fidelity, estimand and "
                         "subgroup verdicts for a perfect generator (Bonferroni over rows).")
    n_se: float = Field(3.0, gt=0, description="Privacy tolerance in standard errors (one-sided; 3 = about 0.1 % "
                        "false fails per row).")
    collapse: Collapse = Field(default_factory=Collapse)

    @model_validator(mode="after")
    def _attribute(self):
        if (self.sensitive is None) != (self.known is None):
            raise ValueError("give both `sensitive` and `known` (the attacker's quasi-identifiers), or neither")
        if self.sensitive is not None and self.sensitive in (self.known or []):
            raise ValueError(f"`sensitive` ({self.sensitive}) cannot also be in `known`")
        return self
