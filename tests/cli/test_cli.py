"""The ``cascade`` command end to end, offline: tiers served by a fake OpenAI-compatible server on
127.0.0.1 (scripted answers with chosen confidences) or by a tiny local transformers model."""

from __future__ import annotations

import csv
import json
import sys
import types

import pytest

from cascade_core.cli import main
from cascade_core.evaluation.collect import load_cache
from cascade_core.testing.fake_server import FakeOpenAIServer, FakeReply

COUNTRIES = [
    ("France", "Paris"), ("Japan", "Tokyo"), ("Italy", "Rome"), ("Spain", "Madrid"), ("Peru", "Lima"),
    ("Chad", "N'Djamena"), ("Mali", "Bamako"), ("Laos", "Vientiane"), ("Oman", "Muscat"), ("Fiji", "Suva"),
    ("Togo", "Lome"), ("Niger", "Niamey"), ("Cuba", "Havana"), ("Iran", "Tehran"), ("Iraq", "Baghdad"),
    ("Nepal", "Kathmandu"), ("Qatar", "Doha"), ("Yemen", "Sanaa"), ("Ghana", "Accra"), ("Kenya", "Nairobi"),
    ("Chile", "Santiago"), ("Egypt", "Cairo"), ("Gabon", "Libreville"), ("Haiti", "Port-au-Prince"),
]


def _records():
    return [
        {"id": f"capital/{country.lower()}", "prompt": f"Q: What is the capital of {country}?\nA:", "answer": capital,
         "kind": ("even", "odd")[i % 2]}
        for i, (country, capital) in enumerate(COUNTRIES)
    ]


def _responder(body):
    """Small tier: right and confident on every other country, else wrong and unsure. Large: always right."""
    prompt = body["messages"][-1]["content"]
    index = next(i for i, (country, _) in enumerate(COUNTRIES) if f"capital of {country}?" in prompt)
    capital = COUNTRIES[index][1]
    if body["model"] == "large-model":
        return FakeReply(f" {capital}\nQ: next")
    if index % 2 == 0:
        return FakeReply(f" {capital}\nQ: next", confidence=0.6 + 0.015 * index)
    return FakeReply(" Atlantis City\n", confidence=0.2 + 0.01 * index, token_confidence=0.3)


@pytest.fixture()
def server():
    with FakeOpenAIServer(_responder) as srv:
        yield srv


@pytest.fixture()
def data(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in _records()))
    return path


def _tiers(server):
    return ["--small", f"openai:{server.base_url}#small-model", "--large", f"openai:{server.base_url}#large-model"]


def _collect(server, data, out, *extra):
    return main(["collect", "--data", str(data), "--out", str(out), *_tiers(server), "--no-progress", *extra])


