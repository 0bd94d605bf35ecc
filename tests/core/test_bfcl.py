"""The BFCL harness: function docs → tools, the wheel's data, BFCL's checker as the scorer, the report.

Tests that need BFCL's own checker read the real ``bfcl-eval`` wheel and skip (saying so) when it is not
in the cache; the data reader and the report run on synthetic wheels and caches.
"""

from __future__ import annotations

import hashlib
import json
import math
import zipfile
from pathlib import Path

import numpy as np
import pytest

from benchmarks.public.bfcl import data, report, tools
from benchmarks.public.bfcl.data import Question
from cascade_core.errors import ConfigurationError, DataFormatError

DOC = {"name": "geo.route", "description": "Plan a route.", "parameters": {
    "type": "dict", "required": ["stops", "mode"],
    "properties": {
        "stops": {"type": "array", "items": {"type": "dict", "properties": {
            "lat": {"type": "float"}, "lon": {"type": "float"}, "label": {"type": "string", "default": ""}}}},
        "mode": {"type": "string", "enum": ["car", "foot"], "description": "How."},
        "window": {"type": "tuple", "items": {"type": "integer"}},
        "extra": {"type": "any"},
        "options": {"type": "dict", "properties": {"avoid_tolls": {"type": "boolean", "default": False}}}}}}


# -- function docs → tools -------------------------------------------------------------------------
def test_gorilla_types_become_json_schema_types_at_every_depth():
    fn = tools.to_openai_tool(DOC)["function"]
    props = fn["parameters"]["properties"]
    assert fn["name"] == "geo_route" and fn["parameters"]["type"] == "object"
    assert props["stops"]["items"]["type"] == "object"
    assert props["stops"]["items"]["properties"]["lat"] == {"type": "number"}
    assert props["window"] == {"type": "array", "items": {"type": "integer"}}
    assert props["options"]["properties"]["avoid_tolls"] == {"type": "boolean", "default": False}
    assert props["extra"] == {}  # "any": every JSON value


def test_enums_defaults_and_required_are_kept():
    params = tools.to_openai_tool(DOC)["function"]["parameters"]
    assert params["properties"]["mode"] == {"type": "string", "enum": ["car", "foot"], "description": "How."}
    assert params["properties"]["stops"]["items"]["properties"]["label"]["default"] == ""
    assert params["required"] == ["stops", "mode"]


def test_converted_tool_is_accepted_by_bind_tools_and_validates_arguments():
    from langchain_core.utils.function_calling import convert_to_openai_tool

    from cascade_core.engine.tool_calls import ToolCallError, parse_tool_calls
    from cascade_core.types import ToolSpec

    tool = tools.to_openai_tool(DOC)
    assert convert_to_openai_tool(tool) == tool
    spec = ToolSpec("geo_route", "", tool["function"]["parameters"])
    ok = '{"name": "geo_route", "arguments": {"stops": [{"lat": 1.5, "lon": 2}], "mode": "car", "window": [1, 2]}}'
    assert parse_tool_calls(ok, (spec,))[0].arguments["mode"] == "car"
    with pytest.raises(ToolCallError, match="enum|one of"):
        parse_tool_calls(ok.replace('"car"', '"boat"'), (spec,))


def test_unknown_type_is_named_with_its_path():
    bad = {"name": "f", "parameters": {"type": "dict", "properties": {"x": {"type": "HashSet"}}}}
    with pytest.raises(ConfigurationError, match=r"f\.parameters\.x.*HashSet"):
        tools.to_openai_tool(bad)


# -- the wheel's data ------------------------------------------------------------------------------
def _wheel(path: Path, questions: list[dict], answers: list[dict], category: str = "simple_python") -> Path:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"bfcl_eval/data/BFCL_v4_{category}.json", "\n".join(map(json.dumps, questions)) + "\n")
        z.writestr(f"bfcl_eval/data/possible_answer/BFCL_v4_{category}.json", "\n".join(map(json.dumps, answers)))
    return path


QUESTION = {"id": "simple_python_0", "question": [[{"role": "user", "content": "Area of a 10 by 5 triangle?"}]],
            "function": [{"name": "calculate_triangle_area", "description": "Area.", "parameters": {
                "type": "dict", "properties": {"base": {"type": "integer"}, "height": {"type": "integer"},
                                               "unit": {"type": "string"}}, "required": ["base", "height"]}}]}
ANSWER = {"id": "simple_python_0", "ground_truth": [{"calculate_triangle_area": {
    "base": [10], "height": [5], "unit": ["units", ""]}}]}


