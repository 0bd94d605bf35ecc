"""CascadeLLM(router=...): a pre-generation router inside a real LlamaIndex query engine."""

from __future__ import annotations

import numpy as np
import pytest
from llama_index.core import Document, VectorStoreIndex

from cascade_core.backends.embedders import OpenAIEmbedder
from cascade_core.decide.router import QueryRouter
from cascade_core.testing.embeddings import hashing_vector
from cascade_core.testing.fake_server import FakeReply
from llamaindex_cascade import HashingEmbedding

from .fakes import CONFIDENT, make_llm, replies

DOCUMENTS = [
    Document(text="Zorblax is the capital of the planet Quintar. It has three moons."),
    Document(text="The Quintar ocean is made of liquid methane and is very cold."),
]
EASY, HARD = "What is the capital of Quintar?", "What is the Quintar ocean made of?"
DIM = 16


@pytest.fixture
def index():
    return VectorStoreIndex.from_documents(DOCUMENTS, embed_model=HashingEmbedding())


@pytest.fixture(autouse=True)
def _script(small_server, large_server):
    # the small tier would even be confident on the hard question: only the router keeps it away
    small_server.set_responder(replies(default=FakeReply("Zorblax is the capital of Quintar.", confidence=CONFIDENT)))
    large_server.set_responder(replies(default=FakeReply("The Quintar ocean is liquid methane.")))


def _prompts_the_router_sees(index, small_server, large_server) -> list[str]:
    """Run both questions once with a router that never routes; the embedding calls record the exact prompts."""
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(20, DIM))
    never = QueryRouter(threshold=0.0).fit(emb, [10] * 20, (emb[:, 0] > 0).astype(int))
    llm = make_llm(small_server, large_server, router=never,
                   router_embedder=OpenAIEmbedder(small_server.base_url, "small-model", api_key="sk-e"))
    engine = index.as_query_engine(llm=llm, similarity_top_k=1)
    engine.query(EASY)
    engine.query(HARD)
    return [body["input"] for body in small_server.requests if "input" in body]


def _fitted_router(prompts: list[str]) -> QueryRouter:
    easy, hard = prompts
    rng = np.random.default_rng(1)
    rows = [np.asarray(hashing_vector(p, DIM)) + rng.normal(scale=0.01, size=DIM) for p in [easy, hard] * 10]
    return QueryRouter(C=10.0, threshold=0.5).fit(np.array(rows), [40] * 20, np.array([1, 0] * 10))


def test_query_engine_routes_the_hard_question_to_the_large_tier(index, small_server, large_server):
    prompts = _prompts_the_router_sees(index, small_server, large_server)
    assert len(prompts) == 2 and "Zorblax" in prompts[0] and "methane" in prompts[1]  # the retrieved context
    llm = make_llm(small_server, large_server, router=_fitted_router(prompts),
                   router_embedder=OpenAIEmbedder(small_server.base_url, "small-model", api_key="sk-e"))
    engine = index.as_query_engine(llm=llm, similarity_top_k=1)
    chats_before = sum(1 for body in small_server.requests if "messages" in body)
    response = engine.query(HARD)
    assert str(response) == "The Quintar ocean is liquid methane."
    assert sum(1 for body in small_server.requests if "messages" in body) == chats_before  # no small generation
    kept = engine.query(EASY)
    assert str(kept) == "Zorblax is the capital of Quintar."


async def test_async_and_streaming_query_engines_route_too(index, small_server, large_server):
    prompts = _prompts_the_router_sees(index, small_server, large_server)
    llm = make_llm(small_server, large_server, router=_fitted_router(prompts),
                   router_embedder=OpenAIEmbedder(small_server.base_url, "small-model", api_key="sk-e"))
    response = await index.as_query_engine(llm=llm, similarity_top_k=1).aquery(HARD)
    assert str(response) == "The Quintar ocean is liquid methane."
    streamed = index.as_query_engine(llm=llm, similarity_top_k=1, streaming=True).query(HARD)
    assert "".join(streamed.response_gen) == "The Quintar ocean is liquid methane."


def test_routed_decision_is_in_the_completion_metadata(small_server, large_server):
    tokens = np.array([2, 3, 60, 70] * 10)
    router = QueryRouter(use_embedding=False, threshold=0.5).fit(None, tokens, (tokens < 10).astype(int))
    llm = make_llm(small_server, large_server, router=router)
    meta = llm.complete(" ".join(["word"] * 80)).additional_kwargs["cascade"]
    assert meta["tier"] == 1 and meta["signal"] == "routed" and meta["router"]["routed"] is True
    assert llm.complete("Hi there").additional_kwargs["cascade"]["tier"] == 0
