"""Routing, cascading and the route-then-cascade hybrid under one deferral budget (pure numpy).

Three ways to send a share ``b`` of the queries to the large tier:

- **Router alone** (:func:`router_curve`): route away the queries with the lowest pre-generation
  score ``p_good`` (:class:`~cascade_core.decide.router.QueryRouter`); the small model never writes for them.
- **Cascade alone** (:func:`~cascade_core.evaluation.curves.deferral_curve`): the small model answers
  everything; the answers with the lowest token-uncertainty score ``s`` are deferred.
- **Hybrid** (:func:`fit_hybrid`, :func:`hybrid_curve`): route away a share ``ρ ≤ b`` first, cascade the
  rest, so that the two stages together defer exactly ``b``.

The hybrid rule, for a total deferral budget ``b`` (a fraction of all queries), on the fit split of
``n`` queries::

    t_r(ρ) = Q_ρ(p_good)                                 route away when p_good < t_r
    t_c(ρ) = Q_{(b − ρ)/(1 − ρ)}(s | p_good ≥ t_r)        defer a kept query when s < t_c
    ρ*     = argmax_{ρ ∈ {0, b/G, 2b/G, …, b}} Q_fit(ρ)   (ties: the largest ρ)

``Q_q(x)`` is the threshold below which a share ``q`` of ``x`` lies (:func:`~cascade_core.decide.thresholds.calibrate_threshold`),
and ``Q_fit(ρ)`` the fit split's mean quality when routed and deferred queries get the large answer.
Ties go to the largest ρ: at the same quality and budget a routed query costs less than a
cascaded one, since it skips the small generation.
The two thresholds — not the shares — are what is deployed, so the realised rates on new traffic
are the quantiles' rates there. ``ρ = 0`` is the plain cascade and ``ρ = b`` the router alone, so
on the fit split the hybrid is never worse than either at the same budget. It is the two-model,
budget-constrained special case of cascade routing (Dekoninck et al., ICML 2025): route first on
the query-only estimate, then decide again on the small answer's own signals.

Cost model (:class:`QueryCosts`, :func:`cost_at_quality`), per query, as a share of sending every
query to the large tier, at a point with deferral rate ``r`` of which ``ρ`` was routed away::

    cost = [(1 − ρ)·(c_s + c_k) + ρ·c_r + r·c_l] / c_l

a kept or cascaded query pays the small generation ``c_s`` (plus ``c_k``, what consulting the router
adds to a query that stays, 0 when its prefill is reused by the generation); a routed-away query pays
the router ``c_r`` (one prefill, or nothing for a router without embedding) and the large call
``c_l``; a cascaded-and-deferred query pays ``c_s + c_l``.

Example:
    >>> p = [0.9, 0.1, 0.8, 0.2]; s = [0.7, 0.1, 0.2, 0.6]; small = [1, 0, 1, 0]; large = [1, 1, 1, 1]
    >>> point = fit_hybrid(p, s, small, large, budgets=[0.5])[0]
    >>> point.route_share, point.fit_quality
    (0.5, 1.0)
    >>> hybrid_curve([point], p, s, small, large).quality_at(0.5)
    1.0
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike

from cascade_core.decide.thresholds import calibrate_threshold
from cascade_core.errors import ConfigurationError
from cascade_core.evaluation.curves import DeferralCurve, deferral_curve

__all__ = [
    "DEFAULT_BUDGETS",
    "HybridCurve",
    "HybridPoint",
    "QueryCosts",
    "apply_hybrid",
    "calibrate_hybrid",
    "cost_at_quality",
    "fit_hybrid",
    "hybrid_curve",
    "router_curve",
]

#: Total deferral budgets of a hybrid curve: 0, 5 %, …, 100 %.
DEFAULT_BUDGETS = tuple(np.round(np.linspace(0.0, 1.0, 21), 4).tolist())


def _arrays(p_good: ArrayLike, scores: ArrayLike, small: ArrayLike, large: ArrayLike) -> tuple[np.ndarray, ...]:
    arrays = [np.asarray(a, dtype=np.float64).reshape(-1) for a in (p_good, scores, small, large)]
    n = arrays[0].size
    if not n or any(a.size != n for a in arrays):
        raise ConfigurationError(
            f"p_good, scores, small and large qualities need equally many (> 0) entries, got {[a.size for a in arrays]}"
        )
    if np.isnan(arrays[0]).any() or np.isnan(arrays[1]).any():
        raise ConfigurationError("p_good and scores must not contain NaN")
    if not (np.isfinite(arrays[2]).all() and np.isfinite(arrays[3]).all()):
        raise ConfigurationError("qualities must be finite numbers")
    return tuple(arrays)


def router_curve(p_good: ArrayLike, small_quality: ArrayLike, large_quality: ArrayLike, name: str = "router") -> DeferralCurve:
    """The router alone: route away the lowest ``p_good`` first (a :func:`deferral_curve` of ``p_good``).

    >>> router_curve([0.9, 0.1], [1, 0], [1, 1]).quality.tolist()
    [0.5, 1.0, 1.0]
    """
    return deferral_curve(p_good, small_quality, large_quality, name=name)


@dataclass(frozen=True)
class HybridPoint:
    """One calibrated route-then-cascade operating point (see the module docstring for the rule).

    Attributes:
        budget: Total share of queries sent to the large tier on the fit split.
        route_share: Share ρ routed away before generation (0 = plain cascade, ``budget`` = router alone).
        router_threshold: Route away when ``p_good < router_threshold``.
        cascade_threshold: Defer a kept query when its score ``< cascade_threshold``.
        fit_quality: Mean quality on the fit split with these thresholds.
    """

    budget: float
    route_share: float
    router_threshold: float
    cascade_threshold: float
    fit_quality: float


def apply_hybrid(point: HybridPoint, p_good: ArrayLike, scores: ArrayLike, small_quality: ArrayLike,
                 large_quality: ArrayLike) -> tuple[float, float, float]:
    """``(quality, deferral rate, routed share)`` of ``point``'s two thresholds on a split."""
    p, s, small, large = _arrays(p_good, scores, small_quality, large_quality)
    routed = p < point.router_threshold
    deferred = ~routed & (s < point.cascade_threshold)
    to_large = routed | deferred
    return float(np.where(to_large, large, small).mean()), float(to_large.mean()), float(routed.mean())


