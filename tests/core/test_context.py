"""Conversation-aware small prompts: the whole conversation, oldest turns dropped to fit the small
tier's context window, and a deferral with reason "context" when the question itself cannot fit."""

from __future__ import annotations

import pytest

from cascade_core import (
    Cascade,
    ConfigurationError,
    Message,
    Request,
    ThresholdRule,
    Tier,
    ToolCall,
    ToolSpec,
)
from cascade_core.engine.context import MESSAGE_OVERHEAD, fit_to_context
from cascade_core.testing import ScriptedModel


def words(text):
    return len(text.split())


def _conversation(turns=4, words_per_turn=20):
    messages = [Message("system", "You are terse.")]
    for t in range(turns):
        messages.append(Message("user", " ".join([f"q{t}"] * words_per_turn)))
        messages.append(Message("assistant", " ".join([f"a{t}"] * words_per_turn)))
    messages.append(Message("user", "And the capital of France?"))
    return Request.from_messages(messages, max_new_tokens=10)


def _cascade(window, small=None):
    small = small or ScriptedModel("Paris", confidence=0.95, name="small")
    large = ScriptedModel("Paris, France", name="large")
    return Cascade([Tier(small, context_window=window), large], rules=ThresholdRule("margin", 0.3)), small


def test_small_tier_sees_the_whole_conversation_when_it_fits():
    cascade, small = _cascade(window=1000)
    request = _conversation()
    result = cascade.invoke(request)
    assert result.tier == 0 and small.calls[0].messages == request.messages
    assert "context" not in result.decision.reason


def test_oldest_turns_are_dropped_to_fit_and_the_decision_says_so():
    cascade, small = _cascade(window=100)  # per turn pair: 2 * (20 + 8) = 56 tokens
    result = cascade.invoke(_conversation())
    seen = small.calls[0].messages
    assert seen[0].content == "You are terse." and seen[-1].content == "And the capital of France?"
    assert [m.content.split()[0] for m in seen[1:-1]] == ["q3", "a3"]  # only the newest earlier turn
    prompt = sum(words(m.content) + MESSAGE_OVERHEAD for m in seen)
    assert prompt + 10 <= 100 < prompt + 10 + 56  # as much history as fits, no more
    assert result.tier == 0 and "(context: 6 oldest messages dropped to fit 100 tokens)" in result.decision.reason
    assert len(cascade.tiers[1].model.calls) == 0


def test_question_that_cannot_fit_defers_with_reason_context():
    cascade, small = _cascade(window=30)
    result = cascade.invoke(_conversation())
    (decision,) = result.decisions
    assert result.tier == 1 and decision.signal == "context" and decision.score is None
    assert "do not fit its context window of 30 tokens with 10 reserved" in decision.reason
    assert small.calls == []  # the small tier was never called
    assert cascade.tiers[1].model.calls[0].messages == _conversation().messages  # the large tier sees it all


def test_a_turn_keeps_its_tool_calls_and_results_together():
    call = ToolCall("weather", {"city": "Paris"}, "c1")
    messages = [
        Message("user", "weather in Paris please " * 5), Message("assistant", "", tool_calls=(call,)),
        Message("tool", "sunny " * 10, tool_call_id="c1", name="weather"), Message("assistant", "It is sunny."),
        Message("user", "and tomorrow?"),
    ]
    request = Request.from_messages(messages, tools=(ToolSpec("weather"),))
    fitted = fit_to_context(request, words, context_window=60)
    assert [m.role for m in fitted.request.messages] == ["user"] and fitted.dropped == 4
    assert fit_to_context(request, words, context_window=200).dropped == 0


def test_streaming_uses_the_same_fitted_prompt():
    cascade, small = _cascade(window=100)
    chunks = list(cascade.stream(_conversation()))
    assert "".join(c.text for c in chunks) == "Paris" and len(small.calls[0].messages) == 4


def test_window_comes_from_the_model_when_the_tier_sets_none():
    small = ScriptedModel("Paris", confidence=0.95)
    small.context_window = 30
    result = Cascade([small, ScriptedModel("x")]).invoke(_conversation())
    assert result.decisions[0].signal == "context"


@pytest.mark.parametrize("window", [0, -5, 2.5, "big", True])
def test_bad_context_window_fails_at_construction(window):
    with pytest.raises(ConfigurationError, match="context_window must be a positive int"):
        Cascade([Tier(ScriptedModel("a"), context_window=window), ScriptedModel("b")])


def test_tiny_local_model_answers_a_conversation_longer_than_its_window(tiny_pair):
    # a randomly initialised tiny Llama (256 positions): without fitting, its backend would refuse
    # the prompt (BackendError -> "error" deferral); fitted, the small tier answers from the last turns
    from cascade_core.backends.transformers import TransformersModel

    model, tokenizer = tiny_pair
    small = TransformersModel(model, tokenizer, top_k=4, max_new_tokens=4, prompt_format="completion")
    history = []
    for _ in range(20):
        history += [Message("user", "the cat sat on the mat ."), Message("assistant", "the dog ate the bone .")]
    history.append(Message("user", "what is the capital of spain ?"))
    request = Request.from_messages(history)
    assert small.count_tokens(request.prompt_text) > small.context_window
    result = Cascade([small, ScriptedModel("Madrid")], rules=ThresholdRule("margin", 0.0)).invoke(request)
    assert result.tier == 0 and result.decision.signal == "margin"
    assert "oldest messages dropped to fit 256 tokens" in result.decision.reason
