"""Where threshold policies and drift monitors keep their windows: this process, or a shared Redis server.

``Cascade(..., threshold_store="redis://127.0.0.1:6379/0?key=my-cascade")`` (and the same
parameter on ``ChatCascade``, ``CascadeLLM`` and in a ``cascade serve`` config) makes every
process with that URL and key enforce one budget and watch one drift window. See docs/serve.md
("Sharing state across replicas").

Example:
    >>> resolve_store(None)
    InMemoryStore()
    >>> resolve_store("redis://127.0.0.1:6379/0?key=my-cascade")
    RedisStore('redis://127.0.0.1:6379/0', key='my-cascade', timeout_s=0.05)
    >>> resolve_store(42)
    Traceback (most recent call last):
    ...
    cascade_core.errors.ConfigurationError: threshold_store must be a redis:// URL or a StateStore (score_window, outcome_window), got int
"""

from __future__ import annotations

from typing import Any

from cascade_core.errors import ConfigurationError
from cascade_core.state.base import OutcomeTotals, OutcomeWindow, ScoreWindow, StateStore, WindowQuantile
from cascade_core.state.memory import InMemoryStore

__all__ = [
    "InMemoryStore",
    "OutcomeTotals",
    "OutcomeWindow",
    "RedisStore",
    "ScoreWindow",
    "StateStore",
    "WindowQuantile",
    "resolve_store",
]


def __getattr__(name: str) -> Any:
    if name == "RedisStore":  # imported on use: the redis client is an optional extra
        from cascade_core.state.redis_store import RedisStore

        return RedisStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def resolve_store(value: Any, name: str = "threshold_store") -> StateStore:
    """A :class:`StateStore` from ``None`` (in memory), a ``redis://`` URL, or a store object."""
    if value is None:
        return InMemoryStore()
    if isinstance(value, str):
        from cascade_core.state.redis_store import RedisStore

        return RedisStore(value)
    if isinstance(value, StateStore):
        return value
    raise ConfigurationError(
        f"{name} must be a redis:// URL or a StateStore (score_window, outcome_window), got {type(value).__name__}"
    )
