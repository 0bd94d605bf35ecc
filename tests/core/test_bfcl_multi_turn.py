"""BFCL multi_turn_base: tasks from the wheel, BFCL's executable backends and multi-turn checker, the agent loop.

The data and the checker come from the real ``bfcl-eval`` wheel (fetched by name on first use, as
``test_bfcl`` does); the loop runs real ``ChatCascade`` objects whose tiers are ``OpenAIModel`` s talking
to fake OpenAI-compatible servers on 127.0.0.1 (scripted answers, real HTTP).
"""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import pytest

from benchmarks.public.bfcl import data, multi_turn, tools
from benchmarks.public.bfcl.data import MultiTurnTask
from cascade_core.backends.openai import OpenAIModel
from cascade_core.testing.fake_server import FakeOpenAIServer, FakeReply, tool_call_text


@pytest.fixture(scope="module")
def wheel() -> Path:
    return data.ensure_wheel()


@pytest.fixture(scope="module")
def tasks(wheel: Path) -> dict[str, MultiTurnTask]:
    return {t.id: t for t in data.load_multi_turn(wheel=wheel)}


def _calls(task: MultiTurnTask, truth: str) -> dict[str, Any]:
    """One ground-truth string (``cd(folder='x')``) as a tool call; positional arguments take the doc's order."""
    expr = ast.parse(truth, mode="eval").body
    assert isinstance(expr, ast.Call) and isinstance(expr.func, ast.Name)
    doc = next(f for f in task.functions if f["name"] == expr.func.id)
    names = list(doc["parameters"]["properties"])
    args = {names[i]: ast.literal_eval(a) for i, a in enumerate(expr.args)}
    args.update({k.arg: ast.literal_eval(k.value) for k in expr.keywords if k.arg})
    return {"name": expr.func.id, "args": args}


def _ground_truth_turns(task: MultiTurnTask) -> list[list[list[dict[str, Any]]]]:
    """The ground truth as a model's answer: one step per turn holding every call of that turn."""
    return [[[_calls(task, s) for s in turn]] for turn in task.ground_truth]


# -- the wheel's tasks ------------------------------------------------------------------------------
def test_multi_turn_task_is_read_from_the_wheel_with_its_docs_and_ground_truth(tasks):
    assert len(tasks) == 200
    task = tasks["multi_turn_base_1"]
    assert task.involved_classes == ("GorillaFileSystem",) and len(task.turns) == len(task.ground_truth) == 4
    assert task.turns[0][0]["role"] == "user" and "alex" in task.turns[0][0]["content"]
    assert task.ground_truth[0] == ("ls(a=True)",)
    assert {f["name"] for f in task.functions} >= {"ls", "cd", "mv", "grep", "tail"}
    assert all(f["description"].endswith(data.PYTHON_HINT) for f in task.functions)
    assert "GorillaFileSystem" in task.initial_config


def test_every_task_s_function_docs_become_tools(tasks):
    for task in tasks.values():
        converted = [tools.to_openai_tool(f) for f in task.functions]
        assert all(t["function"]["parameters"]["type"] == "object" for t in converted), task.id


def test_func_doc_mapping_and_call_form_are_bfcl_s(wheel):
    """Our copy of BFCL's class → doc-file table and our call strings equal the wheel's own."""
    import zipfile

    from benchmarks.public.bfcl.scoring import bfcl_call

    with zipfile.ZipFile(wheel) as archive:
        config = archive.read("bfcl_eval/constants/executable_backend_config.py").decode()
        utils = archive.read("bfcl_eval/model_handler/utils.py").decode()
    namespace: dict[str, Any] = {}
    exec(compile(ast.parse(config), "executable_backend_config", "exec"), namespace)  # noqa: S102 - BFCL's own table
    assert {k: namespace["MULTI_TURN_FUNC_DOC_FILE_MAPPING"][k] for k in data.MULTI_TURN_FUNC_DOCS} == \
        data.MULTI_TURN_FUNC_DOCS
    (convert,) = [n for n in ast.parse(utils).body if isinstance(n, ast.FunctionDef)
                  and n.name == "convert_to_function_call"]
    bfcl: dict[str, Any] = {"json": json}
    exec(compile(ast.Module([convert], []), "convert_to_function_call", "exec"), bfcl)  # noqa: S102
    call = {"name": "echo", "args": {"content": "it's \"quoted\"", "n": 2, "flag": True, "xs": [1.5, None]}}
    assert [bfcl_call(call, {"echo"})] == bfcl["convert_to_function_call"]({"echo": call["args"]})


# -- BFCL's backends and checker ----------------------------------------------------------------------
def test_ground_truth_sequences_run_on_bfcl_backends_score_valid(tasks):
    from benchmarks.public.bfcl.scoring import score_multi_turn

    verdicts = [score_multi_turn(t, _ground_truth_turns(t)) for t in tasks.values()]
    assert all(v.valid for v in verdicts), [v.error_type for v in verdicts if not v.valid]