def _point(p: np.ndarray, s: np.ndarray, small: np.ndarray, large: np.ndarray, budget: float, rho: float) -> HybridPoint:
    n = p.size
    k, r = int(round(budget * n)), int(round(rho * n))
    t_r = calibrate_threshold(p, deferral_rate=r / n)
    kept = ~(p < t_r)
    kept_n = int(kept.sum())
    rest = min(max(k - (n - kept_n), 0), kept_n)  # what the cascade still defers (ties may route more or fewer)
    t_c = calibrate_threshold(s[kept], deferral_rate=rest / kept_n) if kept_n else math.inf
    draft = HybridPoint(float(budget), float(rho), float(t_r), float(t_c), 0.0)
    quality, _, routed = apply_hybrid(draft, p, s, small, large)
    return HybridPoint(float(budget), routed, float(t_r), float(t_c), quality)


def fit_hybrid(
    p_good_fit: ArrayLike,
    scores_fit: ArrayLike,
    small_fit: ArrayLike,
    large_fit: ArrayLike,
    budgets: Sequence[float] = DEFAULT_BUDGETS,
    *,
    grid: int = 20,
) -> list[HybridPoint]:
    """The best route share per total deferral budget on the fit split (module docstring: the rule).

    Args:
        p_good_fit: The router's ``P(small good)`` per fit query.
        scores_fit: The cascade's confidence score per fit query (higher = keep the small answer).
        small_fit / large_fit: Quality of each tier's answer per fit query.
        budgets: Total deferral budgets, fractions of queries in [0, 1].
        grid: Route shares tried per budget: ``b·j/grid`` for ``j = 0 … grid``.

    Raises:
        ConfigurationError: mismatched lengths, NaN, a budget outside [0, 1], or a grid < 1.
    """
    p, s, small, large = _arrays(p_good_fit, scores_fit, small_fit, large_fit)
    if isinstance(grid, bool) or not isinstance(grid, int) or grid < 1:
        raise ConfigurationError(f"grid must be a positive int, got {grid!r}")
    points = []
    for budget in budgets:
        b = float(budget)
        if not 0.0 <= b <= 1.0:
            raise ConfigurationError(f"a deferral budget is a fraction of queries in [0, 1], got {budget!r}")
        candidates = [_point(p, s, small, large, b, b * j / grid) for j in range(grid + 1)]
        points.append(max(reversed(candidates), key=lambda c: c.fit_quality))  # max keeps the first: largest ρ on ties
    return points


