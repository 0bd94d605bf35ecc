"""Real clients (openai sync/async/streaming, LangChain ChatOpenAI, LlamaIndex OpenAILike) against a
real uvicorn server on 127.0.0.1 serving scripted cascades; the large tier of some cascades is an
OpenAI-compatible fake server (the network boundary)."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from cascade_core import Cascade, DynamicBudgetThreshold, Pricing, ThresholdRule, Tier
from cascade_core.backends.openai import OpenAIModel
from cascade_core.serve import create_app
from cascade_core.testing import ScriptedModel
from cascade_core.testing.fake_server import FakeOpenAIServer, FakeReply

from .harness import scripted_cascade, serving

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
CITY_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"], "additionalProperties": False}


def _fake_responder(body):
    if body.get("tools"):
        return FakeReply("", tool_calls=[{"name": "get_weather", "arguments": {"city": "Lyon"}}])
    return FakeReply("Bonjour from the large tier")


@pytest.fixture(scope="module")
def fake():
    with FakeOpenAIServer(_fake_responder) as server:
        yield server


@pytest.fixture(scope="module")
def cascades(fake):
    def fake_large():
        return OpenAIModel("fake-large", base_url=fake.base_url, api_key="sk-tier-secret", top_k=0)

    call = '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>'
    return {
        "keep": scripted_cascade(confidence=0.9),
        "defer": scripted_cascade(confidence=0.2),
        "fake": scripted_cascade(confidence=0.2, large=fake_large()),
        "tools": scripted_cascade(call, confidence=0.9, large=fake_large()),
        "tools-defer": scripted_cascade(call, confidence=0.2, large=fake_large()),
        "json": scripted_cascade('{"city": "Paris"}', confidence=0.9),
        "json-bad": scripted_cascade("Paris", confidence=0.9, large_answer='{"city": "Paris"}'),
        "small-down": Cascade([Tier(ScriptedModel("x", fail=True), name="small"), Tier(ScriptedModel("Paris!"), name="large")]),
        "dynamic": Cascade(
            [Tier(ScriptedModel("Paris", confidence=[0.9, 0.5, 0.3, 0.95, 0.6], name="s"), Pricing(0, 0), name="small"),
             Tier(ScriptedModel("Paris!", name="l"), Pricing(1, 1), name="large")],
            rules=ThresholdRule("margin", DynamicBudgetThreshold(deferral_rate=0.4, warmup=3, initial_threshold=0.0)),
        ),
    }


@pytest.fixture(scope="module")
def running(cascades):
    with serving(create_app(cascades)) as server:
        yield server


@pytest.fixture(scope="module")
def client(running):
    return openai.OpenAI(base_url=running.base_url, api_key="unused", max_retries=0, timeout=20)


def test_kept_answer_carries_decision_in_body_and_headers(client):
    raw = client.chat.completions.with_raw_response.create(model="keep", messages=QUESTION)
    completion = raw.parse()
    assert completion.choices[0].message.content == "Paris"
    assert raw.headers["x-cascade-tier"] == "0" and raw.headers["x-cascade-deferred"] == "false"
    decision = completion.model_extra["cascade"]
    assert decision["tier"] == 0 and decision["deferred"] is False and decision["signal"] == "margin"
    assert decision["score"] >= decision["threshold"] == 0.3
    assert decision["saved"] > 0 and decision["cost"] == 0.0
    for key in ("reason", "cost", "saved", "threshold", "score", "signal"):
        assert key in decision


def test_deferred_answer_sums_usage_over_both_tiers(client):
    raw = client.chat.completions.with_raw_response.create(model="defer", messages=QUESTION)
    completion = raw.parse()
    decision = completion.model_extra["cascade"]
    assert completion.choices[0].message.content == "Paris, France"
    assert raw.headers["x-cascade-tier"] == "1" and raw.headers["x-cascade-deferred"] == "true"
    assert decision["deferred"] is True and decision["reason"].startswith("defer")
    runs = decision["runs"]
    assert [r["tier"] for r in runs] == [0, 1]
    assert completion.usage.prompt_tokens == sum(r["input_tokens"] for r in runs) == 2 * 6
    assert completion.usage.completion_tokens == sum(r["output_tokens"] for r in runs) == 1 + 2


async def test_async_client_and_streaming(running):
    client = openai.AsyncOpenAI(base_url=running.base_url, api_key="unused", max_retries=0, timeout=20)
    completion = await client.chat.completions.create(model="defer", messages=QUESTION)
    assert completion.choices[0].message.content == "Paris, France"
    stream = await client.chat.completions.create(model="defer", messages=QUESTION, stream=True,
                                                  stream_options={"include_usage": True})
    chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Paris, France"
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finals) == 1 and finals[0].choices[0].finish_reason == "stop"
    assert finals[0].model_extra["cascade"]["deferred"] is True
    assert chunks[-1].usage.prompt_tokens == 12 and chunks[-1].usage.completion_tokens == 3
    await client.close()


def test_sync_streaming_kept_answer(client):
    chunks = list(client.chat.completions.create(model="keep", messages=QUESTION, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Paris"
    assert chunks[-1].model_extra["cascade"]["tier"] == 0


def test_generation_settings_reach_the_tiers(client, cascades, fake):
    client.chat.completions.create(model="fake", messages=QUESTION, max_tokens=7, stop=["\n", "END"], temperature=0.4)
    small = cascades["fake"].tiers[0].model
    assert small.calls[-1].max_new_tokens == 7 and small.calls[-1].stop == ("\n", "END")
    assert small.calls[-1].temperature == 0.4
    sent = fake.requests[-1]
    assert sent["max_tokens"] == 7 and sent["stop"] == ["\n", "END"] and sent["temperature"] == 0.4


def test_small_tier_tool_call_becomes_native_tool_calls(client):
    completion = client.chat.completions.create(model="tools", messages=QUESTION, tools=[WEATHER_TOOL])
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls" and not choice.message.content
    assert choice.message.tool_calls[0].function.name == "get_weather"
    assert json.loads(choice.message.tool_calls[0].function.arguments) == {"city": "Paris"}
    assert completion.model_extra["cascade"]["tier"] == 0


def test_deferred_tool_call_comes_from_the_large_tier_and_streams(client):
    completion = client.chat.completions.create(model="tools-defer", messages=QUESTION, tools=[WEATHER_TOOL],
                                                tool_choice={"type": "function", "function": {"name": "get_weather"}})
    assert json.loads(completion.choices[0].message.tool_calls[0].function.arguments) == {"city": "Lyon"}
    chunks = list(client.chat.completions.create(model="tools", messages=QUESTION, tools=[WEATHER_TOOL], stream=True))
    deltas = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert [d.function.name for d in deltas] == ["get_weather"]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == ""  # no <tool_call> markup
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_response_format_json_schema_keeps_valid_and_defers_invalid_small_answers(client):
    fmt = {"type": "json_schema", "json_schema": {"name": "city", "schema": CITY_SCHEMA}}
    ok = client.chat.completions.create(model="json", messages=QUESTION, response_format=fmt)
    assert json.loads(ok.choices[0].message.content) == {"city": "Paris"} and ok.model_extra["cascade"]["tier"] == 0
    bad = client.chat.completions.create(model="json-bad", messages=QUESTION, response_format=fmt)
    assert json.loads(bad.choices[0].message.content) == {"city": "Paris"}
    assert bad.model_extra["cascade"]["tier"] == 1 and "not JSON" in bad.model_extra["cascade"]["decisions"][0]["reason"]


def test_models_health_and_metrics(running, client):
    assert {m.id for m in client.models.list()} >= {"keep", "defer", "tools", "dynamic"}
    listing = httpx.get(running.base_url + "/models").json()["data"]
    keep = next(m for m in listing if m["id"] == "keep")
    assert [t["name"] for t in keep["cascade"]["tiers"]] == ["small", "large"]
    assert httpx.get(running.url + "/healthz").json()["status"] == "ok"
    for _ in range(6):
        client.chat.completions.create(model="dynamic", messages=QUESTION)
    text = httpx.get(running.url + "/metrics").text
    metrics = running.app.state.metrics
    assert metrics.value("cascade_requests_total", cascade="dynamic", tier="small") + \
        metrics.value("cascade_requests_total", cascade="dynamic", tier="large") == 6
    deferred = metrics.value("cascade_requests_total", cascade="dynamic", tier="large")
    assert metrics.value("cascade_deferrals_total", cascade="dynamic", tier="small") == deferred
    assert metrics.value("cascade_deferral_rate", cascade="dynamic") == pytest.approx(deferred / 6)
    assert metrics.value("cascade_tier_latency_seconds_count", cascade="dynamic", tier="small") == 6
    assert metrics.value("cascade_tokens_total", cascade="dynamic", tier="small", direction="input") == 6 * 6
    threshold = metrics.value("cascade_threshold", cascade="dynamic", tier="small")
    assert threshold == running.app.state.server.cascades["dynamic"].rules[0].policy.current_threshold > 0
    assert 'cascade_cost_total{cascade="dynamic"}' in text and "cascade_request_latency_seconds_bucket" in text
    assert "sk-tier-secret" not in text


def test_langchain_chat_openai_against_the_server(running):
    from langchain_core.tools import tool
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(model="defer", base_url=running.base_url, api_key="unused", max_retries=0, timeout=20)
    message = llm.invoke("What is the capital of France?")
    assert message.content == "Paris, France"
    assert message.usage_metadata["input_tokens"] == 12 and message.usage_metadata["output_tokens"] == 3
    assert "".join(str(c.content) for c in llm.stream("What is the capital of France?")) == "Paris, France"

    @tool
    def get_weather(city: str) -> str:
        """Weather in a city."""
        return "sunny"

    call = ChatOpenAI(model="tools", base_url=running.base_url, api_key="unused").bind_tools([get_weather]).invoke("Weather?")
    assert call.tool_calls[0]["name"] == "get_weather" and call.tool_calls[0]["args"] == {"city": "Paris"}


def test_llamaindex_openai_like_against_the_server(running):
    from llama_index.core.llms import ChatMessage
    from llama_index.core.tools import FunctionTool
    from llama_index.llms.openai_like import OpenAILike

    llm = OpenAILike(model="keep", api_base=running.base_url, api_key="unused", is_chat_model=True,
                     is_function_calling_model=True, context_window=4096, max_retries=0, timeout=20)
    assert llm.chat([ChatMessage(role="user", content="What is the capital of France?")]).message.content == "Paris"
    streamed = list(llm.stream_chat([ChatMessage(role="user", content="What is the capital of France?")]))
    assert streamed[-1].message.content == "Paris"

    def get_weather(city: str) -> str:
        """Weather in a city."""
        return "sunny"

    tools_llm = OpenAILike(model="tools", api_base=running.base_url, api_key="unused", is_chat_model=True,
                           is_function_calling_model=True, context_window=4096, max_retries=0, timeout=20)
    response = tools_llm.chat_with_tools([FunctionTool.from_defaults(fn=get_weather)], user_msg="Weather in Paris?")
    calls = tools_llm.get_tool_calls_from_response(response, error_on_no_tool_call=True)
    assert calls[0].tool_name == "get_weather" and calls[0].tool_kwargs == {"city": "Paris"}


def test_failing_small_tier_defers_and_is_counted_as_a_tier_error(running, client):
    completion = client.chat.completions.create(model="small-down", messages=QUESTION)
    decision = completion.model_extra["cascade"]
    assert completion.choices[0].message.content == "Paris!" and decision["deferred"] is True
    assert decision["signal"] == "error" and "scripted failure" in decision["reason"]
    metrics = running.app.state.metrics
    assert metrics.value("cascade_errors_total", cascade="small-down", tier="small", kind="deferred") == 1


def test_tool_round_trip_reaches_the_small_tier_as_text(client, cascades):
    call = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
    messages = [*QUESTION, {"role": "assistant", "content": None, "tool_calls": [call]},
                {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 21 C"}]
    completion = client.chat.completions.create(model="keep", messages=messages, tools=[WEATHER_TOOL])
    assert completion.choices[0].message.content == "Paris" and completion.choices[0].finish_reason == "stop"
    seen = cascades["keep"].tiers[0].model.calls[-1]  # what the small tier was asked (tools rendered as text)
    text = "\n".join(m.content for m in seen.messages)
    assert "get_weather" in text and "sunny, 21 C" in text and '"city": "Paris"' in text
