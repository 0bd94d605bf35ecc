"""BFCL ``multi_turn_base`` through a real agent loop: per-step cascading against sticky escalation.

    taskset -c 1 python -m benchmarks.public.bfcl.multi_turn --limit 20 --threads 1      # large, then the cascades
    python -m benchmarks.public.bfcl.multi_turn --tiny                                  # 1 task, 1 turn: a smoke run
    python -m benchmarks.public.bfcl.multi_turn --report                                # docs/figures/bfcl_multi_turn.*

Each task is a conversation of user turns over BFCL's executable backends (a file system, a
trading bot, a travel API, …). The loop is BFCL's own (``inference_multi_turn_FC``): per turn, the
user message is appended and the model is called with the tools bound
(``ChatCascade(...).bind_tools(tools).invoke``, the call a LangChain agent makes) while it answers
with tool calls; each call runs on BFCL's backends (``execute_multi_turn_func_call``) and its result
goes back as a ``ToolMessage``; a turn ends on an answer without calls; after more than
:data:`MAX_STEPS` steps with calls in one turn the task is cut off (BFCL's ``MAXIMUM_STEP_LIMIT``, a
failed task). BFCL's ``multi_turn_checker`` then scores the task (backend state and execution
results, turn by turn, against the ground truth's execution).

Three configurations on the same tasks:

* ``large``: the large tier alone (``ChatCascade`` whose small tier always defers, as ``run``'s large path);
* ``cascade``: Qwen2.5-Coder-0.5B → 1.5B, decided at every step by the single-turn harness's rule
  (parse-only: a step is deferred when its tool call is malformed or names no bound tool);
* ``sticky``: the same with ``ChatCascade(sticky_escalation=True)`` and the task as the session: once a
  step of a task was deferred, its later steps go straight to the large tier.

Rows (one per task: BFCL's verdict, the steps with their tier and calls, tokens per tier, seconds)
are cached as JSON lines in ``<runs>/multi_turn/<config>.jsonl`` (resumable; ``--tiny`` writes
under ``<runs>/multi_turn/tiny/``). ``large`` runs first on every sampled task; when it solves under
:data:`FLOOR` of them the cascades are not run (``--no-floor`` runs them anyway).
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

from benchmarks.public import harness  # noqa: E402
from benchmarks.public.bfcl.data import MultiTurnTask, load_multi_turn  # noqa: E402
from benchmarks.public.bfcl.scoring import Backends, score_multi_turn  # noqa: E402
from benchmarks.public.bfcl.tools import to_openai_tool  # noqa: E402

SMALL, LARGE = "qwen05", harness.LARGE_TIER
CONFIGS = ("large", "cascade", "sticky")
MAX_STEPS = 20  # BFCL's MAXIMUM_STEP_LIMIT (bfcl_eval/constants/default_prompts.py)
MAX_TOKENS = 256  # a step holds a few calls; echo/post calls carry whole sentences
N_CTX = 16384  # the function docs of a task are 2.5k-5.5k tokens; the conversation grows over turns
FLOOR = 0.10  # large-only accuracy under which the cascades are not worth running (issue 23)
SEED = 23
RUNS = Path("runs/bfcl")
STAND_IN = "small-stand-in"
LIMITS: dict[str, Any] = {"max_tokens": MAX_TOKENS, "small_timeout": 900.0, "large_timeout": 900.0, "deadline": None}

Models = Callable[[], tuple[Any, Any]]


# -- the tiers and the three configurations ---------------------------------------------------------
def tier_models(threads: int) -> tuple[Any, Any]:
    """(small, large) ``OpenAIModel`` s on their llama.cpp servers (the small one with top-20 log-probs)."""
    # the client's own timeout (60 s by default) would cut a cold prefill of a task's ~5k tokens of docs
    # long before the cascade's 900 s tier timeout: one request may take as long as the tier may
    small = harness.server(SMALL, threads, N_CTX).openai_model(top_k=harness.TOP_K, max_new_tokens=MAX_TOKENS,
                                                               prompt_format="chat", timeout=LIMITS["small_timeout"],
                                                               max_retries=0)
    large = harness.server(LARGE, threads, N_CTX).openai_model(top_k=0, max_new_tokens=MAX_TOKENS,
                                                               prompt_format="chat", timeout=LIMITS["large_timeout"],
                                                               max_retries=0)
    return small, large


def build(config: str, small: Any, large: Any) -> Any:
    """The ``ChatCascade`` of one configuration (``large``: the small tier is a stand-in that always defers)."""
    from cascade_core import ThresholdRule
    from cascade_core.testing import ScriptedModel
    from langchain_cascade import ChatCascade

    if config == "large":
        # a scripted small tier whose margin (0.5 - 0.4) is always below 1.0: every step goes to the large tier
        return ChatCascade(small=ScriptedModel("(stand-in)", confidence=0.5, name=STAND_IN), large=large,
                           rule=ThresholdRule("margin", 1.0), **LIMITS)
    if config not in CONFIGS:
        raise ValueError(f"unknown configuration {config!r}; known: {list(CONFIGS)}")
    parse_only = ThresholdRule("margin", 0.0)  # keeps every answer whose calls are valid (run.py's small path)
    return ChatCascade(small=small, large=large, rule=parse_only, sticky_escalation=config == "sticky", **LIMITS)


# -- the loop ---------------------------------------------------------------------------------------
def _step(message: Any) -> dict[str, Any]:
    """One model answer: the tier that gave it, why, its calls and text, and each called tier's usage."""
    meta = message.response_metadata["cascade"]
    decisions = meta.get("decisions") or [{}]
    return {"tier": meta["tier"], "signal": decisions[0].get("signal"), "reason": str(meta.get("reason", "")),
            "calls": [{"name": c["name"], "args": c["args"]} for c in message.tool_calls], "text": message.text,
            "runs": [[r["tier"], r["model_name"], r["input_tokens"], r["output_tokens"], round(r["latency_s"], 3)]
                     for r in meta.get("runs", ())]}


