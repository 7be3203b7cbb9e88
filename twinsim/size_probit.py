"""The root search of ``twinsim size``: a probit power curve fitted where the answer is.

Generic over what is evaluated: :func:`search_roots` calls ``evaluate(values, n)`` for the
rejection counts of D designs at design-specific sizes, each call on fresh replicates;
:mod:`twinsim.size` supplies the simulator as that function.

The search spends replicates where the answer is
------------------------------------------------
1. **Bracket**: a few replicates at ``bracket_points`` sizes spaced geometrically over
   ``[lower, upper]``.
2. **Fit**: a probit regression of the per-replicate rejection indicator on ``sqrt(size)``,
   ``P(reject | x) = Phi(a + b (sqrt(x) - c))``, by maximum likelihood (Fisher scoring) on the
   evaluations near the current answer (those whose fitted probit is within :data:`WINDOW`
   of the target's: power within about 0.44-0.97 for a target of 0.8).  ``sqrt`` because
   Schoenfeld's ``z = sqrt(D p (1 - p)) |log HR| - z_alpha`` is linear in the square root of
   the events (and of the patients at a fixed calendar cut); on ``log(size)`` the same curve
   is convex and a local fit puts the root about 0.5 % low at the default spread.  The
   window keeps other shapes (saturating power with synthetic controls) fitted locally.
3. **Place** the next replicates at the fitted root ``x*`` (half of them) and at
   ``(sqrt(x*) -/+ SPREAD / b)^2`` (a quarter each: fitted powers about 0.70 and 0.87 for a
   target of 0.8), which keeps the slope estimated.
4. Repeat until the root's relative standard error (delta method on the fit's inverse
   Fisher information) is below ``tol`` for every design, or ``max_replicates`` is spent.

The answer is the smallest integer whose *fitted* power reaches the target, ``ceil(x*)``,
with a ``level`` interval ``(sqrt(x*) -/+ z se)^2``; the power at that size is then evaluated
directly on fresh replicates as a check.

The answer is the smallest integer whose *fitted* power reaches the target, ``ceil(x*)``,
with a ``level`` interval ``(sqrt(x*) -/+ z se)^2``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import pandas as pd
from scipy.special import log_ndtr, ndtr, ndtri

__all__ = ["ProbitFit", "fit_probit", "RootSearch", "search_roots", "WINDOW", "SPREAD", "KAPPA", "BRACKET_POINTS"]

#: Half-width (probit units) of the window of evaluations used by the fit, around the target's probit.
WINDOW = 1.0
#: Offset (probit units) of the side probes from the root...
SPREAD = 0.3
#: ... but at most KAPPA standard errors of sqrt(root) once the root is known that well.
KAPPA = 3.0
BRACKET_POINTS = 5


# --------------------------------------------------------------------------- probit fit


def _link(x):
    """The size scale of the probit fit: ``sqrt(x)`` (Schoenfeld: ``z`` is linear in ``sqrt(events)``)."""
    return np.sqrt(np.asarray(x, float))


@dataclass(frozen=True)
class ProbitFit:
    """``P(reject | x) = Phi(a + b (sqrt(x) - center))`` fitted by maximum likelihood.

    ``cov`` (2, 2) is the inverse expected Fisher information of ``(a, b)``.
    """

    a: float
    b: float
    center: float
    cov: np.ndarray
    converged: bool

    def power(self, x) -> np.ndarray:
        """Fitted power at sizes ``x`` (any shape, >= 0)."""
        return ndtr(self.a + self.b * (_link(x) - self.center))

    def root(self, target: float) -> tuple[float, float]:
        """``(x*, se of sqrt(x*))``: the size with fitted power ``target`` and its delta-method SE."""
        if not (self.b > 0 and self.converged):
            return math.nan, math.inf
        u = (ndtri(target) - self.a) / self.b
        g = np.array([-1.0 / self.b, -u / self.b])  # d u* / d(a, b)
        s = u + self.center
        return (float(s * s) if s > 0 else math.nan), float(math.sqrt(max(g @ self.cov @ g, 0.0)))


def fit_probit(x, k, n, *, center: float | None = None, slope: tuple[float, float] | None = None,
               max_iter: int = 100) -> ProbitFit | None:
    """Probit regression of binomial counts on ``sqrt(x)`` by Fisher scoring (maximum likelihood).

    Parameters
    ----------
    x : (m,) sizes > 0 (repeats allowed)
    k : (m,) rejections among ``n``
    n : (m,) replicates
    center : float, optional
        ``c`` in ``a + b (sqrt(x) - c)`` (default: the replicate-weighted mean of ``sqrt(x)``).
    slope : (b, var b), optional
        Fix the slope (fit the intercept only, as an offset); its variance goes into ``cov``
        (the intercept's and the slope's errors taken as independent).

    Returns
    -------
    ProbitFit, or None without data to fit (fewer than two distinct sizes for a free slope).
    ``converged`` is False when the likelihood has no finite maximum (complete separation:
    every replicate rejects above some size and none below).
    """
    x, k, n = (np.asarray(v, float) for v in (x, k, n))
    if len(x) == 0 or (slope is None and len(np.unique(x)) < 2):
        return None
    u0 = _link(x)
    c = float(np.average(u0, weights=n)) if center is None else float(center)
    u = u0 - c
    X = np.column_stack([np.ones_like(u), u])
    z_emp = ndtri((k + 0.5) / (n + 1.0))  # start: weighted least squares on empirical probits
    if slope is None:
        theta = np.linalg.lstsq(X * np.sqrt(n)[:, None], z_emp * np.sqrt(n), rcond=None)[0]
        free = [0, 1]
    else:
        theta = np.array([np.average(z_emp - slope[0] * u, weights=n), slope[0]])
        free = [0]

    def loglik(t):
        eta = X @ t
        return float(np.sum(k * log_ndtr(eta) + (n - k) * log_ndtr(-eta)))

    def info_score(t):
        eta = X @ t
        log_phi = -0.5 * eta**2 - 0.5 * math.log(2 * math.pi)
        lp, lq = log_ndtr(eta), log_ndtr(-eta)
        # d loglik / d eta = k phi/P - (n - k) phi/Q ; expected information n phi^2 / (P Q)
        score_eta = k * np.exp(log_phi - lp) - (n - k) * np.exp(log_phi - lq)
        w = n * np.exp(2 * log_phi - lp - lq)
        Xf = X[:, free]
        return Xf.T @ (Xf * w[:, None]), Xf.T @ score_eta

    ll = loglik(theta)
    converged = False
    for _ in range(max_iter):
        info, score = info_score(theta)
        try:
            step = np.zeros(2)
            step[free] = np.linalg.solve(info, score)
        except np.linalg.LinAlgError:
            break
        t_new, ll_new = theta + step, loglik(theta + step)
        for _half in range(30):  # step halving keeps the likelihood increasing
            if ll_new >= ll - 1e-12:
                break
            step /= 2
            t_new, ll_new = theta + step, loglik(theta + step)
        theta, ll_old, ll = t_new, ll, ll_new
        if abs(ll - ll_old) < 1e-10 and np.max(np.abs(step)) < 1e-8:
            converged = True
            break
    info, _ = info_score(theta)
    try:
        inv = np.linalg.inv(info)
    except np.linalg.LinAlgError:
        inv, converged = np.full((len(free), len(free)), np.inf), False
    cov = inv if slope is None else np.array([[inv[0, 0], 0.0], [0.0, slope[1]]])
    if (slope is None and abs(theta[1]) * np.ptp(u) > 40) or not np.all(np.isfinite(cov)):  # separation
        converged = False
    return ProbitFit(float(theta[0]), float(theta[1]), c, cov, converged)


# --------------------------------------------------------------------------- generic search


@dataclass
class RootSearch:
    """The search's answer for one design (sizes in the varied field's units).

    ``root`` the size with fitted power ``target`` (continuous); ``se_rel`` its relative SE
    (``2 se(sqrt(x*)) / sqrt(x*)``, delta method); ``ci`` the ``level`` interval of ``root``
    (``(sqrt(x*) -/+ z se)^2``); ``size`` the
    smallest integer whose fitted power reaches the target, ``ceil(root)``, or None;
    ``status``: ``ok``, ``budget`` (relative SE still above ``tol``), ``above upper`` /
    ``below lower`` (the target is not crossed inside the range) or ``not increasing``
    (power does not rise with the size: no fitted slope above 2 SE).
    """

    root: float = math.nan
    se_rel: float = math.inf
    ci: tuple[float, float] = (math.nan, math.nan)
    size: int | None = None
    status: str = "budget"
    fit: ProbitFit | None = None
    window: tuple[float, float] = (math.nan, math.nan)


def _fit_design(ev: pd.DataFrame, target: float) -> tuple[ProbitFit | None, ProbitFit | None, tuple[float, float]]:
    """(wide fit, final fit, sizes of the final fit's data).

    Wide: all evaluations, then (twice) those within WINDOW probit units of the target.  Final:
    the intercept refitted on the evaluations within ``max(3 KAPPA se, 1.5 %)`` of the root (in
    ``sqrt(size)``) with the wide fit's slope fixed, so that curvature far from the root cannot
    bias it; while that is no narrower than the wide window, the wide fit itself.
    """
    agg = ev.groupby("value", as_index=False)[["replicates", "rejections"]].sum()
    u = _link(agg["value"].to_numpy(float))
    wide = fit_probit(agg["value"], agg["rejections"], agg["replicates"])
    window = (float(agg["value"].min()), float(agg["value"].max()))
    for _ in range(2):
        if wide is None or not (wide.b > 0 and wide.converged):
            return wide, wide, window
        near = np.abs(wide.a + wide.b * (u - wide.center) - ndtri(target)) <= WINDOW
        if len(np.unique(agg["value"][near])) < 3:
            break
        refit = fit_probit(agg["value"][near], agg["rejections"][near], agg["replicates"][near])
        if refit is None or not (refit.b > 0 and refit.converged):
            break
        wide, window = refit, (float(agg["value"][near].min()), float(agg["value"][near].max()))
    final = wide
    for _ in range(2):
        root, se_s = final.root(target)
        if not math.isfinite(root):
            break
        half = max(3 * KAPPA * se_s, 0.015 * math.sqrt(root))
        if half >= WINDOW / wide.b:
            break
        near = np.abs(u - math.sqrt(root)) <= half
        if not near.any():
            break
        narrow = fit_probit(agg["value"][near], agg["rejections"][near], agg["replicates"][near],
                            center=math.sqrt(root), slope=(wide.b, wide.cov[1, 1]))
        if narrow is None or not narrow.converged:
            break
        final, window = narrow, (float(agg["value"][near].min()), float(agg["value"][near].max()))
    return wide, final, window


def _assess(ev: pd.DataFrame, lo: int, hi: int, target: float, tol: float, z: float) -> RootSearch:
    wide, fit, window = _fit_design(ev, target)
    if fit is None:
        return RootSearch(status="budget")
    slope_z = wide.b / math.sqrt(wide.cov[1, 1]) if wide.converged and wide.cov[1, 1] > 0 else math.inf
    if wide.converged and slope_z < 2:
        return RootSearch(status="not increasing", fit=fit, window=window)
    if not fit.converged:  # separation: the root lies between the last size never and the first always rejecting
        agg = ev.groupby("value")[["replicates", "rejections"]].sum()
        rate = agg["rejections"] / agg["replicates"]
        below, above = rate[rate < target].index, rate[rate >= target].index
        a = below.max() if len(below) else lo
        b_ = above.min() if len(above) else hi
        return RootSearch(root=math.sqrt(a * b_), se_rel=math.inf, status="budget", fit=fit, window=window)
    root, se_s = fit.root(target)
    if not math.isfinite(root):
        return RootSearch(status="below lower", fit=fit, window=window)
    s = math.sqrt(root)
    se = 2 * se_s / s
    ci = (max(s - z * se_s, 0.0) ** 2, (s + z * se_s) ** 2)
    if root > hi:  # beyond the range: settled once the whole interval is
        return RootSearch(root, se, ci, None, "above upper" if ci[0] > hi else "budget", fit, window)
    if math.ceil(root - 1e-9) < lo:
        return RootSearch(root, se, ci, None, "below lower" if ci[1] < lo else "budget", fit, window)
    status = "ok" if se <= tol else "budget"
    return RootSearch(root, se, ci, int(math.ceil(root - 1e-9)), status, fit, window)


def _probes(res: RootSearch, lo: int, hi: int) -> tuple[int, int, int]:
    """Sizes for the next block: (below, at, above) the current root, distinct where the range allows."""
    if not math.isfinite(res.root):
        mid = int(round(math.sqrt(lo * hi)))
        return lo, mid, hi
    if res.status == "above upper":
        return hi, hi, hi
    if res.status == "below lower":
        return lo, lo, lo
    s = math.sqrt(res.root)
    delta = SPREAD / res.fit.b if res.fit is not None and res.fit.b > 0 and res.fit.converged else 0.1 * s
    if math.isfinite(res.se_rel):  # close in as the root firms up: curvature bias shrinks with delta^2
        delta = min(delta, max(KAPPA * res.se_rel * s / 2, 0.005 * s))
    delta = min(max(delta, 0.005 * s), 0.4 * s)  # in sqrt(size) units
    mid = int(round(min(max(res.root, lo), hi)))
    below = min(int(round((s - delta) ** 2)), mid - 1)
    above = max(int(round((s + delta) ** 2)), mid + 1)
    return max(below, lo), mid, min(above, hi)


def search_roots(
    evaluate: Callable[[np.ndarray, int], np.ndarray],
    lower: Sequence[int],
    upper: Sequence[int],
    *,
    target: float = 0.8,
    tol: float = 0.01,
    max_replicates: int = 20000,
    block: int = 128,
    level: float = 0.95,
    bracket_replicates: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[list[RootSearch], pd.DataFrame]:
    """Find, for each of D designs, the size whose power is ``target`` (see the module docstring).

    Parameters
    ----------
    evaluate : callable ``evaluate(values, n) -> rejections``
        ``values`` (D,) int sizes, one per design; ``n`` replicates (a multiple of ``block``);
        returns (D,) int rejection counts.  Each call must use fresh, independent replicates.
    lower, upper : (D,) int bounds of the search, ``1 <= lower < upper``
    target : target power in (0, 1)
    tol : stop when every design's relative SE of the root, ``se(x*) / x*``, is below it
    max_replicates : budget: simulated trials per design, bracket included
    block : replicates are spent in multiples of this
    level : confidence level of the interval of the root
    bracket_replicates : replicates at each bracket size (default about 2% of the budget, at least ``block``)
    progress : optional ``progress(spent, max_replicates)``

    Returns
    -------
    (one RootSearch per design, evaluations table with columns ``design`` (index), ``value``,
    ``replicates``, ``rejections``, ``step`` (0 = bracket), ``probe`` (below/at/above/bracket))
    """
    lower, upper = np.asarray(lower, int), np.asarray(upper, int)
    D = len(lower)
    z = float(ndtri(0.5 + level / 2))
    if bracket_replicates is None:
        bracket_replicates = max(block, int(math.ceil(min(256, max_replicates / 50) / block)) * block)
    rows: list[dict] = []
    spent = 0

    def run(values, n, step, probe):
        nonlocal spent
        counts = np.asarray(evaluate(np.asarray(values, int), n))
        for d in range(D):
            rows.append({"design": d, "value": int(values[d]), "replicates": n, "rejections": int(counts[d]),
                         "step": step, "probe": probe})
        spent += n
        if progress is not None:
            progress(spent, max_replicates)

    grid = [np.unique(np.round(np.geomspace(lo, hi, BRACKET_POINTS)).astype(int)) for lo, hi in zip(lower, upper)]
    for j in range(max(len(g) for g in grid)):
        run([g[min(j, len(g) - 1)] for g in grid], bracket_replicates, 0, "bracket")

    step = 0
    while True:
        ev = pd.DataFrame(rows)
        results = [_assess(ev[ev["design"] == d], lower[d], upper[d], target, tol, z) for d in range(D)]
        searching = [r for r in results if r.status == "budget"]
        remaining = max_replicates - spent
        if not searching or remaining < 4 * block:
            break
        step += 1
        ratio = max((r.se_rel / tol) ** 2 if math.isfinite(r.se_rel) else 4.0 for r in searching)
        add = min(max(spent * (ratio - 1), 4 * block), spent, remaining)  # at most double per step
        m = max(block, int(add / 4 / block) * block)
        probes = [_probes(r, lower[d], upper[d]) for d, r in enumerate(results)]
        for i, (name, n) in enumerate((("below", m), ("at", 2 * m), ("above", m))):
            n = min(n, (max_replicates - spent) // block * block)
            if n >= block:
                run([p[i] for p in probes], n, step, name)
    for r, lo, hi in zip(results, lower, upper):  # the budget ran out with the root still outside the range
        if r.status == "budget" and r.size is None and math.isfinite(r.root):
            r.status = "above upper" if r.root > hi else "below lower" if r.root < lo else r.status
    return results, pd.DataFrame(rows)
