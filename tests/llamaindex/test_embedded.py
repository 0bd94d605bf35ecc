"""End to end with the real embedded SmolLM2-135M small tier (slow: loads and runs the model)."""

from __future__ import annotations

import pytest
from llama_index.core import Document, VectorStoreIndex
from llama_index.core.base.llms.types import ChatMessage
from llama_index.llms.openai import OpenAI

from cascade_core import ThresholdRule
from cascade_core.testing.fake_server import FakeReply
from llamaindex_cascade import CascadeLLM, HashingEmbedding

from .fakes import replies

pytestmark = pytest.mark.slow


def _llm(small, large_server, threshold: float) -> CascadeLLM:
    large = OpenAI(
        model="gpt-4o-mini", api_base=large_server.base_url, api_key="sk-fake", timeout=10, max_retries=0
    )
    return CascadeLLM(small=small, large=large, rule=ThresholdRule("margin", threshold))


def test_real_small_model_streams_a_kept_answer(embedded_small_model, large_server):
    llm = _llm(embedded_small_model, large_server, threshold=0.0)  # margin >= 0: always kept
    assert llm.metadata.context_window == embedded_small_model.context_window
    chunks = list(llm.stream_chat([ChatMessage(role="user", content="What is the capital of France?")]))
    final = chunks[-1]
    decision = final.additional_kwargs["cascade"]
    assert decision["tier"] == 0 and 0.0 <= decision["score"] <= 1.0
    assert "".join(c.delta or "" for c in chunks) == final.message.content != ""
    assert 1 <= decision["runs"][0]["output_tokens"] <= 16
    assert large_server.requests == []


def test_real_small_model_defers_after_its_first_token_in_a_query_engine(embedded_small_model, large_server):
    large_server.set_responder(replies(default=FakeReply("Paris.")))
    llm = _llm(embedded_small_model, large_server, threshold=1.0)  # margin < 1: always deferred
    index = VectorStoreIndex.from_documents(
        [Document(text="Paris is the capital of France.")], embed_model=HashingEmbedding()
    )
    response = index.as_query_engine(llm=llm).query("What is the capital of France?")
    assert str(response) == "Paris."
    assert len(large_server.requests) == 1
    assert "Paris is the capital of France." in str(large_server.requests[0]["messages"])
