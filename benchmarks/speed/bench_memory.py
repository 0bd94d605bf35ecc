"""Memory checks: top-k recording vs ``output_scores=True``, and ``abatch`` memory growth.

1. A long generation (``--tokens``, default 1,000) with the cascade's step stream, which keeps
   only each step's top-k, vs ``model.generate(output_scores=True)``, which keeps the full
   vocabulary's scores per step. Each runs in a fresh child process; the peak RSS increase over
   the child's own warmed-up baseline is printed, and the bytes each keeps per generated token
   (the steps' Python objects, traced with ``tracemalloc``; the score tensors' ``nbytes``).
2. ``Cascade.abatch`` over ``--calls`` requests (default 200 and 2,000; batched prefill, margin
   rule at the median score: about half of the answers kept, scripted large tier), each in a fresh child process: peak RSS
   must grow with the results kept, not without bound. This check uses the tiny from-config model
   (the engine's and the KV-cache slicing's memory do not depend on the model's size, and 2,000
   real prefills would take most of an hour on a shared 2-core machine).

    python -m benchmarks.speed.bench_memory [--tokens 1000] [--calls 200 2000]
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import subprocess
import sys
import tracemalloc

from benchmarks import harness


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def child_generation(args) -> dict[str, float]:
    import torch

    from cascade_core import Request

    small = harness.small_model(args.tiny, max_new_tokens=args.tokens)
    prompt = harness.prompts(True, 1)[0] if args.tiny else "Once upon a time, in a small village by the sea,"
    list(small.stream_steps(Request.from_prompt(prompt, max_new_tokens=2)))  # warm-up: allocator, caches
    ids = small.tokenizer(small.render(Request.from_prompt(prompt)), return_tensors="pt")
    with torch.inference_mode():
        small.model.generate(**ids, max_new_tokens=2, do_sample=False, pad_token_id=small.tokenizer.eos_token_id)
    baseline = peak_rss_mb()
    kept_bytes = 0
    if args.child == "topk":
        tracemalloc.start()  # the Python objects the recording keeps (steps, alternatives, strings)
        steps = list(small.stream_steps(Request.from_prompt(prompt)))[:-1]  # what a Generation keeps
        kept_bytes = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        tokens = len(steps)
    else:
        with torch.inference_mode():
            out = small.model.generate(
                **ids, max_new_tokens=args.tokens, min_new_tokens=args.tokens, do_sample=False, output_scores=True,
                return_dict_in_generate=True, pad_token_id=small.tokenizer.eos_token_id, top_p=None, top_k=None, temperature=None,
            )
        tokens = len(out.scores)
        kept_bytes = sum(t.nbytes for t in out.scores)
    return {"tokens": tokens, "baseline_mb": baseline, "increase_mb": peak_rss_mb() - baseline, "kept_bytes": kept_bytes}


def child_abatch(args) -> dict[str, float]:
    from cascade_core import Cascade, Request, ThresholdRule
    from cascade_core.testing import ScriptedModel

    small = harness.small_model(True, max_new_tokens=4)
    texts = harness.prompts(True, args.calls[0])
    probe = Cascade([small, ScriptedModel("stub")], rules=ThresholdRule("margin", 0.0))
    scores = [r.decision.score for r in asyncio.run(probe.abatch([Request.from_prompt(t) for t in texts[:32]]))]
    median = sorted(scores)[len(scores) // 2]  # about half of the answers kept, half deferred
    cascade = Cascade([small, ScriptedModel("stub")], rules=ThresholdRule("margin", median), max_concurrency=16)
    baseline = peak_rss_mb()
    results = asyncio.run(cascade.abatch([Request.from_prompt(t) for t in texts]))
    kept = sum(not r.deferred for r in results)
    return {"calls": len(results), "kept": kept, "baseline_mb": baseline, "increase_mb": peak_rss_mb() - baseline}


def spawn(*argv: str) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-m", __spec__.name, *argv], check=True, capture_output=True, text=True,
                         env=os.environ, cwd=harness.ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> dict[str, float]:
    p = harness.parser(__doc__)
    p.add_argument("--tokens", type=int, default=1000)
    p.add_argument("--calls", type=int, nargs="+", default=[200, 2000])
    p.add_argument("--child", choices=["topk", "scores", "abatch"], help=argparse_hidden())
    args = harness.parse_and_pin(p, argv)
    if args.child:
        fn = child_abatch if args.child == "abatch" else child_generation
        print(json.dumps(fn(args)))
        return {}
    common = ["--threads", str(args.threads)] + (["--tiny"] if args.tiny else [])
    print(f"machine: {harness.machine()}")
    topk = spawn("--child", "topk", "--tokens", str(args.tokens), *common)
    scores = spawn("--child", "scores", "--tokens", str(args.tokens), *common)
    print(f"generation of {args.tokens} tokens ({'tiny' if args.tiny else 'SmolLM2-135M'}), peak RSS increase over a warm baseline:")
    for name, r in (("top-k steps (cascade)", topk), ("output_scores=True", scores)):
        per_token = r["increase_mb"] * 2**20 / max(r["tokens"], 1)
        kept = r["kept_bytes"] / max(r["tokens"], 1) / 1024
        print(f"  {name:>22}: {r['increase_mb']:8.1f} MB peak RSS for {r['tokens']} tokens ({per_token / 1024:.1f} KiB/token); "
              f"kept: {kept:.1f} KiB/token")
    ratio = (scores["kept_bytes"] / scores["tokens"]) / max(topk["kept_bytes"] / max(topk["tokens"], 1), 1e-9)
    print(f"  output_scores / top-k, kept bytes per token: {ratio:.0f}x")
    rows = {n: spawn("--child", "abatch", "--calls", str(n), *common) for n in args.calls}
    print("abatch (tiny model, batched prefill, margin at the median score), peak RSS increase over a warm baseline:")
    for n, r in rows.items():
        print(f"  {n:>6} calls ({r['kept']} kept): {r['increase_mb']:7.1f} MB  ({r['increase_mb'] * 1024 / n:.1f} KiB/call)")
    return {"scores_over_topk": ratio, **{f"abatch_{n}_mb": r["increase_mb"] for n, r in rows.items()}}


def argparse_hidden() -> str:
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    main()
