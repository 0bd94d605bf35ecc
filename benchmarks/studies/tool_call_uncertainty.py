"""Tool-call uncertainty on the real agent workload: kept small-tier tool calls that were wrong, before/after.

    python -m benchmarks.studies.tool_call_uncertainty             # 12 calibration + 30 test tasks (~15 min)
    python -m benchmarks.studies.tool_call_uncertainty --tiny      # 2 + 2 tasks, a smoke run, nothing saved

The agent workload's two steps are replayed one LLM call at a time through the real LangChain path:
``ChatCascade(...).bind_tools([country_facts, calculator])`` (the workload's own tools, imported from
``workload_agent``), small tier Qwen2.5-Coder-0.5B on its own llama.cpp server (``OpenAIModel``,
``top_k=5``, greedy), large tier a ``ScriptedModel`` stand-in (its answer is not what is measured).

* call 1: system prompt + the user's task; right iff the small tier calls ``country_facts`` with the
  task's country (any spelling the tool resolves to the same record);
* call 2: the same conversation plus a correct ``country_facts`` call (an ``AIMessage``) and the real
  tool's result (a ``ToolMessage``); right iff it calls ``calculator`` with the gold operands
  (``a``, ``"divide"``, ``b`` exactly: population/1000, area/100 or population/area).

The cascade runs the parse-only rule (first-token margin, threshold 0: every answer is kept unless
its tool call is invalid) — "before". The small tier's ``Generation`` is recorded by the rule itself
(a thin wrapper: the engine hands the rule the exact generation it judges, before the tool-call
check), and ``tool_call_uncertainty`` scores it. "After" = ``ToolCallRule`` with thresholds chosen
on the calibration tasks only, applied to the same generations (the rule is a pure function of the
generation, judged before the tool-call check, and decoding is greedy: it is the decision a
``ChatCascade(rule=ToolCallRule(...))`` takes on that call).

Threshold choice: maximise the wrong calibration calls deferred with at most ``--max-loss`` (10 %)
of the right calibration calls lost; candidate thresholds are the midpoints between adjacent observed
calibration scores; ties go to fewer right calls lost, then to one check over two.
Writes ``benchmarks/results/tool_call_uncertainty.json``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks import harness
from benchmarks.studies.workload_agent import SEED, SYSTEM, calculator, country_facts, make_tasks
from benchmarks.studies.workloads_common import load_countries, save, split_countries

MAX_TOKENS = 64
NAME, ARGS = "name_margin", "arguments_quantile"
#: Fixed settings reported next to the calibrated one: the ToolCallRule default and the docs example.
REFERENCE = {"name ≥ 0.2 (ToolCallRule default)": (0.2, None),
             "name ≥ 0.3, arguments ≥ log 0.5 (docs example)": (0.3, math.log(0.5))}


# -- tasks, conversations, labels -------------------------------------------------------------------
def split_tasks(n_calibration: int, n_test: int) -> tuple[list[dict], list[dict]]:
    """The agent workload's own split: calibration tasks on calibration countries, test on the others."""
    calib_countries, test_countries = split_countries(load_countries(), SEED, 40)
    return make_tasks(calib_countries, n_calibration, SEED + 1), make_tasks(test_countries, n_test, SEED + 2)


def gold_operands(task: dict[str, Any]) -> tuple[float, str, float]:
    """``(a, operation, b)`` of the calculator call that answers ``task`` (from the real tool's record)."""
    facts = json.loads(country_facts(task["country"]))
    text = task["task"]
    if text.startswith("What is the population of"):
        return float(facts["population"]), "divide", 1000.0
    if text.startswith("What is the area of"):
        return float(facts["area"]), "divide", 100.0
    if text.startswith("How many people live per square kilometre"):
        return float(facts["population"]), "divide", float(facts["area"])
    raise ValueError(f"unknown agent task kind: {text!r}")


