"""Benchmark: what a deferred query costs on the small tier, with and without early exit.

With the first-token-margin rule the cascade decides after the small model's first decoding step
and closes its stream, so a deferral wastes one prefill + one step. A whole-answer rule (Chow-Sum)
must let the small model finish first. This prints the measured small-tier time of a deferred
query under each rule and their ratio, in one run, with the embedded SmolLM2 (small) on this
machine. The large tier is a scripted stub so only the small tier's cost is measured.

    python benchmarks/bench_early_exit.py [--queries 20] [--max-new-tokens 32]
"""

from __future__ import annotations

import argparse
import statistics
import time

from cascade_core import Cascade, Request, ThresholdRule
from cascade_core.datasets.world_facts import few_shot_prompt, load_world_facts
from cascade_core.defaults import default_small_model
from cascade_core.testing import ScriptedModel


def small_seconds(cascade: Cascade, requests: list[Request]) -> list[float]:
    times = []
    for request in requests:
        started = time.perf_counter()
        result = cascade.invoke(request)
        times.append(time.perf_counter() - started)
        assert result.deferred, "the benchmark forces every query to defer"
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    args = parser.parse_args()
    small = default_small_model(prompt_format="completion", max_new_tokens=args.max_new_tokens)
    large = ScriptedModel("stub")
    # thresholds that always defer, so both runs measure a deferred query
    early = Cascade([small, large], rules=ThresholdRule("margin", 1.0))
    late = Cascade([small, large], rules=ThresholdRule("chow_sum", 0.0))
    requests = [Request.from_prompt(few_shot_prompt(e)) for e in load_world_facts("test", limit=args.queries)]
    small_seconds(early, requests[:2])  # warm-up
    t_early = small_seconds(early, requests)
    t_late = small_seconds(late, requests)
    print(f"queries: {len(requests)}, max_new_tokens: {args.max_new_tokens}")
    print(f"deferred query, margin rule (early exit): median {statistics.median(t_early) * 1000:.0f} ms")
    print(f"deferred query, chow_sum rule (full answer): median {statistics.median(t_late) * 1000:.0f} ms")
    print(f"ratio full/early: {statistics.median(t_late) / statistics.median(t_early):.1f}x")


if __name__ == "__main__":
    main()
