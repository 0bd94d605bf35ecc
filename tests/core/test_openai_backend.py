"""OpenAI-compatible backend against a fake server on 127.0.0.1 (real openai client, real HTTP, SSE)."""

from __future__ import annotations

import logging
import math
import time

import pytest

from cascade_core import (
    BackendError,
    Cascade,
    ConfigurationError,
    LogprobsUnavailableError,
    Pricing,
    Request,
    ThresholdRule,
    Tier,
    ToolSpec,
)
from cascade_core.backends.openai import OpenAIModel
from cascade_core.testing.fake_server import FakeOpenAIServer, FakeReply
from cascade_core.types import StepsEnd

SECRET = "sk-test-very-secret-key-123"


def responder(body):
    question = body["messages"][-1]["content"]
    if "slow" in question:
        return FakeReply("one two three four five six seven eight", confidence=0.5, delay_s=0.05)
    if "hard" in question:
        return FakeReply("Maybe Lyon", confidence=0.5)
    if "weather" in question:
        return FakeReply("", tool_calls=[{"name": "get_weather", "arguments": {"city": "Paris"}}])
    if "nologprobs" in question:
        return FakeReply("text without scores", logprobs=False)
    if "boom" in question:
        return FakeReply(status=500)
    return FakeReply("Paris is the capital", confidence=0.95)


@pytest.fixture(scope="module")
def server():
    with FakeOpenAIServer(responder) as srv:
        yield srv


@pytest.fixture
def small(server):
    return OpenAIModel("small-model", base_url=server.base_url, api_key=SECRET, top_k=4, timeout=10, max_retries=0)


@pytest.fixture
def large(server):
    return OpenAIModel("large-model", base_url=server.base_url, api_key=SECRET, timeout=10, max_retries=0)


def test_small_tier_steps_carry_logprobs_and_topk(small, server):
    events = list(small.stream_steps(Request.from_prompt("easy")))
    steps, end = events[:-1], events[-1]
    assert [s.token for s in steps] == ["Paris", " is", " the", " capital"]
    assert math.exp(steps[0].logprob) == pytest.approx(0.95)
    assert len(steps[0].top) == 4 and steps[0].top[0].token == "Paris"
    assert isinstance(end, StepsEnd) and end.usage.output_tokens == 4 and end.finish_reason == "stop"
    body = server.requests[-1]
    assert body["logprobs"] is True and body["top_logprobs"] == 4 and body["stream"] is True


def test_cascade_over_http_keeps_and_defers_with_early_close(small, large, server):
    cascade = Cascade([small, Tier(large, Pricing(1.0, 2.0))], rules=ThresholdRule("margin", 0.3))
    kept = cascade.invoke("easy")
    assert (kept.text, kept.tier) == ("Paris is the capital", 0)
    before = len(server.events_sent)
    deferred = cascade.invoke("slow")
    assert deferred.tier == 1 and deferred.decision.early_exit
    # the small stream was closed after its first token: the server could not send all 8 tokens
    deadline = time.monotonic() + 5
    while len(server.events_sent) <= before and time.monotonic() < deadline:
        time.sleep(0.05)
    small_stream_events = server.events_sent[before]
    assert small_stream_events < 8
    assert deferred.runs[1].usage.input_tokens > 0 and deferred.runs[1].cost > 0


async def test_async_small_and_large_paths(small, large):
    cascade = Cascade([small, large], rules=ThresholdRule("margin", 0.3))
    kept = await cascade.ainvoke("easy")
    deferred = await cascade.ainvoke("hard")
    assert (kept.tier, deferred.tier) == (0, 1)
    chunks = [c async for c in cascade.astream("hard")]
    assert "".join(c.text for c in chunks) == "Maybe Lyon" and chunks[-1].result.tier == 1


def test_large_tier_stream_and_native_tool_calls(large, server):
    tools = (ToolSpec("get_weather", "Weather", {"type": "object", "properties": {"city": {"type": "string"}}}),)
    completion = large.complete(Request.from_prompt("weather in Paris", tools=tools, tool_choice="get_weather"))
    assert [(c.name, c.arguments) for c in completion.tool_calls] == [("get_weather", {"city": "Paris"})]
    body = server.requests[-1]
    assert body["tools"][0]["function"]["name"] == "get_weather"
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    chunks = list(large.stream(Request.from_prompt("weather in Paris", tools=tools)))
    assert chunks[-1].tool_calls[0].name == "get_weather"
    text_chunks = list(large.stream(Request.from_prompt("easy")))
    assert "".join(c.text for c in text_chunks) == "Paris is the capital"
    assert any(c.usage is not None and c.usage.output_tokens == 4 for c in text_chunks)


