"""Tools and structured prediction through CascadeLLM: calls from either tier, deferral on bad calls."""

from __future__ import annotations

import pytest
from llama_index.core.base.llms.types import ChatMessage, ToolCallBlock
from llama_index.core.bridge.pydantic import BaseModel
from llama_index.core.prompts import PromptTemplate
from llama_index.core.tools import FunctionTool

from cascade_core.testing.fake_server import FakeReply

from .fakes import CONFIDENT, UNSURE, replies, tool_call_text

QUESTION = "What is 6 times 7?"


def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


TOOL = FunctionTool.from_defaults(fn=multiply)
LARGE_CALL = FakeReply("", tool_calls=[{"name": "multiply", "arguments": {"a": 6, "b": 7}}])


class CityFacts(BaseModel):
    """Facts about a city."""

    city: str
    population_millions: float


def _decision(response):
    return response.additional_kwargs["cascade"]


def test_small_tier_tool_call_becomes_a_tool_call_block(llm, small_server, large_server):
    small_server.set_responder(
        replies(default=FakeReply(tool_call_text("multiply", {"a": 6, "b": 7}), confidence=CONFIDENT))
    )
    response = llm.chat_with_tools([TOOL], user_msg=QUESTION)
    calls = llm.get_tool_calls_from_response(response)
    assert [(c.tool_name, c.tool_kwargs) for c in calls] == [("multiply", {"a": 6, "b": 7})]
    assert calls[0].tool_id
    assert not response.message.content  # the <tool_call> markup is not shown as text
    assert _decision(response)["tier"] == 0 and large_server.requests == []
    system = small_server.requests[0]["messages"][0]
    assert system["role"] == "system" and "multiply" in system["content"]  # tools rendered for the small tier


@pytest.mark.parametrize(
    ("small_text", "reason"),
    [
        ('<tool_call>{"name": "multiply", "arguments": {"a": 6,</tool_call>', "not valid JSON"),
        (tool_call_text("divide", {"a": 6, "b": 7}), "names no bound tool"),
        (tool_call_text("multiply", {"a": 6}), "missing required"),
        (tool_call_text("multiply", {"a": "six", "b": 7}), "do not match its schema"),
    ],
)
def test_bad_small_tier_tool_call_defers_to_the_large_tiers_native_call(
    llm, small_server, large_server, small_text, reason
):
    small_server.set_responder(replies(default=FakeReply(small_text, confidence=CONFIDENT)))
    large_server.set_responder(replies(default=LARGE_CALL))
    response = llm.chat_with_tools([TOOL], user_msg=QUESTION)
    decision = _decision(response)
    assert decision["tier"] == 1 and reason in decision["reason"]
    assert [(c.tool_name, c.tool_kwargs) for c in llm.get_tool_calls_from_response(response)] == [
        ("multiply", {"a": 6, "b": 7})
    ]
    assert large_server.requests[0]["tools"][0]["function"]["name"] == "multiply"  # native tools


def test_tool_required_but_no_call_defers(llm, small_server, large_server):
    small_server.set_responder(replies(default=FakeReply("It is 42.", confidence=CONFIDENT)))
    large_server.set_responder(replies(default=LARGE_CALL))
    response = llm.chat_with_tools([TOOL], user_msg=QUESTION, tool_required=True)
    assert _decision(response)["deferred"] and "called no tool" in _decision(response)["reason"]
    assert large_server.requests[0]["tool_choice"] == "required"


def test_plain_answer_with_tools_bound_is_kept(llm, small_server):
    small_server.set_responder(replies(default=FakeReply("Hello! How can I help?", confidence=CONFIDENT)))
    response = llm.chat_with_tools([TOOL], user_msg="Hi")
    assert response.message.content == "Hello! How can I help?"
    assert llm.get_tool_calls_from_response(response, error_on_no_tool_call=False) == []
    with pytest.raises(ValueError, match="Expected at least one tool call"):
        llm.get_tool_calls_from_response(response)


def test_stream_with_tools_sends_no_markup_and_ends_with_the_call(llm, small_server):
    small_server.set_responder(
        replies(default=FakeReply(tool_call_text("multiply", {"a": 6, "b": 7}), confidence=CONFIDENT))
    )
    chunks = list(llm.stream_chat_with_tools([TOOL], user_msg=QUESTION))
    assert "".join(c.delta or "" for c in chunks) == ""
    final = chunks[-1]
    assert [c.tool_name for c in llm.get_tool_calls_from_response(final)] == ["multiply"]
    assert _decision(final)["tier"] == 0


async def test_astream_with_tools_from_the_large_tier(llm, small_server, large_server):
    small_server.set_responder(replies(default=FakeReply("hmm", confidence=UNSURE)))
    large_server.set_responder(replies(default=LARGE_CALL))
    chunks = [c async for c in await llm.astream_chat_with_tools([TOOL], user_msg=QUESTION)]
    final = chunks[-1]
    assert _decision(final)["tier"] == 1
    assert [(c.tool_name, c.tool_kwargs) for c in llm.get_tool_calls_from_response(final)] == [
        ("multiply", {"a": 6, "b": 7})
    ]


