"""Threshold policies: given a score, decide whether to defer (defer when ``score < threshold``).

- :class:`FixedThreshold` — a constant.
- :func:`calibrate_threshold` / :meth:`FixedThreshold.calibrated` — from a sample of scores, the
  threshold that defers a target fraction, or that meets a per-query cost budget.
- :class:`DynamicBudgetThreshold` — paper B's online policy: the threshold is the p-quantile of all
  scores seen so far, with ``p = (B − c_s) / c_l``; safe under threads and asyncio.

Example:
    >>> policy = FixedThreshold.calibrated([0.1, 0.2, 0.3, 0.4, 0.5], deferral_rate=0.4)
    >>> policy.threshold
    0.3
    >>> policy.decide(0.25)
    (True, 0.3)
"""

from __future__ import annotations

import bisect
import collections
import math
import random
import threading
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import ArrayLike

from cascade_core.errors import ConfigurationError

__all__ = [
    "DynamicBudgetThreshold",
    "FixedThreshold",
    "ThresholdPolicy",
    "budget_deferral_rate",
    "calibrate_threshold",
    "check_threshold",
]


@runtime_checkable
class ThresholdPolicy(Protocol):
    """Decides deferral for one score; may learn from the scores it sees."""

    def decide(self, score: float) -> tuple[bool, float]:
        """Return ``(defer, threshold_used)`` for ``score``."""
        ...

    @property
    def current_threshold(self) -> float:
        """The threshold that would be used for the next score."""
        ...


