"""Bad input gets a clear CascadeError naming the problem, or a recorded deferral — never a crash deep inside."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cascade_core import (
    Cascade,
    ConfigurationError,
    DynamicBudgetThreshold,
    Generation,
    InvalidRequestError,
    Message,
    Request,
    SignalError,
    ThresholdRule,
    TokenAlternative,
    TokenStep,
)
from cascade_core.decide.signals import chow_sum, margin_from_logprobs, step_entropy
from cascade_core.redact import redact
from cascade_core.testing import ScriptedModel

pytestmark = pytest.mark.timeout(20)


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: Request.from_prompt("bad \ud800 text"), "lone surrogate"),
        (lambda: Request.from_messages([Message("system", "\udfff"), Message("user", "hi")]), "system message"),
        (lambda: Request.from_prompt("q", stop=("ok", "\ud83d")), "stop string"),
        (lambda: Request.from_prompt("q", max_new_tokens=0), "max_new_tokens"),
        (lambda: Request.from_prompt("q", max_new_tokens=True), "max_new_tokens"),
        (lambda: Request.from_prompt("q", max_new_tokens=-3), "max_new_tokens"),
        (lambda: Request.from_prompt("q", max_new_tokens=2.5), "max_new_tokens"),
        (lambda: Request.from_messages([]), "no messages"),
        (lambda: Request.from_messages([Message("user", ["image"])]), "must be text"),  # type: ignore[arg-type]
    ],
)
def test_bad_request_is_rejected_before_any_model_is_called(build, match):
    small, large = ScriptedModel("a"), ScriptedModel("b")
    cascade = Cascade([small, large])
    with pytest.raises(InvalidRequestError, match=match):
        cascade.invoke(build())
    assert not small.calls and not large.calls


def test_lone_surrogate_in_a_prompt_string_is_an_invalid_request():
    small = ScriptedModel("a")
    with pytest.raises(InvalidRequestError, match="position 4"):
        Cascade([small, ScriptedModel("b")]).invoke("bad \ud800")
    assert not small.calls


@pytest.mark.parametrize("value", [0, True, -1])
def test_cascade_max_new_tokens_rejects_zero_and_bool(value):
    with pytest.raises(ConfigurationError, match="max_new_tokens"):
        Cascade([ScriptedModel("a"), ScriptedModel("b")], max_new_tokens=value)


@pytest.mark.parametrize(
    ("fn", "arg", "match"),
    [
        (chow_sum, [-0.1, math.nan], "NaN"),
        (chow_sum, [-0.1, 0.5], "<= 0"),
        (margin_from_logprobs, [0.2, -1.0], "<= 0"),
        (margin_from_logprobs, [-0.1], "at least 2"),
        (step_entropy, [], "none"),
        (step_entropy, [math.nan, -1.0], "NaN"),
        (chow_sum, ["x"], "not numbers"),
    ],
)
def test_signals_reject_garbage_log_probs_with_a_runtime_signal_error(fn, arg, match):
    with pytest.raises(SignalError, match=match) as info:
        fn(arg)
    assert not isinstance(info.value, ConfigurationError)  # a runtime fault, not a configuration error


def test_margin_never_exceeds_one_and_rounding_noise_is_zero():
    assert margin_from_logprobs([1e-9, -5.0]) <= 1.0


def _gen(logprob: float, top: tuple[TokenAlternative, ...]) -> Generation:
    step = TokenStep.__new__(TokenStep)  # bypass TokenStep's own check: a backend that forgot to validate
    object.__setattr__(step, "token", "Paris")
    object.__setattr__(step, "logprob", logprob)
    object.__setattr__(step, "top", top)
    object.__setattr__(step, "token_id", None)
    object.__setattr__(step, "text", None)
    return Generation("Paris", (step,))


@pytest.mark.parametrize("signal", ["chow_sum", "chow_average", "chow_quantile", "entropy", "margin"])
def test_rule_on_unscorable_generation_raises_signal_error_not_configuration_error(signal):
    threshold = 0.5 if signal == "margin" else -1.0
    rule = ThresholdRule(signal, threshold)
    gen = _gen(math.nan, (TokenAlternative("Paris", math.nan), TokenAlternative("Lyon", math.nan)))
    with pytest.raises(SignalError):
        rule.decide(gen)


def test_scorer_declares_top_k_it_needs_and_the_cascade_checks_it_at_construction():
    class Needs3:
        name, first_step_only, score_range, min_top_k = "custom", False, (0.0, 1.0), 3

        def __call__(self, generation: Generation) -> float:
            return 1.0

    with pytest.raises(ConfigurationError, match="needs top_k >= 3"):
        Cascade([ScriptedModel("a", top_k=2), ScriptedModel("b")], rules=ThresholdRule(Needs3(), 0.5))
    Cascade([ScriptedModel("a", top_k=3), ScriptedModel("b")], rules=ThresholdRule(Needs3(), 0.5))
    # a scorer whose *name* starts with "margin" but needs no alternatives is not rejected
    Needs3.name, Needs3.min_top_k = "margin-like", 0
    Cascade([ScriptedModel("a", top_k=1), ScriptedModel("b")], rules=ThresholdRule(Needs3(), 0.5))


# -- dynamic threshold: ties and memory ---------------------------------------------------------------
def test_dynamic_threshold_defers_its_share_when_scores_tie_at_the_quantile():
    policy = DynamicBudgetThreshold(deferral_rate=0.3, warmup=10)
    rng = np.random.default_rng(0)
    scores = np.where(rng.random(4000) < 0.6, 1.0, rng.random(4000))  # 60% tie at exactly 1.0
    deferred = [policy.decide(float(s))[0] for s in scores]
    assert np.mean(deferred[200:]) == pytest.approx(0.3, abs=0.03)
    all_tied = DynamicBudgetThreshold(deferral_rate=0.25, warmup=10)
    assert np.mean([all_tied.decide(0.9)[0] for _ in range(2000)]) == pytest.approx(0.25, abs=0.03)


def test_dynamic_threshold_without_window_keeps_bounded_memory():
    policy = DynamicBudgetThreshold(deferral_rate=0.2, warmup=10, capacity=2000)
    rng = np.random.default_rng(1)
    deferred = [policy.decide(float(s))[0] for s in rng.random(20_000)]
    assert policy.n_seen == 20_000
    assert len(policy._window._sorted) == 2000 and len(policy._window._kept) == 2000  # the reservoir, not the history
    assert np.mean(deferred) == pytest.approx(0.2, abs=0.02)
    assert policy.current_threshold == pytest.approx(0.2, abs=0.06)


def test_dynamic_threshold_window_is_a_sliding_window():
    policy = DynamicBudgetThreshold(deferral_rate=0.5, warmup=4, window=10)
    for s in range(100):
        policy.decide(float(s))
    assert policy._window.scores() == [float(s) for s in range(90, 100)]


# -- secrets ---------------------------------------------------------------------------------------------
def test_redact_masks_given_secret_and_key_shapes():
    text = 'auth failed: {"authorization": "Bearer sk-live-1234567890abcdef", "key": "mysecretvalue"}'
    out = redact(text, secrets=("mysecretvalue",))
    assert "sk-live-1234567890abcdef" not in out and "mysecretvalue" not in out and "[redacted]" in out


# -- learned-rule files ---------------------------------------------------------------------------------
def _rule_dict() -> dict:
    """A valid saved logistic rule (what ``LearnedDeferral.to_dict`` writes), built without fitting."""
    from cascade_core.decide.learned.rule import (
        BASE_FEATURE_NAMES,
        FORMAT_NAME,
        FORMAT_VERSION,
        LearnedDeferral,
    )

    d = len(BASE_FEATURE_NAMES)
    return {
        "format": FORMAT_NAME, "format_version": FORMAT_VERSION, "params": LearnedDeferral().get_params(),
        "feature_names": list(BASE_FEATURE_NAMES), "n_features_in": d, "n_samples_fit": 40,
        "mean": [0.0] * d, "scale": [1.0] * d, "layers": [{"weight": [[0.1]] * d, "bias": [0.0]}],
    }


def test_rule_dict_helper_is_a_loadable_rule(tmp_path):
    import json

    from cascade_core.decide.learned.rule import LearnedDeferral

    path = tmp_path / "ok.json"
    path.write_text(json.dumps(_rule_dict()))
    assert 0.0 < LearnedDeferral.load(path)(_gen(-0.1, (TokenAlternative("Paris", -0.1),))) < 1.0


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda d: d.update(scale=[0.0] * len(d["scale"])), "'scale' must be positive"),
        (lambda d: d.update(scale=[-1.0] * len(d["scale"])), "'scale' must be positive"),
        (lambda d: (d.update(n_features_in=3, mean=d["mean"][:3], scale=d["scale"][:3]),
                    d["layers"][0].update(weight=d["layers"][0]["weight"][:3])), "does not match the feature extractor"),
    ],
    ids=["scale-zero", "scale-negative", "n_features_in-mismatch"],
)
def test_learned_rule_file_with_inconsistent_content_is_refused_at_load(tmp_path, mutate, match):
    import json

    from cascade_core import RuleFileError
    from cascade_core.decide.learned.rule import LearnedDeferral

    data = _rule_dict()
    mutate(data)
    path = tmp_path / "rule.json"
    path.write_text(json.dumps(data))
    with pytest.raises(RuleFileError, match=match):
        LearnedDeferral.load(path)


def test_learned_rule_file_nested_too_deeply_or_too_large_is_refused(tmp_path):
    from cascade_core import RuleFileError
    from cascade_core.decide.learned.rule import LearnedDeferral

    deep = tmp_path / "deep.json"
    deep.write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(RuleFileError, match="nested too deeply|corrupt"):
        LearnedDeferral.load(deep)
    big = tmp_path / "big.json"
    big.write_text(" " * 2048)
    with pytest.raises(RuleFileError, match="over the 1024-byte limit"):
        LearnedDeferral.load(big, max_bytes=1024)


def test_wrappers_forward_the_top_k_their_scorer_needs():
    from cascade_core.decide.probability import CalibratedScorer, ProbabilityMap
    from cascade_core.decide.tool_uncertainty import ToolCallRule

    pmap = ProbabilityMap((0.0, 1.0), (0.2, 0.9), signal="margin")
    with pytest.raises(ConfigurationError, match="needs top_k >= 2"):
        Cascade([ScriptedModel("a", top_k=1), ScriptedModel("b")], rules=ThresholdRule(CalibratedScorer("margin", pmap), 0.5))
    with pytest.raises(ConfigurationError, match="needs top_k >= 2"):
        Cascade([ScriptedModel("a", top_k=1), ScriptedModel("b")], rules=ToolCallRule(ThresholdRule("margin", 0.3)))
    Cascade([ScriptedModel("a", top_k=1), ScriptedModel("b")], rules=ToolCallRule(ThresholdRule("chow_sum", -1.0)))


def test_scorer_raising_an_unexpected_exception_is_a_signal_error_and_the_cascade_defers():
    class Broken:
        name, first_step_only, score_range = "broken", False, (0.0, 1.0)

        def __call__(self, generation: Generation) -> float:
            raise ZeroDivisionError("boom")

    rule = ThresholdRule(Broken(), 0.5)
    with pytest.raises(SignalError, match="ZeroDivisionError: boom"):
        rule.decide(_gen(-0.1, (TokenAlternative("Paris", -0.1), TokenAlternative("Lyon", -2.0))))
    result = Cascade([ScriptedModel("a"), ScriptedModel("b")], rules=rule).invoke("q")
    assert result.tier == 1 and "cannot be scored" in result.decisions[0].reason


def test_not_fitted_rule_is_a_configuration_error():
    from cascade_core.decide.learned.rule import LearnedDeferral
    from cascade_core.errors import NotFittedError

    assert issubclass(NotFittedError, ConfigurationError)
    with pytest.raises(ConfigurationError):
        LearnedDeferral().predict_confidence(np.zeros((1, 3)))
