"""A 3-tier cascade (SmolLM2-135M -> Qwen2.5-Coder-0.5B -> Qwen2.5-Coder-1.5B) next to the 2-tier one.

Measured on the world-facts QA set with real models, each on its own llama.cpp server on 127.0.0.1
(judged tiers answer few-shot prompts on ``/v1/completions`` with top-5 log-probs; the last tier chats):

1. the first-token-margin thresholds are calibrated on the *calibration* split (one decoding step per
   question and judged tier, no labels): 2-tier — the small tier defers ``--rate2`` of the questions;
   3-tier — the small tier defers ``--rate3-small``, the medium tier ``--rate3-medium`` of what reaches it;
2. small-only, large-only, the 2-tier and the 3-tier cascade run on the *test* split;
3. a table prints accuracy, the share of questions each tier answered, measured compute seconds
   (the latency of every tier called) and the cost at the stand-in prices
   (:data:`cascade_core.backends.defaults.DEFAULT_PRICES`), and ``--json`` writes it.

Run: ``make three-tier`` (``python -m benchmarks.studies.three_tier --limit 120``); ``--limit 4 --calibration 4``
is the smoke setting.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from tqdm.auto import tqdm

from benchmarks import harness
from cascade_core import Cascade, ThresholdRule, Tier
from cascade_core.backends.defaults import DEFAULT_PRICES
from cascade_core.cli.tiers import build_tier
from cascade_core.decide.scorers import Margin
from cascade_core.decide.thresholds import FixedThreshold, calibrate_threshold
from cascade_core.evaluation.datasets.world_facts import (
    QAExample,
    few_shot_prompt,
    is_correct,
    load_world_facts,
)
from cascade_core.types import Generation, Request, TokenStep

MAX_NEW_TOKENS = 8


@dataclass
class Row:
    """One configuration's totals on the test split."""

    config: str
    accuracy: float
    answered_by: dict[str, float]
    compute_s: float
    cost: float

    def line(self, large_s: float, large_cost: float) -> str:
        shares = " ".join(f"{k}={v:.2f}" for k, v in self.answered_by.items())
        return (f"{self.config:<22} acc {self.accuracy:.3f}   answered by {shares:<32} compute {self.compute_s:7.1f}s "
                f"({self.compute_s / large_s:4.0%} of large)   cost {self.cost:.2e} ({self.cost / large_cost:4.0%})")


def _request(example: QAExample, max_new_tokens: int = MAX_NEW_TOKENS) -> Request:
    return Request.from_prompt(few_shot_prompt(example), stop=("\n",), max_new_tokens=max_new_tokens)


def first_margins(model: Any, examples: Sequence[QAExample], desc: str) -> list[float]:
    """First-token margin of ``model`` on each example (one decoding step)."""
    scorer = Margin()
    out = []
    for example in tqdm(examples, desc=desc, unit="q", leave=False):
        steps = tuple(s for s in model.stream_steps(_request(example, 1)) if isinstance(s, TokenStep))
        out.append(scorer(Generation("", steps)))
    return out


def run(name: str, cascade: Cascade, examples: Sequence[QAExample], tier_names: Sequence[str]) -> Row:
    """Run ``cascade`` over ``examples``; accuracy, who answered, measured seconds and cost."""
    correct, seconds, cost = 0, 0.0, 0.0
    answered = dict.fromkeys(tier_names, 0)
    for example in tqdm(examples, desc=name, unit="q", leave=False):
        result = cascade.invoke(_request(example))
        correct += is_correct(result.text, example)
        seconds += sum(r.latency_s for r in result.runs)
        cost += result.cost
        answered[tier_names[result.tier]] += 1
    n = len(examples)
    return Row(name, correct / n, {k: v / n for k, v in answered.items()}, seconds, cost)


def main(argv: Sequence[str] | None = None) -> int:
    parser = harness.parser(__doc__, threads=2, threads_help="llama.cpp threads per server (servers take turns)",
                            tiny=None, quiet=False)
    parser.add_argument("--limit", type=int, default=120, help="test questions")
    parser.add_argument("--calibration", type=int, default=80, help="calibration questions")
    parser.add_argument("--rate2", type=float, default=0.3, help="2-tier: share the small tier defers")
    parser.add_argument("--rate3-small", type=float, default=0.5, help="3-tier: share the small tier defers")
    parser.add_argument("--rate3-medium", type=float, default=0.4, help="3-tier: share of those the medium defers")
    parser.add_argument("--json", help="write the table as JSON")
    args = parser.parse_args(argv)

    print("starting three llama.cpp servers (verified GGUFs) ...", flush=True)
    small = build_tier("llamacpp:small", "small", max_new_tokens=MAX_NEW_TOKENS, threads=args.threads)
    medium = build_tier("llamacpp:medium", "medium", max_new_tokens=MAX_NEW_TOKENS, threads=args.threads)
    large = build_tier("llamacpp:large", "large", max_new_tokens=MAX_NEW_TOKENS, threads=args.threads)
    calibration = load_world_facts("calibration", limit=args.calibration)
    test = load_world_facts("test", limit=args.limit)

    small_margins = first_margins(small, calibration, "calibrating small")
    medium_margins = first_margins(medium, calibration, "calibrating medium")
    t2 = calibrate_threshold(small_margins, deferral_rate=args.rate2)
    t3_small = calibrate_threshold(small_margins, deferral_rate=args.rate3_small)
    reaching = [m for s, m in zip(small_margins, medium_margins) if s < t3_small] or medium_margins
    t3_medium = calibrate_threshold(reaching, deferral_rate=args.rate3_medium)

    s_tier, m_tier, l_tier = (Tier(small, DEFAULT_PRICES["small"], "small"), Tier(medium, DEFAULT_PRICES["medium"], "medium"),
                              Tier(large, DEFAULT_PRICES["large"], "large"))
    never = ThresholdRule("margin", FixedThreshold(0.0))
    rows = [
        run("small only", Cascade([s_tier, l_tier], rules=never), test, ["small", "large"]),
        large_only(l_tier, test),
        run("2-tier cascade", Cascade([s_tier, l_tier], rules=ThresholdRule("margin", FixedThreshold(t2))),
            test, ["small", "large"]),
        run("3-tier cascade", Cascade([s_tier, m_tier, l_tier],
                                      rules=[ThresholdRule("margin", FixedThreshold(t3_small)),
                                             ThresholdRule("margin", FixedThreshold(t3_medium))]),
            test, ["small", "medium", "large"]),
    ]
    print(f"\nworld_facts test questions: {len(test)}; thresholds (first-token margin): 2-tier {t2:.4f}; "
          f"3-tier small {t3_small:.4f}, medium {t3_medium:.4f}")
    for row in rows:
        print(row.line(rows[1].compute_s, rows[1].cost))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"thresholds": {"2-tier": t2, "3-tier-small": t3_small, "3-tier-medium": t3_medium},
                       "rows": [asdict(r) for r in rows]}, fh, indent=2)
    return 0


def large_only(tier: Tier, examples: Sequence[QAExample]) -> Row:
    """The last tier alone on every question (no small call at all)."""
    correct, seconds, cost = 0, 0.0, 0.0
    for example in tqdm(examples, desc="large only", unit="q", leave=False):
        started = time.perf_counter()
        completion = tier.model.complete(_request(example))
        seconds += time.perf_counter() - started
        correct += is_correct(completion.text, example)
        cost += tier.pricing.cost(completion.usage)
    return Row("large only", correct / len(examples), {"large": 1.0}, seconds, cost)


if __name__ == "__main__":
    sys.exit(main())
