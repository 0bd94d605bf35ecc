"""The sample_agreement signal: the pure function, the scorer, the plan's effects, and a cascade whose small
tier returns no log-probs (the fake OpenAI-compatible server on 127.0.0.1, the real openai client)."""

from __future__ import annotations

import asyncio
import math

import pytest

from cascade_core import (
    BackendError,
    Cascade,
    ConfigurationError,
    LogprobsUnavailableError,
    Request,
    SignalError,
    ThresholdRule,
)
from cascade_core.backends.openai import OpenAIModel
from cascade_core.decide.scorers import SampleAgreement, SamplingPlan, make_scorer
from cascade_core.decide.signals import sample_agreement
from cascade_core.engine.effects import GenerateTexts, OpenSteps
from cascade_core.engine.machine import TierView, plan
from cascade_core.testing import ScriptedModel
from cascade_core.testing.fake_server import FakeOpenAIServer, FakeReply
from cascade_core.types import Generation, TextSamples, Usage

# -- the pure function ------------------------------------------------------------------------------


def test_agreement_is_the_share_of_samples_whose_normalised_answer_equals_the_greedy_one() -> None:
    assert sample_agreement("Paris", ["Paris", "Paris", "Paris", "Paris"]) == 1.0
    assert sample_agreement("Paris", ["Lyon", "Rome", "Nice", "Lille"]) == 0.0
    assert sample_agreement("Paris", ["Paris.", " paris", "PARIS\nQ: next", "Paris, France"]) == 0.75
    assert sample_agreement("Bogotá", ["Bogota"]) == 1.0


def test_an_empty_greedy_answer_agrees_with_nothing() -> None:
    assert sample_agreement("  ", ["", " "]) == 0.0


def test_no_samples_is_a_signal_error_not_a_score() -> None:
    with pytest.raises(SignalError, match="at least one sampled answer"):
        sample_agreement("Paris", [])
    with pytest.raises(SignalError, match="not one string"):
        sample_agreement("Paris", "Paris")  # type: ignore[arg-type]


# -- the scorer ------------------------------------------------------------------------------------


def test_scorer_is_registered_with_its_parameters_and_needs_no_logprobs() -> None:
    scorer = make_scorer("sample_agreement", k=4, temperature=0.7)
    assert scorer.name == "sample_agreement(k=4, temperature=0.7)"
    assert scorer.score_range == (0.0, 1.0) and not scorer.first_step_only
    assert scorer.needs_logprobs is False and scorer.min_top_k == 0
    assert scorer.sampling == SamplingPlan(4, 0.7, 0)
    rule = ThresholdRule("sample_agreement", 0.5, k=3, temperature=1.0)
    assert rule.scorer.sampling == SamplingPlan(3, 1.0, 0)
    with pytest.raises(ConfigurationError, match="threshold"):
        ThresholdRule("sample_agreement", 1.5)