def test_collect_fit_calibrate_eval_end_to_end(server, data, tmp_path, capsys):
    cache = tmp_path / "cache.jsonl"
    assert _collect(server, data, cache) == 0
    rows = load_cache(cache)
    assert [r.id for r in rows] == [r["id"] for r in _records()]
    assert sum(r.small_quality for r in rows) == len(COUNTRIES) // 2 and all(r.large_quality == 1.0 for r in rows)
    assert all(r.small.steps[0].top for r in rows)  # top-k alternatives were recorded
    assert rows[0].small.text == f" {COUNTRIES[0][1]}"  # cut at the stop string

    rule = tmp_path / "rule.json"
    assert main(["fit", "--cache", str(cache), "--out", str(rule), "--cv", "3"]) == 0
    fitted = json.loads(rule.read_text())
    assert fitted["format"] in ("llm-cascade/learned-deferral", "llm-cascade/signal-rule")
    table = fitted["selection"]["table"]
    assert {"margin", "chow_sum", "entropy"} <= {r["candidate"] for r in table}
    assert any(r["kind"] == "learned" for r in table)
    assert "winner:" in capsys.readouterr().out

    cal_json = tmp_path / "cal.json"
    code = main(["calibrate", "--cache", str(cache), "--rule", str(rule), "--deferral-rate", "0.5",
                 "--holdout", str(cache), "--json", str(cal_json), "--small-cost", "1", "--large-cost", "4"])
    assert code == 0
    report = json.loads(cal_json.read_text())
    assert report["sample"]["deferral_rate"] == pytest.approx(0.5)
    assert report["sample"]["cost_per_query"] == pytest.approx(1 + 4 * 0.5)
    assert report["holdout"]["quality"] == pytest.approx(report["sample"]["quality"])

    out = {k: tmp_path / f"eval.{k}" for k in ("csv", "json", "png", "budget.png")}
    code = main(["eval", "--cache", str(cache), "--rule", f"mine={rule}", "--calibration-cache", str(cache),
                 "--csv", str(out["csv"]), "--json", str(out["json"]), "--plot", str(out["png"]),
                 "--budget-plot", str(out["budget.png"]), "--small-cost", "1", "--large-cost", "3",
                 "--orders", "3", "--warmup", "4", "--group-by", "kind", "--group-csv", str(tmp_path / "groups.csv")])
    assert code == 0
    groups = list(csv.DictReader((tmp_path / "groups.csv").open()))
    assert [g["group"] for g in groups] == ["even", "odd"] and sum(int(g["n"]) for g in groups) == len(COUNTRIES)
    printed = capsys.readouterr().out
    assert "oracle" in printed and "mine" in printed and "margin" in printed
    table = {row["signal"]: row for row in csv.DictReader(out["csv"].open())}
    assert float(table["oracle"]["auc_df"]) >= float(table["mine"]["auc_df"]) >= float(table["random"]["auc_df"])
    # the small model's confidence separates its right and wrong answers here, so margin is near the oracle
    assert float(table["margin"]["oracle_gap_closed"]) > 0.9
    assert float(table["margin"]["vs_random_se"]) > 0.0 and float(table["random"]["vs_random_se"]) == 0.0
    result = json.loads(out["json"].read_text())
    assert {c["name"] for c in result["budget_curves"]} >= {"margin", "mine", "random"}
    assert result["meta"]["n"] == len(COUNTRIES)
    for png in (out["png"], out["budget.png"]):
        assert png.read_bytes()[:4] == b"\x89PNG"


def test_collect_resumes_from_its_cache(server, data, tmp_path):
    cache = tmp_path / "cache.jsonl"
    assert _collect(server, data, cache, "--limit", "5") == 0
    sent = len(server.requests)
    assert sent == 10  # 5 examples x 2 tiers
    assert _collect(server, data, cache) == 0
    assert len(server.requests) == sent + 2 * (len(COUNTRIES) - 5)  # only the missing ones ran
    assert len(load_cache(cache)) == len(COUNTRIES)


def test_truncated_cache_line_is_dropped_and_recomputed(server, data, tmp_path):
    cache = tmp_path / "cache.jsonl"
    assert _collect(server, data, cache, "--limit", "3") == 0
    text = cache.read_text()
    cache.write_text(text[: len(text) - 30])  # an interrupted write of the third line
    assert len(load_cache(cache)) == 2
    assert _collect(server, data, cache, "--limit", "3") == 0
    assert [r.id for r in load_cache(cache)] == [r["id"] for r in _records()[:3]]


def test_malformed_data_line_stops_with_its_line_number(server, data, tmp_path, capsys):
    lines = data.read_text().splitlines()
    lines[2] = '{"id": "broken", "prompt": '
    lines[4] = json.dumps({"id": "no-prompt"})
    data.write_text("\n".join(lines) + "\n")
    assert _collect(server, data, tmp_path / "c.jsonl") == 2
    err = capsys.readouterr().err
    assert f"{data}:3: not valid JSON" in err and "--on-error skip" in err
    assert server.requests == []  # nothing ran


def test_malformed_data_lines_can_be_skipped(server, data, tmp_path):
    lines = data.read_text().splitlines()
    lines[2] = "not json"
    lines[4] = json.dumps({"id": "no-prompt"})
    data.write_text("\n".join(lines) + "\n")
    cache = tmp_path / "c.jsonl"
    assert _collect(server, data, cache, "--on-error", "skip") == 0
    assert len(load_cache(cache)) == len(COUNTRIES) - 2


