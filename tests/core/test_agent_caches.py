"""benchmarks/studies/agent_caches.py: labels, schedule and cache rows (fast); a real-model --tiny run (slow)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.studies import agent_caches as bench
from cascade_core.evaluation.collect import load_cache, resume_cache
from cascade_core.types import Generation

ROOT = Path(__file__).resolve().parents[2]

TASK = {"task": "What is the population of France divided by 1000, rounded to a whole number?",
        "country": "France", "gold": 0}


def _task() -> dict:
    population = json.loads(bench.conversation(TASK, 2)[3].content)["population"]
    return {**TASK, "gold": round(population / 1000)}


def test_step_three_adds_a_correct_calculator_call_and_its_result() -> None:
    task = _task()
    messages = bench.conversation(task, 3)
    assert [m.type for m in messages] == ["system", "human", "ai", "tool", "ai", "tool"]
    a, operation, b = bench.gold_operands(task)
    assert messages[4].tool_calls[0]["args"] == {"a": a, "operation": operation, "b": b}
    assert round(float(messages[5].content)) == task["gold"]
    assert [m.type for m in bench.conversation(task, 2)] == ["system", "human", "ai", "tool"]


def test_answers_are_judged_per_step() -> None:
    task = _task()
    a, _, b = bench.gold_operands(task)
    lookup = {"name": "country_facts", "args": {"country": "France"}}
    divide = {"name": "calculator", "args": {"a": a, "operation": "divide", "b": b}}
    assert bench.is_right(task, 1, [lookup], None) and not bench.is_right(task, 1, [divide], None)
    assert bench.is_right(task, 2, [divide], None) and not bench.is_right(task, 2, [], "66078")
    assert bench.is_right(task, 3, [], f"{task['gold']}") and bench.is_right(task, 3, [], f"{a / b}")
    assert not bench.is_right(task, 3, [divide], str(task["gold"]))  # a tool call is not the final answer
    assert not bench.is_right(task, 3, [], None) and not bench.is_right(task, 3, [], "")
    assert bench.rendering([lookup], "") == json.dumps([lookup]) and bench.rendering([], "42") == "42"


def test_splits_are_interleaved_in_proportion() -> None:
    order = bench.schedule([{"n": i} for i in range(2)], [{"n": i} for i in range(3)])
    assert [(s, i) for s, i, _ in order] == [("test", 0), ("fit", 0), ("test", 1), ("fit", 1), ("test", 2)]


def test_rows_round_trip_through_the_cache(tmp_path: Path) -> None:
    task = _task()
    small = {"kind": "no_call", "tool_calls": [], "_generation": Generation("66078", ()), "quality": 1.0,
             "seconds": 2.5}
    large = {"text": "66078", "quality": 1.0, "seconds": 4.0, "usage": (400, 3)}
    path = bench.cache_paths(tmp_path)["test"]
    path.write_text(bench.to_example("test", 7, task, 3, small, large).to_json() + "\n" + '{"cut', encoding="utf-8")
    (row,) = load_cache(path)
    assert row.id == "t7.s3" and row.record["step"] == "3" and row.record["gold"] == task["gold"]
    assert (row.small_quality, row.large_quality, row.large_usage.output_tokens) == (1.0, 1.0, 3)
    assert set(resume_cache(path)) == {"t7.s3"} and path.read_text(encoding="utf-8").endswith("\n")  # tail cut


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_agent_caches_tiny_run_with_the_real_models(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "shared"), str(ROOT)]), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "benchmarks.studies.agent_caches", "--tiny", "--out-dir",
                           str(tmp_path)], capture_output=True, text=True, timeout=1180, env=env, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    for split in ("fit", "test"):
        rows = load_cache(tmp_path / f"agent.{split}.cache.jsonl")
        assert len(rows) == 6 and {r.record["step"] for r in rows} == {"1", "2", "3"}
        assert {r.small_quality for r in rows} <= {0.0, 1.0} and {r.large_quality for r in rows} <= {0.0, 1.0}
        assert all(r.small.steps and r.small.steps[0].top for r in rows)  # top-5 log-probs recorded
    assert "| test | 3 | 2 |" in done.stdout
