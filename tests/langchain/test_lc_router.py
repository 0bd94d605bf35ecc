"""ChatCascade(router=...): a pre-generation router in real LangChain objects (LCEL chain, tools, streaming)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.tools import tool

from cascade_core.backends.embedders import OpenAIEmbedder
from cascade_core.decide.router import QueryRouter
from cascade_core.testing.embeddings import hashing_vector
from langchain_cascade import ChatCascade

HARD = "Name the top-level domain of Tuvalu"  # the router learned that the small tier fails these
EASY = "Name the capital of France"


def _router() -> QueryRouter:
    texts = [f"{kind} of {place}" for kind in ("Name the capital", "Name the top-level domain")
             for place in ("France", "Italy", "Spain", "Tuvalu", "Niue", "Chad")]
    good = np.array([1] * 6 + [0] * 6)
    emb = np.array([hashing_vector(t, 16) for t in texts])
    return QueryRouter(C=10.0, threshold=0.5).fit(emb, [len(t.split()) for t in texts], good)


@pytest.fixture
def llm(small: Any, large: Any, small_server: Any) -> ChatCascade:
    embedder = OpenAIEmbedder(small_server.base_url, "small-fake", api_key="sk-embed-secret")
    return ChatCascade(small=small, large=large, threshold=0.3, router=_router(), router_embedder=embedder)


def _chat_calls(server: Any) -> int:
    return sum(1 for body in server.requests if "messages" in body)


def test_lcel_chain_routes_a_hard_question_to_the_large_tier(llm: ChatCascade, small_server: Any, large_server: Any) -> None:
    chain = ChatPromptTemplate.from_messages([("human", "{q}")]) | llm | StrOutputParser()
    small_before, large_before = _chat_calls(small_server), _chat_calls(large_server)
    assert chain.invoke({"q": HARD}).startswith("Hello from the large model")
    assert _chat_calls(small_server) == small_before  # the small model never generated
    assert _chat_calls(large_server) == large_before + 1
    assert chain.invoke({"q": EASY}).startswith("Hello from the small model")


def test_routed_decision_is_in_the_response_metadata(llm: ChatCascade) -> None:
    message = llm.invoke(HARD)
    meta = message.response_metadata["cascade"]
    assert meta["tier"] == 1 and meta["signal"] == "routed" and meta["reason"].startswith("routed: p_good=")
    assert meta["router"]["routed"] is True and meta["score"] == meta["router"]["p_good"] < 0.5
    kept = llm.invoke(EASY).response_metadata["cascade"]
    assert kept["tier"] == 0 and kept["router"]["routed"] is False
    assert "sk-embed-secret" not in repr(llm)


def test_streaming_a_routed_request_through_a_chain(llm: ChatCascade) -> None:
    chain = ChatPromptTemplate.from_messages([("human", "{q}")]) | llm | StrOutputParser()
    pieces = list(chain.stream({"q": HARD}))
    assert len(pieces) > 1 and "".join(pieces).startswith("Hello from the large model")


async def test_async_routed_request(llm: ChatCascade) -> None:
    message = await llm.ainvoke(HARD)
    assert message.response_metadata["cascade"]["signal"] == "routed"


def test_routed_tool_call_comes_natively_from_the_large_tier(llm: ChatCascade) -> None:
    @tool
    def lookup(country: str) -> str:
        """Look up the top-level domain of a country."""
        return ".tv"

    message = llm.bind_tools([lookup]).invoke(HARD + " with the lookup tool")
    assert message.tool_calls and message.tool_calls[0]["name"] == "lookup"
    assert message.response_metadata["cascade"]["signal"] == "routed"


def test_router_with_a_ready_cascade_is_refused(llm: ChatCascade) -> None:
    with pytest.raises(ValueError, match="not both"):
        ChatCascade(cascade=llm._cascade, router=_router())


def test_structured_output_of_a_routed_request_is_parsed_from_the_large_answer(llm: ChatCascade) -> None:
    from pydantic import BaseModel

    class Domain(BaseModel):
        country: str
        domain: str

    chain = ChatPromptTemplate.from_messages([("human", "{q}")]) | llm.with_structured_output(Domain, include_raw=True)
    out = chain.invoke({"q": HARD + " as 'country' and 'domain'"})
    assert isinstance(out["parsed"], Domain)
    assert out["raw"].response_metadata["cascade"]["signal"] == "routed"