def _user_messages(turn: Sequence[dict[str, str]]) -> list[Any]:
    from langchain_core.messages import HumanMessage, SystemMessage

    return [SystemMessage(m["content"]) if m["role"] == "system" else HumanMessage(m["content"]) for m in turn]


def _run_turn(bound: Any, history: list[Any], backends: Backends, session: str, max_steps: int
              ) -> tuple[list[dict[str, Any]], bool]:
    """One user turn, BFCL's way: call the model while it answers with calls; (steps, cut off)."""
    from langchain_core.messages import ToolMessage

    steps: list[dict[str, Any]] = []
    while True:
        message = bound.invoke(history, config={"metadata": {"session_id": session}})
        history.append(message)
        step = _step(message)
        steps.append(step)
        if not message.tool_calls:
            return steps, False
        step["results"] = backends.execute(step["calls"])
        history += [ToolMessage(result, tool_call_id=call.get("id") or f"call_{i}")
                    for i, (call, result) in enumerate(zip(message.tool_calls, step["results"]))]
        if len(steps) > max_steps:
            return steps, True


def run_task(llm: Any, task: MultiTurnTask, config: str, *, turns: int | None = None,
             max_steps: int = MAX_STEPS) -> dict[str, Any]:
    """``task`` through ``llm`` (its first ``turns`` turns; all by default), scored by BFCL's checker."""
    bound = llm.bind_tools([to_openai_tool(f) for f in task.functions])
    history: list[Any] = []
    trace: list[list[dict[str, Any]]] = []
    cut = False
    started = time.perf_counter()
    with Backends(task) as backends:
        for turn in task.turns[:turns]:
            history += _user_messages(turn)
            steps, cut = _run_turn(bound, history, backends, task.id, max_steps)
            trace.append(steps)
            if cut:
                break
    seconds = time.perf_counter() - started
    score = score_multi_turn(task, [[s["calls"] for s in steps] for steps in trace], force_quit=cut)
    return {"id": task.id, "config": config, "quality": float(score.valid), "error_type": score.error_type,
            "turns": len(trace), "turns_total": len(task.turns), "max_steps": max_steps, "force_quit": cut,
            "seconds": round(seconds, 3), **step_counts(trace), "trace": trace}


def step_counts(trace: Sequence[Sequence[dict[str, Any]]]) -> dict[str, Any]:
    """Steps, steps answered by the large tier, and (input, output) tokens per tier (stand-in left out)."""
    steps = [s for turn in trace for s in turn]
    tokens = {"small": [0, 0], "large": [0, 0]}
    for step in steps:
        for tier, model, n_in, n_out, _ in step["runs"]:
            if model != STAND_IN:
                side = tokens["small" if tier == 0 else "large"]
                side[0] += n_in
                side[1] += n_out
    return {"steps": len(steps), "large_steps": sum(s["tier"] >= 1 for s in steps), "tokens": tokens}


# -- sampling, caches, the run ----------------------------------------------------------------------
def sample_tasks(tasks: Sequence[MultiTurnTask], limit: int | None, seed: int = SEED) -> list[MultiTurnTask]:
    """A seeded sample of ``limit`` tasks (all when None), in BFCL's order."""
    if limit is None or limit >= len(tasks):
        return list(tasks)
    chosen = set(random.Random(seed).sample(range(len(tasks)), limit))
    return [t for i, t in enumerate(tasks) if i in chosen]


def cheapest_task(tasks: Sequence[MultiTurnTask]) -> MultiTurnTask:
    """The task with the shortest function docs (then fewest turns): the one ``--tiny`` runs."""
    import json

    return min(tasks, key=lambda t: (len(json.dumps(t.functions)), len(t.turns), t.id))


def accuracy(rows: dict[str, dict[str, Any]]) -> float:
    return sum(r["quality"] for r in rows.values()) / len(rows) if rows else float("nan")