@dataclass(frozen=True)
class HybridCurve(DeferralCurve):
    """A :class:`DeferralCurve` on the ``k/n`` grid of the test split, with the routed share at each rate."""

    routed: np.ndarray = field(default_factory=lambda: np.zeros(0))


def hybrid_curve(
    points: Sequence[HybridPoint],
    p_good_test: ArrayLike,
    scores_test: ArrayLike,
    small_test: ArrayLike,
    large_test: ArrayLike,
    name: str = "hybrid",
) -> HybridCurve:
    """The hybrid's curve on a test split: each point's two thresholds applied, realised deferral on x.

    The operating points (plus all-small at 0 and all-large at 1) are joined linearly — mixing two
    neighbouring operating points at random gives any rate in between — and read at the rates
    ``k/n`` (k = 0 … n) of :func:`deferral_curve`, so :attr:`DeferralCurve.auc` is comparable to a
    cascade's or a router's on the same split. ``routed`` is the routed-away share at each rate.
    """
    p, s, small, large = _arrays(p_good_test, scores_test, small_test, large_test)
    if not points:
        raise ConfigurationError("hybrid_curve needs at least one HybridPoint (from fit_hybrid)")
    rows = [(0.0, float(small.mean()), 0.0), (1.0, float(large.mean()), 0.0)]
    rows += [(rate, quality, routed) for quality, rate, routed in (apply_hybrid(pt, p, s, small, large) for pt in points)]
    rates = np.array([r[0] for r in rows])
    xs = np.unique(rates)
    quality = np.array([np.mean([r[1] for r in rows if r[0] == x]) for x in xs])
    routed = np.array([np.mean([r[2] for r in rows if r[0] == x]) for x in xs])
    grid = np.arange(p.size + 1) / p.size
    return HybridCurve(name, grid, np.interp(grid, xs, quality), np.interp(grid, xs, routed))


@dataclass(frozen=True)
class QueryCosts:
    """Per-query costs of each kind of call, in one unit (price, latency, FLOPs).

    Attributes:
        small: A small-model generation.
        large: A large-model call.
        router: The router's cost on a routed-away query: one small prefill with an embedding
            router, 0 for a router on prompt length / user features only.
        router_kept: What consulting the router adds to a query that stays on the small tier
            (0 when the prefill is reused by the generation; ``router`` when it is a separate call).

    Example:
        >>> QueryCosts(small=1.0, large=10.0, router=0.2).large
        10.0
    """

    small: float
    large: float
    router: float = 0.0
    router_kept: float = 0.0

    def __post_init__(self) -> None:
        for name in ("small", "large", "router", "router_kept"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value >= 0):
                raise ConfigurationError(f"QueryCosts.{name} must be a finite number >= 0, got {value!r}")
        if self.large <= 0:
            raise ConfigurationError("QueryCosts.large must be > 0 (costs are reported as a share of all-large)")

    def share(self, deferral_rate: ArrayLike, routed_share: ArrayLike) -> np.ndarray:
        """Cost as a share of all-large: ``[(1 − ρ)(c_s + c_k) + ρ c_r + r c_l] / c_l``."""
        r = np.asarray(deferral_rate, dtype=np.float64)
        rho = np.asarray(routed_share, dtype=np.float64)
        uses_router = bool(np.any(rho > 0))
        kept_cost = self.small + (self.router_kept if uses_router else 0.0)
        return ((1.0 - rho) * kept_cost + rho * self.router + r * self.large) / self.large


