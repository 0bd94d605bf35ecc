"""Engine decisions with scripted backends: keep/defer, early exit, streaming, async, batch, tools, errors."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from cascade_core import (
    BackendError,
    Cascade,
    ConfigurationError,
    DynamicBudgetThreshold,
    InvalidRequestError,
    Message,
    Pricing,
    Request,
    ThresholdRule,
    Tier,
    ToolSpec,
    summarize_costs,
)
from cascade_core.testing import ScriptedModel


def make(small_conf=0.9, rule=None, small_text="Paris is the capital", **kw):
    small = ScriptedModel(small_text, confidence=small_conf, name="small")
    large = ScriptedModel("Large answer", name="large")
    cascade = Cascade(
        [Tier(small, Pricing(0.1, 0.1)), Tier(large, Pricing(10.0, 30.0))],
        rules=rule or ThresholdRule("margin", 0.5),
        **kw,
    )
    return cascade, small, large


def test_keeps_small_answer_when_margin_above_threshold():
    cascade, small, large = make(small_conf=0.9)
    result = cascade.invoke("What is the capital of France?")
    assert (result.text, result.tier, result.model_name) == ("Paris is the capital", 0, "small")
    assert not result.decision.defer and result.decision.score == pytest.approx(0.9 - 0.08)
    assert result.decision.threshold == 0.5 and "keep" in result.decision.reason
    assert large.calls == []
    assert result.generation is not None and len(result.generation.steps) == 4


def test_defers_when_margin_below_threshold_after_first_step_only():
    cascade, small, large = make(small_conf=0.4)
    result = cascade.invoke("hard question")
    assert (result.text, result.tier) == ("Large answer", 1)
    assert result.decision.defer and result.decision.early_exit
    assert small.steps_served == 1  # the small model was stopped after its first token
    assert result.runs[0].usage.output_tokens == 1 and len(large.calls) == 1


def test_sequence_rule_runs_small_model_to_the_end_before_deciding():
    cascade, small, _ = make(small_conf=0.4, rule=ThresholdRule("chow_average", -0.01))
    result = cascade.invoke("q")
    assert result.tier == 1 and not result.decision.early_exit
    assert small.steps_served == 4


def test_cost_accounting_and_saved_vs_all_large():
    cascade, _, _ = make(small_conf=0.9)
    kept = cascade.invoke("one two three")
    assert kept.cost == pytest.approx((3 * 0.1 + 4 * 0.1) / 1e6)
    # all-large estimate: same prompt and answer length at the large tier's prices
    assert kept.all_large_cost == pytest.approx((3 * 10.0 + 4 * 30.0) / 1e6)
    assert kept.saved > 0
    cascade2, _, _ = make(small_conf=0.1)
    deferred = cascade2.invoke("one two three")
    assert deferred.cost == pytest.approx(deferred.runs[0].cost + deferred.runs[1].cost)
    assert deferred.saved < 0  # deferring costs the small attempt on top of the large call
    summary = summarize_costs([kept, deferred])
    assert summary.n == 2 and summary.deferral_rate == 0.5
    assert summary.saved == pytest.approx(kept.saved + deferred.saved)


def test_three_tiers_with_a_rule_per_step():
    tiny = ScriptedModel("tiny", confidence=0.2, name="tiny")
    mid = ScriptedModel("mid", confidence=0.95, name="mid")
    big = ScriptedModel("big", name="big")
    cascade = Cascade([tiny, mid, big], rules=[ThresholdRule("margin", 0.5), ThresholdRule("margin", 0.5)])
    result = cascade.invoke("q")
    assert (result.text, result.tier) == ("mid", 1)
    assert [d.defer for d in result.decisions] == [True, False]
    assert big.calls == []


def test_stream_kept_answer_streams_small_tokens_after_first_step():
    cascade, _, _ = make(small_conf=0.9)
    chunks = list(cascade.stream("q"))
    assert [c.text for c in chunks[:-1]] == ["Paris", " is", " the", " capital"]
    assert all(c.tier == 0 for c in chunks)
    assert chunks[-1].result is not None and chunks[-1].result.text == "Paris is the capital"


def test_stream_deferred_answer_streams_only_large_chunks():
    cascade, _, _ = make(small_conf=0.2)
    chunks = list(cascade.stream("q"))
    assert "".join(c.text for c in chunks) == "Large answer"
    assert {c.tier for c in chunks} == {1}
    assert chunks[-1].result.decision.defer


def test_stream_with_sequence_rule_emits_only_after_deciding():
    small = ScriptedModel("a b c", confidence=0.9, name="small")
    seen_before_first_chunk = []

    class Watching(ScriptedModel):
        pass

    cascade = Cascade([small, Watching("big")], rules=ThresholdRule("chow_sum", -5.0))
    stream = cascade.stream("q")
    first = next(stream)
    seen_before_first_chunk.append(small.steps_served)
    rest = list(stream)
    assert seen_before_first_chunk == [3]  # all three tokens were generated before anything was emitted
    assert first.text + "".join(c.text for c in rest) == "a b c"


async def test_async_paths_match_sync_decisions():
    cascade, _, _ = make(small_conf=0.9)
    sync = cascade.invoke("q")
    result = await cascade.ainvoke("q")
    assert (result.text, result.tier, result.decision.score) == (sync.text, sync.tier, sync.decision.score)
    chunks = [c async for c in cascade.astream("q")]
    assert "".join(c.text for c in chunks) == sync.text
    deferring, small, _ = make(small_conf=0.1)
    result = await deferring.ainvoke("q")
    assert result.tier == 1 and small.steps_served == 1


class SlowModel(ScriptedModel):
    """Scripted model that records how many calls run at once."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.active = 0
        self.peak = 0
        self.guard = threading.Lock()

    def stream_steps(self, request):
        with self.guard:
            self.active += 1
            self.peak = max(self.peak, self.active)
        try:
            time.sleep(0.02)
            yield from super().stream_steps(request)
        finally:
            with self.guard:
                self.active -= 1