def _run_config(config: str, tasks: Sequence[MultiTurnTask], cache: Any, llms: dict[str, Any], models: Models,
                settings: dict[str, Any], stop_at: float | None, progress: Any) -> int:
    """Tasks of one configuration not cached yet; returns the rows written (failed tasks are retried later)."""
    have = cache.rows()
    written = 0
    for task in tasks:
        if task.id in have:
            continue
        if stop_at is not None and time.time() > stop_at:
            break
        if config not in llms:
            llms.setdefault("_models", models())
            llms[config] = build(config, *llms["_models"])
        try:
            cache.append(run_task(llms[config], task, config, **settings))
        except Exception as err:  # noqa: BLE001 - one failed task is retried by the next run, not fatal
            progress.write(f"{config} {task.id}: {type(err).__name__}: {str(err)[:200]} (not cached)")
            continue
        written += 1
        progress.update(1)
    return written


def collect(tasks: Sequence[MultiTurnTask], configs: Sequence[str], folder: Path, models: Models, *,
            turns: int | None = None, max_steps: int = MAX_STEPS, floor: float | None = FLOOR,
            stop_at: float | None = None, quiet: bool = False) -> dict[str, Any]:
    """``large`` on every task first, then ``cascade`` and ``sticky`` task by task (each task's pair is
    whole when a run is cut off); ``models`` gives (small, large) and is called only when a task runs."""
    from tqdm.auto import tqdm

    caches = {c: harness.TierCache(folder / f"{c}.jsonl") for c in configs}
    settings = {"turns": turns, "max_steps": max_steps}
    llms: dict[str, Any] = {}
    total = sum(len([t for t in tasks if t.id not in have]) for have in (cache.rows() for cache in caches.values()))
    out: dict[str, Any] = {"written": 0, "skipped": None}
    with tqdm(total=total, desc="bfcl multi-turn", unit="task", disable=quiet) as progress:
        if "large" in caches:
            out["written"] += _run_config("large", tasks, caches["large"], llms, models, settings, stop_at, progress)
            done = caches["large"].rows()
            large = {t.id: done[t.id] for t in tasks if t.id in done}
            out["large_accuracy"], out["large_tasks"] = accuracy(large), len(large)
            if floor is not None and out["large_accuracy"] < floor:
                out["skipped"] = [c for c in configs if c != "large"]
                return out
        for task in tasks:
            for config in (c for c in configs if c != "large"):
                out["written"] += _run_config(config, [task], caches[config], llms, models, settings, stop_at,
                                              progress)
    return out


def main(argv: list[str] | None = None) -> int:
    from benchmarks import harness as shared

    p = shared.parser(__doc__, threads=1, threads_help="llama.cpp threads per server",
                      tiny="1 task (the one with the shortest docs), 1 turn, 1 step with calls at most: a smoke run")
    p.add_argument("--limit", type=int, default=None, help="seeded sample of this many tasks (default: all 200)")
    p.add_argument("--configs", nargs="*", default=list(CONFIGS), choices=CONFIGS)
    p.add_argument("--seed", type=int, default=SEED, help="sample seed (default %(default)s)")
    p.add_argument("--turns", type=int, default=None, help="run (and score) only the first N turns of each task")
    p.add_argument("--max-steps", type=int, default=MAX_STEPS, help="steps with calls per turn (default: BFCL's 20)")
    p.add_argument("--stop-at", type=float, default=None, help="unix time after which no new task starts")
    p.add_argument("--no-floor", action="store_true", help=f"run the cascades even if large-only is under {FLOOR:.0%}")
    p.add_argument("--runs", type=Path, default=RUNS, help="cache folder (default %(default)s)")
    p.add_argument("--report", action="store_true", help="only write the table from the caches")
    p.add_argument("--figures", type=Path, default=Path("docs/figures"), help="where --report writes")
    args = p.parse_args(argv)
    folder = args.runs / "multi_turn" / ("tiny" if args.tiny else "")
    if args.report:
        from benchmarks.public.bfcl.multi_turn_report import write_report

        print(write_report(folder, args.figures))
        return 0
    tasks = load_multi_turn()
    tasks = [cheapest_task(tasks)] if args.tiny else sample_tasks(tasks, args.limit, args.seed)
    turns, max_steps = (1, 1) if args.tiny else (args.turns, args.max_steps)
    started = time.perf_counter()
    try:
        out = collect(tasks, args.configs, folder, lambda: tier_models(args.threads), turns=turns,
                      max_steps=max_steps, floor=None if args.tiny or args.no_floor else FLOOR,
                      stop_at=args.stop_at, quiet=args.quiet)
    finally:
        harness.stop_servers()
    print(f"{out['written']} task runs in {time.perf_counter() - started:.0f} s; caches in {folder}")
    if "large_accuracy" in out:
        print(f"large-only (Qwen2.5-Coder-1.5B) accuracy: {out['large_accuracy']:.3f} on {out['large_tasks']} tasks")
    if out["skipped"]:
        print(f"large-only is under {FLOOR:.0%}: {out['skipped']} not run (--no-floor runs them)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
