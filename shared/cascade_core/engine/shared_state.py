"""Point a cascade's stateful parts — dynamic thresholds, the drift monitor — at one state store.

A part takes part when it has an ``attach_store(store, name)`` method (a declared capability, not
a type check): :class:`~cascade_core.decide.thresholds.DynamicBudgetThreshold` and
:class:`~cascade_core.observe.monitor.DriftMonitor` do. Names are fixed per position
(``threshold.0`` for the rule after tier 0, ``drift`` for the monitor), so every replica of the
same cascade meets the same keys.

Example:
    >>> from cascade_core import ThresholdRule
    >>> from cascade_core.decide.thresholds import DynamicBudgetThreshold
    >>> from cascade_core.state import InMemoryStore
    >>> rule = ThresholdRule("margin", DynamicBudgetThreshold(deferral_rate=0.3))
    >>> share_state(InMemoryStore(), [rule], None), rule.policy.store_name
    (InMemoryStore(), 'threshold.0')
    >>> share_state(InMemoryStore(), [ThresholdRule("margin", 0.3)], None)
    Traceback (most recent call last):
    ...
    cascade_core.errors.ConfigurationError: threshold_store: nothing to share: no rule has a dynamic threshold (DynamicBudgetThreshold) and no DriftMonitor is set
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cascade_core.errors import ConfigurationError
from cascade_core.state import resolve_store
from cascade_core.state.base import StateStore

__all__ = ["share_state"]


def share_state(store: StateStore | str, rules: Sequence[Any], monitor: Any) -> StateStore:
    """Attach ``store`` to every rule policy and monitor that keeps state; the resolved store.

    Raises:
        ConfigurationError: ``store`` is not a URL or a store, or nothing in the cascade keeps state.
    """
    resolved = resolve_store(store)
    attached = False
    seen: set[int] = set()
    for index, rule in enumerate(rules):
        policy = getattr(rule, "policy", None)
        if callable(getattr(policy, "attach_store", None)) and id(policy) not in seen:
            seen.add(id(policy))  # one rule (and policy) used after every tier keeps one window
            policy.attach_store(resolved, f"threshold.{index}")  # type: ignore[union-attr]
            attached = True
    if monitor is not None and callable(getattr(monitor, "attach_store", None)):
        monitor.attach_store(resolved, "drift")
        attached = True
    if not attached:
        raise ConfigurationError(
            "threshold_store: nothing to share: no rule has a dynamic threshold (DynamicBudgetThreshold) "
            "and no DriftMonitor is set"
        )
    return resolved