def test_batch_keeps_order_and_bounds_concurrency():
    small = SlowModel([f"answer {i}" for i in range(12)], confidence=[0.9, 0.1] * 6, name="small")
    cascade = Cascade([small, ScriptedModel("big")], rules=ThresholdRule("margin", 0.5), max_concurrency=3)
    results = cascade.batch([f"q{i}" for i in range(12)])
    assert len(results) == 12 and 1 <= small.peak <= 3
    # calls are served in arrival order by the scripted model, so check each request got an answer
    assert sorted(r.tier for r in results) == [0] * 6 + [1] * 6


async def test_abatch_bounds_concurrency_and_returns_exceptions_in_place():
    small = SlowModel("ok", confidence=0.9, name="small")
    cascade = Cascade([small, ScriptedModel("big")], max_concurrency=2)
    requests = ["a", Request.from_prompt("b"), "c", "d"]
    results = await cascade.abatch(requests)
    assert [r.text for r in results] == ["ok"] * 4 and small.peak <= 2

    failing = Cascade([ScriptedModel("x", confidence=0.1), ScriptedModel("y", fail=True)])
    outcomes = await failing.abatch(["a", "b"], return_exceptions=True)
    assert all(isinstance(o, BackendError) for o in outcomes)
    with pytest.raises(BackendError):
        await failing.abatch(["a"])


def test_failing_small_tier_defers_with_reason_or_raises_when_asked():
    cascade = Cascade([ScriptedModel("x", fail=True, name="small"), ScriptedModel("big", name="large")])
    result = cascade.invoke("q")
    assert result.tier == 1 and "failed" in result.decision.reason and result.decision.score is None
    strict = Cascade([ScriptedModel("x", fail=True), ScriptedModel("big")], on_small_error="raise")
    with pytest.raises(BackendError, match="scripted failure"):
        strict.invoke("q")


def test_failing_large_tier_raises():
    cascade = Cascade([ScriptedModel("x", confidence=0.1), ScriptedModel("y", fail=True)])
    with pytest.raises(BackendError):
        cascade.invoke("q")


def test_empty_small_answer_defers():
    cascade = Cascade([ScriptedModel(""), ScriptedModel("big")])
    result = cascade.invoke("q")
    assert result.tier == 1 and "no tokens" in result.decision.reason


def test_answer_check_rejection_defers():
    cascade, _, _ = make(small_conf=0.95)
    result = cascade.invoke("q", check=lambda g: None if g.text.startswith("{") else "not JSON")
    assert result.tier == 1 and "answer check failed: not JSON" in result.decision.reason
    assert result.decision.score is not None  # the score is still recorded

    def broken(_):
        raise ValueError("validator exploded")

    assert cascade.invoke("q", check=broken).tier == 1


