"""Risk-controlled thresholds: Clopper-Pearson bounds, fixed-sequence testing, the certificate, the policy."""

from __future__ import annotations

import json
import logging
import math

import numpy as np
import pytest
from scipy import stats

from cascade_core import ConfigurationError, ThresholdRule
from cascade_core.decide.risk import (
    RiskCertificate,
    RiskControlledThreshold,
    calibration_data_hash,
    certify_threshold,
    clopper_pearson_upper,
)
from cascade_core.errors import RuleFileError
from cascade_core.testing import ScriptedModel


def _population(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Scores ~ U(0, 1), P(small correct | s) = 0.5 + 0.5 s: P(wrong | s >= t) = (1 - t) / 4 exactly."""
    s = rng.random(n)
    return s, (rng.random(n) < 0.5 + 0.5 * s).astype(int)


@pytest.mark.parametrize(("k", "m", "delta"), [(0, 10, 0.1), (3, 50, 0.05), (17, 300, 0.1), (0, 1, 0.2)])
def test_clopper_pearson_bound_matches_scipy_exact_interval(k, m, delta):
    # the one-sided 1-delta bound is the upper end of scipy's two-sided 1-2*delta exact interval
    expected = stats.binomtest(k, m).proportion_ci(confidence_level=1 - 2 * delta, method="exact").high
    assert float(clopper_pearson_upper(k, m, delta)) == pytest.approx(expected, rel=1e-9)


def test_clopper_pearson_bound_is_one_when_nothing_is_observed_or_all_failed():
    assert clopper_pearson_upper([0, 5], [0, 5], 0.1).tolist() == [1.0, 1.0]


def test_kept_error_violation_rate_is_at_most_delta_over_many_samples():
    rng = np.random.default_rng(1)
    epsilon, delta, violations, reps = 0.05, 0.1, 0, 300
    for _ in range(reps):
        cert = certify_threshold(*_population(rng, 500), risk="kept_error", epsilon=epsilon, delta=delta)
        true_risk = (1 - cert.threshold) / 4 if cert.certified else 0.0
        violations += true_risk > epsilon
    # the true risk crosses epsilon at t = 0.8; binomial MC error at 300 reps is ~0.017
    assert violations / reps <= delta + 3 * math.sqrt(delta * (1 - delta) / reps)


def test_quality_loss_violation_rate_is_at_most_delta_over_many_samples():
    rng = np.random.default_rng(2)
    epsilon, delta, violations, reps, certified = 0.02, 0.1, 0, 300, 0
    for _ in range(reps):
        s, y = _population(rng, 1000)
        cert = certify_threshold(s, y, np.ones_like(y), risk="quality_loss", epsilon=epsilon, delta=delta)
        true_risk = (1 - min(cert.threshold, 1.0)) ** 2 / 4  # E[(1 - y) 1[s >= t]] with z = 1
        violations += true_risk > epsilon
        certified += cert.certified
    assert certified == reps  # n = 1000 can certify a 2-point loss here
    assert violations / reps <= delta + 3 * math.sqrt(delta * (1 - delta) / reps)


def test_certified_threshold_is_near_the_true_one_on_a_large_sample():
    s, y = _population(np.random.default_rng(3), 5000)
    for epsilon in (0.06, 0.1, 0.15):
        cert = certify_threshold(s, y, epsilon=epsilon, delta=0.1)
        true_threshold = 1 - 4 * epsilon  # where (1 - t) / 4 reaches epsilon
        assert cert.certified and true_threshold <= cert.threshold <= true_threshold + 0.06


def test_fixed_sequence_stops_at_the_first_failure_even_if_a_lenient_threshold_would_pass():
    scores = [0.9] * 50 + [0.8] * 10 + [0.5] * 500
    correct = [1] * 50 + [0] * 10 + [1] * 500
    cert = certify_threshold(scores, correct, epsilon=0.05, delta=0.1)
    # 0.9: 0 wrong of 50 kept passes; 0.8: 10 of 60 fails -> stop; 0.5 (10 of 560) is never tested
    assert cert.certified and cert.threshold == 0.9
    assert cert.bound == pytest.approx(1 - 0.1 ** (1 / 50))
    assert cert.deferral_rate == pytest.approx(510 / 560)


def test_untestable_strict_thresholds_are_skipped_not_counted_as_failures():
    # 40 kept at the top can never certify epsilon=0.05 (even with 0 errors); they must not stop the sequence
    scores = np.linspace(1.0, 0.0, 200)
    cert = certify_threshold(scores, np.ones(200), epsilon=0.05, delta=0.1)
    assert cert.certified and cert.threshold == 0.0 and cert.deferral_rate == 0.0


def test_nothing_certifiable_defers_everything_and_says_so(caplog):
    s, y = _population(np.random.default_rng(4), 300)
    cert = certify_threshold(s, y, epsilon=0.001, delta=0.1)
    assert not cert.certified
    assert cert.threshold == math.inf and cert.deferral_rate == 1.0
    assert cert.bound > cert.epsilon
    assert "NOT certified" in cert.summary()
    with caplog.at_level(logging.WARNING, logger="cascade_core.decide.risk"):
        policy = RiskControlledThreshold(cert)
    assert "NOT certified" in caplog.text
    assert policy.decide(1.0)[0] and policy.decide(1e9)[0]


def test_too_small_a_sample_is_not_certified():
    cert = certify_threshold([0.9] * 20, [1] * 20, epsilon=0.05, delta=0.1)  # needs >= 45 kept with no error
    assert not cert.certified and cert.bound == pytest.approx(1 - 0.1 ** (1 / 20))


def test_a_given_grid_is_respected():
    s, y = _population(np.random.default_rng(5), 2000)
    grid = [0.95, 0.9, 0.85, 0.8, 0.7, 0.5, 0.0]
    cert = certify_threshold(s, y, epsilon=0.08, delta=0.1, grid=grid)
    assert cert.threshold in grid
    kept = s >= cert.threshold
    assert cert.empirical_risk == pytest.approx(1 - y[kept].mean())
    assert cert.deferral_rate == pytest.approx(1 - kept.mean())


def test_quality_loss_counts_small_wins_in_the_empirical_risk():
    # kept queries where the small answer is right and the large one wrong lower the measured loss
    scores = [0.9] * 400 + [0.1] * 100
    small = [1] * 200 + [0] * 4 + [1] * 196 + [0] * 100
    large = [0] * 200 + [1] * 4 + [1] * 196 + [1] * 100
    cert = certify_threshold(scores, small, large, risk="quality_loss", epsilon=0.03, delta=0.1)
    assert cert.certified and cert.threshold == 0.9
    assert cert.empirical_risk == pytest.approx((4 - 200) / 500)
    assert cert.bound == pytest.approx(float(clopper_pearson_upper(4, 500, 0.1)))


def test_data_hash_identifies_the_calibration_data():
    s, y = [0.1, 0.5, 0.9], [0, 1, 1]
    cert = certify_threshold(s, y, epsilon=0.5, delta=0.5)
    assert cert.data_hash == calibration_data_hash(s, y)
    assert cert.data_hash != calibration_data_hash(s, [1, 1, 1])
    assert cert.data_hash != calibration_data_hash(s, y, [1, 1, 1])


def test_certificate_round_trips_through_strict_json():
    s, y = _population(np.random.default_rng(6), 500)
    for cert in (certify_threshold(s, y, epsilon=0.1, delta=0.1), certify_threshold(s, y, epsilon=0.001, delta=0.1)):
        text = json.dumps(cert.to_dict(), allow_nan=False)
        assert RiskCertificate.from_dict(json.loads(text)) == cert


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"bound": 0.5}, "claims certified"),
        ({"extra": 1}, "unknown"),
        ({"risk": "coverage"}, "risk must be one of"),
        ({"n": -1}, "'n'"),
        ({"certified": "yes"}, "'certified'"),
    ],
)
def test_certificate_loading_refuses_tampered_or_malformed_data(change, message):
    data = certify_threshold([0.9] * 100, [1] * 100, epsilon=0.1, delta=0.1).to_dict() | change
    with pytest.raises(RuleFileError, match=message):
        RiskCertificate.from_dict(data)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"risk": "coverage"}, "risk must be one of"),
        ({"epsilon": 0.0}, "epsilon must be a number in \\(0, 1\\)"),
        ({"delta": 1.5}, "delta must be"),
        ({"small_correct": [0.5, 1, 1]}, "0/1 correctness labels"),
        ({"small_correct": [1, 1]}, "2 values for 3 scores"),
        ({"risk": "quality_loss"}, "needs large_correct"),
        ({"scores": [0.1, math.nan, 0.3]}, "NaN"),
        ({"grid": []}, "grid must be"),
    ],
)
def test_bad_input_raises_configuration_error_naming_the_problem(kwargs, message):
    args = {"scores": [0.1, 0.2, 0.3], "small_correct": [0, 1, 1], "epsilon": 0.1, "delta": 0.1} | kwargs
    with pytest.raises(ConfigurationError, match=message):
        certify_threshold(args.pop("scores"), args.pop("small_correct"), **args)


def test_policy_plugs_into_a_threshold_rule_and_a_cascade():
    from cascade_core import Cascade

    policy = RiskControlledThreshold.certify([0.95] * 100 + [0.2] * 100, [1] * 100 + [0] * 100, epsilon=0.05, delta=0.1)
    assert policy.threshold == 0.95
    rule = ThresholdRule("margin", policy)
    sure = Cascade([ScriptedModel("Paris", confidence=0.99), ScriptedModel("Paris, France")], rules=rule)
    unsure = Cascade([ScriptedModel("Lyon", confidence=0.6), ScriptedModel("Paris, France")], rules=rule)
    assert sure.invoke("Capital of France?").tier == 0
    deferred = unsure.invoke("Capital of France?")
    assert deferred.tier == 1 and deferred.decision.threshold == 0.95
    with pytest.raises(ConfigurationError, match="needs a RiskCertificate"):
        RiskControlledThreshold(0.3)  # type: ignore[arg-type]
