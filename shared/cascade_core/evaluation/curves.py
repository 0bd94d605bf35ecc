"""Offline evaluation of deferral rules: deferral curves, AUC-DF, budget curves, answer scorers.

- :func:`deferral_curve` (paper A): for each deferral rate r = k/n, defer the k examples with the
  lowest scores and measure the cascade's quality; :attr:`DeferralCurve.auc` is the area under it
  (AUC-DF). Ties are broken at random *in expectation* (the curve is linear across a tied block),
  so a constant score gives exactly the random line. :func:`random_curve` and :func:`oracle_curve`
  are the baselines.
- :func:`budget_curve` (paper B): accuracy vs per-query cost budget with the online
  :class:`~cascade_core.decide.thresholds.DynamicBudgetThreshold`, averaged over several random orders of
  the query stream; :attr:`BudgetCurve.area` is the area over budgets from ``c_s`` to ``c_l``
  divided by the cost gap ``c_l − c_s`` (a mean accuracy over budgets).
- Answer scorers: :func:`exact_match`, :func:`alias_match`, :func:`label_accuracy`, and
  :func:`resolve_quality_scorer` for a user hook ``"package.module:function"``.

Example:
    >>> small, large = [1, 0, 1, 0], [1, 1, 1, 0]
    >>> deferral_curve([0.9, 0.5, 0.1, 0.8], small, large).auc
    0.65625
    >>> random_curve(small, large).auc, oracle_curve(small, large).auc
    (0.625, 0.71875)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from cascade_core.decide import signals
from cascade_core.decide.scorers import Margin, Scorer, make_scorer
from cascade_core.decide.thresholds import DynamicBudgetThreshold, budget_deferral_rate, calibrate_threshold
from cascade_core.errors import ConfigurationError
from cascade_core.types import Generation

__all__ = [
    "BudgetCurve",
    "DeferralCurve",
    "budget_curve",
    "default_signals",
    "deferral_curve",
    "oracle_curve",
    "random_budget_curve",
    "random_curve",
    "signal_scores",
    "summarize_curves",
]

"""``(prediction, record) -> quality in [0, 1]``; ``record`` is the data-set line (``answer``, ``aliases``, ``labels`` …)."""


def _qualities(small_quality: ArrayLike, large_quality: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    small = np.asarray(small_quality, dtype=np.float64).reshape(-1)
    large = np.asarray(large_quality, dtype=np.float64).reshape(-1)
    if small.shape != large.shape or not small.size:
        raise ConfigurationError(f"need equally many small and large qualities (>0), got {small.size} and {large.size}")
    if not (np.isfinite(small).all() and np.isfinite(large).all()):
        raise ConfigurationError("qualities must be finite numbers")
    return small, large


@dataclass(frozen=True)
class DeferralCurve:
    """Cascade quality at deferral rates ``k/n`` (k = 0…n), and its area (AUC-DF)."""

    name: str
    rates: np.ndarray
    quality: np.ndarray

    @property
    def auc(self) -> float:
        """Area under quality-vs-deferral-rate on [0, 1] (trapezoidal; rates are evenly spaced)."""
        return float(np.trapezoid(self.quality, self.rates))

    def quality_at(self, rate: float) -> float:
        """Quality at deferral ``rate`` (linear interpolation)."""
        return float(np.interp(rate, self.rates, self.quality))


def deferral_curve(scores: ArrayLike, small_quality: ArrayLike, large_quality: ArrayLike, name: str = "") -> DeferralCurve:
    """Deferral curve of a confidence score (higher = keep the small answer; lowest deferred first).

    >>> c = deferral_curve([0.2, 0.9], [0, 1], [1, 1])
    >>> c.quality.tolist()
    [0.5, 1.0, 1.0]
    """
    small, large = _qualities(small_quality, large_quality)
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if s.shape != small.shape:
        raise ConfigurationError(f"{s.size} scores for {small.size} examples")
    if np.isnan(s).any():
        raise ConfigurationError(f"scores of {name or 'the signal'} contain NaN")
    n = s.size
    order = np.argsort(s, kind="stable")
    gain = (large - small)[order]
    sorted_scores = s[order]
    # expected cumulative gain under random tie-breaking: linear within each block of equal scores
    cum = np.concatenate([[0.0], np.cumsum(gain)])
    boundaries = np.flatnonzero(np.diff(sorted_scores) != 0) + 1
    starts = np.concatenate([[0], boundaries])
    ends = np.concatenate([boundaries, [n]])
    expected = np.empty(n + 1)
    expected[0] = 0.0
    for a, b in zip(starts, ends, strict=True):
        j = np.arange(1, b - a + 1)
        expected[a + 1 : b + 1] = cum[a] + (cum[b] - cum[a]) * j / (b - a)
    quality = (small.sum() + expected) / n
    return DeferralCurve(name, np.arange(n + 1) / n, quality)


def random_curve(small_quality: ArrayLike, large_quality: ArrayLike) -> DeferralCurve:
    """Random deferral: the straight line from all-small to all-large quality."""
    small, large = _qualities(small_quality, large_quality)
    return deferral_curve(np.zeros(small.size), small, large, name="random")


def oracle_curve(small_quality: ArrayLike, large_quality: ArrayLike) -> DeferralCurve:
    """The oracle: defers first where the large model is better (score = quality(small) − quality(large))."""
    small, large = _qualities(small_quality, large_quality)
    return deferral_curve(small - large, small, large, name="oracle")


def summarize_curves(curves: Sequence[DeferralCurve], random: DeferralCurve, oracle: DeferralCurve) -> list[dict[str, Any]]:
    """One table row per curve: AUC-DF, gain over random, share of the oracle's gain, quality at 20/40 % deferral.

    ``oracle_gap_closed`` = (AUC − AUC_random) / (AUC_oracle − AUC_random) (``None`` when the oracle
    is no better than random): 0 = no better than random,
    1 = as good as the oracle.
    """
    span = oracle.auc - random.auc
    rows = []
    for curve in [*curves, random, oracle]:
        rows.append(
            {
                "signal": curve.name,
                "auc_df": round(curve.auc, 4),
                "vs_random": round(curve.auc - random.auc, 4),
                "oracle_gap_closed": round((curve.auc - random.auc) / span, 3) if span > 0 else None,
                "quality_at_20pct": round(curve.quality_at(0.2), 4),
                "quality_at_40pct": round(curve.quality_at(0.4), 4),
            }
        )
    return rows


# -- signals over cached generations ----------------------------------------------------------------


def default_signals(labels: Sequence[str] | None = None) -> dict[str, Scorer]:
    """The single-signal scorers compared in the evaluation (margin among ``labels`` when given)."""
    scorers: dict[str, Scorer] = {
        "margin": Margin(labels=tuple(labels)) if labels else Margin(distinct=True),
        "chow_sum": make_scorer("chow_sum"),
        "chow_average": make_scorer("chow_average"),
        "entropy": make_scorer("entropy"),
    }
    for alpha in (0.0, 0.1, 0.5, 0.9):
        scorer = make_scorer("chow_quantile", alpha=alpha)
        scorers[scorer.name] = scorer
    return scorers


def signal_scores(
    generations: Sequence[Generation],
    scorers: Mapping[str, Scorer | Callable[[Generation], float]],
    labels_per_example: Sequence[Sequence[str] | None] | None = None,
) -> dict[str, np.ndarray]:
    """Score every generation with every scorer. An empty generation scores ``-inf`` (deferred first).

    ``labels_per_example`` overrides the ``"margin"`` scorer per example with a label margin
    (classification records whose label first-tokens are known).
    """
    out: dict[str, np.ndarray] = {}
    for name, scorer in scorers.items():
        values = np.empty(len(generations))
        for i, gen in enumerate(generations):
            if not gen.steps:
                values[i] = -math.inf
                continue
            labels = labels_per_example[i] if labels_per_example is not None else None
            if name == "margin" and labels:
                values[i] = signals.first_token_margin(gen.steps[0], labels=list(labels))
            else:
                values[i] = float(scorer(gen))
        out[name] = values
    return out


# -- budget curves (paper B) ---------------------------------------------------------------------------


@dataclass(frozen=True)
class BudgetCurve:
    """Accuracy vs per-query budget under the dynamic threshold, mean (and std) over query orders."""

    name: str
    budgets: np.ndarray
    quality: np.ndarray
    quality_std: np.ndarray
    cost: np.ndarray
    small_cost: float
    large_cost: float
    orders: int = 1
    deferral_rate: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def area(self) -> float:
        """Area under accuracy-vs-budget divided by the cost gap ``c_l − c_s`` (paper B)."""
        return float(np.trapezoid(self.quality, self.budgets) / (self.large_cost - self.small_cost))


def budget_curve(
    scores: ArrayLike,
    small_quality: ArrayLike,
    large_quality: ArrayLike,
    *,
    small_cost: float,
    large_cost: float,
    budgets: ArrayLike | None = None,
    orders: int = 5,
    warmup: int = 16,
    calibration_scores: ArrayLike | None = None,
    seed: int = 0,
    name: str = "",
) -> BudgetCurve:
    """Paper B's budget curve for one score.

    For each budget B (default: 21 points from ``c_s`` to ``c_l``) the target deferral fraction is
    ``p = (B − c_s) / c_l``; the stream of queries is replayed in ``orders`` random orders, each
    through a fresh :class:`DynamicBudgetThreshold` (p-quantile of the scores seen so far after
    ``warmup`` queries). During warm-up the threshold is calibrated on ``calibration_scores`` (e.g.
    the fit split) for rate ``p``, or ``-inf`` (never defer) when none are given. A query costs
    ``c_s`` plus ``c_l`` if deferred.
    """
    small, large = _qualities(small_quality, large_quality)
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if s.shape != small.shape:
        raise ConfigurationError(f"{s.size} scores for {small.size} examples")
    if not large_cost > small_cost >= 0:
        raise ConfigurationError(f"budget curves need large_cost > small_cost >= 0, got {large_cost} and {small_cost}")
    if isinstance(orders, bool) or not isinstance(orders, int) or orders < 1:
        raise ConfigurationError(f"orders must be a positive int, got {orders!r}")
    grid = np.linspace(small_cost, large_cost, 21) if budgets is None else np.asarray(budgets, dtype=np.float64)
    rng = np.random.default_rng(seed)
    perms = [rng.permutation(s.size) for _ in range(orders)]
    quality = np.empty((grid.size, orders))
    cost = np.empty((grid.size, orders))
    rate = np.empty((grid.size, orders))
    for i, budget in enumerate(grid):
        p = budget_deferral_rate(float(budget), small_cost, large_cost)
        initial = -math.inf
        if calibration_scores is not None:
            initial = calibrate_threshold(calibration_scores, deferral_rate=p)
        for j, perm in enumerate(perms):
            policy = DynamicBudgetThreshold(deferral_rate=p, warmup=warmup, initial_threshold=initial)
            defer = np.array([policy.decide(v)[0] for v in s[perm]])
            got = np.where(defer, large[perm], small[perm])
            quality[i, j] = got.mean()
            rate[i, j] = defer.mean()
            cost[i, j] = small_cost + large_cost * defer.mean()
    return BudgetCurve(
        name, grid, quality.mean(1), quality.std(1), cost.mean(1), float(small_cost), float(large_cost),
        orders, rate.mean(1),
    )


def random_budget_curve(
    small_quality: ArrayLike,
    large_quality: ArrayLike,
    *,
    small_cost: float,
    large_cost: float,
    budgets: ArrayLike | None = None,
    orders: int = 5,
    draws: int = 10,
    warmup: int = 16,
    seed: int = 0,
) -> BudgetCurve:
    """Random routing under the same dynamic threshold: :func:`budget_curve` of fresh uniform scores,
    averaged over ``draws`` independent draws (each replayed in ``orders`` orders), so the baseline
    is not one lucky or unlucky draw."""
    small, large = _qualities(small_quality, large_quality)
    rng = np.random.default_rng(seed)
    uniform = np.linspace(0.0, 1.0, 1001)  # warm-up threshold for uniform scores: about p
    curves = [
        budget_curve(
            rng.random(small.size), small, large, small_cost=small_cost, large_cost=large_cost, budgets=budgets,
            orders=orders, warmup=warmup, calibration_scores=uniform, seed=seed + i, name="random",
        )
        for i in range(draws)
    ]
    quality = np.array([c.quality for c in curves])
    return BudgetCurve(
        "random", curves[0].budgets, quality.mean(0), quality.std(0), np.mean([c.cost for c in curves], 0),
        float(small_cost), float(large_cost), orders * draws, np.mean([c.deferral_rate for c in curves], 0),
    )
