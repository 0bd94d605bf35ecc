"""Batched prefill: ``stream_steps_batch`` and ``Cascade.batch`` / ``abatch`` on top of it.

The batched path must give the decisions, answers and usage of the unbatched path; these tests
compare the two on the same model, count forward passes, and check failures stay in their slot.
"""

from __future__ import annotations

import statistics

import numpy as np
import pytest

from cascade_core import Cascade, Request, ThresholdRule
from cascade_core.backends.base import BatchPrefillModel
from cascade_core.backends.transformers import TransformersModel
from cascade_core.errors import ConfigurationError
from cascade_core.testing import ScriptedModel, tiny_model, tiny_tokenizer
from cascade_core.types import StepsEnd

PROMPTS = [
    "the cat",
    "paris is the capital of france . rome is the capital of",
    "what",
    "the dog ate the bone . the cat sat on the",
    "yes no maybe",
    "what is the capital of spain ?",
    "madrid . the",
    "rome",
]


@pytest.fixture(scope="module")
def tiny() -> TransformersModel:
    tok = tiny_tokenizer()
    return TransformersModel(tiny_model(tok, layers=2), tok, top_k=3, max_new_tokens=6, prompt_format="completion")


def _events(stream):
    events = list(stream)
    return events[:-1], events[-1]


def _assert_same_steps(solo, batched) -> None:
    (steps_a, end_a), (steps_b, end_b) = solo, batched
    assert [s.token_id for s in steps_a] == [s.token_id for s in steps_b]
    assert [s.text for s in steps_a] == [s.text for s in steps_b]
    np.testing.assert_allclose([s.logprob for s in steps_a], [s.logprob for s in steps_b], atol=1e-4)
    for a, b in zip(steps_a, steps_b):
        assert [t.token for t in a.top] == [t.token for t in b.top]
        np.testing.assert_allclose([t.logprob for t in a.top], [t.logprob for t in b.top], atol=1e-4)
    assert isinstance(end_b, StepsEnd) and end_a.usage == end_b.usage and end_a.finish_reason == end_b.finish_reason


def test_batched_streams_match_unbatched_streams(tiny):
    requests = [Request.from_prompt(p) for p in PROMPTS]
    solo = [_events(tiny.stream_steps(r)) for r in requests]
    batched = [_events(s) for s in tiny.stream_steps_batch(requests)]
    for a, b in zip(solo, batched):
        _assert_same_steps(a, b)


def test_batched_streams_keep_label_tokens_stops_and_embeddings():
    tok = tiny_tokenizer()
    model = TransformersModel(tiny_model(tok), tok, top_k=2, max_new_tokens=5, prompt_format="completion",
                              record_embedding=True)
    requests = [Request.from_prompt(p, first_step_tokens=("yes", "no"), stop=("mat",)) for p in PROMPTS[:4]]
    solo = [_events(model.stream_steps(r)) for r in requests]
    batched = [_events(s) for s in model.stream_steps_batch(requests)]
    for a, b in zip(solo, batched):
        _assert_same_steps(a, b)
        assert {"yes", "no"} <= {t.token for t in b[0][0].top}  # labels recorded at the first step
        np.testing.assert_allclose(a[1].embedding, b[1].embedding, atol=1e-4)


def test_batch_decisions_identical_to_one_by_one(tiny):
    scores = [Cascade([tiny, ScriptedModel("L")], rules=ThresholdRule("margin", 0.0)).invoke(p).decision.score for p in PROMPTS]
    cascade = Cascade([tiny, ScriptedModel("large answer", name="large")], rules=ThresholdRule("margin", statistics.median(scores)))
    one_by_one = [cascade.invoke(p) for p in PROMPTS]
    batched = cascade.batch(PROMPTS)
    assert {r.tier for r in one_by_one} == {0, 1}  # the threshold splits the prompts: both paths are compared
    for a, b in zip(one_by_one, batched):
        assert (a.tier, a.text, a.decision.defer, a.decision.early_exit) == (b.tier, b.text, b.decision.defer, b.decision.early_exit)
        assert b.decision.score == pytest.approx(a.decision.score, abs=1e-4)
        assert a.runs[0].usage == b.runs[0].usage


async def test_abatch_decisions_identical_to_one_by_one(tiny):
    cascade = Cascade([tiny, ScriptedModel("large answer")], rules=ThresholdRule("margin", 0.2))
    one_by_one = [await cascade.ainvoke(p) for p in PROMPTS]
    batched = await cascade.abatch(PROMPTS, max_concurrency=3)
    assert [(r.tier, r.text) for r in one_by_one] == [(r.tier, r.text) for r in batched]
    assert [r.decision.score for r in batched] == pytest.approx([r.decision.score for r in one_by_one], abs=1e-4)


def _count_forwards(model: TransformersModel) -> list[int]:
    sizes: list[int] = []
    model.model.register_forward_pre_hook(lambda _m, args, kwargs: sizes.append(int(kwargs["input_ids"].shape[0])), with_kwargs=True)
    return sizes


