"""Two CascadeLLM replicas behind real query engines share one budget through a real valkey-server."""

from __future__ import annotations

import pytest
from llama_index.core import Document, VectorStoreIndex

from cascade_core import DynamicBudgetThreshold, ThresholdRule
from cascade_core.testing.fake_server import FakeReply
from llamaindex_cascade import HashingEmbedding

from .fakes import CONFIDENT, UNSURE, make_llm, replies

DOCUMENTS = [Document(text="Zorblax is the capital of the planet Quintar."),
             Document(text="The Quintar ocean is made of liquid methane.")]


@pytest.fixture(autouse=True)
def _script(small_server, large_server):
    small_server.set_responder(replies(("capital", FakeReply("Zorblax.", confidence=CONFIDENT)),
                                       ("ocean", FakeReply("Maybe water.", confidence=UNSURE))))
    large_server.set_responder(replies(default=FakeReply("Liquid methane.")))


def _tiers(small_server, large_server, store):
    index = VectorStoreIndex.from_documents(DOCUMENTS, embed_model=HashingEmbedding())
    engines = [index.as_query_engine(llm=make_llm(small_server, large_server, threshold_store=store, rule=ThresholdRule(
        "margin", DynamicBudgetThreshold(deferral_rate=0.5, warmup=4, window=64, initial_threshold=0.3))),
        similarity_top_k=1) for _ in range(2)]
    answers = ([], [])
    for _ in range(10):  # one replica gets the easy tenant, the other the hard one
        answers[0].append(str(engines[0].query("What is the capital of Quintar?")))
        answers[1].append(str(engines[1].query("What is the ocean made of?")))
    return answers


def test_query_engines_share_one_budget(small_server, large_server, redis_server):
    easy, hard = _tiers(small_server, large_server, f"{redis_server.url}?key=li-fleet")
    assert easy == ["Zorblax."] * 10 and hard == ["Liquid methane."] * 10

    import redis

    assert int(redis.Redis.from_url(redis_server.url).hget("{li-fleet}:threshold.0:meta", "seen")) == 20


def test_query_engines_with_their_own_windows_defer_easy_answers(small_server, large_server):
    easy, hard = _tiers(small_server, large_server, None)
    assert "Liquid methane." in easy and "Zorblax." not in hard
