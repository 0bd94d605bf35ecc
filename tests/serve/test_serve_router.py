"""`cascade serve` with a ``[cascades.<name>.router]`` table: config validation and routed requests
through a real uvicorn server, tiers and the embedding server being fake OpenAI-compatible servers on 127.0.0.1."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import openai
import pytest

from cascade_core.decide.calibration_file import CalibrationFile
from cascade_core.decide.router import QueryRouter
from cascade_core.decide.rule_file import SignalRule
from cascade_core.errors import ConfigurationError
from cascade_core.serve import build_cascades, create_app, parse_config
from cascade_core.testing.embeddings import hashing_vector
from cascade_core.testing.fake_server import FakeOpenAIServer, FakeReply

from .harness import serving

HARD = [{"role": "user", "content": "Name the top-level domain of Tuvalu"}]
EASY = [{"role": "user", "content": "Name the capital of France"}]


def _router_file(folder: Path) -> Path:
    texts = [f"{kind} of {place}" for kind in ("Name the capital", "Name the top-level domain")
             for place in ("France", "Italy", "Spain", "Tuvalu", "Niue", "Chad")]
    emb = np.array([hashing_vector(t, 16) for t in texts])
    router = QueryRouter(C=10.0).fit(emb, [len(t.split()) for t in texts], np.array([1] * 6 + [0] * 6))
    return router.save(folder / "router.json")


@pytest.fixture(scope="module")
def servers():
    with FakeOpenAIServer(lambda body: FakeReply("Paris", confidence=0.95), embedding_dim=16) as small, \
            FakeOpenAIServer(lambda body: FakeReply("Answer from the large tier")) as large:
        yield small, large


def _doc(small: FakeOpenAIServer, large: FakeOpenAIServer, router: dict) -> dict:
    return {"cascades": {"qa": {
        "tiers": [f"openai:{small.base_url}#small", {"kind": "openai", "base_url": large.base_url, "model": "large"}],
        "rule": {"signal": "margin", "threshold": 0.3},
        "router": router,
    }}}


def test_routed_and_kept_requests_through_the_server(servers, tmp_path):
    small, large = servers
    _router_file(tmp_path)
    CalibrationFile(SignalRule("margin").to_dict(), threshold=0.3, router={"file": "router.json", "threshold": 0.5}).save(
        tmp_path / "hybrid.json")
    config = parse_config(_doc(small, large, {"file": "router.json", "calibration_file": "hybrid.json",
                                              "embedder": {"base_url": small.base_url, "model": "small"}}),
                          base_dir=tmp_path)
    assert config.cascades["qa"].router.threshold == 0.5
    cascades = build_cascades(config)
    with serving(create_app(cascades)) as running:
        client = openai.OpenAI(base_url=running.base_url, api_key="unused", max_retries=0, timeout=20)
        chats_before = sum(1 for b in small.requests if "messages" in b)
        raw = client.chat.completions.with_raw_response.create(model="qa", messages=HARD)
        routed = raw.parse()
        assert routed.choices[0].message.content == "Answer from the large tier"
        assert raw.headers["x-cascade-tier"] == "1"
        decision = routed.model_extra["cascade"]
        assert decision["signal"] == "routed" and decision["router"]["routed"] is True
        assert decision["runs"][0]["model_name"].endswith("(router prefill)")
        assert sum(1 for b in small.requests if "messages" in b) == chats_before  # the small tier never generated
        stream = client.chat.completions.create(model="qa", messages=HARD, stream=True)
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "Answer from the large tier"
        kept = client.chat.completions.create(model="qa", messages=EASY)
        assert kept.choices[0].message.content == "Paris" and kept.model_extra["cascade"]["tier"] == 0
        metrics = running.app.state.metrics
        assert metrics.value("cascade_routed_total", cascade="qa") == 2
        assert metrics.value("cascade_deferrals_total", cascade="qa", tier="small") == 2


@pytest.mark.parametrize(
    ("router", "message"),
    [
        ({"file": "router.json"}, "cascades.qa.router: give exactly one of threshold"),
        ({"file": "router.json", "threshold": 1.5}, "cascades.qa.router.threshold: must be a probability"),
        ({"file": "missing.json", "threshold": 0.5}, "cascades.qa.router.file: router file"),
        ({"file": "router.json", "threshold": 0.5, "extra": 1}, "cascades.qa.router: unknown key(s) ['extra']"),
        ({"file": "router.json", "threshold": 0.5, "embedder": {"model": "m"}}, "cascades.qa.router.embedder.base_url: is required"),
        ({"file": "router.json", "calibration_file": "none.json"}, "cascades.qa.router.calibration_file: calibration file"),
    ],
)
def test_invalid_router_tables_name_the_key(servers, tmp_path, router, message):
    _router_file(tmp_path)
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        parse_config(_doc(*servers, router), base_dir=tmp_path)


def test_embedding_router_without_an_embedder_on_an_http_small_tier_fails_at_build(servers, tmp_path):
    _router_file(tmp_path)
    config = parse_config(_doc(*servers, {"file": "router.json", "threshold": 0.5}), base_dir=tmp_path)
    with pytest.raises(ConfigurationError, match="cascades.qa: router: .* pass router_embedder="):
        build_cascades(config)
