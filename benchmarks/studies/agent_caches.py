"""Two-tier caches of the AGENT workload, one row per LLM call, for the learned-rule diagnostics (issue 12).

    python -m benchmarks.studies.agent_caches                      # 40 fit + 60 test tasks = 120 + 180 calls
    python -m benchmarks.studies.agent_caches --tiny               # 2 + 2 tasks into a temporary directory
    python -m benchmarks.studies.learned_diagnostics --fit runs/agent/agent.fit.cache.jsonl \\
        --test runs/agent/agent.test.cache.jsonl --field step --out-dir docs/figures/learned_agent

What it measures: for every LLM call of the agent loop, what Qwen2.5-Coder-0.5B (small tier) and
Qwen2.5-Coder-1.5B (large tier) answer on the same messages with the workload's two tools bound,
and whether each answer is right. Each task of the agent workload (``workload_agent``) is replayed
as its three calls (conversations from ``tool_call_uncertainty.conversation``):

* step 1, the task: right iff the answer is the right ``country_facts`` call;
* step 2, plus a correct lookup and its real result: right iff the right ``calculator`` call;
* step 3, plus a correct calculator call and its real result: right iff the answer is text (no
  tool call) holding the task's gold number (``workload_agent.is_correct``).

Small tier: the real LangChain path ``ChatCascade(...).bind_tools([country_facts, calculator])``
over its own llama.cpp server (``top_k=5``, greedy); the parse-only rule keeps every answer whose
tool call is valid, and ``RecordingRule`` records the exact ``Generation`` the engine judged (the
``CachedExample.small``). An invalid tool call is simply wrong (quality 0), its generation still
recorded. Large tier: the same messages and tools through ``ChatCascade`` with a scripted small
tier that always defers to ``ChatOpenAI`` on its own llama.cpp server (how ``workload_agent``
reaches it; tool calls the model writes as text are recovered the same way). The two tiers of a
call run concurrently (one llama.cpp thread each).

Fit split: tasks on the workload's calibration countries; test split: tasks on its test countries
(``tool_call_uncertainty.split_tasks``). Rows are appended as they finish (ids ``t<task>.s<step>``;
a rerun skips ids already cached); fit and test tasks are interleaved, so an interrupted run still
leaves both caches usable. The record's ``step`` is a string, so ``--field step`` groups by it.

Time: measured 5.4 s per call with both tiers running concurrently (small 2.4 s, large 5.4 s), 27 min
for the full 300 calls while other jobs shared the 2 cores; ``--tiny`` (12 calls) takes about two
minutes with the model start-up.
"""

from __future__ import annotations

import json
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from benchmarks import harness
from benchmarks.studies.tool_call_uncertainty import (
    MAX_TOKENS,
    RecordingRule,
    call_is_right,
    conversation,
    gold_operands,
    make_llm,
    run_call,
    split_tasks,
)
from benchmarks.studies.workload_agent import is_correct, langchain_large

STEPS = (1, 2, 3)
SPLITS = ("fit", "test")


def expected(task: dict[str, Any], step: int) -> Any:
    """What a right answer to call ``step`` is (for reading the cache)."""
    if step == 1:
        return {"name": "country_facts", "args": {"country": task["country"]}}
    if step == 2:
        a, operation, b = gold_operands(task)
        return {"name": "calculator", "args": {"a": a, "operation": operation, "b": b}}
    return task["gold"]


def is_right(task: dict[str, Any], step: int, calls: list[dict[str, Any]], text: str | None) -> bool:
    """Whether an answer (its parsed tool calls, or ``text`` when it made none) is right for ``step``.

    ``text`` is None when the answer is not usable as text (an invalid tool call).
    """
    if step < 3:
        return bool(calls) and all(call_is_right(task, step, c) for c in calls)
    return not calls and text is not None and is_correct(text, task["gold"])


def rendering(calls: list[dict[str, Any]], text: str) -> str:
    """The answer as one string: its text, or its tool calls as JSON."""
    return json.dumps(calls, ensure_ascii=False) if calls else text


def small_answer(llm: Any, recorder: RecordingRule, task: dict[str, Any], step: int) -> dict[str, Any]:
    """The small tier's answer through ``ChatCascade`` (``run_call``), judged."""
    row = run_call(llm, recorder, task, step)
    text = row["text"] if row["kind"] == "no_call" else None
    return {**row, "quality": float(is_right(task, step, row["tool_calls"], text))}


def large_answer(llm: Any, task: dict[str, Any], step: int) -> dict[str, Any]:
    """The large tier's answer on the same messages (the cascade always defers), judged."""
    started = time.perf_counter()
    message = llm.invoke(conversation(task, step))
    seconds = time.perf_counter() - started
    calls = [{"name": c["name"], "args": c["args"]} for c in message.tool_calls]
    usage = message.usage_metadata or {}
    return {"text": rendering(calls, message.text), "seconds": seconds,
            "quality": float(is_right(task, step, calls, message.text)),
            "usage": (int(usage.get("input_tokens") or 0), int(usage.get("output_tokens") or 0))}


def schedule(fit: list[dict], test: list[dict]) -> list[tuple[str, int, dict]]:
    """``(split, index, task)`` with the two splits interleaved in proportion to their sizes."""
    items = [("fit", i, t) for i, t in enumerate(fit)] + [("test", i, t) for i, t in enumerate(test)]
    sizes = {"fit": len(fit), "test": len(test)}
    return sorted(items, key=lambda item: ((item[1] + 0.5) / sizes[item[0]], item[0]))


