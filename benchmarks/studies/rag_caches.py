"""Two-tier caches of the RAG workload, for the learned-rule diagnostics (issue 12's second workload).

    python -m benchmarks.studies.rag_caches                          # 400 questions: 160 fit / 240 test, ~45 min
    python -m benchmarks.studies.learned_diagnostics --fit runs/rag/rag.fit.cache.jsonl \\
        --test runs/rag/rag.test.cache.jsonl --field kind --out-dir docs/figures/learned_rag

Questions are the RAG workload's (``countryinfo`` records, six kinds: capital, currency code, subregion,
calling code, top-level domain, demonym) with the country's own record as context and the answer asked
for in one sentence — the prompts of ``length_bias.py``, so answers run 5 to ~40 tokens and the
length effect of paper A can show. Both tiers are real and run on llama.cpp servers on 127.0.0.1:
SmolLM2-135M-Instruct (small, chat template, top-5 log-probs) and Qwen2.5-Coder-1.5B-Instruct (large).
An answer is right when it contains a gold answer as a whole word (the workload's scorer).

The split is by question order (the questions are shuffled with a fixed seed): the first ``--fit``
questions are the fit split, the rest the test split. Collection is resumable (one cache per split).
"""

from __future__ import annotations

import os
from pathlib import Path

from benchmarks import harness
from benchmarks.studies.length_bias import build_records, quality

LIMIT, FIT, SEED = 400, 160, 11  # questions in all, the fit split's share (the first FIT), the question seed


def main(argv: list[str] | None = None) -> int:
    parser = harness.parser(__doc__, threads=None, tiny=None, quiet=False)
    parser.add_argument("--limit", type=int, default=LIMIT, help="questions in all")
    parser.add_argument("--fit", type=int, default=FIT, help="the first FIT questions form the fit split")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--small-threads", type=int, default=1)
    parser.add_argument("--large-threads", type=int, default=2)
    parser.add_argument("--max-new-tokens", type=int, default=40)
    parser.add_argument("--out-dir", default=str(harness.ROOT / "runs" / "rag"))
    args = parser.parse_args(argv)
    if not 0 < args.fit < args.limit:
        parser.error(f"--fit must be between 1 and --limit - 1, got {args.fit}")
    from cascade_core.cli.tiers import build_tier
    from cascade_core.evaluation.collect import collect_records

    small = build_tier("llamacpp:small", "small", top_k=5, max_new_tokens=args.max_new_tokens,
                       prompt_format="chat", threads=args.small_threads)
    large = build_tier("llamacpp:large", "large", max_new_tokens=args.max_new_tokens, threads=args.large_threads)
    records = build_records(args.limit, args.seed)
    out = Path(args.out_dir)
    for name, part in (("fit", records[:args.fit]), ("test", records[args.fit:])):
        examples = collect_records(part, small, large, cache_path=out / f"rag.{name}.cache.jsonl",
                                   max_new_tokens=args.max_new_tokens, quality=quality)
        small_acc = sum(e.small_quality for e in examples) / len(examples)
        large_acc = sum(e.large_quality or 0.0 for e in examples) / len(examples)
        print(f"{name}: {len(examples)} questions, small accuracy {small_acc:.3f}, large accuracy {large_acc:.3f}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    raise SystemExit(main())