def conversation(task: dict[str, Any], step: int) -> list[Any]:
    """The messages of LLM call ``step`` (1: the task; 2: plus a correct lookup and its real result;
    3: plus a correct calculator call and its real result, before the final answer)."""
    from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

    messages: list[Any] = [SystemMessage(SYSTEM), HumanMessage(task["task"])]
    if step >= 2:
        call = {"name": "country_facts", "args": {"country": task["country"]}, "id": "call_1", "type": "tool_call"}
        messages += [AIMessage("", tool_calls=[call]),
                     ToolMessage(country_facts(task["country"]), tool_call_id="call_1", name="country_facts")]
    if step == 3:
        a, operation, b = gold_operands(task)
        call = {"name": "calculator", "args": {"a": a, "operation": operation, "b": b}, "id": "call_2",
                "type": "tool_call"}
        messages += [AIMessage("", tool_calls=[call]),
                     ToolMessage(calculator(a, operation, b), tool_call_id="call_2", name="calculator")]
    return messages


def _same(x: Any, y: float) -> bool:
    try:
        return math.isclose(float(x), y, rel_tol=1e-9, abs_tol=1e-9)
    except (TypeError, ValueError):
        return False


def call_is_right(task: dict[str, Any], step: int, call: dict[str, Any]) -> bool:
    """Whether one parsed tool call (LangChain ``{"name", "args"}``) is the right call for ``step``."""
    args = call.get("args") or {}
    if step == 1:
        wanted = country_facts(task["country"])
        return call["name"] == "country_facts" and "no country" not in wanted and \
            country_facts(str(args.get("country", ""))) == wanted
    a, operation, b = gold_operands(task)
    return (call["name"] == "calculator" and str(args.get("operation", "")).strip().lower() == operation
            and _same(args.get("a"), a) and _same(args.get("b"), b))


# -- the real LangChain path, with the judged Generation recorded ----------------------------------
class RecordingRule:
    """A rule that defers like ``base`` and keeps every generation the engine asks it about.

    The engine calls the rule with the whole small-tier generation before its tool-call check, so
    ``seen[-1]`` is exactly what the cascade judged. ``first_step_only`` is False so that it sees
    the whole answer (with tools bound the answer is buffered until judged anyway).

    Example:
        >>> from cascade_core import ThresholdRule
        >>> RecordingRule(ThresholdRule("margin", 0.0)).first_step_only
        False
    """

    def __init__(self, base: Any) -> None:
        self.base = base
        self.seen: list[Any] = []

    @property
    def first_step_only(self) -> bool:
        return False

    @property
    def first_step_tokens(self) -> tuple[str, ...]:
        return tuple(self.base.first_step_tokens)

    def decide(self, generation: Any) -> Any:
        self.seen.append(generation)
        return self.base.decide(generation)


def make_llm(small: Any, rule: Any, tool_choice: str | None = None, large: Any = None) -> Any:
    """``ChatCascade`` with the workload's two tools bound; the large tier is a scripted stand-in
    unless ``large`` is given."""
    from cascade_core.testing import ScriptedModel
    from langchain_cascade import ChatCascade

    if large is None:
        large = ScriptedModel("(large-tier stand-in)", name="large-stand-in")
    # generous time limits: on a shared 2-core machine a first token can take longer than the 10 s default
    return ChatCascade(small=small, large=large, rule=rule, max_tokens=MAX_TOKENS, small_timeout=300.0,
                       large_timeout=300.0, deadline=None).bind_tools([country_facts, calculator],
                                                                      tool_choice=tool_choice)


def scores_of(generation: Any) -> dict[str, float | None]:
    """The least sure call's name margin and argument quantile (None: no call found in the text)."""
    from cascade_core.decide.tool_uncertainty import tool_call_uncertainty

    calls = tool_call_uncertainty(generation) if generation is not None else []
    if not calls:
        return {NAME: None, ARGS: None}
    return {NAME: min(c.name_margin for c in calls), ARGS: min(c.arguments_quantile for c in calls)}


