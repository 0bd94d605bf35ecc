"""Per-tier timeouts and the per-call deadline, applied by the drivers to every model call.

The plan (:mod:`cascade_core.engine.machine`) stays free of clocks: the drivers wrap each effect
that waits on a model (open a stream, pull a step or chunk, ask for a completion) in a
:class:`SyncLimits` / :class:`AsyncLimits` call bounded by ``min(tier timeout, time left before
the deadline)``.

- A tier that stays silent past its timeout raises :class:`~cascade_core.errors.TierTimeoutError`
  into the plan: a small tier defers (``on_small_error="defer"``), the large tier fails (see
  ``on_large_error``).
- Past the deadline the driver raises :class:`~cascade_core.errors.DeadlineExceededError` itself,
  so no further tier is called.

Blocking calls cannot be interrupted in Python, so the synchronous driver runs them in a worker
thread and stops waiting; a call it gave up on finishes in the background (the backend's own
client timeout ends it) and its stream is closed as soon as it returns, never concurrently.

Example:
    >>> limits = SyncLimits(tier_timeouts=(1.0, 5.0), deadline=None)
    >>> limits.call(0, sum, [1, 2])
    3
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import math
import queue
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, TypeVar

from cascade_core.errors import ConfigurationError, DeadlineExceededError, TierTimeoutError

__all__ = ["AsyncLimits", "SyncLimits", "check_timeout"]

logger = logging.getLogger(__name__)

T = TypeVar("T")


def check_timeout(value: float | None, name: str) -> float | None:
    """Validate a timeout: ``None`` (no limit) or a positive, finite number of seconds."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value) or value <= 0 or math.isinf(value):
        raise ConfigurationError(f"{name} must be a positive number of seconds or None, got {value!r}")
    return float(value)


class _Clock:
    def __init__(self, tier_timeouts: Sequence[float | None], deadline: float | None) -> None:
        self.tier_timeouts = tuple(tier_timeouts)
        self.deadline = deadline
        self.end = None if deadline is None else time.monotonic() + deadline

    def limit(self, tier: int) -> tuple[float | None, bool]:
        """Seconds this call may wait (None = unbounded) and whether the deadline is what binds."""
        tier_limit = self.tier_timeouts[tier]
        if self.end is None:
            return tier_limit, False
        left = self.end - time.monotonic()
        if left <= 0:
            raise DeadlineExceededError(f"the call's deadline of {self.deadline:g} s has passed; no further tier is called")
        if tier_limit is None or left < tier_limit:
            return left, True
        return tier_limit, False

    def expired(self, tier: int, by_deadline: bool) -> Exception:
        if by_deadline:
            return DeadlineExceededError(f"the call's deadline of {self.deadline:g} s passed while waiting on tier {tier}")
        return TierTimeoutError(f"tier {tier} sent nothing within its timeout of {self.tier_timeouts[tier]:g} s")


def _close_quietly(stream: Any) -> None:
    close = getattr(stream, "close", None)
    if close is None:
        return
    try:
        close()
    except Exception as err:  # closing an abandoned stream is best effort
        logger.debug("closing an abandoned stream failed: %s", err)


class _Worker:
    """One daemon thread running submitted calls in order.

    A daemon, unlike a ``ThreadPoolExecutor`` worker, so a call the driver gave up on (a model
    client with no timeout of its own, stuck forever) cannot keep the interpreter from exiting.
    Idle workers are kept for the next call (:func:`_take_worker` / :func:`_return_worker`): starting
    a thread per call was most of a kept call's cost with a scripted tier (~0.4 ms of ~0.5 ms).
    """

    def __init__(self) -> None:
        self._tasks: queue.SimpleQueue[tuple[Future[Any], Callable[..., Any], tuple[Any, ...]] | None] = queue.SimpleQueue()
        threading.Thread(target=self._run, name="cascade-call", daemon=True).start()

    def _run(self) -> None:
        while (task := self._tasks.get()) is not None:
            future, fn, args = task
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn(*args))
            except BaseException as err:  # handed to the waiting driver
                future.set_exception(err)

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        future: Future[Any] = Future()
        self._tasks.put((future, fn, args))
        return future

    def stop(self) -> None:
        self._tasks.put(None)


_IDLE: list[_Worker] = []
_IDLE_LOCK = threading.Lock()
_MAX_IDLE = 32  # workers kept for reuse (one per concurrently running synchronous call)


def _take_worker() -> _Worker:
    with _IDLE_LOCK:
        if _IDLE:
            return _IDLE.pop()
    return _Worker()


def _return_worker(worker: _Worker) -> None:
    """Keep an idle worker (no call of its own still running) for the next call, or stop it."""
    with _IDLE_LOCK:
        if len(_IDLE) < _MAX_IDLE:
            _IDLE.append(worker)
            return
    worker.stop()


class SyncLimits:
    """Runs blocking model calls under the timeouts (in a worker thread when any limit is set)."""

    def __init__(self, tier_timeouts: Sequence[float | None], deadline: float | None) -> None:
        self.clock = _Clock(tier_timeouts, deadline)
        self._bounded = deadline is not None or any(t is not None for t in tier_timeouts)
        self._worker: _Worker | None = None
        self._abandoned: dict[int, Future[Any]] = {}

    def call(self, tier: int, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)``, or a timeout error once the tier's timeout or the deadline passes."""
        if not self._bounded:
            return fn(*args)
        timeout, by_deadline = self.clock.limit(tier)
        if self._worker is None:
            self._worker = _take_worker()
        future = self._worker.submit(contextvars.copy_context().run, fn, *args)
        try:
            return future.result(timeout)
        except FutureTimeout:
            self._abandon(tier, future)
            raise self.clock.expired(tier, by_deadline) from None
        except BaseException:  # KeyboardInterrupt while waiting: same, the call may still be running
            if not future.done():
                self._abandon(tier, future)
            raise

    def _abandon(self, tier: int, future: Future[Any]) -> None:
        if not future.cancel() and self._worker is not None:  # running: let it finish on its own thread
            self._abandoned[tier] = future
            self._worker.stop()
            self._worker = None

    def close(self, tier: int, stream: Any) -> None:
        """Close a tier's stream now, or right after the call still running on it returns."""
        if stream is None:
            return
        pending = self._abandoned.pop(tier, None)
        if pending is not None and not pending.done():
            pending.add_done_callback(lambda _: _close_quietly(stream))
        else:
            _close_quietly(stream)

    def shutdown(self) -> None:
        if self._worker is not None:  # its last call has returned (an abandoned worker was already stopped)
            _return_worker(self._worker)
            self._worker = None


class AsyncLimits:
    """Awaits model calls under the timeouts (``asyncio.timeout``)."""

    def __init__(self, tier_timeouts: Sequence[float | None], deadline: float | None) -> None:
        self.clock = _Clock(tier_timeouts, deadline)

    async def call(self, tier: int, awaitable: Awaitable[T]) -> T:
        try:
            timeout, by_deadline = self.clock.limit(tier)
        except DeadlineExceededError:
            if asyncio.iscoroutine(awaitable):
                awaitable.close()
            raise
        if timeout is None:
            return await awaitable
        scope = asyncio.timeout(timeout)
        try:
            async with scope:
                return await awaitable
        except TimeoutError:
            if not scope.expired():
                raise  # the model's own timeout error, not ours
            raise self.clock.expired(tier, by_deadline) from None
