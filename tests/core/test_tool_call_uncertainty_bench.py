"""benchmarks/studies/tool_call_uncertainty.py: labels, threshold choice, AUROC (fast); a real-model smoke run (slow)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.studies import tool_call_uncertainty as bench
from cascade_core.types import Generation, TokenAlternative, TokenStep

ROOT = Path(__file__).resolve().parents[2]


def _call(name: str, args: dict, name_p: float, arg_p: float) -> Generation:
    """A generation writing one bare-JSON call: the name at probability ``name_p`` (runner-up
    ``1 - name_p - 0.01``), the arguments at ``arg_p``."""
    def step(tok: str, p: float, p2: float = 0.005) -> TokenStep:
        return TokenStep(tok, math.log(p), (TokenAlternative(tok, math.log(p)), TokenAlternative("x", math.log(p2))))

    steps = [step('{"name": "', 0.99), step(name, name_p, max(1e-3, 1 - name_p - 0.01)),
             step('", "arguments": ', 0.99), step(json.dumps(args), arg_p), step("}", 0.99)]
    return Generation("".join(s.token for s in steps), tuple(steps))


def _row(right: bool, name_p: float, arg_p: float, step: int = 1) -> dict:
    gen = _call("country_facts", {"country": "France"}, name_p, arg_p)
    return {"kind": "valid_call", "right": right, "step": step, "_generation": gen, **bench.scores_of(gen)}


def test_tasks_follow_the_workload_split_and_gold_operands_come_from_the_tool() -> None:
    calib, test = bench.split_tasks(3, 4)
    assert len(calib) == 3 and len(test) == 4
    assert not {t["country"] for t in calib} & {t["country"] for t in test}
    for task in calib + test:
        a, op, b = bench.gold_operands(task)
        assert op == "divide" and round(a / b) == task["gold"]


def test_labels_need_the_right_tool_and_the_gold_operands() -> None:
    task = {"task": "What is the population of France divided by 1000, rounded to a whole number?",
            "country": "France", "gold": 0}
    population = json.loads(bench.country_facts("France"))["population"]
    assert bench.call_is_right(task, 1, {"name": "country_facts", "args": {"country": "france"}})
    assert not bench.call_is_right(task, 1, {"name": "country_facts", "args": {"country": "Spain"}})
    assert not bench.call_is_right(task, 1, {"name": "calculator", "args": {"a": 6e6, "operation": "divide", "b": 1000}})
    right = {"name": "calculator", "args": {"a": population, "operation": "Divide", "b": 1000}}
    assert bench.call_is_right(task, 2, right)
    assert not bench.call_is_right(task, 2, {**right, "args": {**right["args"], "a": population + 1}})
    assert not bench.call_is_right(task, 2, {**right, "args": {**right["args"], "b": "many"}})
    messages = bench.conversation(task, 2)
    assert [m.type for m in messages] == ["system", "human", "ai", "tool"]
    assert messages[2].tool_calls[0]["args"] == {"country": "France"} and str(population) in messages[3].content


def test_thresholds_are_chosen_within_the_loss_budget_and_auroc_counts_pairs() -> None:
    rows = [_row(True, 0.95, 0.9), _row(True, 0.9, 0.8), _row(True, 0.85, 0.2), _row(False, 0.5, 0.85),
            _row(False, 0.55, 0.3)]
    chosen = bench.choose_thresholds(rows, max_loss=0.0)
    assert chosen["calibration"]["right_lost"] == 0 and chosen["calibration"]["wrong_kept_after"] == 0
    assert chosen["arguments_threshold"] is None and 0.1 < chosen["name_threshold"] < 0.8
    assert bench.auroc(rows, bench.NAME) == 1.0
    assert bench.auroc(rows, bench.ARGS) == pytest.approx(3 / 6)  # 0.9 > 0.85, 0.3; 0.8 > 0.3
    assert bench.auroc(rows[:3], bench.NAME) is None
    counts = bench.outcome(rows, None, None)
    assert counts["wrong_kept_before"] == counts["wrong_kept_after"] == 2 and counts["right_lost"] == 0


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_tool_call_uncertainty_runs_with_the_real_small_model() -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "shared"), str(ROOT)]), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "benchmarks.studies.tool_call_uncertainty", "--tiny"],
                          capture_output=True, text=True, timeout=880, env=env, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "## Tool-call uncertainty" in done.stdout and "**wrong calls kept BEFORE**" in done.stdout
    assert done.stdout.count("  step ") == 8  # 2 + 2 tasks, two LLM calls each
