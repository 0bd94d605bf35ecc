"""The main job: a cascade over the bundled world-facts QA set with the embedded default models.

Run ``make demo`` (or ``python -m cascade_core.cli.demo``). It

1. starts two llama.cpp servers on 127.0.0.1 (offline, verified GGUFs): SmolLM2-135M-Instruct as the
   small tier (few-shot prompts on ``/v1/completions``, with top-k log-probs) and
   Qwen2.5-Coder-1.5B-Instruct (11x its parameters) as the large tier (the same few-shot prompt on
   ``/v1/completions``; ``--large-format chat`` sends it as a chat message instead);
2. calibrates the first-token-margin threshold on the *calibration* split to a target deferral
   rate (small model only, one decoding step per question — no labels needed);
3. runs the cascade on the *test* split, printing per question which tier answered and the
   deciding score; also runs each model alone on every question for the baselines;
4. prints accuracy of small-only, large-only and the cascade, the deferral rate, and the cost of
   the cascade versus sending everything to the large model (stand-in prices, see
   :data:`cascade_core.backends.defaults.DEFAULT_PRICES`) and the measured compute time.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

from tqdm.auto import tqdm

from cascade_core.cli.tiers import LARGE_FORMATS, TIER_SPEC_HELP, build_tier
from cascade_core.decide.rules import ThresholdRule
from cascade_core.decide.thresholds import FixedThreshold, calibrate_threshold
from cascade_core.engine.cascade import Cascade, Tier
from cascade_core.engine.steps import read_steps
from cascade_core.evaluation.datasets.world_facts import (
    QAExample,
    few_shot_prompt,
    is_correct,
    load_world_facts,
)
from cascade_core.types import Generation, Request

__all__ = ["DemoRow", "main", "run_demo"]

STOP = ("\n",)
MAX_NEW_TOKENS = 8


@dataclass(frozen=True)
class DemoRow:
    """One test question: what each configuration answered and whether it was right."""

    example: QAExample
    tier: int
    score: float | None
    small_correct: bool
    large_correct: bool
    cascade_correct: bool
    cascade_cost: float
    all_large_cost: float
    cascade_seconds: float
    large_seconds: float


def _request(example: QAExample, max_new_tokens: int = MAX_NEW_TOKENS) -> Request:
    return Request.from_prompt(few_shot_prompt(example), stop=STOP, max_new_tokens=max_new_tokens)


def calibrate(cascade: Cascade, examples: Sequence[QAExample], deferral_rate: float) -> float:
    """Margin threshold deferring ``deferral_rate`` of the calibration questions (one step each)."""
    small, scorer = cascade.tiers[0].model, cascade.rules[0].scorer  # type: ignore[attr-defined]
    scores = []
    for example in tqdm(examples, desc="calibrating", unit="q", leave=False):
        first = read_steps(small.stream_steps(_request(example, max_new_tokens=1)))
        scores.append(scorer(Generation("", first.steps)))
    return calibrate_threshold(scores, deferral_rate=deferral_rate)


def run_demo(cascade: Cascade, examples: Sequence[QAExample], *, echo: bool = True) -> list[DemoRow]:
    """Run the cascade and both baselines on ``examples``; print one line per question."""
    small, large = cascade.tiers[0].model, cascade.tiers[-1].model
    large_pricing = cascade.tiers[-1].pricing
    rows = []
    bar = tqdm(examples, desc="cascade", unit="q")
    for example in bar:
        request = _request(example)
        result = cascade.invoke(request)
        cascade_seconds = sum(run.latency_s for run in result.runs)
        # baselines: reuse the cascade's answers where it has them, run the rest
        small_text = result.text if result.tier == 0 else small.complete(request).text
        if result.tier == len(cascade.tiers) - 1:
            large_text, large_seconds, all_large = result.text, result.runs[-1].latency_s, result.runs[-1].cost
        else:
            started = time.perf_counter()
            completion = large.complete(request)
            large_seconds = time.perf_counter() - started
            large_text, all_large = completion.text, large_pricing.cost(completion.usage)
        row = DemoRow(
            example=example,
            tier=result.tier,
            score=result.decision.score if result.decision else None,
            small_correct=is_correct(small_text, example),
            large_correct=is_correct(large_text, example),
            cascade_correct=is_correct(result.text, example),
            cascade_cost=result.cost,
            all_large_cost=all_large,
            cascade_seconds=cascade_seconds,
            large_seconds=large_seconds,
        )
        rows.append(row)
        if echo:
            tier = "small" if result.tier == 0 else "LARGE"
            score = f"{row.score:.3f}" if row.score is not None else "  n/a"
            mark = "ok " if row.cascade_correct else "bad"
            bar.write(f"[{tier}] margin={score} {mark} {example.question} -> {result.text.strip()!r} (gold {example.answer!r})")
    return rows


def summarize(rows: Sequence[DemoRow], threshold: float) -> str:
    """The summary table printed at the end of the demo."""
    n = len(rows)
    deferred = sum(r.tier > 0 for r in rows)
    cost, all_large = sum(r.cascade_cost for r in rows), sum(r.all_large_cost for r in rows)
    secs, large_secs = sum(r.cascade_seconds for r in rows), sum(r.large_seconds for r in rows)

    def acc(key: str) -> str:
        return f"{sum(getattr(r, key) for r in rows) / n:.3f}"

    lines = [
        "",
        f"questions: {n}   threshold (first-token margin): {threshold:.4f}",
        f"accuracy   small only: {acc('small_correct')}   large only: {acc('large_correct')}   cascade: {acc('cascade_correct')}",
        f"deferral rate: {deferred / n:.3f} ({deferred}/{n} questions went to the large model)",
        f"cost (stand-in prices): cascade {cost:.3e} vs all-large {all_large:.3e}  -> saved {1 - cost / all_large:.1%}"
        if all_large > 0 else "cost: n/a",
        f"compute time (measured): cascade {secs:.1f}s vs all-large {large_secs:.1f}s"
        + (f"  -> {secs / large_secs:.0%} of it" if large_secs > 0 else ""),
    ]
    large_acc = sum(r.large_correct for r in rows)
    if large_acc and all_large > 0 and large_secs > 0:
        lines.append(
            f"the cascade reaches {sum(r.cascade_correct for r in rows) / large_acc:.0%} of large-only accuracy "
            f"at {secs / large_secs:.0%} of its compute time and {cost / all_large:.0%} of its price"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m cascade_core.cli.demo`` / ``make demo`` / ``cascade demo``."""
    parser = argparse.ArgumentParser(prog="cascade demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=48, help="test questions (spread over attributes)")
    parser.add_argument("--calibration", type=int, default=40, help="calibration questions")
    parser.add_argument("--deferral-rate", type=float, default=0.3, help="target deferral rate for calibration")
    parser.add_argument("--seed", type=int, default=0, help="split seed")
    parser.add_argument("--quiet", action="store_true", help="no per-question lines")
    parser.add_argument("--small", default="llamacpp:small", help=f"small tier: {TIER_SPEC_HELP}")
    parser.add_argument("--large", default="embedded", help=f"large tier: {TIER_SPEC_HELP}")
    parser.add_argument("--large-format", default="auto", choices=list(LARGE_FORMATS),
                        help="how the large tier is prompted (auto: the few-shot completion prompt on llama.cpp)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    from cascade_core.backends.defaults import DEFAULT_PRICES

    print("starting the models (llama.cpp servers on 127.0.0.1; GGUFs verified by sha256) ...", flush=True)
    small = build_tier(args.small, "small", max_new_tokens=MAX_NEW_TOKENS, prompt_format="completion")
    large = build_tier(args.large, "large", max_new_tokens=MAX_NEW_TOKENS, prompt_format="completion",
                       large_format=args.large_format)
    draft = Cascade([Tier(small, DEFAULT_PRICES["small"]), Tier(large, DEFAULT_PRICES["large"])])
    threshold = calibrate(draft, load_world_facts("calibration", seed=args.seed, limit=args.calibration), args.deferral_rate)
    cascade = Cascade(
        [Tier(small, DEFAULT_PRICES["small"]), Tier(large, DEFAULT_PRICES["large"])],
        rules=ThresholdRule("margin", FixedThreshold(threshold)),
    )
    rows = run_demo(cascade, load_world_facts("test", seed=args.seed, limit=args.limit), echo=not args.quiet)
    print(summarize(rows, threshold))
    return 0


if __name__ == "__main__":
    sys.exit(main())
