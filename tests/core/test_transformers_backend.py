"""Local transformers backend: exact greedy decoding, top-k per step, early stop, labels, real model."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cascade_core import BackendError, Cascade, ConfigurationError, Message, Request, ThresholdRule
from cascade_core.backends.transformers import TransformersModel
from cascade_core.testing import ScriptedModel
from cascade_core.types import StepsEnd


def steps_of(model, request):
    events = list(model.stream_steps(request))
    assert isinstance(events[-1], StepsEnd)
    return events[:-1], events[-1]


@pytest.fixture
def tiny(tiny_pair):
    model, tokenizer = tiny_pair
    return TransformersModel(model, tokenizer, top_k=4, max_new_tokens=6, prompt_format="completion")


def test_kv_cached_greedy_steps_equal_transformers_generate(tiny, tiny_pair):
    model, tokenizer = tiny_pair
    request = Request.from_prompt("the capital of france")
    steps, end = steps_of(tiny, request)
    ids = tokenizer("the capital of france", return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        reference = model.generate(ids, max_new_tokens=6, do_sample=False, output_scores=True,
                                   return_dict_in_generate=True, pad_token_id=0)
    expected = reference.sequences[0, ids.shape[1]:].tolist()
    assert [s.token_id for s in steps] == expected[: len(steps)]
    # the recorded log-prob is log-softmax of the step's scores
    for step, scores in zip(steps, reference.scores):
        assert step.logprob == pytest.approx(float(torch.log_softmax(scores[0].float(), -1)[step.token_id]), abs=1e-4)
    assert end.usage.input_tokens == ids.shape[1]


def test_topk_is_sorted_and_contains_greedy_token(tiny):
    steps, _ = steps_of(tiny, Request.from_prompt("the cat"))
    for step in steps:
        values = [a.logprob for a in step.top]
        assert len(step.top) == 4 and values == sorted(values, reverse=True)
        assert step.top[0].logprob == pytest.approx(step.logprob)  # greedy picks the top-1
        assert sum(math.exp(v) for v in values) <= 1.0 + 1e-6


def test_label_first_tokens_are_recorded_at_the_first_step(tiny):
    steps, _ = steps_of(tiny, Request.from_prompt("the cat", first_step_tokens=("yes", "maybe")))
    tokens = {a.token.strip() for a in steps[0].top}
    assert {"yes", "maybe"} <= tokens
    assert len(steps[1].top) == 4  # only the first step carries the extra label tokens


def test_closing_the_stream_after_one_step_stops_decoding(tiny):
    calls = []
    handle = tiny.model.register_forward_hook(lambda *a: calls.append(1))
    try:
        stream = tiny.stream_steps(Request.from_prompt("the cat"))
        next(stream)
        stream.close()
    finally:
        handle.remove()
    assert len(calls) == 1  # prefill only: no decoding step after the decision


def test_cascade_with_margin_defers_after_one_forward_pass(tiny):
    calls = []
    handle = tiny.model.register_forward_hook(lambda *a: calls.append(1))
    try:
        cascade = Cascade([tiny, ScriptedModel("big")], rules=ThresholdRule("margin", 0.99))
        result = cascade.invoke("the cat")
    finally:
        handle.remove()
    assert result.tier == 1 and result.decision.early_exit and len(calls) == 1


def test_stop_strings_cut_the_answer_and_end_decoding(tiny):
    full = tiny.complete(Request.from_prompt("the cat")).text
    words = full.split()
    assert len(words) >= 2
    stop = " " + words[1]
    cut = tiny.complete(Request.from_prompt("the cat", stop=(stop,)))
    assert cut.text == full[: full.index(stop)] and cut.finish_reason == "stop"
    steps, _ = steps_of(tiny, Request.from_prompt("the cat", stop=(stop,)))
    assert len(steps) == full.split().index(words[1]) + 1  # no step after the stop string


def test_embedding_is_pooled_hidden_state(tiny_pair):
    model, tokenizer = tiny_pair
    backend = TransformersModel(model, tokenizer, top_k=3, max_new_tokens=3, prompt_format="completion",
                                record_embedding=True)
    _, end = steps_of(backend, Request.from_prompt("the dog"))
    assert end.embedding is not None and end.embedding.shape == (model.config.hidden_size,)
    assert np.isfinite(end.embedding).all()


def test_prompt_over_context_window_defers_instead_of_crashing(tiny):
    long_prompt = " ".join(["the cat sat on the mat"] * 60)
    with pytest.raises(BackendError, match="context window"):
        list(tiny.stream_steps(Request.from_prompt(long_prompt)))
    result = Cascade([tiny, ScriptedModel("big")]).invoke(long_prompt)
    assert result.tier == 1 and "context window" in result.decision.reason


def test_plain_format_renders_a_transcript(tiny):
    plain = TransformersModel(tiny.model, tiny.tokenizer, prompt_format="plain")
    text = plain.render(Request.from_messages([Message("system", "be brief"), Message("user", "hi")]))
    assert text == "System: be brief\nUser: hi\nAssistant:"


@pytest.mark.parametrize(
    "kwargs, match",
    [({"top_k": 0}, "top_k"), ({"max_new_tokens": 0}, "max_new_tokens"), ({"prompt_format": "xml"}, "prompt_format"),
     ({"prompt_format": "chat"}, "chat template"), ({"temperature": -1.0}, "temperature")],
)
def test_configuration_is_validated(tiny_pair, kwargs, match):
    model, tokenizer = tiny_pair
    with pytest.raises(ConfigurationError, match=match):
        TransformersModel(model, tokenizer, **kwargs)


def test_missing_tokenizer_is_a_configuration_error(tiny_pair):
    with pytest.raises(ConfigurationError, match="tokenizer"):
        TransformersModel(tiny_pair[0])


def test_async_steps_match_sync(tiny):
    import asyncio

    async def collect():
        return [e async for e in tiny.astream_steps(Request.from_prompt("the cat"))]

    sync = [s.token_id for s in steps_of(tiny, Request.from_prompt("the cat"))[0]]
    events = asyncio.run(collect())
    assert [e.token_id for e in events[:-1]] == sync


def _capital_prompt(country: str) -> str:
    shots = "Q: What is the capital of Spain?\nA: Madrid\n\nQ: What is the capital of Canada?\nA: Ottawa\n\n"
    return shots + f"Q: What is the capital of {country}?\nA:"


@pytest.mark.slow
def test_real_small_model_margin_separates_known_from_unknown_facts(embedded_small_completion):
    from cascade_core import Generation, make_scorer

    margin = make_scorer("margin")
    scores, answers = {}, {}
    for country in ["France", "Germany", "Tuvalu", "Burkina Faso"]:
        steps, end = steps_of(embedded_small_completion, Request.from_prompt(_capital_prompt(country), stop=("\n",)))
        answers[country] = "".join(s.output_text for s in steps)
        scores[country] = margin(Generation(answers[country], tuple(steps)))
        assert end.finish_reason == "stop" and answers[country].count("\n") == 1  # stopped at the newline
    assert "Paris" in answers["France"] and "Berlin" in answers["Germany"]
    assert "Funafuti" not in answers["Tuvalu"] and "Ouagadougou" not in answers["Burkina Faso"]
    # the first-token margin is high where the small model knows the answer and low where it does not
    assert min(scores["France"], scores["Germany"]) > 0.5 > max(scores["Tuvalu"], scores["Burkina Faso"])


@pytest.mark.slow
def test_real_small_model_chat_template_and_streaming_cascade(embedded_small, embedded_large):
    cascade = Cascade([embedded_small, embedded_large], rules=ThresholdRule("margin", 0.0))
    chunks = list(cascade.stream([Message("user", "Say hello.")]))
    result = chunks[-1].result
    assert result.tier == 0 and result.text and "".join(c.text for c in chunks) == result.text
    assert embedded_small.prompt_format == "chat"


def test_stop_string_answer_keeps_the_backends_usage_and_embedding(tiny_pair):
    model, tokenizer = tiny_pair
    backend = TransformersModel(model, tokenizer, top_k=3, max_new_tokens=6, prompt_format="completion",
                                record_embedding=True)
    full = backend.complete(Request.from_prompt("the cat")).text
    stop = " " + full.split()[1]
    result = Cascade([backend, ScriptedModel("big")], rules=ThresholdRule("chow_sum", float("-inf"))).invoke(
        Request.from_prompt("the cat", stop=(stop,)))
    assert result.tier == 0 and result.text == full[: full.index(stop)]
    assert result.generation.embedding is not None  # the end event after the stop string was read
    assert result.generation.usage.input_tokens == 2 and result.generation.finish_reason == "stop"
