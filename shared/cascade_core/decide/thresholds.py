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

import math
import random
import threading
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import ArrayLike

from cascade_core.errors import ConfigurationError
from cascade_core.state.base import ScoreWindow, StateStore, WindowQuantile

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

    Where the scores live is a :class:`~cascade_core.state.StateStore` (``store=``): in this
    process by default; ``store="redis://host:6379/0?key=my-cascade"`` shares one window (and one
    warm-up) with every process naming the same server and key, so a fleet of replicas enforces one
    budget. A shared window always slides (``window``, or ``capacity`` scores when ``window=None``);
    each decision waits on the store at most its stated timeout, then uses this process's own copy.

    Thread- and asyncio-safe: ``decide`` does no I/O with the in-memory store; its cost is
    O(``capacity``) at worst (a list insert), independent of how many scores were seen.

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
        store: StateStore | str | None = None,
        store_name: str = "threshold",
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
        self.attach_store(store, store_name)

    def attach_store(self, store: StateStore | str | None, name: str = "threshold") -> None:
        """Keep the scores in ``store`` under ``name`` from now on (the cascade calls this for ``threshold_store=``).

        Scores recorded before are not carried over.
        """
        from cascade_core.state import resolve_store

        self.store = resolve_store(store, "store")
        self.store_name = name
        self._window: ScoreWindow = self.store.score_window(
            name, rate=self.deferral_rate, size=self.capacity, reservoir=self.window is None, rng=self._rng)

    @property
    def n_seen(self) -> int:
        """How many scores have been recorded (by every process sharing the store)."""
        return self._window.peek().seen

    @property
    def current_threshold(self) -> float:
        """The threshold of the latest known window (never waits on a shared store)."""
        return self._threshold(self._window.peek())

    def _threshold(self, view: WindowQuantile) -> float:
        return self.initial_threshold if view.n < self.warmup else view.threshold

    def _tie_defers(self, view: WindowQuantile) -> bool:
        """For a score equal to the threshold: defer with the probability that meets the rate."""
        k = int(round(self.deferral_rate * view.n))
        if view.equal <= 0 or k <= view.below:
            return False
        with self._lock:
            return self._rng.random() < (k - view.below) / view.equal

    def decide(self, score: float) -> tuple[bool, float]:
        score = float(score)
        if math.isnan(score):
            raise ConfigurationError("score is NaN")
        view = self._window.record(score)
        threshold = self._threshold(view)
        if score < threshold:
            return True, threshold
        if score == threshold and view.n >= self.warmup:
            return self._tie_defers(view), threshold
        return False, threshold

    def reset(self) -> None:
        """Forget all recorded scores (in the store too: a shared window is cleared for every process)."""
        self._window.clear()
        with self._lock:
            self._rng.seed(self.seed)

    def __repr__(self) -> str:
        return (
            f"DynamicBudgetThreshold(deferral_rate={self.deferral_rate:.3f}, warmup={self.warmup}, "
            f"initial_threshold={self.initial_threshold}, seen={self.n_seen})"
        )
