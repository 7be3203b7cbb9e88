"""Privacy of synthetic patients, each figure beside the value an independent real holdout gets.

A generator that samples from the population, without looking at individual training
patients, leaves training and holdout patients *exchangeable* with respect to its output:
nothing in the synthetic table can tell them apart.  Every verdict here tests that
exchangeability (or its consequence for one statistic) with a tolerance derived from the
statistic's sampling error; a generator that copies training rows breaks it.

Metrics (all distances Euclidean on the matrices of :func:`~twinsim.validate._encode.encode_tables`,
numeric columns standardised and categorical ones one-hot by the *training* table):

- :func:`dcr`, :func:`dcr_comparison`: distance to closest training record; share of synthetic
  records closer to training than to holdout.
- :func:`nndr`: nearest-neighbour distance ratio (closest / second-closest training record).
- :func:`identifiability`: Yoon, Drumright & van der Schaar (2020), ADS-GAN, IEEE JBHI 24(8),
  2378-2388, with the paper's inverse-entropy column weights.
- :func:`membership_inference_auc`: distance-to-closest-synthetic attack, AUC by Mann-Whitney.
- :func:`attribute_inference`: nearest-synthetic-neighbour prediction of a sensitive column.
- :func:`memorising_generator` (test fixture: bootstrap copies of training rows) and
  :func:`privacy_report` (one row per metric with floor, tolerance and verdict).

Inputs are DataFrames (encoded together, by the first one) or, for the distance metrics,
already-encoded float arrays (n, q) used as given.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import numpy as np
import pandas as pd
from scipy.spatial import cKDTree
from scipy.stats import rankdata

from ..errors import DataError
from ._encode import _is_categorical, encode_tables

__all__ = [
    "DistanceSummary",
    "dcr",
    "dcr_comparison",
    "nndr",
    "identifiability",
    "identifiability_weights",
    "membership_inference_auc",
    "attribute_inference",
    "memorising_generator",
    "privacy_report",
]

EXACT = 1e-9  # distance below which two encoded records count as the same record


@dataclass(frozen=True)
class DistanceSummary:
    """Per-record distances (or ratios) and their privacy summary.

    Attributes
    ----------
    values : ndarray (m,)
        One value per row of the queried table (encoded units: training SDs / one-hot).
    median, p05 : float
        Median and 5th percentile of ``values``.
    exact_share : float
        Share of rows with value < 1e-9 (for DCR: exact copies of a training record).
    """

    values: np.ndarray
    median: float
    p05: float
    exact_share: float

    @classmethod
    def of(cls, v: np.ndarray) -> "DistanceSummary":
        v = np.asarray(v, dtype=float)
        return cls(v, float(np.median(v)), float(np.percentile(v, 5)), float(np.mean(v < EXACT)))


# ----------------------------------------------------------------------------- helpers


def _matrices(train, *others, columns=None) -> tuple[np.ndarray, ...]:
    """Encoded float matrices: arrays pass through, DataFrames go through ``encode_tables``."""
    tables = (train, *others)
    if all(isinstance(t, np.ndarray) for t in tables):
        mats = tuple(np.asarray(t, dtype=float) for t in tables)
        mats = tuple(m[:, None] if m.ndim == 1 else m for m in mats)
        if len({m.shape[1] for m in mats}) != 1:
            raise DataError(f"the encoded arrays have different column counts {[m.shape[1] for m in mats]}; "
                            "encode every table with the same transformation (encode_tables) first.")
    elif all(isinstance(t, pd.DataFrame) for t in tables):
        mats = encode_tables(train, *others, columns=columns)
    else:
        raise DataError(f"the tables are of types {[type(t).__name__ for t in tables]}; pass either all "
                        "pandas DataFrames (encoded here by the training table) or all encoded numpy arrays.")
    for i, m in enumerate(mats):
        if len(m) < (3 if i == 0 else 1):
            raise DataError(f"table {i} has {len(m)} rows; the training table needs at least 3 rows and "
                            "every other table at least 1 for nearest-neighbour metrics.")
        if not np.isfinite(m).all():
            raise DataError(f"the encoded table {i} contains NaN or infinite values; encode DataFrames with "
                            "encode_tables (which imputes missing values) or clean the array.")
    return mats


def _nn(ref: np.ndarray, query: np.ndarray, k: int = 1) -> np.ndarray:
    """Distances (m, k) from each query row to its k nearest rows of ``ref`` (Euclidean)."""
    d, _ = cKDTree(ref).query(query, k=k)
    return np.asarray(d, dtype=float).reshape(len(query), k)


def _two_share_se(p1: float, n1: int, p2: float, n2: int) -> float:
    """SE of the difference of two independent binomial shares (pooled under H0: p1 = p2)."""
    p = (p1 * n1 + p2 * n2) / (n1 + n2)
    return float(np.sqrt(p * (1 - p) * (1 / n1 + 1 / n2)))


# ----------------------------------------------------------------------------- distances


def dcr(train, other, *, columns=None) -> DistanceSummary:
    """Distance to closest record: each row of ``other`` to its nearest ``train`` row.

    Parameters
    ----------
    train : DataFrame (n, p) or encoded ndarray (n, q)
        Real training patients (the table the generator saw).
    other : DataFrame (m, p) or encoded ndarray (m, q)
        Synthetic patients, or the holdout for the floor.
    columns : sequence of str, optional
        Columns to use (DataFrames only; default all of ``train``'s).

    Returns
    -------
    DistanceSummary over the m rows (units: training SDs for numeric columns, 1 per
    differing category for one-hot columns, combined Euclidean).
    """
    t, o = _matrices(train, other, columns=columns)
    return DistanceSummary.of(_nn(t, o)[:, 0])


def dcr_comparison(train, holdout, synthetic, *, columns=None) -> dict:
    """Share of synthetic records closer to a training than to a holdout record.

    For each synthetic row, ``d_train`` and ``d_holdout`` are its DCRs to the two tables; the
    row counts 1 if ``d_train < d_holdout``, 1/2 on a tie (within 1e-9), 0 otherwise.

    Assumption: training and holdout rows are an i.i.d. random split of one population and
    the generator does not depend on individual training rows.  Then, for each synthetic row,
    its nearest neighbour in the pooled real table is equally likely to be any pooled row, so
    the expected share is ``n_train / (n_train + n_holdout)`` (0.5 when the sizes are equal).

    Returns
    -------
    dict with ``share`` (float), ``expected`` (the value above), ``se`` (binomial SE under the
    null, ``sqrt(e (1 - e) / m)``), ``se_split`` (adds the split's own randomness, see
    :func:`privacy_report`), ``d_train`` and ``d_holdout`` (ndarray (m,)).
    """
    t, h, s = _matrices(train, holdout, synthetic, columns=columns)
    d_t, d_h = _nn(t, s)[:, 0], _nn(h, s)[:, 0]
    tie = np.abs(d_t - d_h) < EXACT
    share = float(np.mean(np.where(tie, 0.5, (d_t < d_h).astype(float))))
    e = len(t) / (len(t) + len(h))
    m = len(s)
    return dict(share=share, expected=e, se=float(np.sqrt(e * (1 - e) / m)),
                se_split=float(np.sqrt(e * (1 - e) * (1 / m + 1 / (len(t) + len(h))))),
                d_train=d_t, d_holdout=d_h)


def nndr(train, other, *, columns=None) -> DistanceSummary:
    """Nearest-neighbour distance ratio: closest / second-closest training record.

    Near 0: the row sits on one training patient and far from all others (singles one out);
    near 1: it is about as close to two training patients.  A row on two identical training
    records (both distances < 1e-9) gets 1, since it singles out neither.

    Parameters and returns as :func:`dcr` (values are ratios in [0, 1]).
    """
    t, o = _matrices(train, other, columns=columns)
    d = _nn(t, o, k=2)
    both0 = d[:, 1] < EXACT
    return DistanceSummary.of(np.where(both0, 1.0, d[:, 0] / np.where(both0, 1.0, d[:, 1])))


# ----------------------------------------------------------------------------- identifiability


def identifiability_weights(train_encoded: np.ndarray) -> np.ndarray:
    """Inverse-entropy column weights of ADS-GAN (Yoon et al. 2020, eq. for w_j).

    ``w_j = 1 / H(X_j)``, H the Shannon entropy (nats) of the training column's values rounded
    to the nearest integer, as in the authors' reference code.  On the encoded scale that is
    a histogram with 1-SD bins for numeric columns and the level frequencies for one-hot
    columns.  Columns with zero entropy (one bin) carry no identifying information among the
    training records and get weight 0 (the formula would give infinity).

    Parameters
    ----------
    train_encoded : ndarray (n, q)

    Returns
    -------
    ndarray (q,) of weights (1/nats).
    """
    x = np.asarray(train_encoded, dtype=float)
    w = np.zeros(x.shape[1])
    for j in range(x.shape[1]):
        _, counts = np.unique(np.round(x[:, j]), return_counts=True)
        p = counts / counts.sum()
        h = float(-(p * np.log(p)).sum())
        w[j] = 1.0 / h if h > 1e-12 else 0.0
    return w


def identifiability(train, other, *, columns=None, weighted: bool = True) -> float:
    """Identifiability score of Yoon, Drumright & van der Schaar (2020), ADS-GAN.

    ``(1/n) sum_i 1[ r_hat_i < r_i ]`` over the n training records, where ``r_i`` is the
    weighted distance from record i to its closest *other* training record and ``r_hat_i``
    to its closest record of ``other`` (strict inequality, so ties do not count).  Distances
    use coordinates ``w_j x_ij`` with the inverse-entropy weights of
    :func:`identifiability_weights` (``weighted=False``: all weights 1, which is what
    synthcity's ``IdentifiabilityScore`` currently computes).

    For i.i.d. continuous data the value for an independent sample of size m is
    ``m / (m + n - 1)`` (the nearest of the pooled n - 1 + m records is from ``other`` with
    that probability); ties in discrete data lower it.  It grows with m, so compare tables of
    equal size (:func:`privacy_report` subsamples).

    Parameters
    ----------
    train : DataFrame (n, p) or encoded ndarray (n, q)
    other : DataFrame (m, p) or encoded ndarray (m, q)
    columns : sequence of str, optional
    weighted : bool

    Returns
    -------
    float in [0, 1].
    """
    t, o = _matrices(train, other, columns=columns)
    w = identifiability_weights(t) if weighted else np.ones(t.shape[1])
    tw, ow = t * w, o * w
    r = _nn(tw, tw, k=2)[:, 1]  # first neighbour is the record itself (or an identical copy, also 0)
    r_hat = _nn(ow, tw)[:, 0]
    return float(np.mean(r_hat < r))


# ----------------------------------------------------------------------------- attacks


def _mw_auc(pos: np.ndarray, neg: np.ndarray) -> tuple[float, float]:
    """AUC = P(pos > neg) + P(tie)/2 by Mann-Whitney ranks, and its tie-corrected null SE."""
    n1, n2 = len(pos), len(neg)
    allv = np.concatenate([pos, neg])
    ranks = rankdata(allv)
    u = ranks[:n1].sum() - n1 * (n1 + 1) / 2
    n = n1 + n2
    _, tcounts = np.unique(allv, return_counts=True)
    var_u = n1 * n2 / 12 * ((n + 1) - (tcounts ** 3 - tcounts).sum() / (n * (n - 1)))
    return float(u / (n1 * n2)), float(np.sqrt(max(var_u, 0.0)) / (n1 * n2))


def membership_inference_auc(train, holdout, synthetic, *, columns=None) -> dict:
    """Distance-based membership-inference attack: AUC of telling training from holdout rows.

    The attacker scores each real record by ``-`` its distance to the closest synthetic
    record (closer = more likely a member).  AUC = P(score of a random training record >
    score of a random holdout record) + P(tie)/2, computed from Mann-Whitney ranks.  0.5:
    the synthetic data reveal nothing about membership; 1: every member is closer.

    Returns
    -------
    dict with ``auc``, ``se_null`` (tie-corrected Mann-Whitney SE under the null that training
    and holdout rows are exchangeable, exact as a permutation null when the generator does not
    depend on individual training rows), ``d_train`` (n,), ``d_holdout`` (n_h,).
    """
    t, h, s = _matrices(train, holdout, synthetic, columns=columns)
    d_t, d_h = _nn(s, t)[:, 0], _nn(s, h)[:, 0]
    # Distances within 1e-9 of each other are the same score (e.g. exact copies at 0).
    auc, se = _mw_auc(-np.round(d_t / EXACT) * EXACT, -np.round(d_h / EXACT) * EXACT)
    return dict(auc=auc, se_null=se, d_train=d_t, d_holdout=d_h)


def attribute_inference(train: pd.DataFrame, holdout: pd.DataFrame, synthetic: pd.DataFrame,
                        sensitive: str, known) -> dict:
    """Attribute-inference risk: predict a sensitive column from known ones via synthetic data.

    Each training and holdout row is matched, on the ``known`` columns (encoded by the
    training table), to its nearest synthetic row, whose ``sensitive`` value is the
    prediction.  A categorical (or boolean) column is scored by accuracy, a numeric one by
    RMSE (in the column's units).  If the synthetic data do not leak individual training
    rows, training and holdout rows are predicted equally well; the gap (training better
    than holdout) measures the leak.

    Parameters
    ----------
    train, holdout, synthetic : DataFrame
        Must contain ``sensitive`` and every ``known`` column (no missing sensitive values).
    sensitive : str
    known : sequence of str
        Quasi-identifiers the attacker is assumed to know.

    Returns
    -------
    dict with ``kind`` ('categorical' or 'numeric'), ``train``, ``holdout`` (accuracy or
    RMSE), ``gap`` (accuracy: train - holdout; RMSE: holdout - train; positive = leak) and
    ``se_gap`` (SE of the gap from the per-row errors of the two independent sets; accuracy:
    pooled two-proportion SE; RMSE: delta method, SE(RMSE) = sd(e^2) / (2 RMSE sqrt(n))).
    """
    known = list(known) if not isinstance(known, str) else [known]
    for name, tab in (("train", train), ("holdout", holdout), ("synthetic", synthetic)):
        if not isinstance(tab, pd.DataFrame):
            raise DataError(f"attribute_inference needs DataFrames; {name} is a {type(tab).__name__}. "
                            "Pass the patient tables before encoding.")
        for c in (sensitive, *known):
            if c not in tab.columns:
                raise DataError(f"the {name} table has no column {c!r} (sensitive={sensitive!r}, "
                                f"known={known}); name columns present in all three tables.")
        if tab[sensitive].isna().any():
            raise DataError(f"the sensitive column {sensitive!r} of the {name} table has missing values; "
                            "drop those rows or choose a complete column.")
    if sensitive in known:
        raise DataError(f"the sensitive column {sensitive!r} is also listed in known={known}; "
                        "the attacker must not know the value being inferred.")
    t, h, s = encode_tables(train, holdout, synthetic, columns=known)
    tree = cKDTree(s)
    pred_t = synthetic[sensitive].to_numpy()[tree.query(t, k=1)[1]]
    pred_h = synthetic[sensitive].to_numpy()[tree.query(h, k=1)[1]]
    col = train[sensitive]
    if _is_categorical(col) or pd.api.types.is_bool_dtype(col):
        acc_t = float(np.mean(pred_t.astype(object) == train[sensitive].to_numpy().astype(object)))
        acc_h = float(np.mean(pred_h.astype(object) == holdout[sensitive].to_numpy().astype(object)))
        return dict(kind="categorical", train=acc_t, holdout=acc_h, gap=acc_t - acc_h,
                    se_gap=_two_share_se(acc_t, len(t), acc_h, len(h)))
    e2_t = (pred_t.astype(float) - train[sensitive].to_numpy(dtype=float)) ** 2
    e2_h = (pred_h.astype(float) - holdout[sensitive].to_numpy(dtype=float)) ** 2
    rm_t, rm_h = float(np.sqrt(e2_t.mean())), float(np.sqrt(e2_h.mean()))

    def se_rmse(e2, rm):
        return float(np.std(e2, ddof=1) / (2 * max(rm, 1e-12) * np.sqrt(len(e2)))) if len(e2) > 1 else np.inf

    return dict(kind="numeric", train=rm_t, holdout=rm_h, gap=rm_h - rm_t,
                se_gap=float(np.hypot(se_rmse(e2_t, rm_t), se_rmse(e2_h, rm_h))))


# ----------------------------------------------------------------------------- fixture and report


def memorising_generator(train: pd.DataFrame, n: int, *, rng_key) -> pd.DataFrame:
    """A deliberately memorising 'generator': ``n`` bootstrap copies of training rows.

    The privacy section must catch it: with ``n = len(train)`` about ``1 - (1 - 1/n)^n``
    (about 63 %) of the training patients are copied exactly.

    Parameters
    ----------
    train : DataFrame (n_train, p)
    n : int
        Number of synthetic rows.
    rng_key : jax random key
        Drives the row indices (uniform with replacement).

    Returns
    -------
    DataFrame (n, p) with a fresh RangeIndex and the training dtypes.
    """
    if not isinstance(train, pd.DataFrame) or len(train) == 0:
        raise DataError(f"memorising_generator needs a non-empty training DataFrame, got "
                        f"{type(train).__name__} with {len(train) if hasattr(train, '__len__') else '?'} rows.")
    if int(n) != n or n < 1:
        raise DataError(f"n={n!r} synthetic rows requested; pass a positive integer.")
    idx = np.asarray(jax.random.randint(rng_key, (int(n),), 0, len(train)))
    return train.iloc[idx].reset_index(drop=True)


def _paired_sizes(holdout: np.ndarray, synthetic: np.ndarray, rng_key):
    """Subsample the larger of holdout / synthetic to the smaller one's size (without replacement)."""
    m = min(len(holdout), len(synthetic))
    if len(holdout) == len(synthetic):
        return holdout, synthetic
    if rng_key is None:
        raise DataError(f"identifiability compares tables of equal size, but the holdout has {len(holdout)} "
                        f"and the synthetic table {len(synthetic)} rows; pass rng_key (a JAX key) to "
                        f"privacy_report to subsample the larger one to {m} rows, or pass equal sizes.")
    if len(holdout) > m:
        return holdout[np.asarray(jax.random.permutation(rng_key, len(holdout)))[:m]], synthetic
    return holdout, synthetic[np.asarray(jax.random.permutation(rng_key, len(synthetic)))[:m]]


def privacy_report(train: pd.DataFrame, holdout: pd.DataFrame, synthetic: pd.DataFrame, *, columns=None,
                   sensitive: str | None = None, known=None, n_se: float = 3.0, rng_key=None) -> pd.DataFrame:
    """Privacy metrics of the synthetic table beside the holdout floor, with a verdict each.

    Every verdict tests the same null: the generator does not depend on individual training
    rows, so training and holdout patients are exchangeable with respect to the synthetic
    table (and, for the distance-tail rows, synthetic and holdout rows are exchangeable with
    respect to the training table).  A row *fails* when the synthetic value is worse than the
    floor by more than ``n_se`` standard errors (one-sided; ``n_se = 3`` gives a false-fail
    rate of about 0.1 % per row for a generator that satisfies the null).

    Rows (``better``: the direction that is more private):

    - ``dcr_median`` (info, no verdict): median DCR of synthetic vs holdout rows.
    - ``dcr_exact_match_share``: share with DCR < 1e-9; SE pooled two-proportion.
    - ``dcr_low_tail_share``: share with DCR <= the holdout's 5th-percentile DCR; under the
      null synthetic and holdout DCRs are exchangeable, SE ``sqrt(p (1-p) (1/m + 1/n_h))``.
    - ``dcr_closer_to_train_share``: :func:`dcr_comparison`; floor ``n/(n + n_h)``; SE adds to
      the binomial term ``1/m`` a term ``1/(n + n_h)`` for the random split (the share of the
      pooled Voronoi mass falling on training cells has variance e(1-e) cv^2/(n + n_h),
      cv^2 < 1 the squared CV of the cell masses).
    - ``nndr_median`` (info) and ``nndr_low_tail_share``: as for DCR.
    - ``identifiability``: :func:`identifiability` of synthetic vs of holdout (larger table
      subsampled to equal size with ``rng_key``); SE ``sqrt(pA(1-pA)/n + pB(1-pB)/n)``.
    - ``membership_inference_auc``: floor 0.5, SE the Mann-Whitney null SE.
    - ``attribute_inference_gap`` (only with ``sensitive`` and ``known``): floor 0, SE
      ``se_gap`` of :func:`attribute_inference`.

    Parameters
    ----------
    train, holdout, synthetic : DataFrame
        The holdout must be split off before fitting; equal train/holdout sizes are usual.
    columns : sequence of str, optional
        Columns for the distance metrics (default all of ``train``'s).
    sensitive, known : optional
        Column to infer and quasi-identifiers, for the attribute-inference row.
    n_se : float
        Tolerance in standard errors.
    rng_key : jax random key, optional
        Needed only when holdout and synthetic sizes differ (identifiability subsampling).

    Returns
    -------
    DataFrame with columns ``metric, synthetic, holdout_floor, tolerance, better, verdict``
    (verdict 'pass', 'fail' or 'info').
    """
    t, h, s = _matrices(train, holdout, synthetic, columns=columns)
    n, nh, m = len(t), len(h), len(s)
    rows = []

    def add(metric, syn, floor, se, better):
        if se is None:
            verdict, tol = "info", np.nan
        else:
            tol = n_se * se
            worse = (syn - floor) if better == "lower" else (floor - syn)
            verdict = "fail" if worse > tol else "pass"
        rows.append(dict(metric=metric, synthetic=float(syn), holdout_floor=float(floor),
                         tolerance=float(tol), better=better, verdict=verdict))

    for name, fn in (("dcr", dcr), ("nndr", nndr)):
        ds, dh = fn(t, s), fn(t, h)
        add(f"{name}_median", ds.median, dh.median, None, "higher")
        if name == "dcr":
            add("dcr_exact_match_share", ds.exact_share, dh.exact_share,
                _two_share_se(ds.exact_share, m, dh.exact_share, nh), "lower")
        q = dh.p05
        ps, ph = float(np.mean(ds.values <= q)), float(np.mean(dh.values <= q))
        add(f"{name}_low_tail_share", ps, ph, np.sqrt(ph * (1 - ph) * (1 / m + 1 / nh)), "lower")
        if name == "dcr":
            cmp = dcr_comparison(t, h, s)
            add("dcr_closer_to_train_share", cmp["share"], cmp["expected"], cmp["se_split"], "lower")
    h_eq, s_eq = _paired_sizes(h, s, rng_key)
    id_s, id_h = identifiability(t, s_eq), identifiability(t, h_eq)
    add("identifiability", id_s, id_h, np.sqrt((id_s * (1 - id_s) + id_h * (1 - id_h)) / n), "lower")
    mia = membership_inference_auc(t, h, s)
    add("membership_inference_auc", mia["auc"], 0.5, mia["se_null"], "lower")
    if sensitive is not None and known is not None:
        ai = attribute_inference(train, holdout, synthetic, sensitive, known)
        add(f"attribute_inference_gap[{sensitive}]", ai["gap"], 0.0, ai["se_gap"], "lower")
    return pd.DataFrame(rows, columns=["metric", "synthetic", "holdout_floor", "tolerance", "better", "verdict"])