def test_questions_and_possible_answers_are_read_from_a_checked_wheel(tmp_path, monkeypatch):
    wheel = _wheel(tmp_path / data.WHEEL_NAME, [QUESTION], [ANSWER])
    monkeypatch.setenv("CASCADE_BFCL_WHEEL", str(wheel))
    monkeypatch.setenv("CASCADE_BFCL_SHA256", hashlib.sha256(wheel.read_bytes()).hexdigest())
    (q,) = data.load_category("simple_python")
    assert q.messages[0]["content"].startswith("Area") and q.functions[0]["name"] == "calculate_triangle_area"
    assert q.ground_truth == tuple(ANSWER["ground_truth"]) and not q.irrelevant


def test_wheel_with_another_hash_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("CASCADE_BFCL_WHEEL", str(_wheel(tmp_path / data.WHEEL_NAME, [QUESTION], [ANSWER])))
    monkeypatch.delenv("CASCADE_BFCL_SHA256", raising=False)
    with pytest.raises(DataFormatError, match="sha256.*pip download --no-deps bfcl-eval==2026.3.23"):
        data.load_category("simple_python")


def test_missing_wheel_names_the_fetch_command_when_fetching_is_off(tmp_path, monkeypatch):
    monkeypatch.setenv("CASCADE_BFCL_WHEEL", str(tmp_path / "absent.whl"))
    monkeypatch.setenv("CASCADE_BFCL_FETCH", "0")
    with pytest.raises(DataFormatError, match="pip download --no-deps bfcl-eval"):
        data.ensure_wheel()


def test_question_without_possible_answer_and_unknown_category_are_data_errors(tmp_path):
    wheel = _wheel(tmp_path / "w.whl", [QUESTION], [])
    with pytest.raises(DataFormatError, match="simple_python_0 has no possible answer"):
        data.load_category("simple_python", wheel=wheel)
    with pytest.raises(DataFormatError, match="unknown BFCL category 'multi_turn_base'"):
        data.load_category("multi_turn_base", wheel=wheel)


def test_samples_are_seeded_and_disjoint():
    ids = [f"q{i}" for i in range(50)]
    a, b = data.sample_ids(ids, n_fit=10, n_test=20, seed=3), data.sample_ids(ids, n_fit=10, n_test=20, seed=3)
    assert a == b and not set(a["fit"]) & set(a["test"]) and (len(a["fit"]), len(a["test"])) == (10, 20)
    assert a != data.sample_ids(ids, n_fit=10, n_test=20, seed=4)


# -- BFCL's own checker (the real wheel) ----------------------------------------------------------
def _real_wheel() -> Path:
    """The real wheel, fetched by name from the package registry on first use (1.9 MB) and checked: on a new
    machine these tests run instead of skipping."""
    return data.ensure_wheel()


def _first_answer(q: Question) -> list[dict]:
    calls = []
    for truth in q.ground_truth or ():
        ((name, params),) = truth.items()
        calls.append({"name": tools.tool_name(name),
                      "args": {k: v[0] for k, v in params.items() if v and v[0] != "" and not isinstance(v[0], dict)}})
    return calls


@pytest.mark.parametrize("category", ["simple_python", "multiple", "parallel", "live_simple"])
def test_bfcl_possible_answers_score_valid_through_its_own_checker(category):
    from benchmarks.public.bfcl.scoring import score_calls

    wheel = _real_wheel()
    questions = data.load_category(category, wheel=wheel)[:25]
    scored = [score_calls(q, _first_answer(q), wheel=wheel) for q in questions]
    assert sum(s.valid for s in scored) >= 23, [s.error_type for s in scored if not s.valid]


def test_bfcl_checker_rejects_a_wrong_value_a_wrong_tool_and_no_call():
    from benchmarks.public.bfcl.scoring import score_calls

    wheel = _real_wheel()
    q = data.load_category("simple_python", wheel=wheel)[0]  # calculate_triangle_area(base=10, height=5)
    right = _first_answer(q)
    assert score_calls(q, right, wheel=wheel).valid
    wrong_value = [{"name": right[0]["name"], "args": {**right[0]["args"], "base": 11}}]
    assert score_calls(q, wrong_value, wheel=wheel).error_type.startswith("value_error")
    assert not score_calls(q, [{"name": "other", "args": {}}], wheel=wheel).valid
    assert score_calls(q, [], wheel=wheel).error_type == "no_call"


def test_irrelevance_is_right_iff_no_call_is_made():
    from benchmarks.public.bfcl.scoring import score_calls

    wheel = _real_wheel()
    q = data.load_category("irrelevance", wheel=wheel)[0]
    assert q.ground_truth is None and score_calls(q, [], wheel=wheel).valid
    assert not score_calls(q, [{"name": tools.tool_name(q.functions[0]["name"]), "args": {}}], wheel=wheel).valid


