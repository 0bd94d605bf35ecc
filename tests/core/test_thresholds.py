"""Threshold policies: fixed, calibrated (rate / budget), dynamic budget (paper B), thread safety."""

from __future__ import annotations

import asyncio
import math
import random
import threading

import numpy as np
import pytest

from cascade_core import (
    ConfigurationError,
    DynamicBudgetThreshold,
    FixedThreshold,
    ThresholdRule,
    calibrate_threshold,
)
from cascade_core.decide.thresholds import budget_deferral_rate


def test_fixed_threshold_defers_strictly_below():
    policy = FixedThreshold(0.3)
    assert policy.decide(0.29) == (True, 0.3)
    assert policy.decide(0.3) == (False, 0.3)


@pytest.mark.parametrize("rate", [0.0, 0.1, 0.25, 0.5, 0.9, 1.0])
def test_calibrated_threshold_hits_target_rate_on_held_out_scores(rate):
    rng = np.random.default_rng(0)
    sample, held_out = rng.beta(2, 2, 2000), rng.beta(2, 2, 20000)
    threshold = calibrate_threshold(sample, deferral_rate=rate)
    assert np.mean(held_out < threshold) == pytest.approx(rate, abs=0.03)


def test_budget_gives_paper_b_deferral_fraction():
    assert budget_deferral_rate(0.6, small_cost=0.1, large_cost=1.0) == pytest.approx(0.5)
    assert budget_deferral_rate(5.0, small_cost=0.1, large_cost=1.0) == 1.0
    assert budget_deferral_rate(0.05, small_cost=0.1, large_cost=1.0) == 0.0
    scores = np.linspace(0, 1, 101)
    t = calibrate_threshold(scores, budget=0.35, small_cost=0.1, large_cost=1.0)
    assert np.mean(scores < t) == pytest.approx(0.25, abs=0.01)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"deferral_rate": 1.5},
        {"deferral_rate": float("nan")},
        {"deferral_rate": 0.2, "budget": 1.0},
        {"budget": 1.0},
        {},
    ],
)
def test_calibration_rejects_bad_targets(kwargs):
    with pytest.raises(ConfigurationError):
        calibrate_threshold([0.1, 0.2], **kwargs)


def test_calibration_rejects_empty_or_nan_scores():
    with pytest.raises(ConfigurationError, match="at least one score"):
        calibrate_threshold([], deferral_rate=0.2)
    with pytest.raises(ConfigurationError, match="NaN"):
        calibrate_threshold([0.1, float("nan")], deferral_rate=0.2)


@pytest.mark.parametrize("bad", [float("nan"), 1.5, -0.1, "0.3", None])
def test_threshold_rule_rejects_nan_and_out_of_range_thresholds(bad):
    with pytest.raises(ConfigurationError, match="threshold"):
        ThresholdRule("margin", bad)


def test_threshold_range_follows_signal():
    ThresholdRule("margin", 2.0, kind="logit")  # logit margins are unbounded above
    with pytest.raises(ConfigurationError, match="outside"):
        ThresholdRule("chow_average", 0.5)  # log-probs are <= 0


def test_dynamic_threshold_uses_initial_until_warm_then_tracks_rate():
    policy = DynamicBudgetThreshold(deferral_rate=0.3, warmup=10, initial_threshold=0.0)
    rng = random.Random(1)
    decisions = [policy.decide(rng.random()) for _ in range(3000)]
    assert all(not d for d, t in decisions[:9]) and all(t == 0.0 for _, t in decisions[:9])
    assert np.mean([d for d, _ in decisions]) == pytest.approx(0.3, abs=0.03)


def test_dynamic_threshold_from_budget_and_window():
    policy = DynamicBudgetThreshold(budget=0.3, small_cost=0.1, large_cost=1.0, warmup=5, window=50)
    assert policy.deferral_rate == pytest.approx(0.2)
    for s in range(200):
        policy.decide(s / 200)
    # only the last 50 scores (0.75 .. 0.995) count: the 0.2-quantile lies among them
    assert 0.75 <= policy.current_threshold <= 1.0


def test_dynamic_threshold_is_thread_safe():
    policy = DynamicBudgetThreshold(deferral_rate=0.5, warmup=10)
    deferred = []
    lock = threading.Lock()

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        local = [policy.decide(rng.random())[0] for _ in range(500)]
        with lock:
            deferred.extend(local)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert policy.n_seen == 4000 and len(deferred) == 4000
    assert np.mean(deferred) == pytest.approx(0.5, abs=0.05)


async def test_dynamic_threshold_under_asyncio_tasks():
    policy = DynamicBudgetThreshold(deferral_rate=0.25, warmup=10)

    async def one(i: int) -> bool:
        await asyncio.sleep(0)
        return policy.decide((i * 7919 % 1000) / 1000)[0]

    results = await asyncio.gather(*(one(i) for i in range(1000)))
    assert policy.n_seen == 1000
    assert np.mean(results) == pytest.approx(0.25, abs=0.05)


@pytest.mark.parametrize(
    "kwargs",
    [{"deferral_rate": 0.2, "warmup": 0}, {"deferral_rate": 0.2, "initial_threshold": math.nan},
     {"deferral_rate": 0.2, "window": 3, "warmup": 10}, {"budget": 1.0}],
)
def test_dynamic_threshold_validates_configuration(kwargs):
    with pytest.raises(ConfigurationError):
        DynamicBudgetThreshold(**kwargs)