@pytest.mark.parametrize(("params", "message"), [
    ({"k": 0}, "k must be an int >= 1"), ({"k": -2}, "k must be an int >= 1"), ({"k": True}, "k must be an int"),
    ({"k": 2.5}, "k must be an int"), ({"temperature": 0}, r"temperature must be a number in \(0, 2\]"),
    ({"temperature": -0.5}, "temperature"), ({"temperature": 3.0}, "temperature"), ({"temperature": math.nan}, "temperature"),
    ({"seed": -1}, "seed must be a non-negative int"), ({"seed": "x"}, "seed"), ({"top": 3}, "invalid parameters"),
])
def test_bad_parameters_are_rejected_by_name(params: dict, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        make_scorer("sample_agreement", **params)


def test_scorer_reads_the_first_k_samples_and_refuses_too_few() -> None:
    scorer = SampleAgreement(k=2, temperature=0.7)
    assert scorer(Generation("Paris", (), samples=("Paris", "Lyon", "Lyon"))) == 0.5
    with pytest.raises(SignalError, match="needs 2 sampled answers; the generation has 1"):
        scorer(Generation("Paris", (), samples=("Paris",)))


# -- the plan, driven by hand --------------------------------------------------------------------------


def test_plan_asks_for_a_greedy_text_then_k_samples_and_never_opens_a_step_stream() -> None:
    view = TierView("small", lambda usage: 0.0, len)
    rule = ThresholdRule(SampleAgreement(k=3, temperature=0.9, seed=7), 0.5)
    machine = plan([view, view], [rule], Request.from_prompt("Q", stop=("\n",)), streaming=False)
    first = next(machine)
    assert isinstance(first, GenerateTexts) and (first.n, first.temperature) == (1, 0.0)
    second = machine.send(TextSamples(("Paris\nQ: more",), Usage(3, 4)))
    assert isinstance(second, GenerateTexts) and (second.n, second.temperature, second.seed) == (3, 0.9, 7)
    emit = machine.send(TextSamples(("Paris", "paris.", "Lyon"), Usage(9, 3), calls=3))
    result = emit.chunk.result
    assert (result.tier, result.text, result.generation.samples) == (0, "Paris", ("Paris", "paris.", "Lyon"))
    assert result.decision.score == pytest.approx(2 / 3)
    assert result.runs[0].usage == Usage(12, 7) and result.generation.sample_usage == Usage(9, 3)


def test_plan_for_a_logprob_signal_still_opens_the_step_stream() -> None:
    view = TierView("small", lambda usage: 0.0, len)
    machine = plan([view, view], [ThresholdRule("margin", 0.5)], Request.from_prompt("Q"), streaming=False)
    assert isinstance(next(machine), OpenSteps)


def test_a_small_tier_without_generate_texts_is_refused_at_construction() -> None:
    class StepsOnly:
        model_name, top_k = "steps-only", 5

        def stream_steps(self, request):  # pragma: no cover - never called
            yield from ()

        def astream_steps(self, request):  # pragma: no cover - never called
            raise NotImplementedError

        def count_tokens(self, text: str) -> int:
            return 1

    with pytest.raises(ConfigurationError, match="has no generate_texts"):
        Cascade([StepsOnly(), ScriptedModel("x")], rules=ThresholdRule("sample_agreement", 0.5))


def test_scripted_cascade_keeps_agreeing_and_defers_disagreeing_answers() -> None:
    rule = ThresholdRule("sample_agreement", 0.5, k=4)
    small = ScriptedModel(["Paris", "Lyon"], samples=[["Paris", "Paris.", "Nice", "paris"], ["Rome", "Lyon", "Nice", "Bern"]])
    cascade = Cascade([small, ScriptedModel("Paris, France")], rules=rule)
    kept, deferred = cascade.invoke("France?"), cascade.invoke("Italy?")
    assert (kept.tier, kept.decision.score) == (0, 0.75)
    assert (deferred.tier, deferred.decision.score, deferred.decision.defer) == (1, 0.25, True)
    assert [call[1:3] for call in small.sample_calls] == [(4, 0.7), (4, 0.7)]


# -- end to end: a small tier served without log-probs ---------------------------------------------------

SAMPLES = {"agree": ["Paris", "Paris.", "paris", "Lyon"], "split": ["Lyon", "Nice", "Paris", "Lille"]}


def no_logprobs(body: dict) -> FakeReply:
    """A server that never returns log-probs; greedy answers Paris, samples by the question and the seed."""
    question = str(body["messages"][-1]["content"])
    if body.get("temperature", 0) == 0:
        return FakeReply("Paris", logprobs=False)
    if "broken" in question:
        return FakeReply(status=500)
    key = "agree" if "agree" in question else "split"
    return FakeReply(SAMPLES[key][int(body.get("seed", 0)) % 4], logprobs=False)


@pytest.fixture(scope="module")
def server():
    with FakeOpenAIServer(no_logprobs) as srv:
        yield srv


@pytest.fixture
def small(server) -> OpenAIModel:
    return OpenAIModel("small-no-logprobs", base_url=server.base_url, api_key="sk-fake", timeout=10, max_retries=0)


def _cascade(small: OpenAIModel, **options) -> Cascade:
    return Cascade([small, ScriptedModel("Paris, the capital", name="large")],
                   rules=ThresholdRule("sample_agreement", 0.6, k=4, temperature=0.7), **options)


def test_a_logprob_signal_on_a_server_without_logprobs_raises_at_the_first_call(small) -> None:
    cascade = Cascade([small, ScriptedModel("x")], rules=ThresholdRule("margin", 0.3))
    with pytest.raises(LogprobsUnavailableError, match="without logprobs"):
        cascade.invoke("agree: capital of France?")


def test_sample_agreement_runs_on_a_server_without_logprobs_and_keeps_agreeing_answers(small, server) -> None:
    start = len(server.requests)
    result = _cascade(small).invoke("agree: capital of France?")
    sent = server.requests[start:]
    assert (result.tier, result.text, result.decision.score) == (0, "Paris", 0.75)
    assert len(sent) == 5  # k + 1 small calls, stated
    assert all("logprobs" not in body and "top_logprobs" not in body for body in sent)
    assert [b["temperature"] for b in sent] == [0.0] + [0.7] * 4
    assert [b.get("seed") for b in sent] == [None, 0, 1, 2, 3]
    assert result.generation.steps == () and result.generation.samples == ("Paris", "Paris.", "paris", "Lyon")
    # all five calls are charged: the fake server counts one token per word (4 prompt words, 1 answer word)
    assert result.runs[0].usage == Usage(5 * 4, 5) and result.generation.sample_usage == Usage(4 * 4, 4)


def test_sample_agreement_defers_disagreeing_answers_sync_and_async(small) -> None:
    cascade = _cascade(small)
    for result in (cascade.invoke("split: capital of France?"), asyncio.run(cascade.ainvoke("split: capital of France?"))):
        assert (result.tier, result.text, result.decision.defer, result.decision.score) == (1, "Paris, the capital", True, 0.25)
        assert result.decision.signal == "sample_agreement(k=4, temperature=0.7)"


def test_streaming_emits_a_kept_answer_only_after_the_samples_decided(small, server) -> None:
    start = len(server.requests)
    chunks = list(_cascade(small).stream("agree: capital of France?"))
    assert [c.text for c in chunks] == ["Paris", ""] and chunks[-1].result.tier == 0
    assert len(server.requests) - start == 5


def test_a_failing_sampled_call_defers_or_raises_per_on_small_error(small) -> None:
    deferred = _cascade(small).invoke("broken: capital of France?")
    assert (deferred.tier, deferred.decision.signal) == (1, "error")
    assert "BackendError" in deferred.decision.reason
    with pytest.raises(BackendError, match="small-no-logprobs"):
        _cascade(small, on_small_error="raise").invoke("broken: capital of France?")
    with pytest.raises(BackendError):
        asyncio.run(_cascade(small, on_small_error="raise").ainvoke("broken: capital of France?"))


# -- the transformers backend (a tiny random model, no download) ------------------------------------------


def test_transformers_backend_samples_k_answers_in_one_seeded_call_and_cascades_on_them() -> None:
    from cascade_core.backends.transformers import TransformersModel
    from cascade_core.testing import tiny_model, tiny_tokenizer

    tok = tiny_tokenizer()
    small = TransformersModel(tiny_model(tok), tok, top_k=3, max_new_tokens=4, prompt_format="completion")
    request = Request.from_prompt("the cat", max_new_tokens=4)
    greedy = small.generate_texts(request, n=1, temperature=0)
    assert greedy.texts == (small.complete(request).text,)
    drawn = small.generate_texts(request, n=5, temperature=1.5, seed=3)
    assert len(drawn.texts) == 5 and drawn.calls == 1 and drawn.usage.input_tokens == 5 * greedy.usage.input_tokens
    assert drawn == small.generate_texts(request, n=5, temperature=1.5, seed=3)  # seeded: reproducible
    assert drawn.texts != small.generate_texts(request, n=5, temperature=1.5, seed=4).texts
    with pytest.raises(ConfigurationError, match="n must be a positive int"):
        small.generate_texts(request, n=0, temperature=1.0)
    result = Cascade([small, ScriptedModel("large")], rules=ThresholdRule("sample_agreement", 1.0, k=3, temperature=1.5)).invoke(request)
    assert len(result.decisions[0].reason) and result.runs[0].usage.input_tokens == 4 * greedy.usage.input_tokens
