"""The library's test fakes: one implementation of each, shared by the scripted model and the fake server."""

from __future__ import annotations

import math

import openai
import pytest

from cascade_core import Request
from cascade_core.testing import ScriptedModel
from cascade_core.testing.distribution import scripted_top_k
from cascade_core.testing.embeddings import hashing_vector
from cascade_core.testing.fake_server import FakeOpenAIServer, FakeReply, keyword_responder


@pytest.mark.parametrize("top_k", [1, 2, 5])
def test_scripted_model_and_fake_server_emit_the_same_top_k(top_k: int) -> None:
    steps = [e for e in ScriptedModel("Paris", confidence=0.7, top_k=top_k).stream_steps(Request.from_prompt("q"))
             if hasattr(e, "top")]
    with FakeOpenAIServer(lambda body: FakeReply("Paris", confidence=0.7)) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="sk-fake", max_retries=0)
        reply = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "q"}],
                                               logprobs=True, top_logprobs=top_k)
    wire = [(a.token, a.logprob) for a in reply.choices[0].logprobs.content[0].top_logprobs]
    local = [(a.token, a.logprob) for a in steps[0].top]
    assert local == wire == scripted_top_k("Paris", 0.7, top_k)[:top_k]
    assert math.isclose(math.exp(local[0][1]) - (math.exp(local[1][1]) if top_k > 1 else 0),
                        0.7 - (0.8 * 0.3 if top_k > 1 else 0))


def test_hashing_vector_is_deterministic_normalised_and_shared_by_the_llamaindex_embedding() -> None:
    pytest.importorskip("llama_index.core")
    from llamaindex_cascade import HashingEmbedding

    text = "Paris is the capital of France"
    vector = hashing_vector(text, 64)
    assert vector == hashing_vector(text, 64) and math.isclose(sum(x * x for x in vector), 1.0)
    assert HashingEmbedding(dim=64).get_text_embedding(text) == vector
    assert hashing_vector("", 8) == [0.0] * 8
    assert hashing_vector("the the", 8, stop_words={"the"}) == [0.0] * 8


def test_keyword_responder_answers_the_first_matching_rule_else_the_default_else_echo() -> None:
    def body(text: str) -> dict:
        return {"messages": [{"role": "user", "content": text}]}

    respond = keyword_responder(("France", FakeReply("Paris")), ("Italy", FakeReply("Rome")), default=FakeReply("?"))
    assert [respond(body(q)).text for q in ("France", "Italy", "Peru")] == ["Paris", "Rome", "?"]
    assert keyword_responder()(body("hi")).text == "echo: hi"
