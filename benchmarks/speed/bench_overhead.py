"""Benchmark 1: the cascade wrapper's overhead on a query the small tier keeps.

``Cascade.invoke`` (small tier kept, large tier a scripted stub) vs the same local model's raw
``model.generate`` on the same prompt, greedy, the same number of new tokens (the count the
cascade produced, forced with ``min_new_tokens``). Both run interleaved, prompt by prompt, with
the same torch thread count, ``--repeats`` times; per prompt the fastest of the repeats is kept
(the least disturbed by other jobs on a shared machine) and the ratio of the sums is printed.
Target: <= 1.03x.

    python -m benchmarks.speed.bench_overhead [--queries 12] [--max-new-tokens 32] [--repeats 3]
"""

from __future__ import annotations

import torch
from tqdm import tqdm

from benchmarks import harness
from cascade_core import Cascade, Request, ThresholdRule
from cascade_core.testing import ScriptedModel


def raw_generate(small, prompt: str, new_tokens: int) -> None:
    ids = small.tokenizer(prompt, return_tensors="pt")
    with torch.inference_mode():
        small.model.generate(
            **ids, do_sample=False, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
            pad_token_id=small.tokenizer.eos_token_id, top_p=None, top_k=None, temperature=None,
        )


def main(argv: list[str] | None = None) -> dict[str, float]:
    p = harness.parser(__doc__)
    harness.add_run_size(p, queries=12, max_new_tokens=32)
    args = harness.parse_and_pin(p, argv)
    small = harness.small_model(args.tiny, max_new_tokens=args.max_new_tokens)
    cascade = Cascade([small, ScriptedModel("stub")], rules=ThresholdRule("margin", 0.0))  # keeps every answer
    requests = [Request.from_prompt(t) for t in harness.prompts(args.tiny, args.queries)]
    counts = []
    for request in requests:  # warm-up, and the number of tokens each answer has
        result = cascade.invoke(request)
        assert not result.deferred
        counts.append(result.generation.usage.output_tokens)
    raw = [float("inf")] * len(requests)
    wrapped = [float("inf")] * len(requests)
    rows = [i for _ in range(args.repeats) for i in range(len(requests))]
    for i in tqdm(rows, desc="overhead", disable=args.quiet):
        raw[i] = min(raw[i], harness.seconds(raw_generate, small, small.render(requests[i]), counts[i]))
        wrapped[i] = min(wrapped[i], harness.seconds(cascade.invoke, requests[i]))
    t_raw, t_cascade, tokens = sum(raw), sum(wrapped), sum(counts)
    ratio = t_cascade / t_raw
    print(f"machine: {harness.machine()}")
    print(f"model: {small.model_name}; {len(requests)} prompts, {tokens} new tokens, fastest of {args.repeats} runs each")
    print(f"raw model.generate: {t_raw / tokens * 1000:.2f} ms/token")
    print(f"Cascade.invoke (kept): {t_cascade / tokens * 1000:.2f} ms/token")
    print(f"wrapper cost per token: {(t_cascade - t_raw) / tokens * 1e6:+.0f} us")
    print(f"overhead ratio Cascade.invoke / model.generate: {ratio:.3f}x (target <= 1.03x)")
    return {"ratio": ratio}


if __name__ == "__main__":
    main()