def check_threshold(value: float, score_range: tuple[float, float] = (-math.inf, math.inf), name: str = "threshold") -> float:
    """Validate a threshold: a real number, not NaN, inside the scorer's range (±inf allowed as 'never/always')."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise ConfigurationError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    value = float(value)
    if math.isnan(value):
        raise ConfigurationError(f"{name} is NaN; pass a number")
    low, high = score_range
    if math.isinf(value):
        return value
    if not low <= value <= high:
        raise ConfigurationError(f"{name}={value} is outside the signal's range [{low}, {high}]")
    return value


def _check_rate(rate: float, name: str = "deferral_rate") -> float:
    if isinstance(rate, bool) or not isinstance(rate, (int, float, np.floating)) or math.isnan(rate) or not 0 <= rate <= 1:
        raise ConfigurationError(f"{name} must be a number in [0, 1], got {rate!r}")
    return float(rate)


def _clean_scores(scores: ArrayLike) -> np.ndarray:
    arr = np.asarray(scores, dtype=np.float64).reshape(-1)
    if not arr.size:
        raise ConfigurationError("calibration needs at least one score, got none")
    if np.isnan(arr).any():
        raise ConfigurationError("calibration scores contain NaN")
    return arr


def budget_deferral_rate(budget: float, small_cost: float, large_cost: float) -> float:
    """Paper B: the deferral fraction a per-query budget allows, ``p = (B − c_s) / c_l`` clipped to [0, 1].

    >>> budget_deferral_rate(0.5, small_cost=0.1, large_cost=1.0)
    0.4
    """
    for label, value in (("budget", budget), ("small_cost", small_cost), ("large_cost", large_cost)):
        if not isinstance(value, (int, float)) or math.isnan(value) or value < 0:
            raise ConfigurationError(f"{label} must be a non-negative number, got {value!r}")
    if large_cost == 0:
        raise ConfigurationError("large_cost must be > 0 to turn a budget into a deferral rate")
    return float(min(1.0, max(0.0, (budget - small_cost) / large_cost)))


def _quantile_threshold(sorted_scores: Sequence[float] | np.ndarray, rate: float) -> float:
    """Threshold t such that the fraction of scores strictly below t is as close to ``rate`` as ties allow."""
    n = len(sorted_scores)
    k = int(round(rate * n))
    if k <= 0:
        return -math.inf
    if k >= n:
        return math.inf
    return float(sorted_scores[k])


def calibrate_threshold(
    scores: ArrayLike,
    *,
    deferral_rate: float | None = None,
    budget: float | None = None,
    small_cost: float | None = None,
    large_cost: float | None = None,
) -> float:
    """Threshold that defers ``deferral_rate`` of ``scores`` (or the rate a cost budget allows).

    Give either ``deferral_rate`` or ``budget`` with ``small_cost`` and ``large_cost`` (all per query,
    same unit). Scores below the returned threshold are deferred.

    >>> calibrate_threshold([0.1, 0.2, 0.3, 0.4], deferral_rate=0.5)
    0.3
    """
    if (deferral_rate is None) == (budget is None):
        raise ConfigurationError("give exactly one of deferral_rate or budget (with small_cost and large_cost)")
    if budget is not None:
        if small_cost is None or large_cost is None:
            raise ConfigurationError("a budget needs small_cost and large_cost (per-query costs)")
        deferral_rate = budget_deferral_rate(budget, small_cost, large_cost)
    rate = _check_rate(deferral_rate)  # type: ignore[arg-type]
    return _quantile_threshold(np.sort(_clean_scores(scores)), rate)


class FixedThreshold:
    """A constant threshold: defer when ``score < threshold``.

    Example:
        >>> FixedThreshold(0.2).decide(0.5)
        (False, 0.2)
    """

    def __init__(self, threshold: float) -> None:
        self.threshold = check_threshold(threshold)

    @classmethod
    def calibrated(cls, scores: ArrayLike, **target: float) -> FixedThreshold:
        """A fixed threshold calibrated on sample scores (see :func:`calibrate_threshold`)."""
        return cls(calibrate_threshold(scores, **target))

    @property
    def current_threshold(self) -> float:
        return self.threshold

    def decide(self, score: float) -> tuple[bool, float]:
        return bool(score < self.threshold), self.threshold

    def __repr__(self) -> str:
        return f"FixedThreshold({self.threshold!r})"


class DynamicBudgetThreshold:
    """Paper B's dynamic threshold under a per-query cost budget.

    The target deferral fraction is ``p = (budget − small_cost) / large_cost`` (clipped to [0, 1]),
    or ``deferral_rate`` directly. Each score is recorded; once ``warmup`` scores have been seen,
    the threshold is the p-quantile of the recorded scores (including the current one), so the
    running deferral rate tracks ``p``. Before that, ``initial_threshold`` is used.

    Scores equal to the threshold are deferred at random with the probability that brings the
    deferred fraction to ``p`` (uniform tie-breaking), so a signal with many identical scores —
    a margin of exactly 1.0 for every confident answer — still defers its share.

    Memory is bounded: ``window=N`` keeps the last ``N`` scores (a sliding window); with
    ``window=None`` a uniform reservoir sample of at most ``capacity`` scores stands for all
    scores seen (exact until ``capacity`` scores, an unbiased sample after).

    Thread- and asyncio-safe: ``decide`` holds a lock and does no I/O; its cost is O(``capacity``)
    at worst (a list insert), independent of how many scores were seen.

    Example:
        >>> policy = DynamicBudgetThreshold(deferral_rate=0.5, warmup=4, initial_threshold=0.0)
        >>> [policy.decide(s)[0] for s in [0.9, 0.1, 0.8, 0.2, 0.05, 0.95]]
        [False, False, False, True, True, False]
    """

    def __init__(
        self,
        *,
        budget: float | None = None,
        small_cost: float | None = None,
        large_cost: float | None = None,
        deferral_rate: float | None = None,
        warmup: int = 16,
        initial_threshold: float = 0.0,
        window: int | None = None,
        capacity: int = 10_000,
        seed: int | None = 0,
    ) -> None:
        if (deferral_rate is None) == (budget is None):
            raise ConfigurationError("DynamicBudgetThreshold: give exactly one of budget or deferral_rate")
        if budget is not None:
            if small_cost is None or large_cost is None:
                raise ConfigurationError("DynamicBudgetThreshold: budget needs small_cost and large_cost")
            deferral_rate = budget_deferral_rate(budget, small_cost, large_cost)
        if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 1:
            raise ConfigurationError(f"warmup must be a positive int, got {warmup!r}")
        if window is not None and (isinstance(window, bool) or not isinstance(window, int) or window < warmup):
            raise ConfigurationError(f"window must be an int >= warmup ({warmup}), got {window!r}")
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < warmup:
            raise ConfigurationError(f"capacity must be an int >= warmup ({warmup}), got {capacity!r}")
        self.deferral_rate = _check_rate(deferral_rate)  # type: ignore[arg-type]
        self.budget, self.small_cost, self.large_cost = budget, small_cost, large_cost
        self.warmup = warmup
        self.initial_threshold = check_threshold(initial_threshold, name="initial_threshold")
        self.window = window
        self.capacity = capacity if window is None else window
        self.seed = seed
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._sorted: list[float] = []
        self._kept: collections.deque[float] | list[float] = collections.deque() if window is not None else []
        self._seen = 0

    @property
    def n_seen(self) -> int:
        """How many scores have been recorded."""
        with self._lock:
            return self._seen

    @property
    def current_threshold(self) -> float:
        with self._lock:
            return self._threshold_locked()

    def _threshold_locked(self) -> float:
        if len(self._sorted) < self.warmup:
            return self.initial_threshold
        return _quantile_threshold(self._sorted, self.deferral_rate)

    def _record_locked(self, score: float) -> None:
        self._seen += 1
        if self.window is not None:  # sliding window: drop the oldest
            kept = self._kept
            assert isinstance(kept, collections.deque)
            kept.append(score)
            if len(kept) > self.window:
                old = kept.popleft()
                del self._sorted[bisect.bisect_left(self._sorted, old)]
        elif len(self._kept) < self.capacity:  # reservoir still filling: keep everything
            self._kept.append(score)
        else:  # reservoir sampling (Vitter's algorithm R): keep with probability capacity / seen
            slot = self._rng.randrange(self._seen)
            if slot >= self.capacity:
                return
            old, self._kept[slot] = self._kept[slot], score
            del self._sorted[bisect.bisect_left(self._sorted, old)]
        bisect.insort(self._sorted, score)

    def _tie_defers_locked(self, threshold: float) -> bool:
        """For a score equal to the threshold: defer with the probability that meets the rate."""
        n = len(self._sorted)
        k = int(round(self.deferral_rate * n))
        below = bisect.bisect_left(self._sorted, threshold)
        equal = bisect.bisect_right(self._sorted, threshold) - below
        if equal <= 0 or k <= below:
            return False
        return self._rng.random() < (k - below) / equal

    def decide(self, score: float) -> tuple[bool, float]:
        score = float(score)
        if math.isnan(score):
            raise ConfigurationError("score is NaN")
        with self._lock:
            self._record_locked(score)
            threshold = self._threshold_locked()
            if score < threshold:
                return True, threshold
            if score == threshold and len(self._sorted) >= self.warmup:
                return self._tie_defers_locked(threshold), threshold
        return False, threshold

    def reset(self) -> None:
        """Forget all recorded scores."""
        with self._lock:
            self._sorted.clear()
            self._kept.clear()
            self._seen = 0
            self._rng = random.Random(self.seed)

    def __repr__(self) -> str:
        return (
            f"DynamicBudgetThreshold(deferral_rate={self.deferral_rate:.3f}, warmup={self.warmup}, "
            f"initial_threshold={self.initial_threshold}, seen={self._seen})"
        )
