"""Every sampled BFCL question through ``ChatCascade.bind_tools(tools).invoke`` — both tiers recorded.

    python -m benchmarks.public.bfcl.run --fit 30 --test 50                 # per category, seeded
    python -m benchmarks.public.bfcl.run --tiny                             # 1 + 1 per category, a smoke run
    taskset -c 0 python -m benchmarks.public.bfcl.run --categories simple_python parallel --llamaindex 4
    python -m benchmarks.public.bfcl.report                                 # the table, from the caches

Tiers: Qwen2.5-Coder-0.5B small (``qwen05``) and Qwen2.5-Coder-1.5B large (``qwen15``), each on its own
llama.cpp server (``benchmarks.public.harness.server``, ``--threads`` each), chat format, greedy.
Per question the same messages and BFCL tools go through two real LangChain calls:

* **small**: ``ChatCascade(small=qwen05, large=<stand-in>, rule=RecordingRule(parse-only))`` — the
  small tier answers with top-20 log-probs, the engine checks its tool calls against the schemas;
  ``RecordingRule`` keeps the exact ``Generation`` it judged. A call that fails the schema check is
  deferred (kind ``invalid_call``) and counts as wrong for the small tier alone.
* **large**: ``ChatCascade(small=<always-deferring stand-in>, large=qwen15)`` — the large tier gets
  the tools natively (llama.cpp's Jinja template); calls it writes as text are recovered by the core.

Both answers are scored by BFCL's ``ast_checker`` (irrelevance: right iff no call). Rows are cached
as JSON lines under ``<runs>/<category>/<tier>.<split>.jsonl`` (resumable: ids already there are
skipped; categories and splits are interleaved, so a cut-off run leaves every cell usable).
``--llamaindex N`` also runs the first N test questions of each category through
``CascadeLLM.achat_with_tools`` (qwen05 → qwen15, parse-only) into ``<category>/llamaindex.test.jsonl``
(before the main run). ``--stop-at`` (unix time) starts no question after it: every cached row is whole.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

from benchmarks.public import harness  # noqa: E402
from benchmarks.public.bfcl.data import CATEGORIES, Question, load_category, sample_ids  # noqa: E402
from benchmarks.public.bfcl.scoring import score_calls  # noqa: E402
from benchmarks.public.bfcl.tools import to_openai_tool  # noqa: E402

SMALL, LARGE = "qwen05", harness.LARGE_TIER
MAX_TOKENS = 160  # a parallel answer holds up to four calls; Qwen writes digits one token each
SEED = 23
RUNS = Path("runs/bfcl")


def questions(categories: Sequence[str], n_fit: int, n_test: int, seed: int = SEED) -> dict[str, dict[str, list[Question]]]:
    """The seeded fit/test sample of each category."""
    out = {}
    for category in categories:
        by_id = {q.id: q for q in load_category(category)}
        ids = sample_ids(list(by_id), n_fit=n_fit, n_test=n_test, seed=seed)
        out[category] = {split: [by_id[i] for i in chosen] for split, chosen in ids.items()}
    return out


def schedule(sample: dict[str, dict[str, list[Question]]]) -> Iterator[tuple[str, Question]]:
    """``(split, question)`` over every category and split, interleaved in proportion to their sizes."""
    items = [(split, i, len(qs), q) for cat in sample.values() for split, qs in cat.items() for i, q in enumerate(qs)]
    for split, _, _, q in sorted(items, key=lambda t: ((t[1] + 0.5) / t[2], t[3].category, t[0])):
        yield split, q


def _calls(message: Any) -> list[dict[str, Any]]:
    return [{"name": c["name"], "args": c["args"]} for c in message.tool_calls]


LIMITS: dict[str, Any] = {"max_tokens": MAX_TOKENS, "small_timeout": 600.0, "large_timeout": 600.0, "deadline": None}


def small_cascade(name: str, threads: int) -> tuple[Any, Any]:
    """(ChatCascade whose small tier is ``name`` and whose large tier is a stand-in, its RecordingRule)."""
    from benchmarks.studies.tool_call_uncertainty import RecordingRule
    from cascade_core import ThresholdRule
    from cascade_core.testing import ScriptedModel
    from langchain_cascade import ChatCascade

    small = harness.server(name, threads).openai_model(top_k=harness.TOP_K, max_new_tokens=MAX_TOKENS,
                                                       prompt_format="chat")
    recorder = RecordingRule(ThresholdRule("margin", 0.0))  # parse-only: keeps every answer whose calls are valid
    llm = ChatCascade(small=small, large=ScriptedModel("(large-tier stand-in)", name="large-stand-in"),
                      rule=recorder, **LIMITS)
    return llm, recorder


def build(threads: int) -> tuple[Any, Any, Any]:
    """(small-tier ChatCascade, large-tier ChatCascade, the small tier's RecordingRule)."""
    from cascade_core import ThresholdRule
    from cascade_core.testing import ScriptedModel
    from langchain_cascade import ChatCascade

    large = harness.server(LARGE, threads).openai_model(top_k=0, max_new_tokens=MAX_TOKENS, prompt_format="chat")
    small_llm, recorder = small_cascade(SMALL, threads)
    # a scripted small tier whose margin (0.5 - 0.4) is always below 1.0: every call goes to the large tier
    large_llm = ChatCascade(small=ScriptedModel("(stand-in)", confidence=0.5, name="small-stand-in"), large=large,
                            rule=ThresholdRule("margin", 1.0), **LIMITS)
    return small_llm, large_llm, recorder


def small_row(llm: Any, recorder: Any, question: Question, tier: str = SMALL) -> dict[str, Any]:
    """The small tier's answer through ``ChatCascade``, its generation and BFCL's verdict."""
    from cascade_core.evaluation.collect import generation_to_dict

    tools = [to_openai_tool(f) for f in question.functions]
    before = len(recorder.seen)
    started = time.perf_counter()
    message = llm.bind_tools(tools).invoke(list(question.messages))
    seconds = time.perf_counter() - started
    meta = message.response_metadata["cascade"]
    generation = recorder.seen[-1] if len(recorder.seen) > before else None
    kept = meta["tier"] == 0
    calls = _calls(message) if kept else []
    kind = "valid_call" if calls else "no_call" if kept else (
        "invalid_call" if "tool call rejected" in str(meta["reason"]) else "other_deferral")
    score = score_calls(question, calls)
    if kind in ("invalid_call", "other_deferral"):
        score = type(score)(False, kind)
    usage = generation.usage if generation is not None else None
    return {"id": question.id, "tier": tier, "kind": kind, "calls": calls, "reason": str(meta["reason"]),
            "text": generation.text if generation is not None else "", "quality": float(score.valid),
            "error_type": score.error_type, "seconds": round(seconds, 3),
            "usage": [usage.input_tokens, usage.output_tokens] if usage else [0, 0],
            "generation": generation_to_dict(generation) if generation is not None else None}


def large_row(llm: Any, question: Question) -> dict[str, Any]:
    """The large tier's answer through ``ChatCascade`` (the stand-in always defers) and BFCL's verdict."""
    tools = [to_openai_tool(f) for f in question.functions]
    started = time.perf_counter()
    message = llm.bind_tools(tools).invoke(list(question.messages))
    seconds = time.perf_counter() - started
    calls = _calls(message)
    score = score_calls(question, calls)
    usage = message.usage_metadata or {}
    return {"id": question.id, "tier": LARGE, "kind": "valid_call" if calls else "no_call", "calls": calls,
            "text": message.text, "quality": float(score.valid), "error_type": score.error_type,
            "seconds": round(seconds, 3),
            "usage": [int(usage.get("input_tokens") or 0), int(usage.get("output_tokens") or 0)]}


def llamaindex_row(llm: Any, question: Question) -> dict[str, Any]:
    """One question through ``CascadeLLM.achat_with_tools`` (a real qwen05 → qwen15 cascade, parse-only)."""
    from llama_index.core.llms import ChatMessage

    from cascade_core.types import ToolSpec
    from llamaindex_cascade._convert import to_llama_tools

    specs = [ToolSpec(t["function"]["name"], t["function"]["description"], t["function"]["parameters"])
             for t in map(to_openai_tool, question.functions)]
    history = [ChatMessage(role=m["role"], content=m["content"]) for m in question.messages]
    started = time.perf_counter()
    response = asyncio.run(llm.achat_with_tools(to_llama_tools(specs), chat_history=history))
    seconds = time.perf_counter() - started
    calls = [{"name": c.tool_name, "args": c.tool_kwargs} for c in llm.get_tool_calls_from_response(
        response, error_on_no_tool_call=False)]
    meta = response.additional_kwargs.get("cascade") or {}
    score = score_calls(question, calls)
    return {"id": question.id, "tier": meta.get("tier"), "reason": str(meta.get("reason", "")), "calls": calls,
            "text": response.message.content or "", "quality": float(score.valid), "error_type": score.error_type,
            "seconds": round(seconds, 3)}


def build_llamaindex(threads: int) -> Any:
    from cascade_core import ThresholdRule
    from llamaindex_cascade import CascadeLLM

    small = harness.server(SMALL, threads).openai_model(top_k=harness.TOP_K, max_new_tokens=MAX_TOKENS,
                                                        prompt_format="chat")
    large = harness.server(LARGE, threads).openai_model(top_k=0, max_new_tokens=MAX_TOKENS, prompt_format="chat")
    return CascadeLLM(small=small, large=large, rule=ThresholdRule("margin", 0.0), max_tokens=MAX_TOKENS,
                      small_timeout=600.0, large_timeout=600.0, deadline=None)


def collect(sample: dict[str, dict[str, list[Question]]], runs: Path, threads: int, *, quiet: bool = False,
            stop_at: float | None = None) -> int:
    """Run both tiers on every scheduled question not yet cached; returns the rows written."""
    from tqdm.auto import tqdm

    caches = {(cat, split, tier): harness.TierCache(runs / cat / f"{tier}.{split}.jsonl")
              for cat in sample for split in ("fit", "test") for tier in (SMALL, LARGE)}
    done = {key: set(cache.rows()) for key, cache in caches.items()}
    todo = [(split, q) for split, q in schedule(sample)
            if q.id not in done[q.category, split, SMALL] or q.id not in done[q.category, split, LARGE]]
    if not todo:
        return 0
    small_llm, large_llm, recorder = build(threads)
    written = 0
    for split, q in tqdm(todo, desc="bfcl", unit="q", disable=quiet):
        if stop_at is not None and time.time() > stop_at:
            break
        try:
            if q.id not in done[q.category, split, SMALL]:
                caches[q.category, split, SMALL].append(small_row(small_llm, recorder, q))
            if q.id not in done[q.category, split, LARGE]:
                caches[q.category, split, LARGE].append(large_row(large_llm, q))
        except Exception as err:  # noqa: BLE001 - one failed question is retried by the next run, not fatal
            tqdm.write(f"{q.id}: {type(err).__name__}: {str(err)[:200]} (not cached; a rerun retries it)")
            continue
        written += 1
    return written


def collect_llamaindex(sample: dict[str, dict[str, list[Question]]], runs: Path, threads: int, n: int,
                       stop_at: float | None = None) -> int:
    if n <= 0:
        return 0
    llm, written = None, 0
    for cat, splits in sample.items():
        cache = harness.TierCache(runs / cat / "llamaindex.test.jsonl")
        have = cache.rows()
        for q in splits["test"][:n]:
            if q.id in have or (stop_at is not None and time.time() > stop_at):
                continue
            llm = llm or build_llamaindex(threads)
            cache.append(llamaindex_row(llm, q))
            written += 1
    return written


def collect_small_only(sample: dict[str, dict[str, list[Question]]], runs: Path, threads: int, name: str, n: int,
                       stop_at: float | None = None) -> int:
    """Another small tier alone (e.g. SmolLM2-135M) on the first ``n`` test questions of each category."""
    llm: Any = None
    written = 0
    for cat, splits in sample.items():
        cache = harness.TierCache(runs / cat / f"{name}.test.jsonl")
        have = cache.rows()
        for q in splits["test"][:n]:
            if q.id in have or (stop_at is not None and time.time() > stop_at):
                continue
            if llm is None:
                llm, recorder = small_cascade(name, threads)
            cache.append(small_row(llm, recorder, q, tier=name))
            written += 1
    return written


def main(argv: list[str] | None = None) -> int:
    p = harness.parser(__doc__)
    p.set_defaults(fit=30, test=50, runs=RUNS)
    p.add_argument("--tiny", action="store_true", help="1 fit + 1 test question per category, a smoke run")
    p.add_argument("--categories", nargs="*", default=list(CATEGORIES), choices=CATEGORIES)
    p.add_argument("--seed", type=int, default=SEED, help="sample seed (default %(default)s)")
    p.add_argument("--llamaindex", type=int, default=0, help="test questions per category through CascadeLLM")
    p.add_argument("--also-small", choices=[t for t in harness.SMALL_TIERS if t != SMALL], default=None,
                   help="another small tier measured alone on --also-n test questions per category")
    p.add_argument("--also-n", type=int, default=10, help="test questions per category for --also-small")
    p.add_argument("--stop-at", type=float, default=None, help="unix time after which no new question starts")
    args = p.parse_args(argv)
    n_fit, n_test = (1, 1) if args.tiny else (args.fit, args.test)
    sample = questions(args.categories, n_fit, n_test, args.seed)
    started = time.perf_counter()
    try:
        # the CascadeLLM subset first: it is small, and a run cut off by --stop-at still shows that path
        li = collect_llamaindex(sample, args.runs, args.threads, 1 if args.tiny else args.llamaindex, args.stop_at)
        if args.also_small:
            li += collect_small_only(sample, args.runs, args.threads, args.also_small, args.also_n, args.stop_at)
        written = collect(sample, args.runs, args.threads, quiet=args.quiet, stop_at=args.stop_at)
    finally:
        harness.stop_servers()
    print(f"{written} questions (+{li} through CascadeLLM / the other small tier) in {time.perf_counter() - started:.0f} s; caches in {args.runs}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
