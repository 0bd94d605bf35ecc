"""Watch a running plan without changing it: tracing and monitoring hook in here.

:func:`observe` wraps the sans-I/O :func:`~cascade_core.engine.machine.plan` generator in another
generator that passes every effect, result and error through unchanged and tells each
:class:`PlanObserver` about them. The drivers cannot tell the difference, so one observer serves
sync, async, streaming and batch calls alike.
"""

from __future__ import annotations

import logging
from collections.abc import Generator, Sequence
from typing import Any, Protocol

from cascade_core.engine.machine import Effect
from cascade_core.engine.result import CascadeResult

__all__ = ["PlanObserver", "observe"]

logger = logging.getLogger(__name__)


class PlanObserver(Protocol):
    """Told what a plan does; must not raise (a failing observer is logged and ignored)."""

    def on_effect(self, effect: Effect) -> None:
        """An effect the plan is about to hand to the driver (an ``Emit`` may carry the result)."""
        ...

    def on_effect_error(self, effect: Effect, error: BaseException) -> None:
        """Carrying out ``effect`` failed with ``error`` (the plan is told and may recover)."""
        ...

    def on_finish(self, result: CascadeResult | None, error: BaseException | None) -> None:
        """The plan ended: with a result, with an error, or (both None) closed early by its caller."""
        ...


def _notify(observers: Sequence[PlanObserver], method: str, *args: Any) -> None:
    for observer in observers:
        try:
            getattr(observer, method)(*args)
        except Exception:  # observability must never break a call
            logger.exception("plan observer %r failed in %s", observer, method)


def observe(machine: Generator[Effect, Any, CascadeResult], observers: Sequence[PlanObserver]
            ) -> Generator[Effect, Any, CascadeResult]:
    """``machine`` as seen by the drivers, with ``observers`` told about everything it does."""
    if not observers:
        return machine
    return _observed(machine, tuple(observers))


def _observed(machine: Generator[Effect, Any, CascadeResult], observers: tuple[PlanObserver, ...]
              ) -> Generator[Effect, Any, CascadeResult]:
    value: Any = None
    error: BaseException | None = None
    try:
        while True:
            try:
                effect = machine.throw(error) if error is not None else machine.send(value)
            except StopIteration as stop:
                _notify(observers, "on_finish", stop.value, None)
                return stop.value
            _notify(observers, "on_effect", effect)
            try:
                value, error = (yield effect), None
            except GeneratorExit:
                raise
            except BaseException as err:  # the driver's effect failed: tell, then hand it to the plan
                _notify(observers, "on_effect_error", effect, err)
                value, error = None, err
    except GeneratorExit:
        machine.close()
        _notify(observers, "on_finish", None, None)
        raise
    except BaseException as err:
        _notify(observers, "on_finish", None, err)
        raise