def run_call(llm: Any, recorder: RecordingRule, task: dict[str, Any], step: int) -> dict[str, Any]:
    """One LLM call through ``ChatCascade``: what the small tier wrote, the decision, scores and label."""
    before = len(recorder.seen)
    started = time.perf_counter()
    message = llm.invoke(conversation(task, step))
    seconds = time.perf_counter() - started
    meta = message.response_metadata["cascade"]
    generation = recorder.seen[-1] if len(recorder.seen) > before else None
    kept = meta["tier"] == 0
    invalid = not kept and "tool call rejected" in str(meta["reason"])
    calls = [{"name": c["name"], "args": c["args"]} for c in message.tool_calls] if kept else []
    return {
        "country": task["country"], "task": task["task"], "step": step, "seconds": round(seconds, 2),
        "text": generation.text if generation is not None else None, "tier": meta["tier"], "reason": meta["reason"],
        "kind": "valid_call" if calls else "invalid_call" if invalid else "no_call" if kept else "other_deferral",
        "tool_calls": calls, "right": bool(calls) and all(call_is_right(task, step, c) for c in calls),
        **scores_of(generation), "_generation": generation,
    }


# -- choosing and applying ToolCallRule ------------------------------------------------------------
def _candidates(values: Sequence[float]) -> list[float | None]:
    distinct = sorted(set(values))
    return [None] + [(lo + hi) / 2 for lo, hi in itertools.pairwise(distinct)]


def defers(row: dict[str, Any], name_t: float | None, args_t: float | None) -> bool:
    """Whether ``ToolCallRule`` with these thresholds defers this (parse-valid) call."""
    if name_t is None and args_t is None:
        return False
    from cascade_core import ThresholdRule
    from cascade_core.decide.tool_uncertainty import ToolCallRule

    rule = ToolCallRule(ThresholdRule("margin", 0.0), name_threshold=name_t, arguments_threshold=args_t)
    return rule.decide(row["_generation"]).defer


def outcome(rows: list[dict[str, Any]], name_t: float | None, args_t: float | None) -> dict[str, int]:
    """Counts over the valid small-tier calls (the ones parse-only acceptance keeps)."""
    valid = [r for r in rows if r["kind"] == "valid_call"]
    deferred = [r for r in valid if defers(r, name_t, args_t)]
    return {"valid_calls": len(valid), "right": sum(r["right"] for r in valid),
            "wrong": sum(not r["right"] for r in valid),
            "wrong_kept_before": sum(not r["right"] for r in valid),
            "wrong_kept_after": sum(not r["right"] for r in valid) - sum(not r["right"] for r in deferred),
            "right_lost": sum(r["right"] for r in deferred), "deferred_after": len(deferred)}


def choose_thresholds(rows: list[dict[str, Any]], max_loss: float) -> dict[str, Any]:
    """Best (name, arguments) thresholds on calibration rows (see the module docstring)."""
    valid = [r for r in rows if r["kind"] == "valid_call"]
    best: tuple | None = None
    for name_t in _candidates([r[NAME] for r in valid if r[NAME] is not None]):
        for args_t in _candidates([r[ARGS] for r in valid if r[ARGS] is not None]):
            counts = outcome(valid, name_t, args_t)
            if counts["right_lost"] > max_loss * counts["right"]:
                continue
            key = (-(counts["wrong"] - counts["wrong_kept_after"]), counts["right_lost"],
                   (name_t is not None) + (args_t is not None))
            if best is None or key < best[0]:
                best = (key, name_t, args_t, counts)
    assert best is not None  # (None, None) loses nothing
    return {"name_threshold": best[1], "arguments_threshold": best[2], "calibration": best[3]}


def auroc(rows: list[dict[str, Any]], key: str) -> float | None:
    """AUROC of a score for telling right from wrong valid calls (None: one class is empty)."""
    pairs = [(r[key], r["right"]) for r in rows if r["kind"] == "valid_call" and r[key] is not None]
    right = [s for s, ok in pairs if ok]
    wrong = [s for s, ok in pairs if not ok]
    if not right or not wrong:
        return None
    wins = sum((r > w) + 0.5 * (r == w) for r in right for w in wrong)
    return wins / (len(right) * len(wrong))


