"""Benchmark: the latency a pre-generation router saves on a request it routes away (docs/routing.md).

A routed-away request costs one small-model prefill (the prompt embedding the router reads) and the
large tier's answer; a request the cascade defers costs the small tier's generation and the same
large answer. This prints, measured in one run and interleaved query by query (the fastest of
``--repeats`` runs per query kept), the seconds per request through ``Cascade.invoke`` of:

- **routed**: an embedding router whose threshold routes every request away
  (``QueryRouter(threshold=1.0)``, fitted on the same prompts' real embeddings: its weights do not
  change the cost);
- **deferred, margin**: no router, a first-token-margin rule that defers every request (the engine
  stops the small model after its first step, so the deferral costs one prefill + one step);
- **deferred, full answer**: no router, a Chow-Sum rule that defers every request (the small model
  writes its whole answer, up to ``--max-new-tokens``, before the rule reads it);
- **kept**: the small tier's answer kept (no large call), for scale.

``--tiny`` (a from-config model) is what the tests run (``tests/core/test_benchmarks.py``).

Small tier: the embedded SmolLM2-135M in transformers with ``--threads`` threads (its
``prompt_embedding`` is the router's embedder). The large tier is a scripted stand-in: a routed and a
deferred request send the large tier the same call, so the difference between them is all on the small
side — and a real server would bias the comparison (llama.cpp's prompt cache answers the second path
to send a prompt faster than the first). Add the large tier's own seconds for end-to-end latency.

    python -m benchmarks.speed.bench_routing [--queries 12] [--repeats 3] [--max-new-tokens 10]
"""

from __future__ import annotations

import numpy as np
from tqdm import tqdm

from benchmarks import harness
from cascade_core import Cascade, Request, ThresholdRule
from cascade_core.decide.router import QueryRouter
from cascade_core.testing import ScriptedModel

NAMES = ("routed", "deferred, margin", "deferred, full answer", "kept")


def routed_everything(small: object, prompts: list[str]) -> QueryRouter:
    """An embedding router that routes every request away (threshold 1.0 > any p_good below 1)."""
    embeddings = np.stack([small.prompt_embedding(p) for p in prompts])  # type: ignore[attr-defined]
    tokens = np.array([len(small.tokenizer(p)["input_ids"]) for p in prompts])  # type: ignore[attr-defined]
    labels = np.arange(len(prompts)) % 2  # both classes; the weights do not change what a request costs
    return QueryRouter(C=1.0, threshold=1.0).fit(embeddings, tokens, labels)


def main(argv: list[str] | None = None) -> dict[str, float]:
    p = harness.parser(__doc__)
    harness.add_run_size(p, queries=12, max_new_tokens=10)
    args = harness.parse_and_pin(p, argv)
    small = harness.small_model(args.tiny, max_new_tokens=args.max_new_tokens)
    large = ScriptedModel("stub")
    texts = harness.prompts(args.tiny, args.queries)
    router = routed_everything(small, texts)
    cascades = {
        "routed": Cascade([small, large], rules=ThresholdRule("margin", 0.0), router=router),
        "deferred, margin": Cascade([small, large], rules=ThresholdRule("margin", 1.0)),
        "deferred, full answer": Cascade([small, large], rules=ThresholdRule("chow_sum", 0.0)),
        "kept": Cascade([small, large], rules=ThresholdRule("margin", 0.0)),
    }
    requests = [Request.from_prompt(t, max_new_tokens=args.max_new_tokens, stop=("\n",)) for t in texts]

    def run(name: str, request: Request) -> None:
        result = cascades[name].invoke(request)
        routed = result.decision is not None and result.decision.signal == "routed"
        expected = {"routed": (True, 1), "kept": (False, 0)}.get(name, (False, 1))
        assert (routed, result.tier) == expected, f"{name}: got routed={routed}, tier={result.tier}"

    for name in NAMES:  # warm-up (first calls load kernels)
        run(name, requests[0])
    best = {name: [float("inf")] * len(requests) for name in NAMES}
    for i in tqdm([i for _ in range(args.repeats) for i in range(len(requests))], desc="routing", disable=args.quiet):
        for name in NAMES:
            best[name][i] = min(best[name][i], harness.seconds(run, name, requests[i]))
    per = {name: float(np.mean(best[name])) for name in NAMES}
    print(f"machine: {harness.machine()}")
    print(f"small: {small.model_name}; large: a scripted stand-in; {len(requests)} queries, "
          f"fastest of {args.repeats} each, max_new_tokens={args.max_new_tokens}")
    for name in NAMES:
        print(f"  {name:>22}: {per[name] * 1000:8.1f} ms/request")
    out = {
        "routed_over_deferred_margin": per["routed"] / per["deferred, margin"],
        "routed_over_deferred_full": per["routed"] / per["deferred, full answer"],
        "saved_ms_vs_margin": (per["deferred, margin"] - per["routed"]) * 1000,
        "saved_ms_vs_full": (per["deferred, full answer"] - per["routed"]) * 1000,
    }
    print(f"routed / deferred (margin, early exit): {out['routed_over_deferred_margin']:.3f}x "
          f"({out['saved_ms_vs_margin']:+.1f} ms saved per request)")
    print(f"routed / deferred (full small answer):  {out['routed_over_deferred_full']:.3f}x "
          f"({out['saved_ms_vs_full']:+.1f} ms saved per request)")
    return out


if __name__ == "__main__":
    main()
