"""Drift monitor: notice when a calibrated cascade stops behaving as it did on the calibration sample.

A threshold calibrated to defer 30 % of queries defers about 30 % of *similar* queries. When the
traffic changes (new topics, a new prompt template, a new small-model version) the score
distribution shifts and so does the deferral rate — silently, unless someone watches it.
:class:`DriftMonitor` watches it: over a sliding window of recent calls it computes the observed
deferral rate with a Wilson confidence interval and raises an alarm when
the calibrated target falls outside it. Where answers get labels or user feedback
(:meth:`DriftMonitor.record_feedback`), it does the same for the accuracy of kept small answers.

On entering the alarm state it logs a warning and calls ``on_alarm(status)``; every result of a
monitored cascade carries the current :class:`DriftStatus` in ``result.metadata["drift"]``.
Thread- and asyncio-safe (one lock, never held while user code runs).

Example:
    >>> from cascade_core import Cascade, ThresholdRule
    >>> from cascade_core.testing import ScriptedModel
    >>> monitor = DriftMonitor(target_deferral_rate=0.5, window=50, min_samples=20)
    >>> cascade = Cascade([ScriptedModel("a", confidence=0.2), ScriptedModel("b")],
    ...                   rules=ThresholdRule("margin", 0.5), monitor=monitor)
    >>> results = [cascade.invoke("q") for _ in range(30)]      # everything defers: 100 % vs 50 %
    >>> results[-1].metadata["drift"]["alarm"], monitor.status().deferral_rate
    (True, 1.0)
"""

from __future__ import annotations

import functools
import logging
import math
import statistics
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from cascade_core.engine.machine import Effect, Emit
from cascade_core.engine.result import CascadeResult
from cascade_core.errors import ConfigurationError
from cascade_core.state.base import OutcomeTotals, StateStore

__all__ = ["DriftMonitor", "DriftStatus", "wilson_interval"]

logger = logging.getLogger(__name__)


@functools.lru_cache(maxsize=32)
def _z(confidence: float) -> float:
    """The two-sided normal quantile for ``confidence`` (the standard library's, no SciPy needed)."""
    return statistics.NormalDist().inv_cdf(0.5 + confidence / 2.0)


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (Wilson, 1927), the interval scipy's
    ``binomtest(k, n).proportion_ci(method="wilson")`` gives, in closed form (it runs on every call).

    >>> [round(v, 3) for v in wilson_interval(30, 100)]
    [0.219, 0.396]
    """
    if n <= 0:
        return (0.0, 1.0)
    z = _z(confidence)
    p = successes / n
    denominator = 1.0 + z * z / n
    center = (p + z * z / (2 * n)) / denominator
    half = z / denominator * math.sqrt(p * (1.0 - p) / n + z * z / (4.0 * n * n))
    return (max(0.0, center - half), min(1.0, center + half))


@dataclass(frozen=True)
class DriftStatus:
    """The monitor's view of the recent window.

    Attributes:
        n: Judged calls in the window.
        deferral_rate: Observed deferral rate over them (NaN when ``n == 0``).
        deferral_interval: Its Wilson confidence interval.
        target_deferral_rate: The calibrated rate.
        deferral_drift: True when the target is outside the interval (and ``n >= min_samples``).
        feedback_n: Kept answers with feedback in the window.
        kept_accuracy: Their observed accuracy (NaN when none).
        accuracy_interval: Its Wilson confidence interval.
        target_accuracy: The expected accuracy (given, or the mean calibrated P(correct) of those answers).
        accuracy_drift: True when the target is outside the interval (and enough feedback).
    """

    n: int
    deferral_rate: float
    deferral_interval: tuple[float, float]
    target_deferral_rate: float
    deferral_drift: bool
    feedback_n: int = 0
    kept_accuracy: float = math.nan
    accuracy_interval: tuple[float, float] = (0.0, 1.0)
    target_accuracy: float | None = None
    accuracy_drift: bool = False

    @property
    def alarm(self) -> bool:
        """True when either the deferral rate or the kept accuracy has drifted."""
        return self.deferral_drift or self.accuracy_drift

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (what ``result.metadata["drift"]`` holds)."""
        return {
            "n": self.n, "deferral_rate": self.deferral_rate, "deferral_interval": list(self.deferral_interval),
            "target_deferral_rate": self.target_deferral_rate, "deferral_drift": self.deferral_drift,
            "feedback_n": self.feedback_n, "kept_accuracy": self.kept_accuracy,
            "accuracy_interval": list(self.accuracy_interval), "target_accuracy": self.target_accuracy,
            "accuracy_drift": self.accuracy_drift, "alarm": self.alarm,
        }