# -- the report on synthetic caches ---------------------------------------------------------------
def _generation(text: str, confidence: float):
    from cascade_core.types import Generation, TokenAlternative, TokenStep

    runner_up = min(confidence, (1 - confidence) * 0.9)
    steps = []
    for piece in [text[i:i + 4] for i in range(0, len(text), 4)]:
        steps.append(TokenStep(piece, math.log(confidence), (TokenAlternative(piece, math.log(confidence)),
                                                              TokenAlternative("x", math.log(runner_up)))))
    return Generation(text, tuple(steps))


def _write_caches(runs: Path, category: str, split: str, n: int, rng: np.random.Generator) -> None:
    from cascade_core.evaluation.collect import generation_to_dict

    folder = runs / category
    folder.mkdir(parents=True, exist_ok=True)
    small, large = [], []
    for i in range(n):
        confidence = float(rng.uniform(0.3, 0.99))
        right = bool(rng.uniform() < confidence)  # a confident small answer is more often right
        call = {"name": "f", "args": {"x": i}}
        irrelevant = category in data.IRRELEVANCE
        calls = [] if (irrelevant and right) or (not irrelevant and i % 9 == 0) else [call]
        kind = "invalid_call" if i % 9 == 0 and not irrelevant else "valid_call" if calls else "no_call"
        text = json.dumps({"name": "f", "arguments": call["args"]}) if calls or kind == "invalid_call" else "No tool."
        small.append({"id": f"{split}{i}", "kind": kind, "calls": calls, "quality": float(right and kind != "invalid_call"),
                      "seconds": 1.0, "generation": generation_to_dict(_generation(text, confidence))})
        large.append({"id": f"{split}{i}", "kind": "no_call" if irrelevant else "valid_call",
                      "calls": [] if irrelevant else [call], "quality": float(rng.uniform() < 0.9), "seconds": 4.0})
    for tier, rows in (("qwen05", small), ("qwen15", large)):
        (folder / f"{tier}.{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def test_report_orders_confident_calls_last_and_counts_false_calls(tmp_path):
    rng = np.random.default_rng(0)
    for category in ("simple_python", "irrelevance"):
        _write_caches(tmp_path, category, "fit", 60, rng)
        _write_caches(tmp_path, category, "test", 60, rng)
    other = [{"id": f"test{i}", "kind": "valid_call" if i < 2 else "no_call", "quality": float(i == 0)} for i in range(4)]
    (tmp_path / "simple_python" / "smollm2.test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in other))
    li = [{"id": "test0", "tier": 0, "quality": 1.0, "seconds": 2.0}, {"id": "test1", "tier": 1, "quality": 0.0,
                                                                      "seconds": 6.0}]
    (tmp_path / "irrelevance" / "llamaindex.test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in li))
    result = report.build(tmp_path, ["simple_python", "irrelevance"], cv=3)
    text = report.markdown(result["rows"], result["meta"])
    assert "on 2 test questions: accuracy 0.500, 50% deferred, 4.0 s each" in text
    assert "SmolLM2-135M alone, simple_python: 0.250 on 4 test questions (50% valid calls" in text
    pooled, irr = result["rows"]["all (pooled)"], result["rows"]["irrelevance"]
    assert pooled["n"] == 120
    assert pooled["auc_df"]["learned"] > pooled["auc_df"]["random"]
    assert pooled["auc_df"]["oracle"] >= pooled["auc_df"]["learned"]
    small_calls = [json.loads(line)["calls"] for line in (tmp_path / "irrelevance" / "qwen05.test.jsonl").open()]
    assert irr["false_call_rate"]["small"] == pytest.approx(np.mean([bool(c) for c in small_calls]))
    assert irr["false_call_rate"]["large"] == 0.0 == irr["false_call_rate"]["large_with_attempts"]
    assert irr["false_call_rate"]["parse_only_with_attempts"] >= irr["false_call_rate"]["parse_only"]
    sp = result["rows"]["simple_python"]
    assert sp["parse_only"]["deferral"] == pytest.approx(sp["small_invalid_calls"] / sp["n"])
    assert sp["small_seconds"] == 1.0 and sp["large_seconds"] == 4.0
    share = sp["cost_share_95"]
    assert share is None or 0.25 <= share <= 1.25  # c_s/c_l .. (c_s + c_l)/c_l
    assert "| simple_python | 60 |" in text


def test_report_adds_the_router_when_every_category_has_prompt_embeddings(tmp_path):
    """With ``bfcl.embed``'s files, a router fitted on the pooled fit split joins the table: here one embedding
    direction says whether the small tier will be right, so it orders better than random, and its cost
    counts the embedding request."""
    from benchmarks.public.bfcl.embed import embedding_path

    rng = np.random.default_rng(2)
    categories = ["simple_python", "irrelevance"]
    for category in categories:
        ids, vectors = [], []
        for split in ("fit", "test"):
            _write_caches(tmp_path, category, split, 60, rng)
            for line in (tmp_path / category / f"qwen05.{split}.jsonl").open():
                row = json.loads(line)
                ids.append(row["id"])
                vectors.append([2.0 * row["quality"] + rng.normal(0, 0.5), *rng.normal(size=3)])
        np.savez(embedding_path(tmp_path, category), ids=np.array(ids), embedding=np.array(vectors),
                 tokens=rng.integers(10, 40, len(ids)), seconds=np.full(5, 0.5))
    assert report.build(tmp_path, categories[:1], cv=3)["meta"]["router"] is not None
    (tmp_path / "irrelevance" / "qwen05.prompt_embedding.npz").unlink()
    assert report.build(tmp_path, categories, cv=3)["meta"]["router"] is None  # one category without: no router
    np.savez(embedding_path(tmp_path, "irrelevance"), ids=np.array(["test0"]), embedding=np.zeros((1, 4)),
             tokens=np.array([5]), seconds=np.array([0.5]))
    with pytest.raises(SystemExit, match="no prompt embedding"):
        report.build(tmp_path, categories, cv=3)


def test_report_router_column_orders_by_the_embedding(tmp_path):
    from benchmarks.public.bfcl.embed import embedding_path

    rng = np.random.default_rng(4)
    ids, vectors = [], []
    for split in ("fit", "test"):
        _write_caches(tmp_path, "simple_python", split, 80, rng)
        for line in (tmp_path / "simple_python" / f"qwen05.{split}.jsonl").open():
            row = json.loads(line)
            ids.append(row["id"])
            vectors.append([2.0 * row["quality"] + rng.normal(0, 0.5), *rng.normal(size=3)])
    np.savez(embedding_path(tmp_path, "simple_python"), ids=np.array(ids), embedding=np.array(vectors),
             tokens=rng.integers(10, 40, len(ids)), seconds=np.full(5, 0.5))
    result = report.build(tmp_path, ["simple_python"], cv=3)
    row = result["rows"]["simple_python"]
    assert row["auc_df"]["router"] > row["auc_df"]["random"] + 0.02
    assert row["auc_df"]["router"] <= row["auc_df"]["oracle"] + 1e-9
    share = row["router_cost_share_95"]
    assert share is None or 0.5 / 4.0 <= share <= (0.5 + 1.0 + 4.0) / 4.0  # c_r/c_l .. (c_r + c_s + c_l)/c_l
    text = report.markdown(result["rows"], result["meta"])
    assert "router AUC-DF" in text and f" {row['auc_df']['router']:.3f} |" in text
    assert "one embedding request 0.500 s" in text


def test_report_refuses_a_fit_split_too_small_to_cross_validate(tmp_path):
    rng = np.random.default_rng(1)
    _write_caches(tmp_path, "simple_python", "fit", 3, rng)
    _write_caches(tmp_path, "simple_python", "test", 3, rng)
    with pytest.raises(ConfigurationError, match="too few for 5-fold"):
        report.build(tmp_path, ["simple_python"])


def test_tool_call_thresholds_match_the_agent_study_replaying_the_rule(tmp_path):
    from benchmarks.public.bfcl.rules import tool_call_thresholds
    from benchmarks.studies.tool_call_uncertainty import choose_thresholds

    _write_caches(tmp_path, "simple_python", "fit", 14, np.random.default_rng(2))
    pairs = report.load_pairs(tmp_path, "simple_python", "fit")
    for max_loss in (0.0, 0.2, 0.5):
        ours, study = tool_call_thresholds(pairs, max_loss), choose_thresholds([p.row() for p in pairs], max_loss)
        assert (ours["name_threshold"], ours["arguments_threshold"]) == (
            study["name_threshold"], study["arguments_threshold"])
        assert ours["calibration"] == study["calibration"]


@pytest.mark.slow
def test_smoke_two_real_questions_through_both_adapters(tmp_path):
    """1 fit + 1 test simple_python question through ChatCascade (both tiers, real llama.cpp servers) and
    the test one through CascadeLLM; every row is scored by BFCL's checker."""
    from benchmarks.public.bfcl import run

    _real_wheel()
    assert run.main(["--tiny", "--categories", "simple_python", "--runs", str(tmp_path), "--quiet"]) == 0
    rows = {f.name: [json.loads(line) for line in f.open()] for f in (tmp_path / "simple_python").glob("*.jsonl")}
    assert sorted(rows) == ["llamaindex.test.jsonl", "qwen05.fit.jsonl", "qwen05.test.jsonl", "qwen15.fit.jsonl",
                            "qwen15.test.jsonl"]
    for name, cached in rows.items():
        assert len(cached) == 1 and cached[0]["quality"] in (0.0, 1.0), name
    small = rows["qwen05.test.jsonl"][0]
    assert small["generation"]["steps"] and small["kind"] in ("valid_call", "invalid_call", "no_call")
