"""The route stage in the engine: routed requests skip the small tier, for every entry point."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from cascade_core import Cascade, ThresholdRule
from cascade_core.backends.embedders import OpenAIEmbedder
from cascade_core.backends.transformers import TransformersModel
from cascade_core.decide.router import QueryRouter
from cascade_core.engine.effects import OpenSteps, Route, RouteScore
from cascade_core.engine.machine import TierView, plan
from cascade_core.errors import BackendError, ConfigurationError, InvalidRequestError
from cascade_core.testing import ScriptedModel, tiny_model, tiny_tokenizer
from cascade_core.testing.embeddings import hashing_vector
from cascade_core.testing.fake_server import FakeOpenAIServer
from cascade_core.types import Request

LONG = " ".join(["word"] * 60)  # the length router sends prompts of many words to the large tier


def _length_router(threshold: float = 0.5) -> QueryRouter:
    tokens = np.array([2, 3, 4, 40, 50, 60] * 10)
    return QueryRouter(use_embedding=False, threshold=threshold).fit(None, tokens, (tokens < 10).astype(int))


def _tiers() -> tuple[ScriptedModel, ScriptedModel]:
    return ScriptedModel("Paris", confidence=0.9, name="small"), ScriptedModel("Paris is in France", name="large")


def test_routed_request_goes_to_the_large_tier_without_a_small_generation() -> None:
    small, large = _tiers()
    cascade = Cascade([small, large], rules=ThresholdRule("margin", 0.3), router=_length_router())
    result = cascade.invoke(LONG)
    assert result.tier == 1 and result.text == "Paris is in France"
    assert small.calls == [] and len(large.calls) == 1
    decision = result.decision
    assert decision.signal == "routed" and decision.defer and decision.tier == 0
    assert decision.score is not None and decision.score < decision.threshold == 0.5
    assert result.metadata["router"] == {"p_good": decision.score, "threshold": 0.5, "routed": True}
    assert [r.tier for r in result.runs] == [1]  # a length-only router costs no model call
    assert result.as_dict()["signal"] == "routed"


def test_kept_request_is_cascaded_as_before_and_carries_the_router_score() -> None:
    small, large = _tiers()
    cascade = Cascade([small, large], rules=ThresholdRule("margin", 0.3), router=_length_router())
    result = cascade.invoke("Capital of France?")
    assert result.tier == 0 and len(small.calls) == 1 and large.calls == []
    assert result.decision.signal == "margin"
    assert result.metadata["router"]["routed"] is False and result.metadata["router"]["p_good"] > 0.5


def test_streaming_a_routed_request_streams_the_large_answer() -> None:
    small, large = _tiers()
    cascade = Cascade([small, large], rules=ThresholdRule("margin", 0.3), router=_length_router())
    chunks = list(cascade.stream(LONG))
    assert "".join(c.text for c in chunks) == "Paris is in France"
    assert all(c.tier == 1 for c in chunks) and len(chunks) > 2
    assert chunks[-1].result.decision.signal == "routed" and small.calls == []


def test_async_invoke_and_stream_route_the_same_way() -> None:
    small, large = _tiers()
    cascade = Cascade([small, large], rules=ThresholdRule("margin", 0.3), router=_length_router())

    async def run() -> tuple:
        result = await cascade.ainvoke(LONG)
        chunks = [c async for c in cascade.astream(LONG)]
        kept = await cascade.ainvoke("Capital?")
        return result, chunks, kept

    result, chunks, kept = asyncio.run(run())
    assert result.decision.signal == "routed" and chunks[-1].result.tier == 1
    assert kept.tier == 0 and len(small.calls) == 1


def test_batch_routes_each_request_on_its_own() -> None:
    small, large = _tiers()
    cascade = Cascade([small, large], rules=ThresholdRule("margin", 0.3), router=_length_router())
    results = cascade.batch([LONG, "Capital?", LONG])
    assert [r.tier for r in results] == [1, 0, 1]
    assert len(small.calls) == 1 and len(large.calls) == 2


def test_the_plan_yields_route_first_and_skips_every_small_tier_when_routed() -> None:
    view = TierView("m", lambda usage: 0.0, len)
    machine = plan([view, view, view], [ThresholdRule("margin", 0.5)] * 2, Request.from_prompt("Q"),
                   streaming=False, router_threshold=0.4)
    assert isinstance(next(machine), Route)
    effect = machine.send(RouteScore(0.1, 5, prefill=True, latency_s=0.01))
    assert type(effect).__name__ == "Complete" and effect.tier == 2
    machine = plan([view, view], [ThresholdRule("margin", 0.5)], Request.from_prompt("Q"), streaming=False,
                   router_threshold=0.4)
    next(machine)
    assert isinstance(machine.send(RouteScore(0.9, 5, prefill=False)), OpenSteps)


def test_a_router_that_fails_leaves_the_request_to_the_cascade() -> None:
    class Broken:
        def embed(self, text: str) -> np.ndarray:
            raise BackendError("embedding server down")

        async def aembed(self, text: str) -> np.ndarray:
            raise BackendError("embedding server down")

        def count_tokens(self, text: str) -> int:
            return 3

    emb = np.random.default_rng(0).normal(size=(40, 4))
    router = QueryRouter(threshold=0.5).fit(emb, [5] * 40, (emb[:, 0] > 0).astype(int))
    small, large = _tiers()
    result = Cascade([small, large], rules=ThresholdRule("margin", 0.3), router=router, router_embedder=Broken()).invoke("Q?")
    assert result.tier == 0 and result.metadata["router"]["error"] == "BackendError"
    strict = Cascade([small, large], rules=ThresholdRule("margin", 0.3), router=router, router_embedder=Broken(),
                     on_small_error="raise")
    with pytest.raises(BackendError, match="embedding server down"):
        strict.invoke("Q?")


def test_embedding_router_on_a_transformers_small_tier_charges_one_prefill() -> None:
    tok = tiny_tokenizer()
    small = TransformersModel(tiny_model(tok), tok, max_new_tokens=3, prompt_format="completion", name="tiny")
    prompts = ["the cat sat on the mat", "paris is the capital of france", "the dog ate the bone", "rome is the capital"]
    emb = np.stack([small.prompt_embedding(p) for p in prompts] * 5)
    good = np.array([1, 0, 1, 0] * 5)
    router = QueryRouter(threshold=0.5, C=100.0).fit(emb, [small.count_tokens(p) for p in prompts] * 5, good)
    cascade = Cascade([small, ScriptedModel("large answer", name="large")], rules=ThresholdRule("margin", 0.0),
                      router=router)
    routed = cascade.invoke("paris is the capital of france")
    assert routed.tier == 1 and routed.decision.signal == "routed"
    prefill = routed.runs[0]
    assert prefill.tier == 0 and prefill.model_name == "tiny (router prefill)"
    assert prefill.usage.input_tokens == small.count_tokens("paris is the capital of france") and prefill.usage.output_tokens == 0
    kept = cascade.invoke("the cat sat on the mat")
    assert kept.tier == 0 and [r.tier for r in kept.runs] == [0, 0]


def test_openai_embedder_router_through_a_fake_server() -> None:
    with FakeOpenAIServer(embedding_dim=16) as server:
        texts = ["capital of france", "capital of italy", "tld of tuvalu", "tld of niue"] * 6
        emb = np.array([hashing_vector(t, 16) for t in texts])
        router = QueryRouter(threshold=0.5, C=10.0).fit(emb, [3] * len(texts), np.array([1, 1, 0, 0] * 6))
        small, large = _tiers()
        cascade = Cascade([small, large], rules=ThresholdRule("margin", 0.3), router=router,
                          router_embedder=OpenAIEmbedder(server.base_url, "small", api_key="sk-secret"))
        routed = cascade.invoke("tld of tuvalu")
        kept = asyncio.run(cascade.ainvoke("capital of france"))
        assert [b["input"] for b in server.requests] == ["tld of tuvalu", "capital of france"]  # one call each
    assert routed.tier == 1 and routed.runs[0].usage.input_tokens == 3
    assert kept.tier == 0
    assert "sk-secret" not in repr(cascade)


def test_router_features_come_from_request_metadata() -> None:
    rng = np.random.default_rng(0)
    extra = rng.normal(size=(60, 1))
    router = QueryRouter(use_embedding=False, threshold=0.5).fit(None, [5] * 60, (extra[:, 0] > 0).astype(int), extra=extra)
    small, large = _tiers()
    cascade = Cascade([small, large], rules=ThresholdRule("margin", 0.3), router=router)
    assert cascade.invoke(Request.from_prompt("Q", metadata={"router_features": [-2.0]})).tier == 1
    assert cascade.invoke(Request.from_prompt("Q", metadata={"router_features": [2.0]})).tier == 0
    with pytest.raises(InvalidRequestError, match="router_features"):
        cascade.invoke("Q")


def test_router_from_a_file_path(tmp_path: Path) -> None:
    path = _length_router(0.5).save(tmp_path / "router.json")
    small, large = _tiers()
    cascade = Cascade([small, large], router=str(path))
    assert cascade.router is not None and cascade.router.threshold == 0.5
    assert cascade.invoke(LONG).tier == 1


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"router": QueryRouter(threshold=0.5)}, "not fitted"),
        ({"router": "not-a-router"}, "does not exist"),
        ({"router": 3}, "must be a fitted QueryRouter"),
        ({"router_embedder": object()}, "without a router"),
    ],
)
def test_bad_router_settings_are_refused_at_construction(kwargs: dict, match: str) -> None:
    small, large = _tiers()
    with pytest.raises((ConfigurationError, ValueError), match=match):
        Cascade([small, large], **kwargs)


def test_router_without_threshold_or_embedder_is_refused() -> None:
    small, large = _tiers()
    with pytest.raises(ConfigurationError, match="no threshold"):
        Cascade([small, large], router=_length_router().set_params(threshold=None))
    emb = np.random.default_rng(0).normal(size=(20, 3))
    router = QueryRouter(threshold=0.5).fit(emb, [4] * 20, (emb[:, 0] > 0).astype(int))
    with pytest.raises(ConfigurationError, match="cannot give one; pass router_embedder="):
        Cascade([small, large], router=router)
    with pytest.raises(ConfigurationError, match="PromptEmbedder"):
        Cascade([small, large], router=router, router_embedder=object())
