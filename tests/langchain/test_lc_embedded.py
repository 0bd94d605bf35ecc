"""ChatCascade with the real embedded small model (SmolLM2-135M, offline): slow, loaded once per session."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate

from langchain_cascade import ChatCascade

pytestmark = pytest.mark.slow


def test_real_small_model_keeps_and_streams_token_by_token(embedded_small: Any, large: Any) -> None:
    llm = ChatCascade(small=embedded_small, large=large, threshold=0.0, max_tokens=12)  # margin >= 0: always kept
    chunks = list(llm.stream("What is the capital of France? Answer in one word."))
    meta = chunks[-1].response_metadata["cascade"]
    assert meta["tier"] == 0 and meta["model_name"] == "SmolLM2-135M-Instruct"
    assert 0.0 <= meta["score"] <= 1.0 and meta["signal"] == "margin"
    assert len([c for c in chunks if c.text]) >= 2 and "".join(c.text for c in chunks).strip()
    assert llm.get_token_ids("Paris") == embedded_small.tokenizer.encode("Paris", add_special_tokens=False)


def test_real_small_model_defers_to_large_in_a_chain(embedded_small: Any, large: Any) -> None:
    llm = ChatCascade(small=embedded_small, large=large, threshold=1.0, max_tokens=12)  # margin < 1: defers
    chain = ChatPromptTemplate.from_messages([("human", "{q}")]) | llm
    message = chain.invoke({"q": "Name a prime number."})
    meta = message.response_metadata["cascade"]
    assert meta["tier"] == 1 and meta["decisions"][0]["early_exit"] is True
    assert (chain | StrOutputParser()).invoke({"q": "Hi"}).startswith("Hello from the large model")
