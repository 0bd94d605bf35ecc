"""The RAG and agent workloads: data, gold answers and grading (fast); a real-model smoke run (slow)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.studies import workload_agent as agent
from benchmarks.studies import workload_rag as rag
from benchmarks.studies import workloads_common as common

ROOT = Path(__file__).resolve().parents[2]


def test_corpus_is_the_countryinfo_package_data() -> None:
    records = common.load_countries()
    assert len(records) > 200
    france = next(r for r in records if r["name"] == "France")
    text = common.document_text(france)
    assert "capital: Paris" in text and "currencies: EUR" in text and "tld: .fr" in text


def test_questions_are_seeded_disjoint_and_graded_against_the_records() -> None:
    records = common.load_countries()
    calib_c, test_c = common.split_countries(records, rag.SEED, 60)
    assert not {r["name"] for r in calib_c} & {r["name"] for r in test_c}
    first = rag.make_questions(test_c, 100, rag.SEED + 2)
    assert first == rag.make_questions(test_c, 100, rag.SEED + 2) and len(first) == 100
    assert len({q["kind"] for q in first}) == len(rag.TEMPLATES)
    by_name = {r["name"]: r for r in records}
    for q in first:
        record = by_name[q["country"]]
        assert q["gold"][0] in common.document_text(record)
        assert rag.is_correct(f"It is {q['gold'][0]}.", q["gold"])
    assert rag.is_correct("The capital is Paris.", ["Paris"])
    assert not rag.is_correct("Parisian food", ["Paris"])
    assert rag.is_correct("cz", [".cz", "cz"]) and not rag.is_correct("Czech", [".cz", "cz"])


def test_agent_tools_and_tasks() -> None:
    facts = json.loads(agent.country_facts("france"))
    assert facts["capital"] == "Paris" and facts["population"] > 10_000_000
    assert "no country" in agent.country_facts("Atlantis")
    assert agent.calculator(66078000, "divide", 1000) == "66078.0"
    assert "unknown operation" in agent.calculator(1, "pow", 2)
    assert agent.calculator(1, "divide", 0).startswith("error")
    tasks = agent.make_tasks(common.load_countries(), 30, agent.SEED + 2)
    assert len(tasks) == 30 and tasks == agent.make_tasks(common.load_countries(), 30, agent.SEED + 2)
    assert agent.is_correct("about 66,078 thousand", 66078) and not agent.is_correct("66", 66078)


def test_replayed_cascade_keeps_confident_small_answers_and_defers_the_rest() -> None:
    def tally(name: str, rows: list[dict]) -> common.Tally:
        t = common.Tally(name)
        t.rows = rows
        return t

    small = tally("s", [{"question": "a", "scores": [0.9], "correct": True, "seconds": 1.0, "cost": 1e-6,
                         "small_prompt_tokens": 10},
                        {"question": "b", "scores": [0.1], "correct": False, "seconds": 1.0, "cost": 1e-6,
                         "small_prompt_tokens": 10}])
    large = tally("l", [{"question": "a", "correct": False, "seconds": 5.0, "cost": 1e-4},
                        {"question": "b", "correct": True, "seconds": 5.0, "cost": 1e-4}])
    out = rag.derived_cascade(small, large, 0.5, "c")
    assert (out.correct, out.small_calls, out.deferred_calls) == (2, 1, 1)
    assert out.seconds == pytest.approx(7.0) and out.all_large_cost == pytest.approx(2e-4)
    assert 1e-4 < out.cost < 1.1e-4
    assert "| c (thr 0.500) | 2/2 = 1.00 |" in common.markdown_table([out], "accuracy")


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_rag_workload_runs_with_real_models() -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "shared"), str(ROOT)]), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "benchmarks.studies.workload_rag", "--framework", "langchain",
                           "--limit", "2", "--calibration", "2", "--tiny"], capture_output=True, text=True,
                          timeout=280, env=env, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "## RAG, langchain" in done.stdout and "large only (Qwen-1.5B" in done.stdout
