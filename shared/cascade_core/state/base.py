"""What a threshold policy and a drift monitor remember, behind one small protocol.

A :class:`StateStore` hands out named windows:

- a :class:`ScoreWindow` — the recent scores a
  :class:`~cascade_core.decide.thresholds.DynamicBudgetThreshold` takes its quantile over, with the
  count of scores seen (its warm-up);
- an :class:`OutcomeWindow` — the recent outcomes a :class:`~cascade_core.observe.monitor.DriftMonitor`
  judges (deferred or not; kept answer right or not, with its score), as the window's length and sums.

Each window answers a write with the state *after* it, in one step, so a store shared by many
processes (:class:`~cascade_core.state.redis_store.RedisStore`) can do push + trim + quantile
atomically in one round trip. :class:`~cascade_core.state.memory.InMemoryStore` is the default:
each process keeps its own history, as before.

Example:
    >>> from cascade_core.state import InMemoryStore
    >>> window = InMemoryStore().score_window("threshold.0", rate=0.5, size=4)
    >>> [window.record(s).threshold for s in (0.9, 0.1, 0.5)]
    [-inf, 0.9, 0.9]
    >>> window.peek().n, window.peek().seen
    (3, 3)
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = ["OutcomeTotals", "OutcomeWindow", "ScoreWindow", "StateStore", "WindowQuantile", "quantile_index"]


def quantile_index(rate: float, n: int) -> int:
    """Rank of the threshold in a sorted window of ``n`` scores: ``round(rate * n)`` (half to even).

    A store that computes the quantile elsewhere (the Redis store's Lua script) uses the same rule.

    >>> quantile_index(0.25, 10), quantile_index(0.25, 6)
    (2, 2)
    """
    return int(round(rate * n))


@dataclass(frozen=True)
class WindowQuantile:
    """A score window's state after a write (or at a peek).

    Attributes:
        n: Scores in the window now.
        seen: Scores recorded since the window was created or cleared (the warm-up counts these).
        threshold: The window's ``rate``-quantile: the score at rank ``round(rate * n)``; ``-inf``
            when that rank is 0 (nothing defers), ``inf`` when it is ``n`` (everything defers).
        below: Scores in the window strictly below ``threshold``.
        equal: Scores in the window equal to ``threshold``.
        shared: True when this state came from a shared store, False when from this process alone
            (the in-memory store, or the local fallback of an unreachable shared one).
    """

    n: int
    seen: int
    threshold: float
    below: int
    equal: int
    shared: bool = False

    @classmethod
    def empty(cls, *, shared: bool = False) -> WindowQuantile:
        """The state of a window that has seen nothing."""
        return cls(0, 0, -math.inf, 0, 0, shared)


@dataclass(frozen=True)
class OutcomeTotals:
    """An outcome window's length and the sum of each field over it (``shared`` as in :class:`WindowQuantile`)."""

    n: int
    sums: tuple[float, ...]
    shared: bool = False


@runtime_checkable
class ScoreWindow(Protocol):
    """The recent scores of one threshold policy, with the quantile it defers below."""

    def record(self, score: float) -> WindowQuantile:
        """Add ``score`` (dropping the oldest past the window's size); the state after it."""
        ...

    def peek(self) -> WindowQuantile:
        """The latest known state, without recording (and without waiting on a remote store)."""
        ...

    def clear(self) -> None:
        """Forget every score."""
        ...


@runtime_checkable
class OutcomeWindow(Protocol):
    """The last ``size`` outcomes (tuples of numbers of a fixed width) and their sums."""

    def append(self, values: tuple[float, ...]) -> OutcomeTotals:
        """Add one outcome; the window's totals after it."""
        ...

    def totals(self) -> OutcomeTotals:
        """The window's current totals."""
        ...

    def clear(self) -> None:
        """Forget every outcome."""
        ...


@runtime_checkable
class StateStore(Protocol):
    """Where policies and monitors keep their windows: in this process, or shared across processes.

    ``name`` tells windows of one cascade apart (``threshold.0`` for the rule after tier 0,
    ``drift.deferred`` …); a shared store prefixes it with its own key.
    """

    def score_window(
        self, name: str, *, rate: float, size: int, reservoir: bool = False, rng: random.Random | None = None
    ) -> ScoreWindow:
        """A window of the last ``size`` scores (``reservoir=True``: a uniform sample of ``size`` of all scores
        seen, where the store supports it) whose threshold is its ``rate``-quantile."""
        ...

    def outcome_window(self, name: str, *, size: int, width: int) -> OutcomeWindow:
        """A window of the last ``size`` outcomes of ``width`` numbers each."""
        ...