def _fraction(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ConfigurationError(f"{name} must be a number in [0, 1], got {value!r}")
    return float(value)


class DriftMonitor:
    """Track the deferral rate (and kept-answer accuracy) of a cascade against its calibrated target.

    Args:
        target_deferral_rate: The deferral rate the threshold was calibrated to (in [0, 1]), e.g.
            ``calibrate(...).deferral_rate``.
        window: Number of recent judged calls (and, separately, feedback items) kept.
        confidence: Confidence level of the Wilson intervals, in (0, 1). The window is checked after
            every call, so false alarms are more frequent than ``1 - confidence`` suggests
            (see docs/trust.md); 0.99 by default.
        min_samples: No alarm before this many observations in the window.
        target_accuracy: Expected accuracy of kept small answers: a number in [0, 1];
            ``"calibrated"`` = the mean of their decision scores (a rule on a
            :class:`~cascade_core.decide.probability.CalibratedScorer` scores P(correct)); None = not tracked.
        on_alarm: Called with the :class:`DriftStatus` when the monitor enters the alarm state.
        store: Where the windows live (a :class:`~cascade_core.state.StateStore` or a ``redis://`` URL):
            this process by default; a shared store makes every replica judge the fleet's window.
            Each replica still raises (and logs) its own alarm.

    Only calls whose first tier was judged by its rule count (a score was computed); calls that
    skipped the small tier (error, multimodal, context) say nothing about the score distribution.

    Example:
        >>> DriftMonitor(0.3, window=100).status().n
        0
    """

    def __init__(
        self,
        target_deferral_rate: float,
        *,
        window: int = 500,
        confidence: float = 0.99,
        min_samples: int = 50,
        target_accuracy: float | Literal["calibrated"] | None = None,
        on_alarm: Callable[[DriftStatus], Any] | None = None,
        store: StateStore | str | None = None,
    ) -> None:
        self.target_deferral_rate = _fraction(target_deferral_rate, "target_deferral_rate")
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise ConfigurationError(f"window must be a positive int, got {window!r}")
        if isinstance(min_samples, bool) or not isinstance(min_samples, int) or not 1 <= min_samples <= window:
            raise ConfigurationError(f"min_samples must be an int in [1, window={window}], got {min_samples!r}")
        if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0.0 < confidence < 1.0:
            raise ConfigurationError(f"confidence must be in (0, 1), got {confidence!r}")
        if target_accuracy is not None and target_accuracy != "calibrated":
            target_accuracy = _fraction(target_accuracy, "target_accuracy")
        if on_alarm is not None and not callable(on_alarm):
            raise ConfigurationError(f"on_alarm must be callable, got {on_alarm!r}")
        self.window = window
        self.confidence = float(confidence)
        self.min_samples = min_samples
        self.target_accuracy = target_accuracy
        self.on_alarm = on_alarm
        self._lock = threading.Lock()
        self._alarm = False
        self.attach_store(store)

    def attach_store(self, store: StateStore | str | None, name: str = "drift") -> None:
        """Keep the windows in ``store`` under ``name`` from now on (the cascade calls this for ``threshold_store=``)."""
        from cascade_core.state import resolve_store

        self.store = resolve_store(store, "store")
        self._deferred = self.store.outcome_window(f"{name}.deferred", size=self.window, width=1)
        self._feedback = self.store.outcome_window(f"{name}.feedback", size=self.window, width=2)

    def __repr__(self) -> str:
        return (f"DriftMonitor(target_deferral_rate={self.target_deferral_rate:g}, window={self.window}, "
                f"confidence={self.confidence:g}, target_accuracy={self.target_accuracy!r})")

    # -- observations ----------------------------------------------------------------------------
    def observe(self, result: CascadeResult) -> DriftStatus:
        """Record one call; returns the status (also stored in ``result.metadata["drift"]``)."""
        first = result.decisions[0] if result.decisions else None
        judged = first is not None and first.score is not None and not math.isnan(first.score)
        deferred = self._deferred.append((float(bool(first.defer)),)) if judged else self._deferred.totals()  # type: ignore[union-attr]
        feedback = self._feedback_totals()
        with self._lock:
            status, fire = self._update(deferred, feedback)
        result.metadata["drift"] = status.as_dict()
        self._fire(status, fire)
        return status

    def record_feedback(self, result: CascadeResult, correct: bool | float) -> DriftStatus:
        """Record whether a kept small answer was right (labels or user feedback).

        Feedback on deferred answers is ignored (it says nothing about the small tier's accuracy).
        """
        if isinstance(correct, bool):
            value = correct
        elif isinstance(correct, (int, float)) and correct in (0, 1):
            value = bool(correct)
        else:
            raise ConfigurationError(f"correct must be True/False (or 1/0), got {correct!r}")
        decision = result.decisions[0] if result.decisions else None
        feedback = None
        if result.tier == 0 and decision is not None and decision.score is not None:
            feedback = self._feedback.append((float(value), float(decision.score)))
        deferred = self._deferred.totals()
        with self._lock:
            status, fire = self._update(deferred, feedback)
        self._fire(status, fire)
        return status

    def status(self) -> DriftStatus:
        """The current status of the window."""
        deferred, feedback = self._deferred.totals(), self._feedback_totals()
        with self._lock:
            return self._status(deferred, feedback)

    def reset(self) -> None:
        """Forget every observation (e.g. after re-calibrating; a shared window is cleared for every replica)."""
        self._deferred.clear()
        self._feedback.clear()
        with self._lock:
            self._alarm = False

    # -- plan observer (the cascade calls these) ---------------------------------------------------
    def on_effect(self, effect: Effect) -> None:
        if isinstance(effect, Emit) and effect.chunk.result is not None:
            self.observe(effect.chunk.result)

    def on_effect_error(self, effect: Effect, error: BaseException) -> None:
        pass

    def on_finish(self, result: CascadeResult | None, error: BaseException | None) -> None:
        pass

    def _feedback_totals(self) -> OutcomeTotals | None:
        """The feedback window's totals when accuracy is tracked (read before taking the lock)."""
        return self._feedback.totals() if self.target_accuracy is not None else None

    # -- internals (called with the lock held; no I/O) -----------------------------------------------------
    def _status(self, deferred: OutcomeTotals, feedback: OutcomeTotals | None = None) -> DriftStatus:
        n, k = deferred.n, int(round(deferred.sums[0]))
        interval = wilson_interval(k, n, self.confidence)
        rate = k / n if n else math.nan
        drift = n >= self.min_samples and not interval[0] <= self.target_deferral_rate <= interval[1]
        status = DriftStatus(n, rate, interval, self.target_deferral_rate, drift)
        if self.target_accuracy is None:
            return status
        feedback = feedback if feedback is not None else OutcomeTotals(0, (0.0, 0.0))
        m, right, score_sum = feedback.n, int(round(feedback.sums[0])), feedback.sums[1]
        acc_interval = wilson_interval(right, m, self.confidence)
        if self.target_accuracy == "calibrated":
            target = score_sum / m if m else None
        else:
            target = float(self.target_accuracy)
        acc_drift = m >= self.min_samples and target is not None and not acc_interval[0] <= target <= acc_interval[1]
        return DriftStatus(n, rate, interval, self.target_deferral_rate, drift, m, right / m if m else math.nan,
                           acc_interval, target, acc_drift)

    def _update(self, deferred: OutcomeTotals, feedback: OutcomeTotals | None = None) -> tuple[DriftStatus, bool]:
        status = self._status(deferred, feedback)
        fire = status.alarm and not self._alarm
        if self._alarm and not status.alarm:
            logger.info("cascade drift cleared: deferral rate %.3f (target %.3f)", status.deferral_rate,
                        status.target_deferral_rate)
        self._alarm = status.alarm
        return status, fire

    def _fire(self, status: DriftStatus, fire: bool) -> None:
        if not fire:
            return
        lo, hi = status.deferral_interval
        logger.warning(
            "cascade drift: deferral rate %.3f over the last %d calls (%.0f%% interval [%.3f, %.3f]) vs calibrated "
            "target %.3f; kept-answer accuracy %.3f over %d (target %s)", status.deferral_rate, status.n,
            100 * self.confidence, lo, hi, status.target_deferral_rate, status.kept_accuracy, status.feedback_n,
            "n/a" if status.target_accuracy is None else f"{status.target_accuracy:.3f}",
        )
        if self.on_alarm is not None:
            try:
                self.on_alarm(status)
            except Exception:  # a failing callback must not fail the call it was raised in
                logger.exception("DriftMonitor on_alarm callback failed")
