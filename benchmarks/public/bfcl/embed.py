"""The small model's prompt embeddings of the sampled BFCL questions: what the pre-generation router reads.

    python -m benchmarks.public.bfcl.embed --fit 10 --test 25        # the sample `run` used (same seed)

The router embeds what the engine's route stage embeds: ``Request.prompt_text``, the contents of the
question's messages joined by newlines (the bound tools are not part of it), with Qwen2.5-Coder-0.5B's
GGUF on a llama.cpp server in embedding mode (one prefill, no token generated; batches of
``benchmarks.public.embed.BATCH``, the first ``TIMED`` also alone: their seconds are the router's cost
per question). Writes ``<runs>/<category>/qwen05.prompt_embedding.npz`` (``ids``, ``embedding``,
``tokens``, ``seconds``); a category whose file already covers every sampled id is skipped.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from benchmarks.public import harness  # noqa: E402
from benchmarks.public.bfcl.data import CATEGORIES, Question  # noqa: E402
from benchmarks.public.bfcl.run import RUNS, SEED, SMALL, questions  # noqa: E402


def prompt_text(question: Question) -> str:
    """What the route stage embeds for this question (``Request.prompt_text`` of its messages)."""
    return "\n".join(m["content"] for m in question.messages)


def embedding_path(runs: Path, category: str) -> Path:
    return runs / category / f"{SMALL}.prompt_embedding.npz"


def main(argv: list[str] | None = None) -> int:
    from benchmarks.public.embed import embed_texts
    from cascade_core.backends.llamacpp import serve_embedded

    p = harness.parser(__doc__)
    p.set_defaults(fit=30, test=50, runs=RUNS)
    p.add_argument("--categories", nargs="*", default=list(CATEGORIES), choices=CATEGORIES)
    p.add_argument("--seed", type=int, default=SEED, help="sample seed (default %(default)s)")
    args = p.parse_args(argv)
    started = time.perf_counter()
    sample = questions(args.categories, args.fit, args.test, args.seed)
    server = None
    try:
        for category, splits in sample.items():
            out = embedding_path(args.runs, category)
            asked = [q for qs in splits.values() for q in qs]
            if out.exists() and set(np.load(out)["ids"]) >= {q.id for q in asked}:
                continue
            server = server or serve_embedded(harness.TIERS[SMALL][0], threads=args.threads, n_ctx=4096, embedding=True)
            emb, tokens, seconds = embed_texts(server.base_url, server.alias, [prompt_text(q) for q in asked],
                                               args.quiet, f"{SMALL} {category}")
            out.parent.mkdir(parents=True, exist_ok=True)
            np.savez(out, ids=np.array([q.id for q in asked]), embedding=emb, tokens=np.array(tokens),
                     seconds=np.array(seconds))
            print(f"{category}: {len(asked)} questions, {np.mean(tokens):.0f} tokens, {np.mean(seconds):.3f} s each",
                  flush=True)
    finally:
        if server is not None:
            server.stop()
    print(f"wall time {time.perf_counter() - started:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
