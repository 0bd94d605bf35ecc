"""Agent workload: LangChain ``create_agent`` and LlamaIndex ``FunctionAgent`` with real tools and real models.

    make workload-agent                                  # 30 test tasks (+10 calibration), both frameworks
    python -m benchmarks.studies.workload_agent --tiny           # 3 + 3 tasks, a smoke run
    python -m benchmarks.studies.workload_agent --framework langchain --configs large,qwen05-t0,qwen05-cal

Two tools: ``country_facts(country)`` looks a country up in the installed ``countryinfo`` package
(capital, population, area, region), ``calculator(a, operation, b)`` does one arithmetic operation.
Tasks are drawn with a fixed seed from the same package data ("population of X divided by 1000,
rounded" and the like); the gold answer is computed from the record, and an answer is right when a
number in the agent's final message is within 1 % (or 1) of it. Calibration tasks use other countries.

Configurations (``--configs``):
  large        all-large: every LLM call answered by Qwen2.5-Coder-1.5B (llama.cpp server). Run as the
               cascade with threshold 1.0 so the large tier's text-written tool calls are recovered the
               same way in every configuration (the bare ``ChatOpenAI``/``OpenAILike`` clients get Qwen's
               ```json blocks as plain content and stop); its small tier spends one scored step per call.
  smollm2-t0   SmolLM2-135M small tier with threshold 0: kept unless its tool call is invalid.
  smollm2-cal  SmolLM2-135M cascade at the margin threshold calibrated on the calibration tasks.
  qwen05-t0    Qwen2.5-Coder-0.5B (own llama.cpp server, ``top_k=5``) as the small tier, threshold 0.
  qwen05-cal   Qwen2.5-Coder-0.5B cascade, calibrated.
Reports task success, LLM calls, the share the small tier answered, measured seconds and stand-in cost;
writes ``benchmarks/results/agent_<framework>.json``.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable
from typing import Any

from benchmarks import harness
from benchmarks.studies.workloads_common import (
    Tally,
    llama_server,
    load_countries,
    markdown_table,
    numbers_in,
    save,
    split_countries,
    timed,
)

SEED = 20
SYSTEM = ("Always use the tools and do not explain your steps. First call country_facts, then call calculator "
          "with the numbers it returned. After the calculator's result, reply with the final number only.")
CONFIGS = ["large", "smollm2-t0", "smollm2-cal", "qwen05-t0", "qwen05-cal"]
_RECORDS: dict[str, dict[str, Any]] = {}


def _records() -> dict[str, dict[str, Any]]:
    if not _RECORDS:
        for r in load_countries():
            for name in [r["name"], *r.get("altSpellings", [])]:
                _RECORDS.setdefault(name.lower(), r)
    return _RECORDS


def country_facts(country: str) -> str:
    """Look up a country's capital, population, area in square kilometres and region.

    Args:
        country: The country's name in English, e.g. "France".
    """
    record = _records().get(str(country).strip().lower())
    if record is None:
        return f"no country named {country!r}"
    return json.dumps({k: record.get(k) for k in ("name", "capital", "population", "area", "region")})


def calculator(a: float, operation: str, b: float) -> str:
    """Compute a <operation> b.

    Args:
        a: The first number.
        operation: One of "add", "subtract", "multiply", "divide".
        b: The second number.
    """
    ops: dict[str, Callable[[float, float], float]] = {
        "add": lambda x, y: x + y, "subtract": lambda x, y: x - y,
        "multiply": lambda x, y: x * y, "divide": lambda x, y: x / y}
    op = str(operation).strip().lower()
    if op not in ops:
        return f"unknown operation {operation!r}; use add, subtract, multiply or divide"
    try:
        return str(ops[op](float(a), float(b)))
    except (ValueError, ZeroDivisionError) as err:
        return f"error: {err}"


def make_tasks(records: list[dict[str, Any]], n: int, seed: int) -> list[dict[str, Any]]:
    kinds = [
        ("What is the population of {name} divided by 1000, rounded to a whole number?",
         lambda r: r["population"] / 1000),
        ("What is the area of {name} in square kilometres divided by 100, rounded to a whole number?",
         lambda r: r["area"] / 100),
        ("How many people live per square kilometre in {name} (population divided by area), rounded?",
         lambda r: r["population"] / r["area"]),
    ]
    rng = random.Random(seed)
    pairs = [(r, k) for r in records for k in range(3) if r.get("area") and r.get("population")]
    rng.shuffle(pairs)
    return [{"task": kinds[k][0].format(name=r["name"]), "gold": round(kinds[k][1](r)), "country": r["name"]}
            for r, k in pairs[:n]]


def is_correct(answer: str, gold: float) -> bool:
    return any(abs(x - gold) <= max(1.0, 0.01 * abs(gold)) for x in numbers_in(answer))


def _book(tally: Tally, item: dict, answer: str, metas: list[dict], seconds: float) -> None:
    ok = is_correct(answer, item["gold"])
    tally.items += 1
    tally.correct += int(ok)
    for meta in metas:
        tally.add_call(meta)
    invalid = sum(1 for m in metas if m["deferred"] and "tool" in str(m["reason"]).lower())
    tally.rows.append({**item, "answer": answer.strip()[:300], "correct": ok, "seconds": seconds,
                       "scores": [m["score"] for m in metas], "tiers": [m["tier"] for m in metas],
                       "reasons": [m["reason"] for m in metas], "invalid_small_calls": invalid})


def run_langchain(llm: Any, tally: Tally, items: list[dict]) -> None:
    from langchain.agents import create_agent
    from langchain_core.callbacks import BaseCallbackHandler
    from tqdm import tqdm

    class Calls(BaseCallbackHandler):
        def __init__(self) -> None:
            self.metas: list[dict] = []

        def on_llm_end(self, response: Any, **kwargs: Any) -> None:
            meta = response.generations[0][0].message.response_metadata.get("cascade")
            if meta is not None:
                self.metas.append(meta)

    agent = create_agent(model=llm, tools=[country_facts, calculator], system_prompt=SYSTEM)
    for item in tqdm(items, desc=tally.name, unit="task"):
        calls, started = Calls(), tally.seconds
        with timed(tally):
            try:
                state = agent.invoke({"messages": [("user", item["task"])]},
                                     config={"callbacks": [calls], "recursion_limit": 12})
                answer = state["messages"][-1].text
            except Exception as err:  # noqa: BLE001 - a failed task is a result (recursion limit, bad call)
                answer = f"<failed: {type(err).__name__}: {str(err)[:120]}>"
        _book(tally, item, answer, calls.metas, tally.seconds - started)


def run_llamaindex(llm: Any, tally: Tally, items: list[dict]) -> None:
    from llama_index.core.agent.workflow import AgentOutput, FunctionAgent
    from llama_index.core.tools import FunctionTool
    from tqdm import tqdm

    tools = [FunctionTool.from_defaults(fn=country_facts), FunctionTool.from_defaults(fn=calculator)]

    async def one(task: str) -> tuple[str, list[dict]]:
        agent = FunctionAgent(tools=tools, llm=llm, system_prompt=SYSTEM)
        handler = agent.run(user_msg=task, max_iterations=6)
        metas: list[dict] = []
        async for event in handler.stream_events():
            if isinstance(event, AgentOutput) and isinstance(event.raw, dict) and "cascade" in event.raw:
                metas.append(event.raw["cascade"])
        return str((await handler).response.content), metas

    for item in tqdm(items, desc=tally.name, unit="task"):
        started = tally.seconds
        with timed(tally):
            try:
                answer, metas = asyncio.run(one(item["task"]))
            except Exception as err:  # noqa: BLE001 - a failed task is a result (max iterations, bad call)
                answer, metas = f"<failed: {type(err).__name__}: {str(err)[:120]}>", []
        _book(tally, item, answer, metas, tally.seconds - started)


def langchain_large(large_server: Any, max_tokens: int) -> Any:
    """The large tier as LangChain users reach theirs: ``ChatOpenAI`` against the llama.cpp server, greedy."""
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(base_url=large_server.base_url, model=large_server.alias, api_key="x", temperature=0,
                      max_tokens=max_tokens, timeout=300, max_retries=1)


def make_llm(framework: str, small: Any, large_server: Any, threshold: float, max_tokens: int) -> Any:
    from cascade_core.backends.defaults import DEFAULT_PRICES

    small_price = DEFAULT_PRICES["medium" if "qwen" in getattr(small, "model_name", "").lower() else "small"]
    if framework == "langchain":
        from langchain_cascade import ChatCascade

        large = langchain_large(large_server, max_tokens)
        return ChatCascade(small=small, large=large, threshold=threshold, max_tokens=max_tokens,
                           small_pricing=small_price, large_pricing=DEFAULT_PRICES["large"])
    from llama_index.llms.openai_like import OpenAILike

    from llamaindex_cascade import CascadeLLM

    large = OpenAILike(model=large_server.alias, api_base=large_server.base_url, api_key="x", temperature=0.0,
                       max_tokens=max_tokens, is_chat_model=True, is_function_calling_model=True,
                       context_window=4096, timeout=300, max_retries=1)
    return CascadeLLM(small=small, large=large, threshold=threshold, small_pricing=small_price,
                      large_pricing=DEFAULT_PRICES["large"])


def main(argv: list[str] | None = None) -> int:
    from cascade_core.decide.thresholds import calibrate_threshold

    parser = harness.parser(
        __doc__, threads=None, quiet=False,
        tiny="3 test + 3 calibration tasks, nothing saved (with --limit/--calibration: those sizes)")
    parser.add_argument("--framework", choices=["langchain", "llamaindex", "both"], default="both")
    parser.add_argument("--configs", default=",".join(CONFIGS), help=f"comma-separated subset of {CONFIGS}")
    parser.add_argument("--limit", type=int, default=None, help="test tasks (default 30)")
    parser.add_argument("--calibration", type=int, default=None, help="calibration tasks (default 10)")
    parser.add_argument("--deferral-rate", type=float, default=0.3, help="target deferral rate on calibration")
    parser.add_argument("--max-tokens", type=int, default=64, help="tokens per LLM call, both tiers")
    args = parser.parse_args(argv)
    args.limit = args.limit or (3 if args.tiny else 30)
    args.calibration = args.calibration or (3 if args.tiny else 10)
    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    if unknown := set(configs) - set(CONFIGS):
        parser.error(f"unknown configs {sorted(unknown)}; choose from {CONFIGS}")
    harness.set_threads(1)
    from cascade_core.backends.defaults import default_small_model

    calib_countries, test_countries = split_countries(load_countries(), SEED, 40)
    calib, test = make_tasks(calib_countries, args.calibration, SEED + 1), make_tasks(test_countries, args.limit,
                                                                                     SEED + 2)
    smollm2 = default_small_model(max_new_tokens=args.max_tokens)
    frameworks = ["langchain", "llamaindex"] if args.framework == "both" else [args.framework]
    need_qwen05 = any(c.startswith("qwen05") for c in configs)
    with llama_server("large") as large_server:
        medium_ctx = llama_server("medium") if need_qwen05 else None
        medium = medium_ctx.__enter__() if medium_ctx else None
        try:
            for framework in frameworks:
                run = run_langchain if framework == "langchain" else run_llamaindex
                tallies: list[Tally] = []
                for config in configs:
                    if config.startswith("qwen05"):
                        small = medium.openai_model(top_k=5, max_new_tokens=args.max_tokens)
                        label = "Qwen-0.5B"
                    else:
                        small, label = smollm2, "SmolLM2-135M"
                    if config == "large":
                        tally = Tally("all large (Qwen-1.5B; threshold 1.0)", threshold=1.0)
                        run(make_llm(framework, small, large_server, 1.0, args.max_tokens), tally, test)
                    elif config.endswith("-t0"):
                        tally = Tally(f"{label} first, defers only invalid calls", threshold=0.0)
                        run(make_llm(framework, small, large_server, 0.0, args.max_tokens), tally, test)
                    else:
                        calibration = Tally(f"{label} calibration")
                        run(make_llm(framework, small, large_server, 0.0, args.max_tokens), calibration, calib)
                        scores = [s for row in calibration.rows for s in row["scores"] if s is not None]
                        threshold = float(calibrate_threshold(scores, deferral_rate=args.deferral_rate))
                        tally = Tally(f"{label} cascade, calibrated to {args.deferral_rate:.0%}", threshold=threshold)
                        run(make_llm(framework, small, large_server, threshold, args.max_tokens), tally, test)
                    tallies.append(tally)
                    if args.tiny:
                        for row in tally.rows:
                            print(f"  {row['task']} gold={row['gold']} -> {row['answer']!r} tiers={row['tiers']} "
                                  f"reasons={row['reasons']}")
                    table = markdown_table(tallies, "task success")
                    print(f"\n## Agent, {framework}: {len(test)} test tasks, {len(calib)} calibration tasks\n\n"
                          f"{table}\n", flush=True)
                    if not args.tiny:  # saved after every configuration: a long run keeps what it measured
                        save(f"agent_{framework}", {
                            "framework": framework, "tasks": len(test), "calibration_tasks": len(calib),
                            "max_tokens": args.max_tokens, "table": table,
                            "summaries": [t.summary() for t in tallies], "rows": {t.name: t.rows for t in tallies}})
        finally:
            if medium_ctx:
                medium_ctx.__exit__(None, None, None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
