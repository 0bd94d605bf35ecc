"""Calibrated probabilities: isotonic map, versioned JSON, calibrated rules, ECE."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cascade_core import Cascade, ConfigurationError, RuleFileError, ThresholdRule
from cascade_core.decide.probability import (
    CalibratedScorer,
    ProbabilityMap,
    calibrated_rule,
    expected_calibration_error,
    reliability_bins,
    score_as_probability,
)
from cascade_core.decide.scorers import make_scorer
from cascade_core.testing import ScriptedModel


def _sample(n, seed):
    """Scores in [0, 1] whose true P(correct | s) is s**3: the raw score is badly over-confident."""
    rng = np.random.default_rng(seed)
    s = rng.uniform(0, 1, n)
    return s, (rng.uniform(0, 1, n) < s**3).astype(float)


def test_isotonic_map_is_monotone_and_lowers_held_out_ece():
    fit_s, fit_y = _sample(4000, 0)
    test_s, test_y = _sample(2000, 1)
    pmap = ProbabilityMap.fit(fit_s, fit_y, signal="margin")
    grid = np.linspace(-0.5, 1.5, 101)
    assert (np.diff(pmap(grid)) >= 0).all() and pmap(grid).min() >= 0 and pmap(grid).max() <= 1
    before = expected_calibration_error(test_s, test_y)
    after = expected_calibration_error(pmap(test_s), test_y)
    assert before > 0.15  # E|s - s^3| is about 0.19 over [0, 1]
    assert after < 0.04 and after < before / 4
    assert pmap.probability(0.5) == pytest.approx(0.125, abs=0.05)


def test_score_for_probability_inverts_the_map():
    pmap = ProbabilityMap((0.0, 0.5, 1.0), (0.1, 0.5, 0.9))
    assert pmap.score_for_probability(0.7) == pytest.approx(0.75)
    assert pmap.probability(pmap.score_for_probability(0.7)) == pytest.approx(0.7)
    assert pmap.score_for_probability(0.95) == float("inf")


def test_infinite_scores_are_clipped_to_the_fitted_range():
    pmap = ProbabilityMap.fit([-np.inf, -3.0, -1.0, -0.1], [0, 0, 1, 1], signal="chow_sum")
    assert pmap.probability(-np.inf) == 0.0 and pmap.probability(0.0) == 1.0
    assert np.isnan(pmap(np.array([np.nan]))[0])


def test_map_round_trips_through_versioned_json(tmp_path):
    pmap = ProbabilityMap.fit(*_sample(300, 2), signal="margin")
    path = pmap.save(tmp_path / "sub" / "p.json")
    data = json.loads(path.read_text())
    assert data["format"] == "llm-cascade/probability-map" and data["format_version"] == 1
    assert ProbabilityMap.load(path) == pmap


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        (json.dumps({"format": "something-else"}), "is not a probability map"),
        (json.dumps({"format": "llm-cascade/probability-map", "format_version": 99, "x": [0], "y": [0]}), "format_version 99"),
        (json.dumps({"format": "llm-cascade/probability-map", "format_version": 1, "x": [0, 1], "y": [0.9, 0.1]}), "non-decreasing"),
        (json.dumps({"format": "llm-cascade/probability-map", "format_version": 1, "x": [0, 1]}), "corrupt"),
    ],
)
def test_bad_map_files_raise_rule_file_error(tmp_path, content, message):
    path = tmp_path / "p.json"
    path.write_text(content)
    with pytest.raises(RuleFileError, match=message):
        ProbabilityMap.load(path)


def test_missing_map_file_is_named():
    with pytest.raises(RuleFileError, match="does not exist"):
        ProbabilityMap.load("/nonexistent/p.json")


@pytest.mark.parametrize(
    ("scores", "labels", "message"),
    [([0.1], [1], "at least 2"), ([0.1, 0.2], [1], "sizes differ"), ([0.1, np.nan], [1, 0], "NaN"),
     ([0.1, 0.2], [1, 2], "labels must be in"), ([np.inf, -np.inf], [1, 0], "infinite")],
)
def test_bad_fitting_samples_are_rejected(scores, labels, message):
    with pytest.raises(ConfigurationError, match=message):
        ProbabilityMap.fit(scores, labels)


def test_calibrated_threshold_keeps_only_answers_at_least_that_likely_right():
    # margin -> P(correct): 0.6 at margin 0.2, 0.9 at margin 0.8
    pmap = ProbabilityMap((0.2, 0.8), (0.6, 0.9), signal="margin")
    rule = ThresholdRule(CalibratedScorer("margin", pmap), threshold=0.8)
    large = ScriptedModel("large answer", name="large")
    # ScriptedModel: margin = c - min(c, 0.8 (1 - c)); c=0.95 -> 0.91 (p 0.9), c=0.6 -> 0.28 (p 0.64)
    confident = Cascade([ScriptedModel("Paris", confidence=0.95), large], rules=rule).invoke("q")
    unsure = Cascade([ScriptedModel("Lyon", confidence=0.6), large], rules=rule).invoke("q")
    assert confident.tier == 0 and confident.decision.score == pytest.approx(0.9)
    assert confident.decision.signal == "p_correct[margin]"
    assert unsure.tier == 1 and 0.6 < unsure.decision.score < 0.8
    assert unsure.decision.early_exit  # a calibrated margin still decides after the first token


def test_calibrated_rule_loads_its_map_from_disk(tmp_path):
    path = ProbabilityMap((-3.0, 0.0), (0.1, 0.95), signal="chow_quantile(alpha=0)").save(tmp_path / "p.json")
    rule = calibrated_rule("chow_quantile", path, 0.5, alpha=0.0)
    assert rule.scorer.name == "p_correct[chow_quantile(alpha=0)]" and not rule.first_step_only


def test_map_fitted_on_another_signal_is_refused():
    pmap = ProbabilityMap((0.0, 1.0), (0.0, 1.0), signal="chow_sum")
    with pytest.raises(ConfigurationError, match="fitted on signal 'chow_sum'"):
        CalibratedScorer("margin", pmap)
    assert CalibratedScorer("margin", pmap, check_signal=False).name == "p_correct[margin]"


def test_probability_threshold_outside_unit_interval_is_rejected():
    pmap = ProbabilityMap((0.0, 1.0), (0.0, 1.0))
    with pytest.raises(ConfigurationError, match="outside"):
        ThresholdRule(CalibratedScorer(make_scorer("margin"), pmap), threshold=1.5)


def test_ece_and_bins_validate_their_input():
    assert expected_calibration_error([0.9, 0.9, 0.1, 0.1], [1, 0, 0, 0]) == pytest.approx(0.5 * 0.4 + 0.5 * 0.1)
    assert reliability_bins([0.05, 0.95, 1.0], [0, 1, 1], 10) == [(0.05, 0.0, 1), (0.975, 1.0, 2)]
    with pytest.raises(ConfigurationError, match="in \\[0, 1\\]"):
        expected_calibration_error([1.2], [1])
    with pytest.raises(ConfigurationError, match="n_bins"):
        expected_calibration_error([0.2], [1], n_bins=0)
    with pytest.raises(ConfigurationError, match="matching"):
        expected_calibration_error([0.2, 0.3], [1])


def test_raw_scores_have_a_probability_reading_only_where_meaningful():
    assert score_as_probability([0.3], (0.0, 1.0)).tolist() == [0.3]
    assert score_as_probability([0.0], (float("-inf"), 0.0)).tolist() == [1.0]
    assert score_as_probability([2.0], (0.0, float("inf"))) is None