def test_backends_keep_state_across_calls_and_forget_it_on_close(tasks):
    from benchmarks.public.bfcl.scoring import Backends, _multi_turn

    task = tasks["multi_turn_base_1"]
    with Backends(task) as backends:
        assert json.loads(backends.execute([{"name": "ls", "args": {"a": True}}])[0]) == {
            "current_directory_content": ["workspace"]}
        backends.execute([{"name": "cd", "args": {"folder": "workspace"}}])
        assert "log.txt" in backends.execute([{"name": "ls", "args": {}}])[0]
        with Backends(task) as other:  # a second run of the same task starts from the initial state
            assert "workspace" in other.execute([{"name": "ls", "args": {}}])[0]
        names = [k for k in vars(_multi_turn()) if k.startswith(backends.run)]
        assert names
    assert not [k for k in vars(_multi_turn()) if k.startswith(backends.run)]


def test_a_call_outside_the_task_s_functions_is_not_evaluated(tasks):
    from benchmarks.public.bfcl.scoring import Backends

    with Backends(tasks["multi_turn_base_1"]) as backends:
        out = backends.execute([{"name": "open", "args": {"file": "/etc/passwd"}},
                                {"name": "ls", "args": {"a=True);print('x'": 1}},
                                {"name": "pwd", "args": {}}])
    assert out[0].startswith("Error during execution") and out[1].startswith("Error during execution")
    assert "current_working_directory" in out[2]


def test_wrong_sequences_fail_bfcl_s_checker(tasks):
    from benchmarks.public.bfcl.scoring import score_multi_turn

    task = tasks["multi_turn_base_1"]
    right = _ground_truth_turns(task)
    wrong_state = [right[0], [[right[1][0][0]]], *right[2:]]  # turn 2 forgets the mv: the file system differs
    assert score_multi_turn(task, wrong_state).error_type == "multi_turn:instance_state_mismatch"
    wrong_result = [*right[:3], [[{"name": "cat", "args": {"file_name": "log.txt"}}]]]  # cat, not tail
    assert score_multi_turn(task, wrong_result).error_type == "multi_turn:execution_response_mismatch"
    empty_turn = [right[0], [], *right[2:]]
    assert score_multi_turn(task, empty_turn).error_type == "multi_turn:empty_turn_model_response"
    assert score_multi_turn(task, right, force_quit=True).error_type == "multi_turn:force_terminated"
    assert score_multi_turn(task, right[:1]).valid  # a shortened run is checked on the turns it ran


# -- the loop, end to end over fake servers -----------------------------------------------------------
class Script:
    """A responder answering from a list, one reply per request (the last one repeats)."""

    def __init__(self, *replies: FakeReply) -> None:
        self.replies, self.served = list(replies), 0

    def __call__(self, body: dict[str, Any]) -> FakeReply:
        reply = self.replies[min(self.served, len(self.replies) - 1)]
        self.served += 1
        return reply


def _native(calls: list[dict[str, Any]]) -> FakeReply:
    return FakeReply("", tool_calls=[{"name": c["name"], "arguments": c["args"]} for c in calls])


def _models(small: FakeOpenAIServer, large: FakeOpenAIServer) -> tuple[OpenAIModel, OpenAIModel]:
    return (OpenAIModel("qwen05", base_url=small.base_url, top_k=5, max_new_tokens=64),
            OpenAIModel("qwen15", base_url=large.base_url, top_k=0, max_new_tokens=64))


def _first_two_turns(task: MultiTurnTask) -> tuple[Script, Script]:
    """Each tier's answers on the first two turns of ``multi_turn_base_1``: the small tier first writes a call to
    a tool that does not exist (deferred); after that it is sure and right (parse-only keeps it)."""
    right = _ground_truth_turns(task)
    sure = {"confidence": 0.99, "token_confidence": 0.99}
    small = Script(FakeReply(tool_call_text("no_such_tool", {}), **sure), FakeReply("Listed.", **sure),
                   FakeReply("".join(tool_call_text(c["name"], c["args"]) for c in right[1][0]), **sure),
                   FakeReply("Moved.", **sure))
    large = Script(_native(right[0][0]), FakeReply("Listed."), _native(right[1][0]), FakeReply("Moved."))
    return small, large


@pytest.mark.parametrize("config", ["cascade", "sticky"])
def test_sticky_keeps_a_deferred_task_on_the_large_tier_per_step_returns_to_small(tasks, config):
    task = tasks["multi_turn_base_1"]
    small_script, large_script = _first_two_turns(task)
    with FakeOpenAIServer(small_script) as small, FakeOpenAIServer(large_script) as large:
        llm = multi_turn.build(config, *_models(small, large))
        row = multi_turn.run_task(llm, task, config, turns=2)
    tiers = [[s["tier"] for s in turn] for turn in row["trace"]]
    if config == "sticky":
        # step 1 deferred: every later step of the task skips the small tier
        assert tiers == [[1, 1], [1, 1]] and (small_script.served, large_script.served) == (1, 4)
        assert [s["signal"] for s in row["trace"][1]] == ["sticky", "sticky"]
    else:
        # per step: the small tier answers every step after the deferral
        assert tiers == [[1, 0], [0, 0]] and (small_script.served, large_script.served) == (4, 1)
        assert row["trace"][1][0]["calls"] == _ground_truth_turns(task)[1][0]
    assert row["quality"] == 1.0 and row["tokens"]["small"][0] > 0 and row["tokens"]["large"][0] > 0
    assert row["steps"] == 4 and row["large_steps"] == sum(t for turn in tiers for t in turn)
    assert row["trace"][0][0]["results"][0].startswith('{"current_directory_content"')