# -- running, reporting ----------------------------------------------------------------------------
def collect(llm: Any, recorder: RecordingRule, tasks: list[dict[str, Any]], label: str,
            cache: Path | None = None) -> list[dict[str, Any]]:
    """Both calls of every task; with ``cache`` (JSON lines, generation included) calls already
    recorded there are read back instead of run again, and new ones are appended (a long run resumes)."""
    from tqdm import tqdm

    from cascade_core.evaluation.collect import generation_from_dict, generation_to_dict

    done: dict[tuple, dict[str, Any]] = {}
    if cache is not None and cache.exists():
        for line in cache.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            row["_generation"] = generation_from_dict(row.pop("generation")) if row.get("generation") else None
            done[(row["task"], row["step"])] = row
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    for task in tqdm(tasks, desc=label, unit="task"):
        for step in (1, 2):
            row = done.get((task["task"], step))
            if row is None:
                row = run_call(llm, recorder, task, step)
                if cache is not None:
                    gen = row["_generation"]
                    record = {k: v for k, v in row.items() if not k.startswith("_")}
                    record["generation"] = generation_to_dict(gen) if gen is not None else None
                    with cache.open("a", encoding="utf-8") as out:
                        out.write(json.dumps(record, default=str) + "\n")
            rows.append(row)
    return rows


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def summarise(rows: list[dict[str, Any]], name_t: float | None, args_t: float | None) -> dict[str, Any]:
    counts = outcome(rows, name_t, args_t)
    kinds = {k: sum(r["kind"] == k for r in rows) for k in ("valid_call", "invalid_call", "no_call", "other_deferral")}
    return {"llm_calls": len(rows), **kinds, **counts, f"auroc_{NAME}": auroc(rows, NAME),
            f"auroc_{ARGS}": auroc(rows, ARGS)}


