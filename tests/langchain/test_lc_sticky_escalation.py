"""ChatCascade(sticky_escalation=True): a conversation whose step was deferred stays on the large tier."""

from __future__ import annotations

import asyncio

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder

from cascade_core.errors import ConfigurationError
from cascade_core.testing import ScriptedModel
from langchain_cascade import ChatCascade

STEP1 = [SystemMessage("You are a travel agent."), HumanMessage("Book a flight to Lisbon.")]
STEP2 = [*STEP1, AIMessage("", tool_calls=[{"name": "search", "args": {"to": "LIS"}, "id": "c1", "type": "tool_call"}]),
         ToolMessage("3 flights found", tool_call_id="c1")]


def _llm(**options):
    # the small tier is unsure on its first answer (margin 0.5 - 0.4 = 0.1 < 0.3), sure afterwards
    small = ScriptedModel(["unsure", "sure", "sure", "sure"], confidence=[0.5, 0.99, 0.99, 0.99], name="small")
    large = ScriptedModel("large answer", name="large")
    return ChatCascade(small=small, large=large, threshold=0.3, **options), small


def test_later_step_of_a_deferred_conversation_skips_the_small_tier():
    llm, small = _llm(sticky_escalation=True)
    assert llm.invoke(STEP1).response_metadata["cascade"]["tier"] == 1
    served = len(small.calls)
    meta = llm.invoke(STEP2).response_metadata["cascade"]
    assert meta["tier"] == 1 and len(small.calls) == served
    assert meta["decisions"][0]["signal"] == "sticky"


def test_without_the_option_every_step_starts_at_the_small_tier():
    llm, small = _llm()
    assert llm.invoke(STEP1).response_metadata["cascade"]["tier"] == 1
    assert llm.invoke(STEP2).response_metadata["cascade"]["tier"] == 0 and len(small.calls) == 2


def test_session_id_in_the_run_metadata_names_the_conversation_in_an_lcel_chain():
    llm, small = _llm(sticky_escalation=True)
    chain = ChatPromptTemplate.from_messages([("system", "You are a travel agent."),
                                              MessagesPlaceholder("history")]) | llm
    first = chain.invoke({"history": [HumanMessage("hi")]}, config={"metadata": {"session_id": "alice"}})
    assert first.response_metadata["cascade"]["tier"] == 1
    bob = chain.invoke({"history": [HumanMessage("hi")]}, config={"metadata": {"session_id": "bob"}})
    assert bob.response_metadata["cascade"]["tier"] == 0  # same opening, other session: not escalated
    again = chain.invoke({"history": [HumanMessage("hi"), AIMessage("…"), HumanMessage("and then?")]},
                         config={"metadata": {"session_id": "alice"}})
    assert again.response_metadata["cascade"]["decisions"][0]["signal"] == "sticky"


def test_streaming_and_async_paths_are_sticky_too():
    llm, small = _llm(sticky_escalation=True)
    chunks = list(llm.stream(STEP1))
    assert "".join(c.text for c in chunks) == "large answer"
    served = len(small.calls)
    assert asyncio.run(llm.ainvoke(STEP2)).response_metadata["cascade"]["tier"] == 1
    streamed = asyncio.run(_astream_text(llm, STEP2))
    assert streamed == "large answer" and len(small.calls) == served


async def _astream_text(llm, messages):
    return "".join([c.text async for c in llm.astream(messages)])


def test_bad_sticky_sessions_is_a_configuration_error():
    with pytest.raises((ConfigurationError, ValueError), match="max_sessions must be a positive int"):
        ChatCascade(small=ScriptedModel("a"), large=ScriptedModel("b"), sticky_escalation=True, sticky_sessions=0)