def test_large_configuration_replays_the_ground_truth_to_a_valid_task(tasks, tmp_path):
    task = tasks["multi_turn_base_1"]
    replies = [r for turn in _ground_truth_turns(task) for r in (_native(turn[0]), FakeReply("ok"))]
    with FakeOpenAIServer(Script(FakeReply("unused"))) as small, FakeOpenAIServer(Script(*replies)) as large:
        out = multi_turn.collect([task], ["large"], tmp_path, lambda: _models(small, large), quiet=True)
        again = multi_turn.collect([task], ["large"], tmp_path, lambda: _models(small, large), quiet=True)
    (row,) = map(json.loads, (tmp_path / "large.jsonl").read_text().splitlines())
    assert out["written"] == 1 and again["written"] == 0 and out["large_accuracy"] == 1.0
    assert row["quality"] == 1.0 and row["steps"] == 8 and row["large_steps"] == 8
    assert row["tokens"]["small"] == [0, 0] and row["tokens"]["large"][0] > 0  # the stand-in is not counted


def test_cascades_are_skipped_when_large_only_is_under_the_floor(tasks, tmp_path):
    task = tasks["multi_turn_base_1"]
    with FakeOpenAIServer(Script(FakeReply("?"))) as small, FakeOpenAIServer(Script(FakeReply("no idea"))) as large:
        out = multi_turn.collect([task], list(multi_turn.CONFIGS), tmp_path, lambda: _models(small, large),
                                 turns=1, quiet=True)
    assert out["large_accuracy"] == 0.0 and out["skipped"] == ["cascade", "sticky"]
    assert not (tmp_path / "cascade.jsonl").exists()


def test_step_limit_cuts_the_task_off_as_bfcl_does(tasks):
    task = tasks["multi_turn_base_1"]
    with FakeOpenAIServer(Script(FakeReply("?"))) as small, \
            FakeOpenAIServer(Script(_native([{"name": "pwd", "args": {}}]))) as large:
        row = multi_turn.run_task(multi_turn.build("large", *_models(small, large)), task, "large", max_steps=2)
    assert row["force_quit"] and row["turns"] == 1 and row["steps"] == 3
    assert row["error_type"] == "multi_turn:force_terminated"


def test_report_compares_the_configurations_on_their_common_tasks(tmp_path):
    from benchmarks.public.bfcl.multi_turn_report import write_report

    def row(i: int, config: str, quality: float, large_steps: int) -> str:
        return json.dumps({"id": f"t{i}", "config": config, "quality": quality, "error_type": "" if quality else "x",
                           "steps": 4, "large_steps": large_steps, "force_quit": False, "seconds": 10.0,
                           "turns": 3, "turns_total": 3, "max_steps": 20,
                           "tokens": {"small": [100, 10], "large": [200 * large_steps, 20]}})

    (tmp_path / "large.jsonl").write_text("\n".join(row(i, "large", i % 2, 4) for i in range(4)) + "\n")
    (tmp_path / "sticky.jsonl").write_text("\n".join(row(i, "sticky", 1, 2) for i in range(3)) + "\n")
    md = write_report(tmp_path, tmp_path / "figures")
    summary = json.loads((tmp_path / "figures" / "bfcl_multi_turn.json").read_text())
    assert summary["tasks"] == ["t0", "t1", "t2"] and summary["configs"]["large"]["accuracy"] == pytest.approx(1 / 3)
    assert summary["configs"]["sticky"]["large_step_share"] == 0.5 and not summary["below_floor"]
    assert "| sticky | 3 | 1.000 | 4.0 | 50% |" in md and "every turn, at most 20 steps" in md


@pytest.mark.slow
def test_smoke_tiny_run_through_the_real_tiers(tmp_path):
    """``--tiny``: the cheapest task's first turn through each configuration on real llama.cpp servers,
    every row scored by BFCL's checker."""
    data.ensure_wheel()
    assert multi_turn.main(["--tiny", "--runs", str(tmp_path), "--quiet"]) == 0
    for config in multi_turn.CONFIGS:
        (row,) = map(json.loads, (tmp_path / "multi_turn" / "tiny" / f"{config}.jsonl").read_text().splitlines())
        assert row["turns"] == 1 and row["quality"] in (0.0, 1.0) and 1 <= row["steps"] <= 2, config
    assert multi_turn.main(["--tiny", "--runs", str(tmp_path), "--report", "--figures", str(tmp_path)]) == 0
