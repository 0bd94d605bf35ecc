"""Run every tier over the public BIG-bench tasks once and write the caches every method is judged on.

    python -m benchmarks.public.collect --fit 60 --test 100          # a pilot
    python -m benchmarks.public.collect --fit 200 --test 300         # resumes: only new ids run
    python -m benchmarks.public.collect --tiers qwen15 &             # one tier per process and core ...
    taskset -c 1 python -m benchmarks.public.collect --tiers smollm2 qwen05   # ... then a run joins
    python -m benchmarks.public.collect --tasks world_facts rag --tiers smollm2 qwen15 --runs runs/inhouse

Tiers (all llama.cpp servers on 127.0.0.1, few-shot completion prompts through ``/v1/completions``):
SmolLM2-135M and Qwen2.5-Coder-0.5B small (top-20 log-probs per token), Qwen2.5-Coder-1.5B large.
Each tier's answers are cached per task and split (``runs/public/<task>/<tier>.<split>.jsonl``), then
joined per small tier into collection caches ``<small>.<split>.cache.jsonl`` for ``cascade fit/eval``.
``--tasks world_facts rag`` runs the in-house workloads the same way (``harness.INHOUSE``: world_facts'
few-shot QA, the RAG workload's one-sentence answers in chat format).
"""

from __future__ import annotations

import json
import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

from benchmarks.public import harness  # noqa: E402


def collect_task(task: str, args: object) -> dict[str, object]:
    """Every tier over one task's fit and test records; the joined caches; a one-line summary."""
    folder = harness.task_folder(args.runs, task)
    records = harness.splits(task, args.fit, args.test)
    rows: dict[tuple[str, str], dict] = {}
    tiers = (*harness.SMALL_TIERS, harness.LARGE_TIER)
    for name in sorted(tiers, key=lambda t: t not in args.tiers):  # our own tiers first, then read the others'
        for split, recs in records.items():
            cache = harness.TierCache(folder / f"{name}.{split}.jsonl")
            rows[name, split] = (harness.run_tier(name, recs, cache, threads=args.threads, quiet=args.quiet,
                                                  settings=harness.workload(task))
                                 if name in args.tiers else cache.rows())
    complete = {name for name in (*harness.SMALL_TIERS, harness.LARGE_TIER)
                if all(r["id"] in rows[name, split] for split, recs in records.items() for r in recs)}
    labels = records["test"][0].get("labels")
    summary: dict[str, object] = {"task": task, "fit": len(records["fit"]), "test": len(records["test"])}
    for small in harness.SMALL_TIERS:
        if not {small, harness.LARGE_TIER} <= complete:
            continue  # joined by the run that finishes the pair
        tokens = harness.label_first_tokens(small, labels, args.threads) if labels else None
        for split, recs in records.items():
            harness.join(recs, rows[small, split], rows[harness.LARGE_TIER, split],
                         folder / f"{small}.{split}.cache.jsonl", tokens)
    for name in sorted(complete, key=(*harness.SMALL_TIERS, harness.LARGE_TIER).index):
        test = [rows[name, "test"][r["id"]] for r in records["test"]]
        summary[name] = round(sum(r["quality"] for r in test) / len(test), 3)
        summary[name + "_s"] = round(sum(r["seconds"] for r in test) / len(test), 3)
    return summary


def main(argv: list[str] | None = None) -> int:
    p = harness.parser(__doc__)
    p.add_argument("--tiers", nargs="+", choices=sorted(harness.TIERS), default=sorted(harness.TIERS),
                   help="tiers this process runs (default: all); pairs are joined once both caches are complete")
    args = p.parse_args(argv)
    started = time.perf_counter()
    summaries = []
    try:
        for task in harness.task_names(args):
            summaries.append(collect_task(task, args))
            print(json.dumps(summaries[-1]), flush=True)
    finally:
        harness.stop_servers()
    args.runs.mkdir(parents=True, exist_ok=True)
    (args.runs / "collect_summary.json").write_text(json.dumps(summaries, indent=1), encoding="utf-8")
    print(f"wall time {time.perf_counter() - started:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
