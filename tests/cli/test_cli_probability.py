"""``cascade calibrate --probability`` end to end, offline: both tiers served by a fake
OpenAI-compatible server on 127.0.0.1 whose small model is right more often when it is confident."""

from __future__ import annotations

import json

import pytest

from cascade_core.cli import main
from cascade_core.decide.probability import CalibratedScorer, ProbabilityMap
from cascade_core.testing.fake_server import FakeOpenAIServer, FakeReply

N = 60


def _responder(body):
    """Query i: first-token confidence rises with i; the small answer is right for i % 5 < i * 5 // N."""
    prompt = body["messages"][-1]["content"]
    i = int(prompt.split("#")[1].split()[0])
    if body["model"] == "large-model":
        return FakeReply(f" answer{i}\n")
    right = i % 5 < (i * 5) // N + 1  # about (1 + 5 i / N) / 5 of each block of 5 is right
    return FakeReply(f" answer{i}\n" if right else " wrong\n", confidence=0.35 + 0.6 * i / N)


@pytest.fixture()
def cache(tmp_path):
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps({"id": f"q{i}", "prompt": f"Question #{i} ?", "answer": f"answer{i}"}) + "\n"
                            for i in range(N)))
    out = tmp_path / "cache.jsonl"
    with FakeOpenAIServer(_responder) as srv:
        tiers = ["--small", f"openai:{srv.base_url}#small-model", "--large", f"openai:{srv.base_url}#large-model"]
        assert main(["collect", "--data", str(data), "--out", str(out), *tiers, "--no-progress"]) == 0
    return out


def test_calibrate_probability_writes_map_report_and_reliability_diagram(cache, tmp_path, capsys):
    pmap_path, png, report = tmp_path / "p.json", tmp_path / "rel.png", tmp_path / "r.json"
    code = main(["calibrate", "--cache", str(cache), "--signal", "margin", "--probability", "--out", str(pmap_path),
                 "--plot", str(png), "--json", str(report), "--holdout-fraction", "0.3", "--bins", "5"])
    assert code == 0
    pmap = ProbabilityMap.load(pmap_path)
    assert pmap.signal == "margin" and pmap.n_samples == 42
    assert list(pmap.y) == sorted(pmap.y) and pmap.y[-1] > pmap.y[0]  # more confident -> more often right
    data = json.loads(report.read_text())
    assert data["holdout_n"] == 18 and data["fit_n"] == 42
    assert 0.0 <= data["ece_after"] <= 1.0 and 0.0 <= data["ece_before"] <= 1.0
    assert png.read_bytes()[:4] == b"\x89PNG"
    printed = capsys.readouterr().out
    assert "ECE before" in printed and "keep when P(correct) >= 0.8" in printed
    CalibratedScorer("margin", pmap_path)  # the saved map plugs into the signal it was fitted on


def test_calibrate_probability_with_holdout_cache_and_log_prob_signal(cache, tmp_path):
    report = tmp_path / "r.json"
    code = main(["calibrate", "--cache", str(cache), "--signal", "chow_sum", "--probability", "--out",
                 str(tmp_path / "p.json"), "--holdout", str(cache), "--json", str(report)])
    assert code == 0
    data = json.loads(report.read_text())
    # judged on its own fitting sample, an isotonic map is calibrated within each of its steps
    assert data["holdout_n"] == N and data["ece_after"] <= data["ece_before"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [([], "needs --out"), (["--out", "p.json", "--holdout-fraction", "1.5"], "--holdout-fraction must be in"),
     (["--out", "p.json", "--bins", "0"], "--bins must be a positive int")],
)
def test_calibrate_probability_bad_options_exit_2(cache, tmp_path, capsys, extra, message, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["calibrate", "--cache", str(cache), "--probability", *extra]) == 2
    assert message in capsys.readouterr().err


def test_calibrate_needs_a_target(cache, capsys):
    assert main(["calibrate", "--cache", str(cache)]) == 2
    assert "--deferral-rate, --budget, --risk or --probability" in capsys.readouterr().err