def test_duplicate_ids_are_reported(server, data, tmp_path, capsys):
    lines = data.read_text().splitlines()
    data.write_text("\n".join([*lines, lines[0]]) + "\n")
    assert _collect(server, data, tmp_path / "c.jsonl") == 2
    assert f":{len(lines) + 1}: duplicate id" in capsys.readouterr().err


@pytest.fixture()
def cache_and_rule(server, data, tmp_path):
    cache = tmp_path / "cache.jsonl"
    assert _collect(server, data, cache) == 0
    rule = tmp_path / "rule.json"
    assert main(["fit", "--cache", str(cache), "--out", str(rule), "--model", "mlp", "--hidden-units", "4",
                 "--cv", "0"]) == 0
    assert json.loads(rule.read_text())["format"] == "llm-cascade/learned-deferral"
    return cache, rule


def test_corrupt_rule_file_gives_a_clear_error(cache_and_rule, capsys):
    cache, rule = cache_and_rule
    rule.write_text(rule.read_text()[:100])
    assert main(["eval", "--cache", str(cache), "--rule", str(rule)]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "not valid JSON" in err and str(rule) in err
    assert main(["calibrate", "--cache", str(cache), "--rule", str(rule), "--deferral-rate", "0.2"]) == 2


def test_rule_file_of_another_version_gives_a_clear_error(cache_and_rule, capsys):
    cache, rule = cache_and_rule
    data = json.loads(rule.read_text())
    data["format_version"] = 99
    rule.write_text(json.dumps(data))
    assert main(["eval", "--cache", str(cache), "--rule", str(rule)]) == 2
    assert "format_version 99" in capsys.readouterr().err


def test_missing_cache_and_bad_tier_spec_are_clear_errors(data, tmp_path, capsys):
    assert main(["eval", "--cache", str(tmp_path / "none.jsonl")]) == 2
    assert "cascade collect" in capsys.readouterr().err
    assert main(["collect", "--data", str(data), "--out", str(tmp_path / "c"), "--small", "gpt4"]) == 2
    assert "tier spec" in capsys.readouterr().err


def test_calibrate_a_named_signal_for_a_budget(cache_and_rule, capsys):
    cache, _ = cache_and_rule
    code = main(["calibrate", "--cache", str(cache), "--signal", "chow_quantile", "--alpha", "0",
                 "--budget", "2", "--small-cost", "1", "--large-cost", "4"])
    assert code == 0
    out = capsys.readouterr().out
    assert "chow_quantile(alpha=0)" in out and "target 0.250" in out


def test_collect_with_a_local_hf_model_records_top_k_and_embedding(tmp_path):
    from cascade_core.testing import tiny_model, tiny_tokenizer

    tok = tiny_tokenizer()
    model_dir = tmp_path / "tiny"
    tiny_model(tok).save_pretrained(model_dir)
    tok.save_pretrained(model_dir)
    data = tmp_path / "d.jsonl"
    data.write_text(
        json.dumps({"id": 1, "prompt": "the capital of france", "answer": "paris"}) + "\n"
        + json.dumps({"id": 2, "prompt": "yes or no", "answer": "yes", "labels": ["yes", "no", "maybe"]}) + "\n"
    )
    cache = tmp_path / "c.jsonl"
    code = main(["collect", "--data", str(data), "--out", str(cache), "--small", f"hf:{model_dir}",
                 "--large", f"hf:{model_dir}", "--max-new-tokens", "3", "--top-k", "3", "--embedding", "--no-progress"])
    assert code == 0
    rows = load_cache(cache)
    assert all(1 <= len(r.small.steps) <= 3 and len(r.small.steps[0].top) >= 3 for r in rows)
    assert all(r.small.embedding is not None and r.small.embedding.shape == (32,) for r in rows)
    assert rows[1].label_tokens == ("yes", "no", "maybe")


def test_demo_subcommand_is_forwarded_lazily(monkeypatch):
    seen = []
    fake = types.ModuleType("cascade_core.cli.demo")
    fake.main = lambda argv: seen.append(argv) or 0  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "cascade_core.cli.demo", fake)
    import cascade_core.cli

    monkeypatch.setattr(cascade_core.cli, "demo", fake, raising=False)
    assert main(["demo", "--question", "hi"]) == 0
    assert seen == [["--question", "hi"]]


