"""Signals against hand-computed values (paper A: Chow-*; paper B: first-token margin)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cascade_core import ConfigurationError, Generation, SignalError, TokenAlternative, TokenStep, make_scorer
from cascade_core.decide.signals import (
    chow_average,
    chow_quantile,
    chow_sum,
    first_token_margin,
    margin_from_logprobs,
    mean_token_entropy,
    quantile_features,
    step_entropy,
)


def step(token: str, *alts: tuple[str, float]) -> TokenStep:
    top = tuple(TokenAlternative(t, math.log(p)) for t, p in alts)
    chosen = next(a.logprob for a in top if a.token == token)
    return TokenStep(token, chosen, top)


def test_chow_sum_and_average_match_hand_computation():
    lps = [math.log(0.5), math.log(0.25), math.log(0.8)]
    assert chow_sum(lps) == pytest.approx(math.log(0.5 * 0.25 * 0.8))
    assert chow_average(lps) == pytest.approx(math.log(0.1) / 3)


def test_chow_sum_is_length_biased_and_average_is_not():
    short, long = [-0.1] * 2, [-0.1] * 20
    assert chow_sum(long) < chow_sum(short)
    assert chow_average(long) == pytest.approx(chow_average(short))


def test_chow_quantile_min_median_max_and_interpolation():
    lps = [-4.0, -2.0, -1.0, -0.5, 0.0]
    assert chow_quantile(lps, 0.0) == -4.0
    assert chow_quantile(lps, 0.5) == -1.0
    assert chow_quantile(lps, 1.0) == 0.0
    # between order statistics 0 (-4) and 1 (-2) at 0.1 * 4 = 0.4 of the way
    assert chow_quantile(lps, 0.1) == pytest.approx(-4.0 + 0.4 * 2.0)
    assert quantile_features(lps, (0.0, 0.5)).tolist() == [-4.0, -1.0]


@pytest.mark.parametrize("alpha", [-0.1, 1.5, float("nan"), "0.5"])
def test_chow_quantile_rejects_bad_alpha(alpha):
    with pytest.raises(ConfigurationError, match="alpha"):
        chow_quantile([-1.0], alpha)


def test_margin_probability_and_logit_variants():
    s = step("Paris", ("Paris", 0.7), ("Lyon", 0.2), ("Nice", 0.05))
    assert first_token_margin(s) == pytest.approx(0.5)
    # logit difference == log-prob difference (the softmax normaliser cancels)
    assert first_token_margin(s, kind="logit") == pytest.approx(math.log(0.7) - math.log(0.2))


def test_margin_distinct_skips_prefix_variants_of_top1():
    s = step("Par", ("Par", 0.5), ("Paris", 0.3), (" par", 0.1), ("Lyon", 0.05))
    assert first_token_margin(s) == pytest.approx(0.2)
    assert first_token_margin(s, distinct=True) == pytest.approx(0.45)


def test_margin_distinct_bounds_unseen_alternative_when_all_are_variants():
    s = step("Paris", ("Paris", 0.6), (" Paris", 0.3), ("paris", 0.05))
    # unseen best token <= min(p_k, 1 - sum) = min(0.05, 0.05)
    assert first_token_margin(s, distinct=True) == pytest.approx(0.55)


def test_margin_restricted_to_label_first_tokens():
    s = step("The", ("The", 0.5), ("positive", 0.3), (" negative", 0.15), ("neutral", 0.01))
    assert first_token_margin(s, labels=["positive", "negative"]) == pytest.approx(0.15)
    # a label outside the recorded alternatives is bounded by the smallest recorded probability
    assert first_token_margin(s, labels=["positive", "mixed"]) == pytest.approx(0.3 - 0.01)
    assert first_token_margin(s, labels=["yes", "no"]) == 0.0


def test_margin_with_fewer_than_two_candidates_is_a_runtime_signal_error():
    # a reply with < 2 alternatives is a fault of that reply, not of the configuration
    with pytest.raises(SignalError, match="at least 2 candidates") as info:
        first_token_margin(step("a", ("a", 0.9)))
    assert not isinstance(info.value, ConfigurationError)
    with pytest.raises(SignalError, match="sent 1"):
        margin_from_logprobs([-0.1])


def test_entropy_from_topk_with_remainder_bucket():
    assert step_entropy(np.log([0.5, 0.5])) == pytest.approx(math.log(2))
    # 0.5 and 0.25 recorded, remainder 0.25 treated as one outcome
    expected = -(0.5 * math.log(0.5) + 0.25 * math.log(0.25) + 0.25 * math.log(0.25))
    assert step_entropy(np.log([0.5, 0.25])) == pytest.approx(expected)
    assert mean_token_entropy([np.log([1.0]), np.log([0.5, 0.5])]) == pytest.approx(math.log(2) / 2)


def test_nan_logprobs_are_rejected():
    with pytest.raises(ValueError, match="NaN"):
        chow_sum([float("nan")])


def test_scorers_follow_higher_is_more_confident():
    confident = Generation("a b", (step("a", ("a", 0.95), ("b", 0.04)), step("b", ("b", 0.9), ("c", 0.05))))
    unsure = Generation("a b", (step("a", ("a", 0.4), ("b", 0.35)), step("b", ("b", 0.3), ("c", 0.3))))
    for name in ["margin", "chow_sum", "chow_average", "chow_quantile", "entropy"]:
        scorer = make_scorer(name)
        assert scorer(confident) > scorer(unsure), name


def test_unknown_signal_name_lists_allowed_values():
    with pytest.raises(ConfigurationError, match="allowed values"):
        make_scorer("perplexity")
    with pytest.raises(ConfigurationError, match="invalid parameters"):
        make_scorer("chow_sum", alpha=0.3)


def test_scorer_on_empty_generation_is_a_clear_error():
    with pytest.raises(SignalError, match="at least one generated token"):
        make_scorer("chow_average")(Generation("", ()))
