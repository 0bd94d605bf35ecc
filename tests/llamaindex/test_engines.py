"""CascadeLLM inside real LlamaIndex components: index query engines, a chat engine, a FunctionAgent."""

from __future__ import annotations

import pytest
from llama_index.core import Document, Settings, VectorStoreIndex
from llama_index.core.agent.workflow import AgentStream, FunctionAgent
from llama_index.core.chat_engine import CondensePlusContextChatEngine
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events.llm import LLMChatEndEvent
from llama_index.core.tools import FunctionTool

from cascade_core.testing.fake_server import FakeReply
from llamaindex_cascade import CascadeLLM, HashingEmbedding

from .fakes import CONFIDENT, UNSURE, make_llm, replies, tool_call_text

# llama-index's workflow engine inspects FunctionAgent's pydantic attributes (inspect.getmembers),
# which touches deprecated pydantic properties; the warnings are theirs, not the adapter's.
pytestmark = [
    pytest.mark.filterwarnings("ignore::pydantic.warnings.PydanticDeprecatedSince20"),
    pytest.mark.filterwarnings("ignore::pydantic.warnings.PydanticDeprecatedSince211"),
]

DOCUMENTS = [
    Document(text="Zorblax is the capital of the planet Quintar. It has three moons."),
    Document(text="The Quintar ocean is made of liquid methane and is very cold."),
    Document(text="Glimmerfruit grows only in the northern valleys of Quintar."),
]


class _Decisions(BaseEventHandler):
    """Collects the cascade decision of every LLM chat call seen by the instrumentation."""

    decisions: list = []

    def handle(self, event, **kwargs):
        response = getattr(event, "response", None) if isinstance(event, LLMChatEndEvent) else None
        if response is not None and "cascade" in response.additional_kwargs:
            self.decisions.append(response.additional_kwargs["cascade"])


@pytest.fixture
def decisions():
    handler = _Decisions(decisions=[])
    dispatcher = get_dispatcher()
    dispatcher.add_event_handler(handler)
    yield handler.decisions
    dispatcher.event_handlers.remove(handler)


@pytest.fixture
def index():
    return VectorStoreIndex.from_documents(DOCUMENTS, embed_model=HashingEmbedding())


@pytest.fixture(autouse=True)
def _script(small_server, large_server):
    small_server.set_responder(
        replies(
            ("capital of Quintar", FakeReply("Zorblax is the capital of Quintar.", confidence=CONFIDENT)),
            ("ocean", FakeReply("It might be water.", confidence=UNSURE)),
            ("moons", FakeReply("Zorblax has three moons.", confidence=CONFIDENT)),
        )
    )
    large_server.set_responder(replies(default=FakeReply("The Quintar ocean is liquid methane.")))


def test_query_engine_answers_from_retrieved_context(index, llm, small_server, large_server, decisions):
    engine = index.as_query_engine(llm=llm, similarity_top_k=1)
    response = engine.query("What is the capital of Quintar?")
    assert str(response) == "Zorblax is the capital of Quintar."
    assert "Zorblax is the capital of the planet Quintar" in str(small_server.requests[0]["messages"])
    assert [d["tier"] for d in decisions] == [0] and large_server.requests == []


async def test_async_query_defers_to_the_large_tier(index, llm, large_server, decisions):
    engine = index.as_query_engine(llm=llm, similarity_top_k=1)
    response = await engine.aquery("What is the Quintar ocean made of?")
    assert str(response) == "The Quintar ocean is liquid methane."
    assert [d["tier"] for d in decisions] == [1] and decisions[0]["decisions"][0]["early_exit"]
    assert "liquid methane" in str(large_server.requests[0]["messages"])  # the retrieved context


def test_streaming_query_streams_the_answer(index, llm, decisions):
    engine = index.as_query_engine(llm=llm, similarity_top_k=1, streaming=True)
    kept = engine.query("What is the capital of Quintar?")
    assert "".join(kept.response_gen) == "Zorblax is the capital of Quintar."
    deferred = engine.query("What is the Quintar ocean made of?")
    assert "".join(deferred.response_gen) == "The Quintar ocean is liquid methane."
    assert [d["tier"] for d in decisions] == [0, 1]


def test_settings_llm_drop_in_swap(index, llm, decisions):
    previous = Settings._llm
    try:
        Settings.llm = llm
        response = index.as_query_engine(similarity_top_k=1).query("What is the capital of Quintar?")
    finally:
        Settings._llm = previous
    assert str(response) == "Zorblax is the capital of Quintar." and decisions[0]["tier"] == 0


def test_chat_engine_keeps_history_across_turns(index, llm, small_server, decisions):
    engine = CondensePlusContextChatEngine.from_defaults(index.as_retriever(similarity_top_k=1), llm=llm)
    first = engine.chat("What is the capital of Quintar?")
    assert str(first) == "Zorblax is the capital of Quintar."
    second = engine.stream_chat("And how many moons does it have?")
    assert "".join(second.response_gen) == "Zorblax has three moons."
    assert all(d["tier"] == 0 for d in decisions) and len(decisions) >= 2
    last_prompt = str(small_server.requests[-1]["messages"])
    assert "What is the capital of Quintar?" in last_prompt  # the first turn is in the history


def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


@pytest.mark.parametrize("streaming", [True, False])
async def test_function_agent_calls_a_tool_through_the_small_tier(small_server, large_server, streaming):
    small_server.set_responder(
        replies(
            ("tool_response", FakeReply("6 times 7 is 42.", confidence=CONFIDENT)),
            ("6 times 7", FakeReply(tool_call_text("multiply", {"a": 6, "b": 7}), confidence=CONFIDENT)),
        )
    )
    calls: list[tuple[int, int]] = []

    def recorded_multiply(a: int, b: int) -> int:
        """Multiply two integers."""
        calls.append((a, b))
        return a * b

    agent = FunctionAgent(
        tools=[FunctionTool.from_defaults(fn=recorded_multiply, name="multiply")],
        llm=make_llm(small_server, large_server),
        system_prompt="You are a calculator.",
        streaming=streaming,
    )
    handler = agent.run(user_msg="What is 6 times 7?")
    deltas = [event.delta async for event in handler.stream_events() if isinstance(event, AgentStream)]
    result = await handler
    assert calls == [(6, 7)]
    assert str(result.response.content) == "6 times 7 is 42."
    assert result.raw["cascade"]["tier"] == 0 and large_server.requests == []
    assert "<tool_call>" not in "".join(deltas)


async def test_function_agent_uses_the_large_tiers_native_tool_call(small_server, large_server):
    small_server.set_responder(replies(default=FakeReply("Let me think.", confidence=UNSURE)))
    large_server.set_responder(
        replies(
            ("42", FakeReply("The product is 42.")),
            default=FakeReply("", tool_calls=[{"name": "multiply", "arguments": {"a": 6, "b": 7}}]),
        )
    )
    llm: CascadeLLM = make_llm(small_server, large_server)
    agent = FunctionAgent(tools=[FunctionTool.from_defaults(fn=multiply)], llm=llm)
    result = await agent.run(user_msg="What is 6 times 7?")
    assert str(result.response.content) == "The product is 42."
    assert [(c.tool_name, c.tool_output.content) for c in result.tool_calls] == [("multiply", "42")]
    assert result.raw["cascade"]["tier"] == 1
    tool_turn = large_server.requests[1]["messages"]
    assert tool_turn[-1]["role"] == "tool" and tool_turn[-1]["content"] == "42"
