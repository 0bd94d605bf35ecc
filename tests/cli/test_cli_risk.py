"""``cascade calibrate --risk`` and ``cascade eval --calibration-file`` end to end, offline: both tiers
served by a fake OpenAI-compatible server on 127.0.0.1, collected with ``cascade collect``."""

from __future__ import annotations

import json
import math

import pytest

from cascade_core import Cascade
from cascade_core.cli import main
from cascade_core.decide.calibration_file import load_calibration
from cascade_core.decide.risk import RiskControlledThreshold
from cascade_core.evaluation.risk_report import wilson_interval
from cascade_core.testing import ScriptedModel
from cascade_core.testing.fake_server import FakeOpenAIServer, FakeReply

N = 300


def _responder(body):
    """Small tier: 7 in 10 items confident (margins 0.73-0.90) and right but 1 in 100 wrong; 3 in 10 unsure and wrong."""
    prompt = body["messages"][-1]["content"]
    i = int(prompt.split("item ")[1].split("?")[0])
    if body["model"] == "large-model":
        return FakeReply(f" answer{i}\n")
    if i % 10 < 7:
        text = " wrong\n" if i % 100 == 0 else f" answer{i}\n"
        return FakeReply(text, confidence=0.85 + 0.01 * (i % 10))
    return FakeReply(" wrong\n", confidence=0.3 + 0.02 * (i % 10))


@pytest.fixture(scope="module")
def caches(tmp_path_factory):
    root = tmp_path_factory.mktemp("risk")
    out = {}
    with FakeOpenAIServer(_responder) as server:
        for split, start in (("fit", 0), ("test", N)):
            data = root / f"{split}.jsonl"
            data.write_text("".join(json.dumps({"id": f"q{i}", "prompt": f"Q: item {i}?\nA:", "answer": f"answer{i}"}) + "\n"
                                    for i in range(start, start + N)))
            out[split] = root / f"{split}.cache.jsonl"
            tiers = ["--small", f"openai:{server.base_url}#small-model", "--large", f"openai:{server.base_url}#large-model"]
            assert main(["collect", "--data", str(data), "--out", str(out[split]), *tiers, "--no-progress"]) == 0
    return out


def test_calibrate_risk_writes_a_certified_threshold_and_eval_checks_it(caches, tmp_path, capsys):
    calib = tmp_path / "calib.json"
    code = main(["calibrate", "--cache", str(caches["fit"]), "--risk", "kept_error", "--epsilon", "0.05", "--delta", "0.1",
                 "--out", str(calib), "--holdout", str(caches["test"])])
    assert code == 0
    printed = capsys.readouterr().out
    assert "certified: error among kept answers <= 0.05 with probability >= 0.9" in printed
    data = json.loads(calib.read_text())
    assert data["format"] == "llm-cascade/calibration" and data["format_version"] == 1
    cert = data["certificate"]
    assert cert["certified"] and cert["n"] == N and cert["risk"] == "kept_error" and len(cert["data_hash"]) == 64
    # every confident answer is kept (3 wrong of 210: bound ~0.032 <= 0.05), every unsure one deferred
    assert cert["deferral_rate"] == pytest.approx(0.3) and cert["empirical_risk"] == pytest.approx(3 / 210)
    assert cert["bound"] <= 0.05 and data["threshold"] == cert["threshold"] == data["sample"]["threshold"]
    assert data["holdout"]["realised_risk"] == pytest.approx(3 / 210)

    policy = load_calibration(calib).build_rule().policy
    assert isinstance(policy, RiskControlledThreshold) and policy.threshold == cert["threshold"]

    report = tmp_path / "eval.json"
    assert main(["eval", "--cache", str(caches["test"]), "--calibration-file", str(calib), "--json", str(report),
                 "--orders", "1", "--bootstrap", "50"]) == 0
    printed = capsys.readouterr().out
    assert "error among kept answers: realised 0.0143" in printed and "within the promise" in printed
    lo, hi = wilson_interval(90, N)
    assert f"deferral rate 0.300 [95% CI {lo:.3f}, {hi:.3f}] (calibration sample 0.300)" in printed
    check = json.loads(report.read_text())["meta"]["calibration_file"]
    assert check["within_promise"] and check["realised_risk"] == pytest.approx(3 / 210)
    lo, hi = check["risk_interval"]
    assert lo < 3 / 210 < hi
    table = json.loads(report.read_text())["table"]
    margin = next(r for r in table if r["signal"] == "margin")
    low, high = json.loads(margin["auc_df_ci95"])
    assert low <= margin["auc_df"] <= high and low < high


def test_an_unreachable_epsilon_defers_everything_and_the_cascade_obeys(caches, tmp_path, capsys):
    calib = tmp_path / "calib.json"
    assert main(["calibrate", "--cache", str(caches["fit"]), "--risk", "kept_error", "--epsilon", "0.005",
                 "--out", str(calib)]) == 0
    assert "NOT certified" in capsys.readouterr().out
    data = json.loads(calib.read_text())
    assert data["threshold"] == "inf" and not data["certificate"]["certified"]
    cascade = Cascade([ScriptedModel("Paris", confidence=1.0), ScriptedModel("Paris, France")], calibration_file=calib)
    result = cascade.invoke("Capital of France?")
    assert result.tier == 1 and math.isinf(result.decision.threshold)


def test_quality_loss_needs_no_more_than_the_cache(caches, tmp_path, capsys):
    calib = tmp_path / "calib.json"
    assert main(["calibrate", "--cache", str(caches["fit"]), "--risk", "quality_loss", "--epsilon", "0.03",
                 "--json", str(calib)]) == 0
    cert = load_calibration(calib).certificate
    assert cert is not None and cert.certified and cert.risk == "quality_loss"
    assert cert.empirical_risk == pytest.approx(3 / N)  # large always right: the 3 kept wrong answers


def test_a_deferral_rate_calibration_writes_the_same_file_format(caches, tmp_path):
    calib = tmp_path / "calib.json"
    assert main(["calibrate", "--cache", str(caches["fit"]), "--deferral-rate", "0.3", "--out", str(calib)]) == 0
    loaded = load_calibration(calib)
    assert loaded.certificate is None and loaded.signal == "margin"
    assert loaded.sample["deferral_rate"] == pytest.approx(0.3)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--risk", "kept_error"], "--risk needs --epsilon"),
        (["--risk", "kept_error", "--epsilon", "1.5"], "epsilon must be a number in (0, 1)"),
        (["--risk", "kept_error", "--epsilon", "0.05", "--delta", "0"], "delta must be a number in (0, 1)"),
        (["--deferral-rate", "0.3", "--epsilon", "0.05"], "--epsilon applies to --risk only"),
    ],
)
def test_bad_risk_options_are_one_error_line(caches, extra, message, capsys):
    assert main(["calibrate", "--cache", str(caches["fit"]), *extra]) == 2
    assert message in capsys.readouterr().err


def test_collect_with_a_small_tier_without_logprobs_is_one_error_line(tmp_path, capsys):
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"id": "q0", "prompt": "Q: item 0?\nA:", "answer": "answer0"}) + "\n")
    with FakeOpenAIServer(lambda body: FakeReply(" answer0\n", logprobs=False)) as server:
        tiers = ["--small", f"openai:{server.base_url}#small-model", "--large", f"openai:{server.base_url}#large-model"]
        code = main(["collect", "--data", str(data), "--out", str(tmp_path / "c.jsonl"), *tiers, "--no-progress"])
        assert len(server.requests) == 1  # stopped at the first call, before the large tier
    assert code == 2
    assert "returned text without logprobs" in capsys.readouterr().err