def test_single_tool_call_unless_parallel_calls_allowed(llm, small_server):
    two = tool_call_text("multiply", {"a": 6, "b": 7}) + tool_call_text("multiply", {"a": 2, "b": 3})
    small_server.set_responder(replies(default=FakeReply(two, confidence=CONFIDENT)))
    single = llm.chat_with_tools([TOOL], user_msg=QUESTION)
    parallel = llm.chat_with_tools([TOOL], user_msg=QUESTION, allow_parallel_tool_calls=True)
    assert len(llm.get_tool_calls_from_response(single)) == 1
    assert len(llm.get_tool_calls_from_response(parallel)) == 2


def test_predict_and_call_runs_the_small_tiers_call(llm, small_server):
    small_server.set_responder(
        replies(default=FakeReply(tool_call_text("multiply", {"a": 6, "b": 7}), confidence=CONFIDENT))
    )
    assert llm.predict_and_call([TOOL], user_msg=QUESTION).response == "42"


def test_tool_history_is_sent_to_both_tiers(llm, small_server, large_server):
    history = [
        ChatMessage(role="user", content=QUESTION),
        ChatMessage(
            role="assistant",
            blocks=[ToolCallBlock(tool_call_id="call_1", tool_name="multiply", tool_kwargs={"a": 6, "b": 7})],
        ),
        ChatMessage(role="tool", content="42", additional_kwargs={"tool_call_id": "call_1"}),
    ]
    small_server.set_responder(replies(default=FakeReply("unsure", confidence=UNSURE)))
    large_server.set_responder(replies(("42", FakeReply("6 times 7 is 42."))))
    response = llm.chat_with_tools([TOOL], chat_history=history)
    assert response.message.content == "6 times 7 is 42."
    small_messages = small_server.requests[0]["messages"]
    assert "<tool_call>" in small_messages[2]["content"]  # the call, as text for the small tier
    assert "<tool_response name='multiply'>" in small_messages[3]["content"]
    large_messages = large_server.requests[0]["messages"]
    assert large_messages[1]["tool_calls"][0]["id"] == "call_1"  # native for the large tier
    assert large_messages[2] == {"role": "tool", "content": "42", "tool_call_id": "call_1"}


def test_structured_predict_keeps_a_valid_small_answer(llm, small_server, large_server):
    small_server.set_responder(
        replies(
            default=FakeReply(
                tool_call_text("CityFacts", {"city": "Paris", "population_millions": 2.1}),
                confidence=CONFIDENT,
            )
        )
    )
    facts = llm.structured_predict(CityFacts, PromptTemplate("Give facts about {city}."), city="Paris")
    assert facts == CityFacts(city="Paris", population_millions=2.1)
    assert large_server.requests == []


async def test_structured_predict_defers_an_invalid_small_answer(llm, small_server, large_server):
    invalid = tool_call_text("CityFacts", {"city": "Lima", "population_millions": "lots"})
    small_server.set_responder(replies(default=FakeReply(invalid, confidence=CONFIDENT)))
    large_server.set_responder(
        replies(
            default=FakeReply(
                "",
                tool_calls=[
                    {"name": "CityFacts", "arguments": {"city": "Lima", "population_millions": 10.1}}
                ],
            )
        )
    )
    facts = await llm.astructured_predict(CityFacts, PromptTemplate("Give facts about {city}."), city="Lima")
    assert facts == CityFacts(city="Lima", population_millions=10.1)
    assert len(large_server.requests) == 1


def test_as_structured_llm_returns_the_object(llm, small_server):
    small_server.set_responder(
        replies(
            default=FakeReply(
                tool_call_text("CityFacts", {"city": "Oslo", "population_millions": 0.7}),
                confidence=CONFIDENT,
            )
        )
    )
    structured = llm.as_structured_llm(CityFacts)
    response = structured.chat([ChatMessage(role="user", content="Facts about Oslo?")])
    assert response.raw == CityFacts(city="Oslo", population_millions=0.7)


async def test_a_large_tier_call_written_as_json_text_is_not_kept_as_message_text(llm, small_server, large_server):
    """llama.cpp returns Qwen's calls as a ```json block in content: the agent's history must hold the call, not the
    block as text too (an agent shown its own call twice looped on a real model)."""
    small_server.set_responder(replies(default=FakeReply("hmm", confidence=UNSURE)))
    block = '```json\n{"name": "multiply", "arguments": {"a": 6, "b": 7}}\n```'
    large_server.set_responder(replies(default=FakeReply(block)))
    chunks = [c async for c in await llm.astream_chat_with_tools([TOOL], user_msg=QUESTION)]
    final = chunks[-1]
    assert _decision(final)["tier"] == 1
    assert [(c.tool_name, c.tool_kwargs) for c in llm.get_tool_calls_from_response(final)] == [
        ("multiply", {"a": 6, "b": 7})
    ]
    assert "```" not in (final.message.content or "") and "multiply" not in (final.message.content or "")