def test_a_small_tier_without_logprobs_fails_loudly_at_the_first_call(small, large, server):
    with pytest.raises(LogprobsUnavailableError, match="returned text without logprobs") as info:
        list(small.stream_steps(Request.from_prompt("nologprobs")))
    assert "cascade llama-server" in str(info.value) and "large tier only" in str(info.value)  # names the options
    assert isinstance(info.value, ConfigurationError) and SECRET not in str(info.value)
    sent = len(server.requests)
    cascade = Cascade([small, large])  # on_small_error="defer" does not hide it: no silent all-large cascade
    with pytest.raises(LogprobsUnavailableError):
        cascade.invoke("nologprobs")
    assert len(server.requests) == sent + 1  # the large tier was never called


async def test_a_small_tier_without_logprobs_fails_loudly_when_streaming_async(small, large):
    cascade = Cascade([small, large])
    with pytest.raises(LogprobsUnavailableError):
        async for _ in cascade.astream("nologprobs"):
            pass


def test_http_errors_become_backend_errors_without_the_key(small, large, caplog):
    caplog.set_level(logging.DEBUG)
    with pytest.raises(BackendError) as info:
        large.complete(Request.from_prompt("boom"))
    assert "large-model" in str(info.value) and SECRET not in str(info.value)
    result = Cascade([small, large], on_small_error="defer").invoke  # small fails too on "boom"
    with pytest.raises(BackendError):
        result("boom")
    assert SECRET not in caplog.text


def test_api_key_never_in_repr(small):
    assert SECRET not in repr(small) and SECRET not in str(vars(small).get("model_name"))


def test_unreachable_server_is_a_clear_backend_error():
    model = OpenAIModel("m", base_url="http://127.0.0.1:9/v1", api_key=SECRET, timeout=2, max_retries=0)
    with pytest.raises(BackendError, match="127.0.0.1:9") as info:
        model.complete(Request.from_prompt("hi"))
    assert SECRET not in str(info.value)


@pytest.mark.parametrize("kwargs, match", [({"top_k": 25}, "top_k"), ({"top_k": -1}, "top_k"), ({"max_new_tokens": 0}, "max_new_tokens")])
def test_configuration_is_validated(kwargs, match):
    with pytest.raises(ConfigurationError, match=match):
        OpenAIModel("m", **kwargs)


def test_margin_cascade_rejects_small_tier_without_topk(large):
    with pytest.raises(ConfigurationError, match="top_k >= 2"):
        Cascade([OpenAIModel("m", top_k=1), large], rules=ThresholdRule("margin", 0.3))


def _wait_for_stream_end(server: FakeOpenAIServer, before: int) -> int:
    deadline = time.monotonic() + 10
    while len(server.events_sent) <= before and time.monotonic() < deadline:
        time.sleep(0.05)
    return server.events_sent[before]


def test_an_abandoned_large_tier_stream_stops_the_servers_answer():
    long_answer = " ".join(["word"] * 20000)
    with FakeOpenAIServer(lambda body: FakeReply(long_answer)) as server:
        large = OpenAIModel("big", base_url=server.base_url, api_key="k", top_k=0)
        stream = large.stream(Request.from_prompt("go"))
        assert next(stream).text
        stream.close()  # what a client that disconnects (or a cascade that gives up) does
        assert _wait_for_stream_end(server, 0) < 20000


async def test_an_abandoned_async_large_tier_stream_stops_the_servers_answer():
    long_answer = " ".join(["word"] * 20000)
    with FakeOpenAIServer(lambda body: FakeReply(long_answer)) as server:
        large = OpenAIModel("big", base_url=server.base_url, api_key="k", top_k=0)
        stream = large.astream(Request.from_prompt("go"))
        assert (await anext(stream)).text
        await stream.aclose()
        assert _wait_for_stream_end(server, 0) < 20000