def table(test: dict[str, dict[str, Any]], refs: dict[str, dict[str, dict[str, int]]]) -> str:
    """Markdown table: one column per group of test calls; ``refs``: fixed settings' outcomes."""
    labels = [
        ("LLM calls (small tier first)", "llm_calls"),
        ("small tier wrote a valid tool call (kept by parse-only acceptance)", "valid_call"),
        ("... of which right / wrong", None),
        ("invalid tool call (deferred by the parse check, before and after)", "invalid_call"),
        ("no tool call (plain text, kept; not a tool call, so ToolCallRule leaves it to the base rule)", "no_call"),
        ("**wrong calls kept BEFORE** (parse-only)", "wrong_kept_before"),
        ("**wrong calls kept AFTER** (ToolCallRule, calibrated)", "wrong_kept_after"),
        ("right calls lost to deferral (AFTER, calibrated)", "right_lost"),
        ("AUROC right vs wrong: tool-name margin", f"auroc_{NAME}"),
        ("AUROC right vs wrong: argument quantile (α=0)", f"auroc_{ARGS}"),
    ]
    cols = list(test)
    lines = ["| test split | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    for label, key in labels:
        if key is None:
            cells = [f"{test[c]['right']} / {test[c]['wrong']}" for c in cols]
        elif key.startswith("auroc"):
            cells = [_fmt(test[c][key]) for c in cols]
        else:
            cells = [str(test[c][key]) for c in cols]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    for label, by_group in refs.items():
        cells = [f"{by_group[c]['wrong_kept_after']} / {by_group[c]['right_lost']}" for c in cols]
        lines.append(f"| wrong kept / right lost with {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def report(calib_rows: list[dict], test_rows: list[dict], max_loss: float) -> dict[str, Any]:
    chosen = choose_thresholds(calib_rows, max_loss)
    name_t, args_t = chosen["name_threshold"], chosen["arguments_threshold"]
    groups = {"all calls": test_rows, "call 1 (country_facts)": [r for r in test_rows if r["step"] == 1],
              "call 2 (calculator)": [r for r in test_rows if r["step"] == 2]}
    test = {label: summarise(rows, name_t, args_t) for label, rows in groups.items()}
    refs = {ref: {label: outcome(rows, *thresholds) for label, rows in groups.items()}
            for ref, thresholds in REFERENCE.items()}
    return {"thresholds": chosen, "calibration": summarise(calib_rows, name_t, args_t), "test": test,
            "reference": refs, "table": table(test, refs)}


def _publish(args: argparse.Namespace, result: dict[str, Any], calib_rows: list[dict], test_rows: list[dict]) -> None:
    """Print the table; unless ``--tiny``, store the run under its tool choice in the results JSON."""
    thresholds = result["thresholds"]
    n_cal, n_test = len(calib_rows) // 2, len(test_rows) // 2
    print(f"\n## Tool-call uncertainty, Qwen2.5-Coder-0.5B small tier, tool_choice={args.tool_choice}: "
          f"{n_test} test tasks ({len(test_rows)} calls), {n_cal} calibration tasks\n")
    print(f"ToolCallRule chosen on calibration (max right-call loss {args.max_loss:.0%}): "
          f"name_threshold={thresholds['name_threshold']}, arguments_threshold={thresholds['arguments_threshold']}; "
          f"calibration: {thresholds['calibration']}\n")
    print(result["table"], "\n")
    if args.tiny:
        for row in calib_rows + test_rows:
            print(f"  step {row['step']} {row['country']} {row['seconds']}s: {row['kind']} right={row['right']} "
                  f"name={_fmt(row[NAME])} args={_fmt(row[ARGS])} {row['text']!r}")
        return
    strip = [{k: v for k, v in r.items() if not k.startswith("_")} for r in calib_rows + test_rows]
    path = harness.RESULTS_DIR / "tool_call_uncertainty.json"
    saved = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    saved[f"tool_choice={args.tool_choice}"] = {
        "small": "Qwen2.5-Coder-0.5B-Instruct (llama.cpp, top_k=5, greedy)", "max_tokens": MAX_TOKENS,
        "calibration_tasks": n_cal, "test_tasks": n_test, "max_loss": args.max_loss,
        "selection": "max wrong calibration calls deferred s.t. right calls lost <= max_loss",
        **result, "rows": {"calibration": strip[:len(calib_rows)], "test": strip[len(calib_rows):]}}
    print(f"wrote {save('tool_call_uncertainty', saved)}")


def main(argv: list[str] | None = None) -> int:
    parser = harness.parser(__doc__, threads=2, threads_help="llama.cpp server threads", quiet=False,
                            tiny="2 calibration + 2 test tasks, nothing saved")
    parser.add_argument("--calibration", type=int, default=None, help="calibration tasks (default 12)")
    parser.add_argument("--limit", type=int, default=None, help="test tasks (default 30: the agent workload's)")
    parser.add_argument("--tool-choice", choices=["auto", "any"], default="auto",
                        help="auto: as the agent workload; any: the small tier must call a tool on both calls")
    parser.add_argument("--max-loss", type=float, default=0.1, help="share of right calibration calls ToolCallRule may defer")
    parser.add_argument("--cache", type=Path, default=None, help="JSON-lines file of recorded calls (resume)")
    args = parser.parse_args(argv)
    n_cal, n_test = args.calibration or (2 if args.tiny else 12), args.limit or (2 if args.tiny else 30)
    harness.set_threads(1)
    from cascade_core import ThresholdRule
    from cascade_core.backends.llamacpp import serve_embedded

    calib, test = split_tasks(n_cal, n_test)
    server = serve_embedded("medium", threads=args.threads)
    try:
        small = server.openai_model(top_k=5, max_new_tokens=MAX_TOKENS)
        recorder = RecordingRule(ThresholdRule("margin", 0.0))
        llm = make_llm(small, recorder, None if args.tool_choice == "auto" else args.tool_choice)
        calib_rows, test_rows = (collect(llm, recorder, calib, "calibration", args.cache),
                                 collect(llm, recorder, test, "test", args.cache))
    finally:
        server.stop()
    seconds = sum(r["seconds"] for r in calib_rows + test_rows)  # of the small-tier calls, as recorded (cache too)
    result = {**report(calib_rows, test_rows, args.max_loss), "call_seconds": round(seconds, 1)}
    _publish(args, result, calib_rows, test_rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