@pytest.mark.slow
def test_collect_and_eval_with_the_embedded_pair_on_world_regions(tmp_path, capsys):
    from cascade_core.evaluation.datasets import world_regions as wr

    data = wr.write_jsonl(wr.load_world_regions("calibration", limit=6), tmp_path / "regions.jsonl")
    cache = tmp_path / "cache.jsonl"
    code = main(["collect", "--data", str(data), "--out", str(cache), "--small", "embedded", "--large", "embedded",
                 "--max-new-tokens", "4", "--no-progress"])
    assert code == 0
    rows = load_cache(cache)
    assert len(rows) == 6
    # label first tokens come from the small model's tokenizer, and the margin is taken among them
    assert rows[0].label_tokens is not None and len(rows[0].label_tokens) == len(wr.LABELS)
    assert all(r.small.text.strip() for r in rows)
    assert main(["eval", "--cache", str(cache), "--small-cost", "1", "--large-cost", "2", "--warmup", "2"]) == 0
    assert "oracle" in capsys.readouterr().out


def test_llama_server_subcommand_rejects_a_missing_model_file(tmp_path, capsys):
    assert main(["llama-server", "--model", str(tmp_path / "missing.gguf")]) == 2
    assert "no GGUF file at" in capsys.readouterr().err


@pytest.mark.slow
def test_llama_server_subcommand_serves_until_interrupted():
    """`cascade llama-server --model small` prints its URL, answers, and stops its server on Ctrl-C."""
    import signal
    import subprocess
    import time
    import urllib.error
    import urllib.request

    proc = subprocess.Popen([sys.executable, "-m", "cascade_core", "llama-server", "--model", "small", "--threads", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline, url = time.monotonic() + 120, None
        while url is None and time.monotonic() < deadline and proc.poll() is None:
            line = proc.stdout.readline()
            if line.startswith("serving "):
                url = line.split(" at ")[1].split(" ")[0]
        assert url is not None, "the server did not report its URL"
        with urllib.request.urlopen(url + "/models", timeout=10) as reply:
            assert json.loads(reply.read())["data"][0]["id"] == "SmolLM2-135M-Instruct"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
        with pytest.raises(urllib.error.URLError):  # the llama.cpp child is gone too
            urllib.request.urlopen(url + "/models", timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def test_fit_can_save_a_single_signal_that_eval_and_calibrate_read(cache_and_rule, tmp_path, capsys):
    cache, _ = cache_and_rule
    rule = tmp_path / "signal.json"
    assert main(["fit", "--cache", str(cache), "--out", str(rule), "--signals-only", "--cv", "3", "--cv-repeats", "1"]) == 0
    saved = json.loads(rule.read_text())
    assert saved["format"] == "llm-cascade/signal-rule" and saved["signal"] == saved["selection"]["winner"].split("(")[0]
    printed = capsys.readouterr().out
    assert "winner:" in printed and "chow_sum" in printed and "entropy" in printed
    csv_path = tmp_path / "t.csv"
    assert main(["eval", "--cache", str(cache), "--rule", f"picked={rule}", "--csv", str(csv_path), "--bootstrap", "0"]) == 0
    table = {row["signal"]: row for row in csv.DictReader(csv_path.open())}
    winner = saved["selection"]["winner"]
    assert table["picked"]["auc_df"] == table[winner]["auc_df"]  # the file scores exactly like the signal it names
    assert main(["calibrate", "--cache", str(cache), "--rule", str(rule), "--deferral-rate", "0.5"]) == 0
    assert winner in capsys.readouterr().out


def test_fit_rejects_too_few_examples_for_the_folds(cache_and_rule, tmp_path, capsys):
    cache, _ = cache_and_rule
    assert main(["fit", "--cache", str(cache), "--out", str(tmp_path / "r.json"), "--cv", "20"]) == 2
    assert "too few" in capsys.readouterr().err
