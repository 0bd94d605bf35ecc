"""ChatCascade agents with a ToolCallRule: a small-tier tool call that parses but was written with
low token confidence defers to the large tier (fake OpenAI-compatible servers on 127.0.0.1)."""

from __future__ import annotations

import pytest
from langchain_core.tools import tool
from lc_fakes import large_chat_openai, small_model

from cascade_core import ThresholdRule
from cascade_core.decide.tool_uncertainty import ToolCallRule
from cascade_core.testing.fake_server import FakeOpenAIServer, FakeReply, tool_call_text
from langchain_cascade import ChatCascade


@tool
def get_weather(city: str) -> str:
    """Weather in a city."""
    return f"sunny in {city}"


def _small_responder(body):
    last = body["messages"][-1]["content"]
    call = tool_call_text("get_weather", {"city": "Paris"})
    # markup-first answer: the first token is near-certain either way; the rest differs
    return FakeReply(call, confidence=0.97, token_confidence=0.3 if "[unsure]" in last else 0.97)


def _large_responder(body):
    return FakeReply("", tool_calls=[{"name": "get_weather", "arguments": {"city": "Paris, France"}}])


@pytest.fixture()
def servers():
    with FakeOpenAIServer(_small_responder) as small, FakeOpenAIServer(_large_responder) as large:
        yield small, large


@pytest.mark.parametrize(("prompt", "tier", "city"), [("Weather in Paris?", 0, "Paris"),
                                                      ("Weather in Paris? [unsure]", 1, "Paris, France")])
def test_unsure_small_tool_call_defers(servers, prompt, tier, city):
    small, large = servers
    rule = ToolCallRule(ThresholdRule("margin", 0.3), name_threshold=0.3)
    llm = ChatCascade(small=small_model(small), large=large_chat_openai(large), rule=rule).bind_tools([get_weather])
    msg = llm.invoke(prompt)
    assert msg.response_metadata["cascade"]["tier"] == tier
    assert msg.tool_calls[0]["name"] == "get_weather" and msg.tool_calls[0]["args"] == {"city": city}
    if tier:
        assert msg.response_metadata["cascade"]["signal"] == "tool_name_margin"


def test_plain_margin_rule_keeps_the_same_unsure_call(servers):
    small, large = servers
    llm = ChatCascade(small=small_model(small), large=large_chat_openai(large), threshold=0.3).bind_tools([get_weather])
    assert llm.invoke("Weather in Paris? [unsure]").response_metadata["cascade"]["tier"] == 0
