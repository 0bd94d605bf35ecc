"""Benchmark 3: what a deferred query costs on the small tier, with and without early exit.

With the first-token-margin rule the cascade decides after the small model's first decoding step
and closes its stream, so a deferral should cost one prefill + one step. This prints, measured in
one run, interleaved query by query (the fastest of ``--repeats`` runs per query kept):
- a margin deferral through ``Cascade.invoke`` vs one raw prefill + first step alone (tokenize,
  one forward pass, log-softmax, top-k) of the same prompt — target <= 1.2x;
- the saving vs letting the small model finish first (a Chow-Sum deferral, which must generate
  the whole answer up to ``--max-new-tokens``).
The large tier is a scripted stub, so only the small tier's cost is measured.

    python -m benchmarks.speed.bench_early_exit [--queries 12] [--repeats 3] [--max-new-tokens 32]
"""

from __future__ import annotations

import torch
from tqdm import tqdm

from benchmarks import harness
from cascade_core import Cascade, Request, ThresholdRule
from cascade_core.testing import ScriptedModel


def raw_first_step(small, prompt: str) -> None:
    ids = small.tokenizer(prompt, return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        logits = small.model(input_ids=ids, use_cache=True, logits_to_keep=1).logits[0, -1].float()
        torch.topk(torch.log_softmax(logits, dim=-1), small.top_k)


def deferred(cascade: Cascade, request: Request) -> None:
    assert cascade.invoke(request).deferred, "the benchmark forces every query to defer"


def main(argv: list[str] | None = None) -> dict[str, float]:
    p = harness.parser(__doc__)
    harness.add_run_size(p, queries=12, max_new_tokens=32)
    args = harness.parse_and_pin(p, argv)
    small = harness.small_model(args.tiny, max_new_tokens=args.max_new_tokens)
    large = ScriptedModel("stub")
    # thresholds that always defer, so both rules measure a deferred query
    early = Cascade([small, large], rules=ThresholdRule("margin", 1.0))
    late = Cascade([small, large], rules=ThresholdRule("chow_sum", 0.0))
    requests = [Request.from_prompt(t) for t in harness.prompts(args.tiny, args.queries)]
    for request in requests[:2]:  # warm-up
        deferred(early, request)
        raw_first_step(small, small.render(request))
    names = ("raw prefill + step", "margin deferral", "chow_sum deferral")
    best = {name: [float("inf")] * len(requests) for name in names}
    rows = [i for _ in range(args.repeats) for i in range(len(requests))]
    for i in tqdm(rows, desc="early exit", disable=args.quiet):
        r = requests[i]
        for name, fn, arg in zip(names, (raw_first_step, deferred, deferred), ((small, small.render(r)), (early, r), (late, r))):
            best[name][i] = min(best[name][i], harness.seconds(fn, *arg))
    raw, early_t, late_t = (sum(best[n]) for n in names)
    print(f"machine: {harness.machine()}")
    print(f"model: {small.model_name}; {len(requests)} queries, fastest of {args.repeats} each, max_new_tokens={args.max_new_tokens}")
    for name in names:
        print(f"  {name:>18}: {sum(best[name]) / len(requests) * 1000:8.1f} ms/query")
    print(f"margin deferral / raw prefill+step: {early_t / raw:.3f}x (target <= 1.2x)")
    print(f"chow_sum deferral / margin deferral: {late_t / early_t:.1f}x (early exit saves {1 - early_t / late_t:.0%})")
    return {"early_over_raw": early_t / raw, "late_over_early": late_t / early_t}


if __name__ == "__main__":
    main()
