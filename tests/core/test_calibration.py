"""Threshold calibration for a target deferral rate or cost budget."""

from __future__ import annotations

import numpy as np
import pytest

from cascade_core.errors import ConfigurationError
from cascade_core.evaluation.calibration import calibrate, evaluate_threshold


def _sample(n: int, seed: int):
    rng = np.random.default_rng(seed)
    scores = rng.beta(2, 5, size=n)  # a skewed, margin-like score in [0, 1]
    small = (rng.random(n) < scores + 0.2).astype(float)  # confident answers are right more often
    large = (rng.random(n) < 0.85).astype(float)
    return scores, small, large


@pytest.mark.parametrize("target", [0.05, 0.2, 0.35, 0.5, 0.8])
def test_calibrated_threshold_hits_target_rate_on_held_out_scores(target):
    cal_scores, cal_small, cal_large = _sample(2000, seed=0)
    held_scores, held_small, held_large = _sample(2000, seed=1)
    report = calibrate(cal_scores, cal_small, cal_large, deferral_rate=target)
    assert abs(report.deferral_rate - target) <= 1 / 2000 + 1e-12  # exact on the sample up to one example
    held = evaluate_threshold(held_scores, held_small, held_large, report.threshold)
    assert abs(held.deferral_rate - target) < 0.03


def test_budget_sets_rate_from_costs_and_expected_cost_meets_budget():
    scores, small, large = _sample(1000, seed=3)
    c_s, c_l, budget = 0.2, 3.0, 1.1
    report = calibrate(scores, small, large, budget=budget, small_cost=c_s, large_cost=c_l)
    assert report.target_deferral_rate == pytest.approx((budget - c_s) / c_l)
    assert report.cost_per_query == pytest.approx(c_s + c_l * report.deferral_rate)
    assert report.cost_per_query <= budget + c_l / 1000
    assert report.budget == budget and report.all_large_cost == c_l


def test_report_quality_matches_the_cascade_answers():
    scores, small, large = _sample(500, seed=4)
    report = calibrate(scores, small, large, deferral_rate=0.3)
    defer = scores < report.threshold
    assert report.quality == pytest.approx(np.mean(np.where(defer, large, small)))
    assert report.small_quality == pytest.approx(small.mean()) and report.large_quality == pytest.approx(large.mean())
    assert report.n == 500


def test_extreme_rates_defer_nothing_or_everything():
    scores, small, large = _sample(100, seed=5)
    none = calibrate(scores, small, large, deferral_rate=0.0)
    every = calibrate(scores, small, large, deferral_rate=1.0)
    assert none.deferral_rate == 0.0 and none.quality == pytest.approx(small.mean())
    assert every.deferral_rate == 1.0 and every.quality == pytest.approx(large.mean())
    assert every.to_dict()["threshold"] == "inf"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "exactly one"),
        ({"deferral_rate": 0.2, "budget": 1.0}, "exactly one"),
        ({"deferral_rate": 1.5}, "deferral_rate"),
        ({"budget": 0.1, "small_cost": 0.5, "large_cost": 1.0}, "below the small tier"),
        ({"deferral_rate": 0.2, "small_cost": -1.0}, "small_cost"),
    ],
)
def test_invalid_targets_raise_configuration_error(kwargs, message):
    with pytest.raises(ConfigurationError, match=message):
        calibrate([0.1, 0.2], [1, 0], [1, 1], **kwargs)


def test_mismatched_sample_sizes_raise():
    with pytest.raises(ConfigurationError, match="sizes differ"):
        calibrate([0.1, 0.2, 0.3], [1, 0], [1, 1], deferral_rate=0.5)
