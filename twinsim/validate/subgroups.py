"""Fidelity within subgroups, each figure beside the same subgroup's holdout floor.

A generator can be faithful for the whole table and still distort a subgroup: women's
survival too long, a minority's share halved, an age band's covariates off.  Averaged over
everyone such a distortion is diluted (a subgroup with share p moves a whole-table curve by p
times its own error, while the noise only shrinks by sqrt(p)), so it is judged here within
each subgroup: every row of :func:`~twinsim.validate.fidelity.fidelity_report` is computed on
the subgroup's rows of the training, holdout and synthetic tables, and one *share* row asks
whether the synthetic table holds the subgroup in the training table's proportion.

- :class:`Subgroup` and :func:`subgroup_specs`: levels of a column (``sex=f``) or numeric bands
  (``30<=age<40``); a subgroup gives a boolean mask for any table.
- :func:`subgroup_report`: one block of fidelity rows per subgroup plus its share row, with
  verdicts against the per-subgroup holdout floor (Bonferroni over the whole table by default).
- :func:`subgroup_summary`: one row per subgroup with its sizes, shares and headline numbers.
- :func:`twinsim.validate.figures.plot_subgroups`: share gap, KM absolute optimism and |SMD| per subgroup, synthetic
  value against the holdout floor and tolerance, flagged subgroups in red.

Randomness only through explicit JAX keys: subgroup ``i`` uses ``fold_in(rng_key, i)``.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import jax
import numpy as np
import pandas as pd
from scipy import stats

from ..errors import DataError, ScenarioError
from ._encode import _is_categorical
from .fidelity import _SIGNED, _max_tolerance, fidelity_report

__all__ = ["Subgroup", "subgroup_specs", "subgroup_report", "subgroup_summary", "MAX_LEVELS"]

#: Most levels a named column may have (one subgroup per level); more need bands or recoding.
MAX_LEVELS = 8
#: Distinct values a column needs for the default spec (2..6 levels).
DEFAULT_LEVELS = (2, 6)


def _num(x) -> str:
    """Short label of a number: 30 -> '30', 30.5 -> '30.5', 1e-05 -> '1e-05'."""
    return f"{float(x):g}"


def _level_text(v) -> str:
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))
    return str(v)


@dataclass(frozen=True)
class Subgroup:
    """One subgroup: a level of a column or a half-open numeric band ``[lower, upper)``.

    Attributes
    ----------
    column : str
        The column that defines the subgroup.
    label : str
        Unique name, e.g. ``"sex=f"``, ``"age<30"``, ``"30<=age<40"``, ``"age>=40"``.
    kind : str
        ``"level"`` (``column == level``) or ``"band"`` (``lower <= column < upper``).
    level : object
        The level (kind ``"level"``), as found in the table the spec was built on.
    lower, upper : float
        Band limits (kind ``"band"``; ``-inf`` / ``inf`` for the open ends).
    categorical : bool
        The column was categorical (object, string or Categorical dtype): levels are compared
        as objects; otherwise as numbers, so ``1`` and ``1.0`` are the same level.
    """

    column: str
    label: str
    kind: str
    level: object = None
    lower: float = -np.inf
    upper: float = np.inf
    categorical: bool = False

    def mask(self, frame: pd.DataFrame) -> np.ndarray:
        """Boolean mask (n,) of the rows of ``frame`` in the subgroup; a missing value is not in it."""
        if self.column not in frame.columns:
            raise DataError(
                f"Subgroup {self.label!r} needs the column {self.column!r}, which this table (columns "
                f"{list(frame.columns)[:12]}) lacks. Pass tables with the same columns as the one the "
                "subgroups were built on."
            )
        col = frame[self.column]
        if self.kind == "level" and self.categorical:
            return col.astype(object).eq(self.level).to_numpy(bool) & col.notna().to_numpy()
        try:
            x = col.to_numpy(dtype=float)
        except (TypeError, ValueError):
            raise DataError(
                f"Subgroup {self.label!r} compares the column {self.column!r} as numbers, but this table "
                f"holds non-numeric values there (dtype {col.dtype}). Give the column the same type in "
                "every table."
            ) from None
        if self.kind == "level":
            return x == float(self.level)
        return (x >= self.lower) & (x < self.upper)  # NaN compares False: not in the band


# --------------------------------------------------------------------------- specs


def _levels_of(col: pd.Series) -> list:
    vals = col.dropna()
    if isinstance(col.dtype, pd.CategoricalDtype):
        present = set(vals.astype(object))
        return [c for c in col.cat.categories if c in present]
    u = list(pd.unique(vals))
    try:
        return sorted(u)
    except TypeError:
        return u


def _is_levelled(col: pd.Series) -> bool:
    """Categorical, boolean, integer, or float with only whole-number values."""
    if _is_categorical(col) or pd.api.types.is_bool_dtype(col) or pd.api.types.is_integer_dtype(col):
        return True
    if pd.api.types.is_float_dtype(col):
        x = col.dropna().to_numpy(float)
        return bool(np.all(np.isfinite(x)) and np.all(x == np.round(x)))
    return False


def _level_subgroups(frame: pd.DataFrame, column: str, where: str) -> list[Subgroup]:
    col = frame[column]
    levels = _levels_of(col)
    if not _is_levelled(col):
        raise DataError(
            f"{where}: column {column!r} is numeric with non-integer values ({col.nunique()} distinct), so "
            f"it has no levels to split on. Give numeric bands instead, e.g. {{'column': {column!r}, "
            "'bands': [30, 40]}."
        )
    if len(levels) > MAX_LEVELS:
        raise DataError(
            f"{where}: column {column!r} has {len(levels)} distinct values; a subgroup per level needs at "
            f"most {MAX_LEVELS}. Give numeric bands ({{'column': {column!r}, 'bands': [...]}}) or recode the "
            "column into fewer levels."
        )
    cat = _is_categorical(col)
    return [Subgroup(column, f"{column}={_level_text(v)}", "level", level=v, categorical=cat) for v in levels]


def _band_subgroups(frame: pd.DataFrame, column: str, bands, where: str) -> list[Subgroup]:
    if isinstance(bands, (str, bytes)) or not isinstance(bands, Sequence) or len(bands) == 0:
        raise ScenarioError(
            f"{where}.bands: expected a non-empty list of increasing cut points such as [30, 40]; received "
            f"{bands!r}. Each cut starts a new band: [30, 40] gives {column}<30, 30<={column}<40, {column}>=40."
        )
    ok = all(isinstance(b, numbers.Real) and not isinstance(b, bool) and np.isfinite(b) for b in bands)
    if not ok or np.any(np.diff(np.asarray(bands, float)) <= 0):
        raise ScenarioError(
            f"{where}.bands: cut points must be finite numbers in strictly increasing order; received "
            f"{list(bands)!r}. Sort them and drop duplicates, e.g. [30, 40]."
        )
    col = frame[column]
    if _is_categorical(col) or pd.api.types.is_bool_dtype(col):
        raise DataError(
            f"{where}: column {column!r} is not numeric (dtype {col.dtype}), so it cannot be cut into bands. "
            f"Name it as a plain column ({column!r}) for one subgroup per level."
        )
    cuts = [float(b) for b in bands]
    edges = [-np.inf, *cuts, np.inf]
    out = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        if lo == -np.inf:
            label = f"{column}<{_num(hi)}"
        elif hi == np.inf:
            label = f"{column}>={_num(lo)}"
        else:
            label = f"{_num(lo)}<={column}<{_num(hi)}"
        out.append(Subgroup(column, label, "band", lower=lo, upper=hi))
    return out


def _default_specs(frame: pd.DataFrame, exclude) -> list:
    spec = []
    age = [c for c in frame.columns if str(c).lower() == "age" and c not in exclude]
    lo, hi = DEFAULT_LEVELS
    for c in frame.columns:
        if c in exclude:
            continue
        k = frame[c].nunique(dropna=True)
        if lo <= k <= hi and _is_levelled(frame[c]):
            spec.append(c)
        elif c in age and not _is_categorical(frame[c]) and pd.api.types.is_numeric_dtype(frame[c]) and k > hi:
            x = frame[c].to_numpy(float)
            q = np.nanquantile(x[np.isfinite(x)], [1 / 3, 2 / 3])
            cuts = sorted({float(f"{v:.3g}") for v in q})  # 3 significant digits, readable labels
            spec.append({"column": c, "bands": cuts})
    return spec


def subgroup_specs(frame: pd.DataFrame, spec=None, *, exclude=()) -> list[Subgroup]:
    """Subgroups from a spec, with levels and default cut points taken from ``frame``.

    Parameters
    ----------
    frame : DataFrame (n, p)
        The table the levels and default bands come from: pass the real **training** table, so
        that the subgroups do not depend on the synthetic (or holdout) patients.
    spec : list, optional
        Items of two kinds:

        - a column name: one subgroup per level of a categorical, boolean or integer-valued
          column with at most :data:`MAX_LEVELS` distinct values (missing values are no level);
        - a mapping ``{"column": "age", "bands": [30, 40]}``: numeric bands ``(-inf, 30)``,
          ``[30, 40)``, ``[40, inf)`` labelled ``"age<30"``, ``"30<=age<40"``, ``"age>=40"``.

        ``None`` (default): every column with 2-6 distinct values (as levels), and a numeric
        column named ``age`` (any case) with more values in tertile bands of ``frame``, cut
        points rounded to 3 significant digits.
    exclude : sequence of str
        Columns the default spec leaves out (e.g. the time and event columns: subgroups by
        outcome would make the Kaplan-Meier rows meaningless).

    Returns
    -------
    list of :class:`Subgroup`, in spec order, levels sorted.

    Raises
    ------
    ScenarioError
        A spec item that is neither a column name nor a mapping with ``column`` and ``bands``,
        or bands that are not increasing finite numbers.
    DataError
        A column that ``frame`` lacks, a column with too many levels, or bands on a
        non-numeric column.
    """
    if not isinstance(frame, pd.DataFrame):
        raise DataError(f"subgroup_specs needs a DataFrame (the training table); received {type(frame).__name__}.")
    if spec is None:
        spec = _default_specs(frame, set(exclude))
    elif isinstance(spec, (str, Mapping)):
        spec = [spec]
    out: list[Subgroup] = []
    for i, item in enumerate(spec):
        where = f"subgroups[{i}]"
        if isinstance(item, Mapping):
            extra = set(item) - {"column", "bands"}
            if "column" not in item or extra:
                raise ScenarioError(
                    f"{where}: a mapping needs the keys 'column' and (optionally) 'bands' and nothing else; "
                    f"received keys {sorted(map(str, item))}. Example: {{'column': 'age', 'bands': [30, 40]}}."
                )
            column, bands = item["column"], item.get("bands")
        elif isinstance(item, str):
            column, bands = item, None
        else:
            raise ScenarioError(
                f"{where}: expected a column name or a mapping such as {{'column': 'age', 'bands': [30, 40]}}; "
                f"received {item!r} ({type(item).__name__})."
            )
        if column not in frame.columns:
            raise DataError(
                f"{where}: the table has no column {column!r} (columns: {list(frame.columns)}). Name one of "
                "its columns, spelled as in the table."
            )
        out += _level_subgroups(frame, column, where) if bands is None else _band_subgroups(frame, column, bands, where)
    labels = [s.label for s in out]
    dup = sorted({x for x in labels if labels.count(x) > 1})
    if dup:
        raise ScenarioError(f"subgroups: the spec names the subgroup(s) {dup} more than once; list each column once.")
    return out


# --------------------------------------------------------------------------- report


def share_check(k_t: int, n_t: int, k_h: int, n_h: int, k_s: int, n_s: int, z: float) -> dict:
    """Share row: is the synthetic share of a subgroup as close to the training share as the holdout's?

    Parameters
    ----------
    k_t, n_t : int (or arrays of counts, for simulation)
        Subgroup rows and all rows of the training table (likewise ``k_h, n_h`` holdout and
        ``k_s, n_s`` synthetic).
    z : float
        Critical value.

    Returns
    -------
    dict with ``synthetic = k_s/n_s - p`` and ``holdout = k_h/n_h - p`` (``p = k_t/n_t``, shares
    as fractions), ``holdout_sd = sqrt(p(1-p)/n_h)``, ``tolerance = z sqrt(p(1-p)(1/n_s + 1/n_h))``
    and ``worse`` (``|synthetic| > |holdout| + tolerance``).

    Notes
    -----
    Given the training table, with true share pi, ``synthetic = a + c`` and ``holdout = b + c``
    where ``a`` and ``b`` are the independent binomial errors of the synthetic and holdout shares
    and ``c = pi - p`` is common to both.  ``|a + c| - |b + c| <= |a - b|`` and ``a - b`` has SD
    ``sqrt(pi(1-pi)(1/n_s + 1/n_h))``, so a perfect generator is flagged with probability at most
    about ``1 - Phi(z)`` (normal approximation; p stands in for pi).
    """
    p = np.asarray(k_t) / n_t
    v = p * (1 - p)
    syn, hol = np.asarray(k_s) / n_s - p, np.asarray(k_h) / n_h - p
    tol = z * np.sqrt(v * (1 / n_s + 1 / n_h))
    return dict(synthetic=syn, holdout=hol, holdout_sd=np.sqrt(v / n_h), tolerance=tol,
                worse=np.abs(syn) > np.abs(hol) + tol)


def _subgroup_rows(i, sg, train, holdout, synthetic, rng_key, time, event, columns, min_rows, alpha, n_boot,
                   detection, report_kw):
    """Rows of one subgroup before judging: (DataFrame with ``_se`` = tolerance / z, and what the
    short-sightedness row's order-statistic tolerance needs: (train times, holdout times, n_s) or None)."""
    mt, mh, ms = sg.mask(train), sg.mask(holdout), sg.mask(synthetic)
    n = dict(n_train=int(mt.sum()), n_holdout=int(mh.sum()), n_synthetic=int(ms.sum()))
    sh = share_check(n["n_train"], len(train), n["n_holdout"], len(holdout), n["n_synthetic"], len(synthetic), 1.0)
    rows = [dict(section="share", metric="share", column=sg.label, synthetic=float(sh["synthetic"]),
                 holdout=float(sh["holdout"]), holdout_sd=float(sh["holdout_sd"]), _se=float(sh["tolerance"]), note="")]
    small = {k: v for k, v in n.items() if v < min_rows}
    block, ss_info = None, None
    if not small:
        cols = [c for c in columns if not (sg.kind == "level" and c == sg.column)]
        try:
            block = fidelity_report(train[mt].reset_index(drop=True), holdout[mh].reset_index(drop=True),
                                    synthetic[ms].reset_index(drop=True), rng_key=jax.random.fold_in(rng_key, i),
                                    time=time, event=event, columns=cols, n_boot=n_boot, alpha=alpha, **report_kw)
        except DataError as e:
            note = f"fidelity_report failed in this subgroup: {e}"
        else:
            if not detection:
                block = block[block["metric"] != "detection_auc"]
            z0 = block.attrs["z"]
            block = block.assign(_se=block["tolerance"] / z0, note="")
            if time is not None:
                block.loc[block["metric"] == "short_sightedness", "_se"] = np.nan
                ss_info = (train[time].to_numpy(float)[mt], holdout[time].to_numpy(float)[mh], n["n_synthetic"])
            block = block.drop(columns=["tolerance", "verdict"])
    else:
        note = ("too few patients for the fidelity metrics: " + ", ".join(f"{k} = {v}" for k, v in small.items())
                + f" < min_rows = {min_rows}; pool levels or widen the band (the share row still applies)")
    if block is None:
        rows.append(dict(section="fidelity", metric="all", column="all", synthetic=np.nan, holdout=np.nan,
                         holdout_sd=np.nan, _se=np.nan, note=note))
    out = pd.concat([pd.DataFrame(rows), block], ignore_index=True) if block is not None else pd.DataFrame(rows)
    return out.assign(subgroup=sg.column, level=sg.label, **n), ss_info


def _judge(blocks: list, alpha: float, family: str) -> tuple[pd.DataFrame, object]:
    """Tolerances and verdicts with Bonferroni over the whole table or within each subgroup."""
    has = [np.isfinite(b["synthetic"].astype(float)) & np.isfinite(b["holdout"].astype(float)) for b, _ in blocks]
    sizes = [max(int(h.sum()), 1) for h in has]
    total = sum(sizes)
    out, zs = [], {}
    for (b, ss_info), h, m in zip(blocks, has, sizes):
        level = alpha / (total if family == "table" else m)
        z = float(stats.norm.ppf(1 - level))
        zs[b["level"].iat[0]] = z
        tol = z * b["_se"].to_numpy(float)
        for j in np.flatnonzero(b["metric"].to_numpy() == "short_sightedness"):
            tol[j] = _max_tolerance(*ss_info, level)
        ok = h.to_numpy() & np.isfinite(tol)
        verdict, note = [], b["note"].tolist()
        for j, r in enumerate(b.itertuples()):
            if not ok[j]:
                verdict.append("n/a")
                if not note[j]:
                    note[j] = ("no tolerance: too few holdout patients for the order-statistic rule"
                               if r.metric == "short_sightedness" and h.iat[j] else "metric undefined in this subgroup")
                continue
            bad_s, bad_h = (abs(r.synthetic), abs(r.holdout)) if r.metric in _SIGNED | {"share"} else (r.synthetic, r.holdout)
            verdict.append("within floor" if bad_s <= bad_h + tol[j] else "worse than floor")
        out.append(b.assign(tolerance=tol, verdict=verdict, note=note))
    return pd.concat(out, ignore_index=True), (zs if family == "subgroup" else float(stats.norm.ppf(1 - alpha / total)))


def subgroup_report(train: pd.DataFrame, holdout: pd.DataFrame, synthetic: pd.DataFrame, *, subgroups=None, rng_key,
                    time: str | None = None, event: str | None = None, columns=None, min_rows: int = 20,
                    alpha: float = 0.05, n_boot: int = 100, detection: bool = True, family: str = "table",
                    **report_kw) -> pd.DataFrame:
    """Every fidelity row of :func:`fidelity_report` within each subgroup, plus a share row per subgroup.

    Parameters
    ----------
    train, holdout, synthetic : DataFrame (n_t, .), (n_h, .), (n_s, .)
        As in :func:`~twinsim.validate.fidelity.fidelity_report`; best with ``n_s == n_h``.
    subgroups : list of :class:`Subgroup`, a spec for :func:`subgroup_specs`, or None
        A spec (or None, the default spec) is turned into subgroups on the **training** table,
        with ``time`` and ``event`` excluded from the default.
    rng_key : JAX key; subgroup ``i`` (position in ``subgroups``) uses ``fold_in(rng_key, i)``
        for its detection folds and holdout bootstrap.
    time, event : str, optional
        Follow-up time and event (1 = observed, 0 = censored) columns, for the Kaplan-Meier rows.
    columns : sequence of str, optional
        Covariates compared (default every column except ``time`` and ``event``).  Within a
        level subgroup its own column is constant and is left out; a band's column is kept
        (its distribution inside the band can still be wrong).
    min_rows : int
        A subgroup with fewer rows than this in any of the three tables gets one ``"n/a"``
        fidelity row with a ``note`` saying why (its share row is still judged).
    alpha : float
        Family-wise false-alarm rate of the verdicts for a perfect generator.
    n_boot : int
        Bootstrap replicates of the holdout subgroup for the tolerances.
    detection : bool
        Keep the detection-AUC rows (False leaves them out of the table and of the family).
    family : ``"table"`` or ``"subgroup"``
        Bonferroni family: ``"table"`` (default) uses ``z = Phi^-1(1 - alpha / M)`` over the ``M``
        rows with values in the whole table, so a perfect generator is flagged anywhere with
        probability about ``alpha`` at most; ``"subgroup"`` uses each subgroup's own row count
        (for one pre-specified subgroup of interest; a perfect generator is then flagged
        somewhere with probability up to ``alpha`` times the number of subgroups).
    **report_kw
        ``folds``, ``degree``, ``l2`` of the detection classifier.

    Returns
    -------
    DataFrame with the columns of ``fidelity_report`` (``section, metric, column, synthetic,
    holdout, holdout_sd, tolerance, verdict``) plus ``note``, ``subgroup`` (the defining column),
    ``level`` (the subgroup's label), ``n_train``, ``n_holdout``, ``n_synthetic`` (the subgroup's
    rows in each table).  The share row (``section == "share"``) holds the share differences
    ``share_s - share_t`` and ``share_h - share_t`` and is judged as ``|synthetic| <= |holdout| +
    tolerance`` (:func:`share_check`).  ``attrs``: ``z`` (float, or dict level -> z with
    ``family="subgroup"``), ``family``, ``alpha``, ``rows`` (family size M), ``n_total``
    (dict of the three table sizes) and ``subgroups`` (the :class:`Subgroup` list).
    """
    if (time is None) != (event is None):
        raise DataError(f"subgroup_report needs both time and event columns or neither; received time={time!r}, "
                        f"event={event!r}.")
    if family not in ("table", "subgroup"):
        raise DataError(f"subgroup_report: family must be 'table' or 'subgroup'; received {family!r}.")
    folds = report_kw.get("folds", 5)
    if not isinstance(min_rows, numbers.Integral) or min_rows < max(folds, 2):
        raise DataError(f"subgroup_report: min_rows must be an integer >= {max(folds, 2)} (the detection folds); "
                        f"received {min_rows!r}.")
    outcome = {time, event} - {None}
    if subgroups is None or isinstance(subgroups, (str, Mapping)) or not all(isinstance(s, Subgroup) for s in subgroups):
        subgroups = subgroup_specs(train, subgroups, exclude=outcome)
    if not subgroups:
        raise DataError("subgroup_report received no subgroups (the default spec found no column with 2-6 levels "
                        "and no age column); name columns or bands, e.g. subgroups=['sex', {'column': 'age', "
                        "'bands': [50, 65]}].")
    clash = sorted({s.column for s in subgroups} & outcome)
    if clash:
        raise DataError(f"subgroup_report: subgroup column(s) {clash} are the time/event columns; subgroups defined "
                        "by the outcome make the Kaplan-Meier rows meaningless. Split on covariates only.")
    if len(holdout) == 0 or len(synthetic) == 0 or len(train) == 0:
        raise DataError(f"subgroup_report needs non-empty tables; received n_train={len(train)}, "
                        f"n_holdout={len(holdout)}, n_synthetic={len(synthetic)}.")
    columns = [c for c in (train.columns if columns is None else columns) if c not in outcome]
    blocks = [_subgroup_rows(i, sg, train, holdout, synthetic, rng_key, time, event, columns, min_rows, alpha,
                             n_boot, detection, report_kw) for i, sg in enumerate(subgroups)]
    out, z = _judge(blocks, alpha, family)
    lead = ["subgroup", "level", "section", "metric", "column", "synthetic", "holdout", "holdout_sd", "tolerance",
            "verdict", "note", "n_train", "n_holdout", "n_synthetic"]
    out = out[lead]
    out.attrs.update(z=z, family=family, alpha=alpha, rows=int(sum(np.isfinite(out["synthetic"].astype(float))
                                                                   & np.isfinite(out["holdout"].astype(float)))),
                     n_total=dict(train=len(train), holdout=len(holdout), synthetic=len(synthetic)),
                     subgroups=list(subgroups))
    return out


# --------------------------------------------------------------------------- summary and figure


def _headline(rows: pd.DataFrame) -> dict:
    """Share, worst |SMD| row, KM absolute optimism and detection AUC of one subgroup's rows."""
    out = {}
    by = {m: rows[rows["metric"] == m] for m in ("share", "abs_optimism", "detection_auc")}
    for name, m in (("share_gap", "share"), ("abs_optimism", "abs_optimism"), ("detection_auc", "detection_auc")):
        r = by[m]
        r = r[r["column"] == "all"] if m == "abs_optimism" else r
        if len(r):
            r = r.iloc[0]
            s, h = (abs(r["synthetic"]), abs(r["holdout"])) if m == "share" else (r["synthetic"], r["holdout"])
            out.update({name: s, f"{name}_floor": h, f"{name}_tolerance": r["tolerance"],
                        f"{name}_worse": r["verdict"] == "worse than floor"})
        else:
            out.update({name: np.nan, f"{name}_floor": np.nan, f"{name}_tolerance": np.nan, f"{name}_worse": False})
    smd = rows[(rows["metric"] == "smd") & (rows["verdict"] != "n/a")]
    if len(smd):
        excess = smd["synthetic"].abs() - smd["holdout"].abs() - smd["tolerance"]
        r = smd.loc[excess.idxmax()]
        out.update(abs_smd=abs(r["synthetic"]), abs_smd_floor=abs(r["holdout"]), abs_smd_tolerance=r["tolerance"],
                   abs_smd_worse=r["verdict"] == "worse than floor", smd_column=r["column"],
                   max_abs_smd=float(smd["synthetic"].abs().max()), max_abs_smd_floor=float(smd["holdout"].abs().max()))
    else:
        out.update(abs_smd=np.nan, abs_smd_floor=np.nan, abs_smd_tolerance=np.nan, abs_smd_worse=False,
                   smd_column=None, max_abs_smd=np.nan, max_abs_smd_floor=np.nan)
    return out


def subgroup_summary(report: pd.DataFrame) -> pd.DataFrame:
    """One row per subgroup level of a :func:`subgroup_report`.

    Returns
    -------
    DataFrame indexed by ``level`` with ``subgroup``; ``n_train``, ``n_holdout``, ``n_synthetic``;
    ``share_train``, ``share_synthetic``, ``share_holdout`` (subgroup rows / table rows);
    ``rows_checked`` (rows with a verdict), ``rows_worse`` (``"worse than floor"``), ``flagged``;
    and headline numbers, each as value (synthetic vs train), ``_floor`` (holdout vs train),
    ``_tolerance`` and ``_worse``:

    - ``share_gap``: ``|share_s - share_t|`` (floor ``|share_h - share_t|``);
    - ``abs_optimism``: KM absolute optimism of the whole subgroup;
    - ``detection_auc``;
    - ``abs_smd``: |SMD| of the covariate farthest past its floor (largest ``|smd_s| - |smd_h| -
      tolerance``; named in ``smd_column``; numeric SMD is in SD units, categorical the largest
      share difference), so ``abs_smd_worse`` is True exactly when some SMD row is flagged;
      ``max_abs_smd`` / ``max_abs_smd_floor`` are the plain maxima over covariates;

    and ``note`` (why a subgroup's fidelity rows are ``"n/a"``).
    """
    need = {"level", "subgroup", "metric", "verdict", "n_train", "n_holdout", "n_synthetic"}
    if not need <= set(report.columns) or "n_total" not in report.attrs:
        raise DataError("subgroup_summary needs the DataFrame returned by subgroup_report (its columns and "
                        "attrs['n_total']); pass that report unchanged.")
    tot = report.attrs["n_total"]
    rows = []
    for level, r in report.groupby("level", sort=False):
        f = r.iloc[0]
        na = r.loc[(r["section"] == "fidelity") & (r["verdict"] == "n/a"), "note"]
        rows.append(dict(level=level, subgroup=f["subgroup"], n_train=f["n_train"], n_holdout=f["n_holdout"],
                         n_synthetic=f["n_synthetic"], share_train=f["n_train"] / tot["train"],
                         share_synthetic=f["n_synthetic"] / tot["synthetic"], share_holdout=f["n_holdout"] / tot["holdout"],
                         rows_checked=int((r["verdict"] != "n/a").sum()),
                         rows_worse=int((r["verdict"] == "worse than floor").sum()),
                         **_headline(r), note=na.iat[0] if len(na) else ""))
    out = pd.DataFrame(rows).set_index("level")
    out.insert(list(out.columns).index("rows_worse") + 1, "flagged", out["rows_worse"] > 0)
    return out