TOOLS = (ToolSpec("get_weather", "Weather for a city", {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),)


def test_small_tool_call_is_parsed_into_tool_calls():
    call = '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>'
    cascade, small, _ = make(small_conf=0.95, small_text=call)
    result = cascade.invoke(Request.from_prompt("weather in Paris?", tools=TOOLS))
    assert result.tier == 0
    assert [(c.name, c.arguments) for c in result.tool_calls] == [("get_weather", {"city": "Paris"})]
    # the small tier saw the tools described in a system message
    assert small.calls[0].messages[0].role == "system" and "get_weather" in small.calls[0].messages[0].content


@pytest.mark.parametrize(
    "text, reason",
    [
        ('<tool_call>{"name": "get_weather", "arguments": {"city": </tool_call>', "not valid JSON"),
        ('<tool_call>{"name": "launch_rockets", "arguments": {}}</tool_call>', "names no bound tool"),
        ('<tool_call>{"name": "get_weather", "arguments": {}}</tool_call>', "missing required"),
    ],
)
def test_malformed_or_unknown_small_tool_call_defers(text, reason):
    cascade, _, _ = make(small_conf=0.95, small_text=text)
    result = cascade.invoke(Request.from_prompt("weather?", tools=TOOLS))
    assert result.tier == 1 and reason in result.decision.reason


def test_required_tool_choice_without_a_call_defers():
    cascade, _, _ = make(small_conf=0.95, small_text="It is sunny")
    result = cascade.invoke(Request.from_prompt("weather?", tools=TOOLS, tool_choice="required"))
    assert result.tier == 1 and "called no tool" in result.decision.reason


def test_dynamic_threshold_inside_cascade_tracks_target_rate():
    confidences = [0.5 + ((i * 37) % 100) / 201 for i in range(200)]  # distinct margins
    small = ScriptedModel("x", confidence=confidences)
    policy = DynamicBudgetThreshold(deferral_rate=0.3, warmup=10, initial_threshold=0.0)
    cascade = Cascade([small, ScriptedModel("big")], rules=ThresholdRule("margin", policy))
    results = [cascade.invoke(f"q{i}") for i in range(200)]
    rate = sum(r.deferred for r in results) / len(results)
    assert rate == pytest.approx(0.3, abs=0.06)


@pytest.mark.parametrize(
    "request_factory, match",
    [
        (lambda: [], "no messages"),
        (lambda: Request(messages=()), "no messages"),
        (lambda: [Message("user", [{"type": "image_url"}])], "non-text"),
        (lambda: [Message("robot", "hi")], "role"),
        (lambda: Request.from_prompt("x", max_new_tokens=0), "max_new_tokens"),
        (lambda: Request.from_prompt("x", tools=TOOLS, tool_choice="nope"), "tool_choice"),
    ],
)
def test_bad_requests_raise_clear_errors(request_factory, match):
    cascade, _, _ = make()
    with pytest.raises(InvalidRequestError, match=match):
        cascade.invoke(request_factory())


def test_construction_validates_tiers_and_rules():
    small, big = ScriptedModel("a"), ScriptedModel("b")
    with pytest.raises(ConfigurationError, match="at least 2 tiers"):
        Cascade([small])
    with pytest.raises(ConfigurationError, match="top_k >= 2"):
        Cascade([ScriptedModel("a", top_k=1), big], rules=ThresholdRule("margin", 0.3))
    Cascade([ScriptedModel("a", top_k=1), big], rules=ThresholdRule("chow_sum", -3.0))  # needs no top-k

    class TextOnly:
        model_name = "text-only"

    with pytest.raises(ConfigurationError, match="token log-probs"):
        Cascade([TextOnly(), big])
    with pytest.raises(ConfigurationError, match="one rule per non-final tier"):
        Cascade([small, big], rules=[ThresholdRule(), ThresholdRule()])
    with pytest.raises(ConfigurationError, match="max_concurrency"):
        Cascade([small, big], max_concurrency=0)
    with pytest.raises(ConfigurationError, match="on_small_error"):
        Cascade([small, big], on_small_error="ignore")


def test_result_as_dict_is_json_ready():
    import json

    cascade, _, _ = make(small_conf=0.2)
    payload = cascade.invoke("q").as_dict()
    assert json.loads(json.dumps(payload))["deferred"] is True
    assert payload["signal"] == "margin" and payload["runs"][1]["model_name"] == "large"


def test_concurrent_invokes_from_threads_all_complete():
    cascade, _, _ = make(small_conf=0.9)
    out = []

    def run():
        out.append(cascade.invoke("q").text)

    threads = [threading.Thread(target=run) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert out == ["Paris is the capital"] * 16


async def test_async_stream_early_break_closes_cleanly():
    cascade, _, _ = make(small_conf=0.9)
    agen = cascade.astream("q")
    first = await agen.__anext__()
    await agen.aclose()
    assert first.text == "Paris"
    await asyncio.sleep(0)


def test_response_schema_is_rendered_into_the_small_tiers_prompt():
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    cascade, small, large = make(small_conf=0.95, small_text='{"city": "Paris"}')
    request = Request.from_messages([Message("system", "Be terse."), Message("user", "Capital of France?")],
                                    response_schema=schema)
    result = cascade.invoke(request)
    assert result.tier == 0
    system = small.calls[0].messages[0]
    assert system.role == "system" and system.content.startswith("Be terse.") and '"required": ["city"]' in system.content
    assert len(small.calls[0].messages) == 2  # merged into the existing system message
