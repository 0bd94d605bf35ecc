"""``cascade collect --prompt-embedding``, ``cascade fit --router`` and ``cascade calibrate --router`` end to end,
offline: tiers and the embedding endpoint on a fake OpenAI-compatible server on 127.0.0.1, or a tiny local model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cascade_core.cli import main
from cascade_core.decide.calibration_file import load_calibration
from cascade_core.decide.router import QueryRouter
from cascade_core.errors import ConfigurationError
from cascade_core.evaluation.collect import load_cache
from cascade_core.evaluation.router_fit import router_scores
from cascade_core.serve import parse_config
from cascade_core.testing.fake_server import FakeOpenAIServer, FakeReply

KINDS = {"capital": True, "currency": False}  # the small tier is right on capitals only
PLACES = ["France", "Japan", "Italy", "Spain", "Peru", "Chad", "Mali", "Laos", "Oman", "Fiji", "Togo", "Cuba"]


def _records():
    return [{"id": f"{kind}/{place}", "prompt": f"Q: What is the {kind} of {place}?\nA:", "answer": "right"}
            for kind in KINDS for place in PLACES]


def _responder(body):
    prompt = body["messages"][-1]["content"]
    if body["model"] == "large-model":
        return FakeReply(" right\n")
    if "capital" in prompt:
        return FakeReply(" right\n", confidence=0.7 + 0.02 * len(prompt) % 0.2)
    return FakeReply(" wrong\n", confidence=0.5 + 0.03 * (len(prompt) % 7), token_confidence=0.5)


@pytest.fixture()
def cache(tmp_path):
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in _records()))
    out = tmp_path / "fit.cache.jsonl"
    with FakeOpenAIServer(_responder, embedding_dim=32) as server:
        code = main(["collect", "--data", str(data), "--out", str(out), "--no-progress",
                     "--small", f"openai:{server.base_url}#small-model", "--large", f"openai:{server.base_url}#large-model",
                     "--prompt-embedding", f"openai:{server.base_url}#small-model"])
        assert code == 0
        embedded = [b["input"] for b in server.requests if "input" in b]
    assert embedded == [r["prompt"] for r in _records()]  # one /v1/embeddings call per prompt, the prompt as is
    return out


def test_collect_records_prompt_embeddings_and_old_readers_still_load(cache):
    rows = load_cache(cache)
    assert len(rows) == 24 and all(len(r.prompt_embedding) == 32 for r in rows)
    assert rows[0].prompt_tokens == len(_records()[0]["prompt"].split()) and rows[0].prompt_seconds > 0
    line = json.loads(cache.read_text().splitlines()[0])
    for key in ("prompt_embedding", "prompt_tokens", "prompt_seconds"):
        line.pop(key)
    cache.write_text(json.dumps(line) + "\n")  # a cache written before routers existed
    assert load_cache(cache)[0].prompt_embedding is None


def test_fit_router_then_calibrate_the_hybrid_then_serve_reads_it(cache, tmp_path, capsys):
    router_path = tmp_path / "router.json"
    assert main(["fit", "--router", "--cache", str(cache), "--out", str(router_path), "--cv", "3",
                 "--json", str(tmp_path / "sel.json")]) == 0
    printed = capsys.readouterr().out
    assert "held-out AUC-DF of the router alone" in printed and "winner: C=" in printed
    router = QueryRouter.load(router_path)
    rows = load_cache(cache)
    p = router_scores(router, rows)
    capitals = np.array([r.id.startswith("capital") for r in rows])
    assert p[capitals].min() > p[~capitals].max()  # it ranks the questions the small tier gets right first
    assert json.loads((tmp_path / "sel.json").read_text())["winner"]["C"] == router.C

    hybrid = tmp_path / "hybrid.json"
    assert main(["calibrate", "--router", str(router_path), "--signal", "margin", "--deferral-rate", "0.5",
                 "--cache", str(cache), "--holdout", str(cache), "--json", str(hybrid)]) == 0
    out = json.loads(hybrid.read_text())
    assert out["sample"]["deferral_rate"] == pytest.approx(0.5, abs=1 / 24)
    assert 0.0 <= out["router"]["threshold"] <= 1.0 and 0.0 <= out["router"]["route_share"] <= 0.5 + 1e-9
    assert out["holdout"]["deferral_rate"] == pytest.approx(out["sample"]["deferral_rate"])
    assert out["sample"]["quality"] == pytest.approx(1.0)  # the 12 wrong small answers fit in the budget
    config = parse_config({"cascades": {"qa": {
        "tiers": ["openai:http://127.0.0.1:9/v1#s", "openai:http://127.0.0.1:9/v1#l"],
        "rule": {"signal": "margin", "calibration_file": str(hybrid)},
        "router": {"file": str(router_path), "calibration_file": str(hybrid),
                   "embedder": {"base_url": "http://127.0.0.1:9/v1", "model": "s"}},
    }}})
    assert config.cascades["qa"].router.threshold == out["router"]["threshold"]
    assert config.cascades["qa"].rules[0].calibration_file == str(hybrid)  # one file carries both thresholds
    calibration = load_calibration(hybrid)
    assert calibration.threshold == float(out["threshold"])  # "-inf" when the router takes the whole budget
    assert calibration.router == out["router"] and calibration.signal == "margin"


def test_fit_router_without_prompt_embeddings_says_how_to_get_them(cache, tmp_path, capsys):
    lines = [json.loads(x) for x in cache.read_text().splitlines()]
    for line in lines:
        del line["prompt_embedding"], line["prompt_tokens"], line["prompt_seconds"]
    cache.write_text("".join(json.dumps(x) + "\n" for x in lines))
    assert main(["fit", "--router", "--cache", str(cache), "--out", str(tmp_path / "r.json")]) == 2
    assert "cascade collect --prompt-embedding" in capsys.readouterr().err
    assert main(["fit", "--router", "--no-embedding", "--cache", str(cache), "--out", str(tmp_path / "r.json"), "--cv", "0"]) == 0
    assert QueryRouter.load(tmp_path / "r.json").use_embedding is False


def test_calibrate_router_needs_a_deferral_rate(cache, tmp_path, capsys):
    router_path = tmp_path / "router.json"
    assert main(["fit", "--router", "--cache", str(cache), "--out", str(router_path), "--cv", "0"]) == 0
    assert main(["calibrate", "--router", str(router_path), "--cache", str(cache), "--budget", "0.4"]) == 2
    assert "--router needs --deferral-rate" in capsys.readouterr().err


def test_collect_prompt_embedding_from_a_local_small_model(tmp_path):
    from cascade_core.testing import tiny_model, tiny_tokenizer

    tok = tiny_tokenizer()
    model_dir = tmp_path / "tiny"
    tiny_model(tok).save_pretrained(model_dir)
    tok.save_pretrained(model_dir)
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"id": 1, "prompt": "the capital of france", "answer": "paris"}) + "\n")
    cache = tmp_path / "c.jsonl"
    assert main(["collect", "--data", str(data), "--out", str(cache), "--small", f"hf:{model_dir}", "--large",
                 f"hf:{model_dir}", "--max-new-tokens", "2", "--prompt-embedding", "--no-progress"]) == 0
    row = load_cache(cache)[0]
    assert len(row.prompt_embedding) == 32 and row.prompt_tokens == len(tok.encode("the capital of france", add_special_tokens=False))


def test_prompt_embedding_of_an_http_small_tier_needs_an_endpoint(tmp_path, capsys):
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"id": 1, "prompt": "q", "answer": "a"}) + "\n")
    code = main(["collect", "--data", str(data), "--out", str(tmp_path / "c"), "--small", "openai:http://127.0.0.1:9/v1#s",
                 "--large", "openai:http://127.0.0.1:9/v1#l", "--prompt-embedding"])
    assert code == 2 and "--prompt-embedding openai:<base_url>#<model>" in capsys.readouterr().err


def test_the_hybrid_calibration_file_drives_a_cascade_with_a_router_file(cache, tmp_path):
    """What `cascade calibrate --router --out` wrote deploys through the Python API too: the rule and its threshold
    from the file, and a router saved without a threshold takes the file's routing threshold."""
    from cascade_core import Cascade
    from cascade_core.backends.embedders import OpenAIEmbedder
    from cascade_core.backends.openai import OpenAIModel

    router_path, hybrid = tmp_path / "router.json", tmp_path / "hybrid.json"
    assert main(["fit", "--router", "--cache", str(cache), "--out", str(router_path), "--cv", "3"]) == 0
    assert main(["calibrate", "--router", str(router_path), "--signal", "margin", "--deferral-rate", "0.5",
                 "--cache", str(cache), "--out", str(hybrid)]) == 0
    assert QueryRouter.load(router_path).threshold is None
    calibration = load_calibration(hybrid)
    with FakeOpenAIServer(_responder, embedding_dim=32) as server:
        small = OpenAIModel("small-model", base_url=server.base_url, api_key="unused", top_k=5, max_new_tokens=4)
        large = OpenAIModel("large-model", base_url=server.base_url, api_key="unused", max_new_tokens=4)
        cascade = Cascade([small, large], calibration_file=hybrid, router=router_path,
                          router_embedder=OpenAIEmbedder(server.base_url, "small-model"))
        assert cascade.router is not None and cascade.router.threshold == calibration.router["threshold"]
        assert cascade.rules[0].policy.current_threshold == calibration.threshold
        results = [cascade.invoke(r["prompt"]) for r in _records()]
    routed = [r.decision.signal == "routed" for r in results]
    assert sum(routed) == round(calibration.router["route_share"] * len(results))  # the sample's own share
    assert all(r.metadata["router"]["threshold"] == calibration.router["threshold"] for r in results)
    with pytest.raises(ConfigurationError, match="rules= or calibration_file="):
        Cascade([small, large], rules=cascade.rules[0], calibration_file=hybrid)
