"""ChatCascade(signal="sample_agreement") in a real LCEL chain, its small tier served without log-probs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from lc_fakes import large_chat_openai

from cascade_core import LogprobsUnavailableError
from cascade_core.backends.openai import OpenAIModel
from cascade_core.testing.fake_server import FakeOpenAIServer, FakeReply
from langchain_cascade import ChatCascade


def _no_logprobs(body: dict[str, Any]) -> FakeReply:
    """Greedy: "Paris" for every question; samples agree on "France" questions, scatter on the others."""
    question = str(body["messages"][-1]["content"])
    if body.get("temperature", 0) == 0:
        return FakeReply("Paris", logprobs=False)
    return FakeReply("Paris" if "France" in question else f"Guess{body.get('seed')}", logprobs=False)


@pytest.fixture(scope="module")
def plain_server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(_no_logprobs) as server:
        yield server


def _llm(server: FakeOpenAIServer, large: Any, **options: Any) -> ChatCascade:
    small = OpenAIModel("plain-small", base_url=server.base_url, api_key="sk-fake", timeout=10, max_retries=0)
    return ChatCascade(small=small, large=large, **options)


def test_sample_agreement_keeps_and_defers_in_an_lcel_chain(plain_server, large_server) -> None:
    llm = _llm(plain_server, large_chat_openai(large_server), signal="sample_agreement",
               signal_params={"k": 3, "temperature": 0.7}, threshold=0.5)
    chain = ChatPromptTemplate.from_messages([("human", "{q}")]) | llm
    before = len(plain_server.requests)
    kept = chain.invoke({"q": "Capital of France?"})
    assert kept.content == "Paris" and len(plain_server.requests) - before == 4  # k + 1 small calls
    meta = kept.response_metadata["cascade"]
    assert (meta["tier"], meta["signal"], meta["score"]) == (0, "sample_agreement(k=3, temperature=0.7)", 1.0)
    deferred = chain.invoke({"q": "Capital of Atlantis?"}).response_metadata["cascade"]
    assert (deferred["tier"], deferred["score"]) == (1, 0.0)
    assert (chain | StrOutputParser()).invoke({"q": "Capital of Atlantis?"}).startswith("Hello from the large model")


def test_a_margin_signal_on_the_same_server_fails_loudly(plain_server, large_server) -> None:
    llm = _llm(plain_server, large_chat_openai(large_server), signal="margin", threshold=0.3)
    with pytest.raises(LogprobsUnavailableError):
        (ChatPromptTemplate.from_messages([("human", "{q}")]) | llm).invoke({"q": "Capital of France?"})