def to_example(split: str, index: int, task: dict[str, Any], step: int, small: dict[str, Any],
               large: dict[str, Any]) -> Any:
    from cascade_core.evaluation.collect import CachedExample
    from cascade_core.types import Usage

    record = {"id": f"t{index}.s{step}", "split": split, "task": task["task"], "country": task["country"],
              "step": str(step), "gold": task["gold"], "expected": expected(task, step),
              "small_kind": small["kind"], "small_calls": small["tool_calls"]}
    return CachedExample(id=record["id"], record=record, small=small["_generation"], large_text=large["text"],
                         small_quality=small["quality"], large_quality=large["quality"],
                         small_seconds=small["seconds"], large_seconds=large["seconds"],
                         large_usage=Usage(*large["usage"]))


def cache_paths(out_dir: Path) -> dict[str, Path]:
    return {split: out_dir / f"agent.{split}.cache.jsonl" for split in SPLITS}


def collect(fit: list[dict], test: list[dict], small_llm: Any, recorder: RecordingRule, large_llm: Any,
            out_dir: Path) -> int:
    """Run every call not yet cached, appending each row to its split's cache; returns rows written."""
    from tqdm import tqdm

    from cascade_core.evaluation.collect import resume_cache

    paths = cache_paths(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    done = {split: set(resume_cache(path)) for split, path in paths.items()}
    todo = [(split, i, task, step) for split, i, task in schedule(fit, test) for step in STEPS
            if f"t{i}.s{step}" not in done[split]]
    written = 0
    with ThreadPoolExecutor(max_workers=1) as pool:
        for split, i, task, step in tqdm(todo, desc="agent calls", unit="call"):
            large_job = pool.submit(large_answer, large_llm, task, step)  # the two servers run side by side
            small = small_answer(small_llm, recorder, task, step)
            large = large_job.result()
            if small["_generation"] is None:  # the small tier failed outright: nothing to cache, retried next run
                tqdm.write(f"{split} t{i}.s{step}: no small-tier generation ({small['reason']}); skipped")
                continue
            with paths[split].open("a", encoding="utf-8") as out:
                out.write(to_example(split, i, task, step, small, large).to_json() + "\n")
            written += 1
    return written


def summary(out_dir: Path) -> str:
    """Per split and step: calls, small and large accuracy, mean seconds per call of each tier."""
    from cascade_core.evaluation.collect import load_cache

    lines = ["| split | step | calls | small acc | large acc | small s/call | large s/call |", "|---|---|---|---|---|---|---|"]
    for split, path in cache_paths(out_dir).items():
        examples = load_cache(path) if path.exists() else []
        for step in ("1", "2", "3", "all"):
            rows = [e for e in examples if step in ("all", e.record["step"])]
            if not rows:
                continue
            n = len(rows)
            lines.append(f"| {split} | {step} | {n} | {sum(e.small_quality for e in rows) / n:.3f} "
                         f"| {sum(e.large_quality for e in rows) / n:.3f} | {sum(e.small_seconds for e in rows) / n:.1f} "
                         f"| {sum(e.large_seconds for e in rows) / n:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = harness.parser(
        __doc__, threads=None, quiet=False,
        tiny="2 fit + 2 test tasks, into a temporary directory unless --out-dir is given")
    parser.add_argument("--fit", type=int, default=40, help="fit tasks (calibration countries), 3 calls each")
    parser.add_argument("--test", type=int, default=60, help="test tasks (test countries), 3 calls each")
    parser.add_argument("--out-dir", type=Path, default=None, help="where the caches go (default runs/agent)")
    parser.add_argument("--small-threads", type=int, default=1, help="threads of the small tier's llama.cpp server")
    parser.add_argument("--large-threads", type=int, default=1, help="threads of the large tier's llama.cpp server")
    args = parser.parse_args(argv)
    n_fit, n_test = (2, 2) if args.tiny else (args.fit, args.test)
    if n_fit < 1 or n_test < 1:
        parser.error("--fit and --test must be positive")
    out_dir = args.out_dir or (Path(tempfile.mkdtemp(prefix="agent_caches_")) if args.tiny else harness.ROOT / "runs" / "agent")
    harness.set_threads(1)
    from cascade_core import ThresholdRule
    from cascade_core.backends.llamacpp import serve_embedded
    from cascade_core.testing import ScriptedModel

    fit, test = split_tasks(n_fit, n_test)
    small_server = serve_embedded("medium", threads=args.small_threads)
    large_server = serve_embedded("large", threads=args.large_threads)
    try:
        recorder = RecordingRule(ThresholdRule("margin", 0.0))  # parse-only: keeps every valid answer
        small_llm = make_llm(small_server.openai_model(top_k=5, max_new_tokens=MAX_TOKENS), recorder)
        # a scripted small tier whose margin (0.5 - 0.4) is always below 1.0: every call goes to the large tier
        stand_in = ScriptedModel("(small-tier stand-in)", confidence=0.5, name="small-stand-in")
        large_llm = make_llm(stand_in, ThresholdRule("margin", 1.0), large=langchain_large(large_server, MAX_TOKENS))
        written = collect(fit, test, small_llm, recorder, large_llm, out_dir)
    finally:
        small_server.stop()
        large_server.stop()
    print(f"\n{written} new rows; caches in {out_dir}\n\n{summary(out_dir)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