def test_margin_deferrals_in_a_batch_cost_one_forward_per_group():
    tok = tiny_tokenizer()
    model = TransformersModel(tiny_model(tok), tok, max_new_tokens=6, prompt_format="completion", max_batch_size=3)
    sizes = _count_forwards(model)
    cascade = Cascade([model, ScriptedModel("L")], rules=ThresholdRule("margin", 1.0))  # every query defers
    results = cascade.batch(PROMPTS)
    assert all(r.deferred and r.decision.early_exit for r in results)
    assert sizes == [3, 3, 2]  # 8 requests in groups of max_batch_size=3: one padded forward each, nothing more


def test_kept_answers_continue_after_the_batched_prefill():
    tok = tiny_tokenizer()
    model = TransformersModel(tiny_model(tok, layers=2), tok, top_k=3, max_new_tokens=6, prompt_format="completion")
    sizes = _count_forwards(model)
    cascade = Cascade([model, ScriptedModel("L")], rules=ThresholdRule("margin", 0.0))  # every answer kept
    results = cascade.batch(PROMPTS[:4])
    assert sizes[0] == 4 and set(sizes[1:]) == {1}  # one batched prefill, then each answer decodes alone
    assert len(sizes) - 1 == sum(r.generation.usage.output_tokens - 1 for r in results)
    assert [r.text for r in results] == [cascade.invoke(p).text for p in PROMPTS[:4]]


def test_a_request_over_the_context_window_fails_alone():
    tok = tiny_tokenizer()
    model = TransformersModel(tiny_model(tok), tok, max_new_tokens=4, prompt_format="completion")
    cascade = Cascade([model, ScriptedModel("large")], rules=ThresholdRule("margin", 0.0))
    too_long = " ".join(["the cat sat on the mat ."] * 60)  # 420 tokens > 256 positions
    results = cascade.batch(["the cat", too_long, "rome"])
    assert [r.tier for r in results] == [0, 1, 0]
    # the engine sees the prompt cannot fit the small tier's window and defers it before any small call
    assert results[1].decisions[0].signal == "context" and "context" in results[1].decisions[0].reason
    strict = Cascade([model, ScriptedModel("large")], rules=ThresholdRule("margin", 0.0), on_small_error="raise").batch(["the cat", too_long])
    assert [r.tier for r in strict] == [0, 1]  # a prompt that cannot fit is a deferral, not a small-tier error


def test_max_batch_size_is_validated_and_one_turns_batching_off(tiny_pair):
    model, tok = tiny_pair
    with pytest.raises(ConfigurationError, match="max_batch_size"):
        TransformersModel(model, tok, max_batch_size=0)
    single = TransformersModel(model, tok, max_new_tokens=3, prompt_format="completion", max_batch_size=1)
    assert isinstance(single, BatchPrefillModel)
    sizes = _count_forwards(single)
    Cascade([single, ScriptedModel("L")], rules=ThresholdRule("margin", 1.0)).batch(PROMPTS[:3])
    assert sizes == [1, 1, 1]


TEMPLATE = "the cat sat on the mat . the dog ate the bone . paris is the capital of france . rome is the capital of"


def test_prompts_sharing_a_template_prefix_compute_it_once_and_match_unbatched():
    tok = tiny_tokenizer()
    model = TransformersModel(tiny_model(tok, layers=2), tok, top_k=3, max_new_tokens=5, prompt_format="completion")
    prompts = [f"{TEMPLATE} {end}" for end in ("italy . what", "spain ? madrid", "france", "italy . yes no maybe")]
    prompts += ["the cat", "what is the capital of spain ?"]  # share nothing long: prefilled in a plain group
    requests = [Request.from_prompt(p) for p in prompts]
    solo = [_events(model.stream_steps(r)) for r in requests]
    sizes = _count_forwards(model)
    batched = [_events(s) for s in model.stream_steps_batch(requests)]
    for a, b in zip(solo, batched):
        _assert_same_steps(a, b)
    # the template once (batch of 1), the four suffixes together, the two other prompts together, then decoding
    assert sizes[:3] == [1, 4, 2] and set(sizes[3:]) == {1}


@pytest.mark.slow
def test_real_small_model_batch_decisions_identical_to_one_by_one(embedded_small_completion):
    from cascade_core.evaluation.datasets.world_facts import few_shot_prompt, load_world_facts

    prompts = [few_shot_prompt(e) for e in load_world_facts("test", limit=16)]
    requests = [Request.from_prompt(p, stop=("\n",)) for p in prompts]
    cascade = Cascade([embedded_small_completion, ScriptedModel("large")], rules=ThresholdRule("margin", 0.3))
    one_by_one = [cascade.invoke(r) for r in requests]
    batched = cascade.batch(requests)
    assert {r.tier for r in one_by_one} == {0, 1}  # both kept and deferred answers are compared
    for a, b in zip(one_by_one, batched):
        assert (a.tier, a.text, a.decision.defer) == (b.tier, b.text, b.decision.defer)
        assert b.decision.score == pytest.approx(a.decision.score, abs=1e-3)
        assert a.runs[0].usage == b.runs[0].usage
