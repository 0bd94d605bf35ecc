"""CascadeLLM(signal="sample_agreement") behind a real LlamaIndex query engine, its small tier without log-probs."""

from __future__ import annotations

from llama_index.core import Document, VectorStoreIndex

from cascade_core.testing.fake_server import FakeReply
from llamaindex_cascade import HashingEmbedding

from .fakes import make_llm, replies


def _no_logprobs(body: dict) -> FakeReply:
    """Greedy: "Zorblax." always; samples agree with it, except on questions about the ocean."""
    text = str(body["messages"][-1]["content"])
    if body.get("temperature", 0) == 0:
        return FakeReply("Zorblax.", logprobs=False)
    return FakeReply(f"Guess {body.get('seed')}" if "ocean" in text else "zorblax", logprobs=False)


def test_sample_agreement_decides_behind_a_query_engine(small_server, large_server):
    small_server.set_responder(_no_logprobs)
    large_server.set_responder(replies(default=FakeReply("Liquid methane.")))
    llm = make_llm(small_server, large_server, rule=None, signal="sample_agreement",
                   signal_params={"k": 2, "temperature": 0.9}, threshold=0.5)
    index = VectorStoreIndex.from_documents([Document(text="Zorblax is the capital of Quintar.")],
                                            embed_model=HashingEmbedding())
    engine = index.as_query_engine(llm=llm, similarity_top_k=1)
    assert str(engine.query("What is the capital of Quintar?")) == "Zorblax."  # both samples agree: kept
    assert len(large_server.requests) == 0 and len(small_server.requests) == 3  # k + 1 small calls
    assert all("logprobs" not in body for body in small_server.requests)
    assert str(engine.query("What is the ocean made of?")) == "Liquid methane."  # samples disagree: deferred
    assert len(large_server.requests) == 1
