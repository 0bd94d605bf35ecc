"""Drift monitor: deferral-rate and kept-accuracy alarms over a sliding window."""

from __future__ import annotations

import asyncio
import logging

import numpy as np
import pytest

from cascade_core import Cascade, ConfigurationError, ThresholdRule
from cascade_core.decide.probability import CalibratedScorer, ProbabilityMap
from cascade_core.observe.monitor import DriftMonitor, DriftStatus, wilson_interval
from cascade_core.testing import ScriptedModel


def _stream(n_before, n_after, seed=0):
    """First-token confidences: ~30 % of the first part is below the margin threshold; after the
    shift ~70 % is (the queries got harder for the small model)."""
    rng = np.random.default_rng(seed)
    before = np.where(rng.uniform(size=n_before) < 0.3, 0.35, 0.9)
    after = np.where(rng.uniform(size=n_after) < 0.7, 0.35, 0.9)
    return [float(c) for c in np.concatenate([before, after])]


def _cascade(confidences, monitor, rule=None):
    small = ScriptedModel("Paris", confidence=confidences, name="small")
    return Cascade([small, ScriptedModel("Paris, France", name="large")],
                   rules=rule or ThresholdRule("margin", 0.5), monitor=monitor)


def test_alarm_fires_once_when_the_score_distribution_shifts(caplog):
    alarms: list[DriftStatus] = []
    monitor = DriftMonitor(0.3, window=100, min_samples=50, confidence=0.95, on_alarm=alarms.append)
    cascade = _cascade(_stream(300, 200), monitor)
    with caplog.at_level(logging.WARNING, logger="cascade_core.observe.monitor"):
        results = [cascade.invoke("q") for _ in range(500)]
    before = [r.metadata["drift"]["alarm"] for r in results[:300]]
    assert not any(before)  # in distribution: no false alarm (95 % interval, 100-call window)
    first = next(i for i, r in enumerate(results) if r.metadata["drift"]["alarm"])
    assert 300 < first < 360  # noticed within a few dozen calls of the shift
    assert len(alarms) == 1 and alarms[0].deferral_drift and alarms[0].deferral_interval[0] > 0.3
    assert results[-1].metadata["drift"]["deferral_rate"] == pytest.approx(monitor.status().deferral_rate)
    assert 0.6 < monitor.status().deferral_rate < 0.8
    assert sum("cascade drift" in r.message for r in caplog.records) == 1


def test_no_alarm_before_min_samples_and_after_reset():
    monitor = DriftMonitor(0.0, window=20, min_samples=10)
    cascade = _cascade([0.35], monitor)  # everything defers
    statuses = [cascade.invoke("q").metadata["drift"] for _ in range(12)]
    assert not any(s["alarm"] for s in statuses[:9]) and statuses[-1]["alarm"]
    monitor.reset()
    assert monitor.status().n == 0 and not monitor.status().alarm


def test_calls_that_skip_the_rule_are_not_counted():
    monitor = DriftMonitor(0.5, window=20, min_samples=5)
    cascade = Cascade([ScriptedModel("a", fail=True), ScriptedModel("b")], monitor=monitor)
    result = cascade.invoke("q")
    assert result.tier == 1 and monitor.status().n == 0 and result.metadata["drift"]["n"] == 0


def test_kept_accuracy_drift_against_calibrated_probabilities():
    pmap = ProbabilityMap((0.0, 1.0), (0.5, 0.9), signal="margin")
    rule = ThresholdRule(CalibratedScorer("margin", pmap), threshold=0.6)
    monitor = DriftMonitor(0.0, window=60, min_samples=30, target_accuracy="calibrated")
    cascade = _cascade([0.95], monitor, rule)  # margin 0.91 -> P(correct) ~0.86, always kept
    rng = np.random.default_rng(1)
    for _ in range(60):  # feedback matches the stated probability
        monitor.record_feedback(cascade.invoke("q"), bool(rng.uniform() < 0.86))
    assert not monitor.status().accuracy_drift
    assert monitor.status().target_accuracy == pytest.approx(0.5 + 0.4 * (0.95 - 0.04), abs=1e-6)
    for _ in range(60):  # the small model got worse on this traffic
        status = monitor.record_feedback(cascade.invoke("q"), bool(rng.uniform() < 0.5))
    assert status.accuracy_drift and status.alarm and status.kept_accuracy < 0.7


def test_feedback_on_deferred_answers_is_ignored_and_bad_feedback_rejected():
    monitor = DriftMonitor(0.5, target_accuracy=0.9)
    result = _cascade([0.35], monitor).invoke("q")
    assert monitor.record_feedback(result, True).feedback_n == 0
    with pytest.raises(ConfigurationError, match="correct must be True/False"):
        monitor.record_feedback(result, "yes")


def test_monitor_is_thread_and_asyncio_safe():
    monitor = DriftMonitor(0.5, window=1000, min_samples=10)
    cascade = _cascade([0.35, 0.9], monitor)
    cascade.batch(["q"] * 200, max_concurrency=8)
    asyncio.run(cascade.abatch(["q"] * 200, max_concurrency=8))
    status = monitor.status()
    assert status.n == 400 and status.deferral_rate == pytest.approx(0.5)
    assert not status.alarm


def test_failing_alarm_callback_does_not_fail_the_call():
    def boom(status):
        raise RuntimeError("callback bug")

    monitor = DriftMonitor(0.0, window=5, min_samples=1, on_alarm=boom)
    assert _cascade([0.35], monitor).invoke("q").tier == 1 and monitor.status().alarm


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"target_deferral_rate": 1.5}, "target_deferral_rate"), ({"target_deferral_rate": 0.3, "window": 0}, "window"),
     ({"target_deferral_rate": 0.3, "window": 10, "min_samples": 20}, "min_samples"),
     ({"target_deferral_rate": 0.3, "confidence": 1.0}, "confidence"),
     ({"target_deferral_rate": 0.3, "target_accuracy": "high"}, "target_accuracy"),
     ({"target_deferral_rate": 0.3, "on_alarm": 3}, "on_alarm")],
)
def test_bad_monitor_settings_fail_at_construction(kwargs, message):
    with pytest.raises(ConfigurationError, match=message):
        DriftMonitor(**kwargs)


def test_cascade_rejects_a_non_monitor():
    with pytest.raises(ConfigurationError, match="monitor must be"):
        Cascade([ScriptedModel("a"), ScriptedModel("b")], monitor=object())


@pytest.mark.parametrize(("k", "n", "confidence"), [(30, 100, 0.95), (0, 50, 0.99), (50, 50, 0.9), (7, 500, 0.95)])
def test_wilson_interval_matches_scipy(k, n, confidence):
    from scipy.stats import binomtest

    ci = binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    assert wilson_interval(k, n, confidence) == pytest.approx((ci.low, ci.high), abs=1e-9)


def test_wilson_interval_matches_the_formula():
    lo, hi = wilson_interval(30, 100, 0.95)
    z, p, n = 1.959964, 0.3, 100
    center = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    assert (lo, hi) == pytest.approx((center - half, center + half), abs=1e-5)
    assert wilson_interval(0, 0) == (0.0, 1.0)