def cost_at_quality(
    curve_or_points: DeferralCurve | Sequence[HybridPoint],
    costs: QueryCosts,
    target_quality: float,
    routed_share: float | ArrayLike | None = None,
) -> float:
    """The lowest cost (share of all-large, :meth:`QueryCosts.share`) at which the curve reaches ``target_quality``.

    Args:
        curve_or_points: A curve (its points joined linearly), or :func:`fit_hybrid` points (their
            budgets and fit qualities).
        costs: Per-query costs.
        target_quality: E.g. ``0.95 * large_quality.mean()``.
        routed_share: Share of *all* queries routed away at each point of the curve: ``0`` for a
            cascade; for the router alone pass ``curve.rates`` (every deferral is a routing);
            ``None`` reads it from a :class:`HybridCurve` or the points.

    Returns:
        The cost share, or ``nan`` when the curve never reaches ``target_quality``.

    Example:
        >>> from cascade_core.evaluation.curves import deferral_curve
        >>> c = deferral_curve([0.9, 0.1, 0.8, 0.2], [1, 0, 1, 0], [1, 1, 1, 1])
        >>> round(cost_at_quality(c, QueryCosts(small=1, large=10), 1.0, routed_share=0), 3)
        0.6
        >>> round(cost_at_quality(c, QueryCosts(small=1, large=10, router=0.1), 1.0, routed_share=c.rates), 3)
        0.555
    """
    if isinstance(curve_or_points, DeferralCurve):
        rates = np.asarray(curve_or_points.rates, dtype=np.float64)
        quality = np.asarray(curve_or_points.quality, dtype=np.float64)
        own = curve_or_points.routed if isinstance(curve_or_points, HybridCurve) else None
    else:
        pts = sorted(curve_or_points, key=lambda pt: pt.budget)
        if not pts or not all(isinstance(pt, HybridPoint) for pt in pts):
            raise ConfigurationError("cost_at_quality needs a DeferralCurve or a non-empty list of HybridPoint")
        rates = np.array([pt.budget for pt in pts])
        quality = np.array([pt.fit_quality for pt in pts])
        own = np.array([pt.route_share for pt in pts])
    if routed_share is None:
        if own is None:
            raise ConfigurationError(
                "cost_at_quality: give routed_share= for a plain curve (0 for a cascade, curve.rates for a router)"
            )
        rho = own
    else:
        rho = np.broadcast_to(np.asarray(routed_share, dtype=np.float64), rates.shape).copy()
    if not (np.all((rho >= 0) & (rho <= rates + 1e-9))):
        raise ConfigurationError("routed_share must lie in [0, deferral rate] at every point of the curve")
    # candidate points: every point reaching the target, and each segment's crossing of it
    cand_r, cand_rho = list(rates[quality >= target_quality]), list(rho[quality >= target_quality])
    for i in range(rates.size - 1):
        q0, q1 = quality[i], quality[i + 1]
        if (q0 - target_quality) * (q1 - target_quality) < 0:
            w = (target_quality - q0) / (q1 - q0)
            cand_r.append(rates[i] + w * (rates[i + 1] - rates[i]))
            cand_rho.append(rho[i] + w * (rho[i + 1] - rho[i]))
    if not cand_r:
        return math.nan
    return float(np.min(costs.share(np.array(cand_r), np.array(cand_rho))))


def calibrate_hybrid(
    p_good: ArrayLike,
    scores: ArrayLike,
    small_quality: ArrayLike,
    large_quality: ArrayLike,
    deferral_rate: float,
    *,
    grid: int = 20,
) -> HybridPoint:
    """The two thresholds of a route-then-cascade deployment sharing one deferral budget ``b``.

    ``b = deferral_rate`` is the share of all queries that may reach the large tier; the route share
    is chosen on these calibration queries as ``ρ* = argmax_ρ Q(ρ)`` over ``ρ ∈ {0, b/G, …, b}``
    (``G = grid``), with ``t_r = Q_ρ*(p_good)`` (route away when ``p_good < t_r``) and
    ``t_c = Q_{(b − ρ*)/(1 − ρ*)}(scores | p_good ≥ t_r)`` (defer a kept query when its score is below
    ``t_c``). ``cascade calibrate --router R.json --deferral-rate b`` writes both.

    >>> pt = calibrate_hybrid([0.9, 0.1, 0.8, 0.2], [0.7, 0.1, 0.2, 0.6], [1, 0, 1, 0], [1, 1, 1, 1], 0.5)
    >>> pt.router_threshold, pt.cascade_threshold
    (0.8, -inf)
    """
    return fit_hybrid(p_good, scores, small_quality, large_quality, budgets=[deferral_rate], grid=grid)[0]
