"""The in-memory state store: each process keeps its own windows (the default).

Example:
    >>> from cascade_core.state import InMemoryStore
    >>> outcomes = InMemoryStore().outcome_window("drift.deferred", size=3, width=1)
    >>> [outcomes.append((d,)).sums for d in (1, 0, 1, 1)]
    [(1.0,), (1.0,), (2.0,), (2.0,)]
"""

from __future__ import annotations

import bisect
import collections
import math
import random
import threading

from cascade_core.errors import ConfigurationError
from cascade_core.state.base import OutcomeTotals, WindowQuantile, quantile_index

__all__ = ["InMemoryOutcomeWindow", "InMemoryScoreWindow", "InMemoryStore"]


def _check_size(size: int, name: str = "size") -> int:
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ConfigurationError(f"{name} must be a positive int, got {size!r}")
    return size


class InMemoryScoreWindow:
    """A sorted window of scores in this process: sliding (the last ``size``) or a reservoir.

    With ``reservoir=True`` it keeps a uniform sample of at most ``size`` of all scores seen
    (Vitter's algorithm R: exact until ``size`` scores, an unbiased sample after). ``record`` is
    O(``size``) at worst (a list insert); thread-safe.

    Example:
        >>> window = InMemoryScoreWindow(rate=0.5, size=2)
        >>> [window.record(s).threshold for s in (3.0, 1.0, 2.0)]
        [-inf, 3.0, 2.0]
    """

    def __init__(self, *, rate: float, size: int, reservoir: bool = False, rng: random.Random | None = None) -> None:
        self.rate = float(rate)
        self.size = _check_size(size)
        self.reservoir = bool(reservoir)
        self._rng = rng if rng is not None else random.Random(0)
        self._lock = threading.Lock()
        self._sorted: list[float] = []
        self._kept: collections.deque[float] | list[float] = [] if reservoir else collections.deque()
        self._seen = 0

    def __repr__(self) -> str:
        kind = "reservoir" if self.reservoir else "sliding"
        return f"InMemoryScoreWindow(rate={self.rate:g}, size={self.size}, {kind}, seen={self._seen})"

    def record(self, score: float) -> WindowQuantile:
        with self._lock:
            self._record_locked(float(score))
            return self._view_locked()

    def peek(self) -> WindowQuantile:
        with self._lock:
            return self._view_locked()

    def clear(self) -> None:
        with self._lock:
            self._sorted.clear()
            self._kept.clear()
            self._seen = 0

    def scores(self) -> list[float]:
        """The scores in the window, sorted (for inspection)."""
        with self._lock:
            return list(self._sorted)

    def _record_locked(self, score: float) -> None:
        self._seen += 1
        if not self.reservoir:  # sliding window: drop the oldest
            kept = self._kept
            assert isinstance(kept, collections.deque)
            kept.append(score)
            if len(kept) > self.size:
                old = kept.popleft()
                del self._sorted[bisect.bisect_left(self._sorted, old)]
        elif len(self._kept) < self.size:  # reservoir still filling: keep everything
            self._kept.append(score)
        else:  # keep with probability size / seen
            slot = self._rng.randrange(self._seen)
            if slot >= self.size:
                return
            old, self._kept[slot] = self._kept[slot], score
            del self._sorted[bisect.bisect_left(self._sorted, old)]
        bisect.insort(self._sorted, score)

    def _view_locked(self) -> WindowQuantile:
        n = len(self._sorted)
        k = quantile_index(self.rate, n)
        if k <= 0:
            threshold = -math.inf
        elif k >= n:
            threshold = math.inf
        else:
            threshold = self._sorted[k]
        below = bisect.bisect_left(self._sorted, threshold)
        equal = bisect.bisect_right(self._sorted, threshold) - below
        return WindowQuantile(n, self._seen, threshold, below, equal, shared=False)


class InMemoryOutcomeWindow:
    """The last ``size`` outcomes of ``width`` numbers each, with their sums; thread-safe.

    Example:
        >>> window = InMemoryOutcomeWindow(size=2, width=2)
        >>> window.append((1, 0.8)); window.append((0, 0.6)).sums
        OutcomeTotals(n=1, sums=(1.0, 0.8), shared=False)
        (1.0, 1.4)
    """

    def __init__(self, *, size: int, width: int) -> None:
        self.size = _check_size(size)
        self.width = _check_size(width, "width")
        self._lock = threading.Lock()
        self._items: collections.deque[tuple[float, ...]] = collections.deque(maxlen=size)

    def __repr__(self) -> str:
        return f"InMemoryOutcomeWindow(size={self.size}, width={self.width}, n={len(self._items)})"

    def append(self, values: tuple[float, ...]) -> OutcomeTotals:
        item = tuple(float(v) for v in values)
        if len(item) != self.width:
            raise ConfigurationError(f"an outcome has {self.width} numbers, got {len(item)}")
        with self._lock:
            self._items.append(item)
            return self._totals_locked()

    def totals(self) -> OutcomeTotals:
        with self._lock:
            return self._totals_locked()

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def _totals_locked(self) -> OutcomeTotals:
        sums = tuple(float(sum(item[i] for item in self._items)) for i in range(self.width))
        return OutcomeTotals(len(self._items), sums, shared=False)


class InMemoryStore:
    """Windows kept in this process's memory: today's behaviour, and the default.

    Every call returns a new, independent window (the store keeps no registry), so two cascades
    built with the default store never share history.

    Example:
        >>> store = InMemoryStore()
        >>> store.score_window("threshold.0", rate=0.2, size=100).record(0.4).n
        1
    """

    def __repr__(self) -> str:
        return "InMemoryStore()"

    def score_window(
        self, name: str, *, rate: float, size: int, reservoir: bool = False, rng: random.Random | None = None
    ) -> InMemoryScoreWindow:
        return InMemoryScoreWindow(rate=rate, size=size, reservoir=reservoir, rng=rng)

    def outcome_window(self, name: str, *, size: int, width: int) -> InMemoryOutcomeWindow:
        return InMemoryOutcomeWindow(size=size, width=width)
