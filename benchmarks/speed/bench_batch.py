"""Benchmark 5(a): throughput of ``batch`` / ``abatch`` with a local transformers small tier.

For N = 1, 4, 16, 64 queries, queries/s of
- ``loop``: ``Cascade.invoke`` one query after another (the baseline every ratio is against),
- ``threads``: ``Cascade.batch`` without batched prefill (``max_batch_size=1``): N requests through
  a thread pool of N workers, as before batched prefill existed,
- ``batched``: ``Cascade.batch`` with batched prefill (groups of ``max_batch_size``, one padded
  forward each; kept answers then decode one by one),
- ``abatched``: the same through ``Cascade.abatch``,
for first-token-margin deferrals (every query defers after its first step; 2-shot prompts of ~45
tokens, and question-only prompts of ~15 tokens) and for kept answers (every answer kept; answers
end at the newline). The large tier is a scripted
stub, so only the small tier's work is timed. Target: batched >= 3x loop at N = 16 on 2 cores.
Torch runs single-threaded by default (``--threads 2`` to use both cores in every forward).

    python -m benchmarks.speed.bench_batch [--sizes 1 4 16 64] [--threads 1] [--cases margin/question]
"""

from __future__ import annotations

import asyncio
import time

from tqdm import tqdm

from benchmarks import harness
from cascade_core import Cascade, Request, ThresholdRule
from cascade_core.testing import ScriptedModel

#: case -> (margin threshold, prompt style): a threshold of 1 always defers, 0 never does
CASES = {
    "margin/few-shot": (1.0, "few-shot"),
    "margin/question": (1.0, "question"),
    "kept/few-shot": (0.0, "few-shot"),
}


def run(mode: str, cascade: Cascade, requests: list[Request]) -> list:
    if mode == "loop":
        return [cascade.invoke(r) for r in requests]
    if mode == "abatched":
        return asyncio.run(cascade.abatch(requests, max_concurrency=len(requests)))
    return cascade.batch(requests, max_concurrency=len(requests))


def main(argv: list[str] | None = None) -> dict[str, float]:
    p = harness.parser(__doc__)
    p.add_argument("--sizes", type=int, nargs="+", default=[1, 4, 16, 64])
    p.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    p.add_argument("--max-new-tokens", type=int, default=8)
    p.add_argument("--max-batch-size", type=int, default=16)
    args = harness.parse_and_pin(p, argv)
    batched = harness.small_model(args.tiny, max_new_tokens=args.max_new_tokens, max_batch_size=args.max_batch_size)
    unbatched = harness.small_model(args.tiny, max_new_tokens=args.max_new_tokens, max_batch_size=1)
    unbatched.model, unbatched.tokenizer = batched.model, batched.tokenizer  # the same weights
    modes = {"loop": unbatched, "threads": unbatched, "batched": batched, "abatched": batched}
    print(f"machine: {harness.machine()}")
    print(f"model: {batched.model_name}; max_new_tokens={args.max_new_tokens}, max_batch_size={args.max_batch_size}")
    ratios: dict[str, float] = {}
    for case in args.cases:
        threshold, style = CASES[case]
        requests = [Request.from_prompt(t, stop=("\n",)) for t in harness.prompts(args.tiny, max(args.sizes), style)]
        cascades = {m: Cascade([model, ScriptedModel("stub")], rules=ThresholdRule("margin", threshold)) for m, model in modes.items()}
        run("loop", cascades["loop"], requests[:2])  # warm-up
        print(f"\n{case} ({'every query defers after its first step' if threshold else 'every answer kept'}, {style} prompts):")
        print(f"{'N':>4}  " + "  ".join(f"{m + ' q/s':>13}" for m in modes) + "  " + "  ".join(f"{m + '/loop':>14}" for m in list(modes)[1:]))
        for n in tqdm(args.sizes, desc=case, disable=args.quiet, leave=False):
            rates, decisions = {}, {}
            for mode in modes:
                started = time.perf_counter()
                results = run(mode, cascades[mode], requests[:n])
                rates[mode] = n / (time.perf_counter() - started)
                decisions[mode] = [(r.tier, r.text) for r in results]
            assert all(d == decisions["loop"] for d in decisions.values()), "batched decisions differ from the loop's"
            line = f"{n:>4}  " + "  ".join(f"{rates[m]:>13.2f}" for m in modes) + "  "
            line += "  ".join(f"{rates[m] / rates['loop']:>13.2f}x" for m in list(modes)[1:])
            tqdm.write(line)
            for m in list(modes)[1:]:
                ratios[f"{case}:{m}/{n}"] = rates[m] / rates["loop"]
    return ratios


if __name__ == "__main__":
    main()
