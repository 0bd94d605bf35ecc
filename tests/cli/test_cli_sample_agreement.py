"""``cascade collect --samples`` records sampled answers; ``eval``, ``fit`` and ``calibrate --risk`` score
``sample_agreement`` from the cache, and the calibration file deploys it (fake OpenAI-compatible server on 127.0.0.1)."""

from __future__ import annotations

import json

import pytest

from cascade_core import Cascade
from cascade_core.backends.openai import OpenAIModel
from cascade_core.cli import main
from cascade_core.decide.calibration_file import load_calibration
from cascade_core.decide.scorers import SamplingPlan
from cascade_core.evaluation.collect import load_cache
from cascade_core.evaluation.report import scores_for
from cascade_core.testing import ScriptedModel
from cascade_core.testing.fake_server import FakeOpenAIServer, FakeReply

N = 120


def _item(body: dict) -> int:
    return int(str(body["messages"][-1]["content"]).split("item ")[1].split("?")[0])


def _responder(body: dict) -> FakeReply:
    """7 in 10 items: the small tier is right and its samples agree (its margin is a coin flip, 0.5-0.6);
    3 in 10: wrong, and its samples scatter (margin high, 0.9): only sample agreement separates them."""
    i = _item(body)
    if body["model"] == "large-model":
        return FakeReply(f" answer{i}\n")
    right = i % 10 < 7
    if body.get("temperature", 0) == 0:
        return FakeReply(f" answer{i}\n" if right else " wrong\n", confidence=0.5 + 0.01 * (i % 10) if right else 0.9)
    seed = int(body.get("seed", 0))
    return FakeReply(f" answer{i}\n" if right else f" guess{seed}\n")


@pytest.fixture(scope="module")
def server():
    with FakeOpenAIServer(_responder) as srv:
        yield srv


@pytest.fixture(scope="module")
def caches(server, tmp_path_factory):
    root = tmp_path_factory.mktemp("samples")
    data = root / "data.jsonl"
    data.write_text("".join(json.dumps({"id": f"q{i}", "prompt": f"Q: item {i}?\nA:", "answer": f"answer{i}"}) + "\n"
                            for i in range(N)))
    tiers = ["--small", f"openai:{server.base_url}#small-model", "--large", f"openai:{server.base_url}#large-model"]
    out = {"samples": root / "samples.cache.jsonl", "plain": root / "plain.cache.jsonl"}
    assert main(["collect", "--data", str(data), "--out", str(out["samples"]), *tiers, "--no-progress",
                 "--samples", "4", "--temperature", "0.8"]) == 0
    assert main(["collect", "--data", str(data), "--out", str(out["plain"]), *tiers, "--no-progress", "--limit", "20"]) == 0
    return out


def test_collect_records_the_samples_and_how_they_were_drawn(caches) -> None:
    rows = load_cache(caches["samples"])
    assert len(rows) == N and all(len(r.small.samples) == 4 for r in rows)
    assert rows[0].sampling == {"k": 4, "temperature": 0.8, "seed": 0}
    assert rows[0].small.steps  # the greedy answer keeps its log-probs: margin is scored on the same answer
    assert rows[3].small.samples == (" answer3",) * 4  # the stop string "\n" cut off
    assert rows[7].small.samples == (" guess0", " guess1", " guess2", " guess3")
    assert rows[0].small.sample_usage.output_tokens == 4 * 2  # " answer0" and "\n" per sample
    assert rows[0].small.usage.output_tokens == 5 * 2  # the greedy call and the 4 sampled ones
    assert all(not r.small.samples and r.sampling is None for r in load_cache(caches["plain"]))


def test_eval_lists_sample_agreement_only_when_the_cache_has_samples(caches, tmp_path, capsys) -> None:
    out = tmp_path / "eval.json"
    assert main(["eval", "--cache", str(caches["samples"]), "--json", str(out)]) == 0
    rows = {r["signal"]: r for r in json.loads(out.read_text())["table"]}
    assert rows["sample_agreement"]["auc_df"] > rows["margin"]["auc_df"] + 0.05
    assert "sample_agreement" not in scores_for(load_cache(caches["plain"]))
    capsys.readouterr()
    assert main(["calibrate", "--cache", str(caches["plain"]), "--signal", "sample_agreement", "--deferral-rate", "0.3"]) != 0
    assert "the cache has no samples" in capsys.readouterr().err


def test_fit_compares_sample_agreement_and_writes_it_with_its_parameters(caches, tmp_path) -> None:
    rule = tmp_path / "rule.json"
    assert main(["fit", "--cache", str(caches["samples"]), "--out", str(rule), "--signals-only"]) == 0
    data = json.loads(rule.read_text())
    assert data["signal"] == "sample_agreement" and data["params"] == {"k": 4, "temperature": 0.8, "seed": 0}


def test_calibrate_risk_certifies_sample_agreement_and_the_file_deploys_it(caches, server, tmp_path) -> None:
    calib = tmp_path / "calib.json"
    assert main(["calibrate", "--cache", str(caches["samples"]), "--signal", "sample_agreement", "--risk", "kept_error",
                 "--epsilon", "0.1", "--delta", "0.1", "--out", str(calib)]) == 0
    file = load_calibration(calib)
    assert file.certificate is not None and file.certificate.certified and file.threshold == 1.0
    rule = file.build_rule()
    assert rule.scorer.sampling == SamplingPlan(4, 0.8, 0) and rule.scorer.needs_logprobs is False
    small = OpenAIModel("small-model", base_url=server.base_url, timeout=10, max_retries=0)
    cascade = Cascade([small, ScriptedModel("large answer")], calibration_file=calib)
    right, wrong = cascade.invoke("Q: item 3?\nA:"), cascade.invoke("Q: item 8?\nA:")
    assert (right.tier, wrong.tier) == (0, 1)
    assert right.decision.signal == "sample_agreement(k=4, temperature=0.8)"
