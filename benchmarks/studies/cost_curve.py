"""Benchmark 6: the cascade's accuracy, price and compute relative to all-large, end to end.

From a collection cache (``cascade collect``: per query, both tiers' answers and qualities, token
usage and measured seconds), for every deferral rate r = k/n of the first-token-margin rule (the
k lowest margins deferred) this computes the cascade's accuracy and, relative to sending every
query to the large tier:

- **price**: the library's stand-in prices (``DEFAULT_PRICES``, per million tokens) applied to each
  query's real token usage. A margin deferral stops the small tier after its first token, so a
  deferred query pays the small tier's prompt + 1 token plus the large tier's whole call;
- **compute, FLOPs**: parameters × tokens processed (2 · N · tokens, the factor cancels), the
  same early exit;
- **compute, seconds**: the measured seconds in the cache; the small tier is charged its whole
  measured answer even when it exits early (the cache holds one time per answer), so this is an
  upper bound for the margin rule.

Costs and accuracy go through the same :func:`~cascade_core.evaluation.curves.deferral_curve` (a
cost is a "quality" that the deferred queries change), so ties are averaged the same way. With a
rule file and the calibration JSON ``cascade calibrate`` wrote, the calibrated operating point
(the threshold fitted on the fit split, applied to this test split) is marked; that rule reads
the whole small answer before deciding, so its deferrals pay the small tier's whole answer.

    python -m benchmarks.studies.cost_curve runs/reproduce/world_facts.test.<hash>.cache.jsonl \\
        --rule runs/reproduce/world_facts.logistic.json --calibration docs/figures/world_facts.calibration.json \\
        --png docs/figures/world_facts.cost_curve.png --csv docs/figures/world_facts.cost_curve.csv

The cache is not in the repository (``runs/`` is ignored); ``scripts/reproduce_tables.sh`` makes it.
"""

from __future__ import annotations

import csv
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import harness
from cascade_core.backends.defaults import DEFAULT_PRICES
from cascade_core.evaluation.calibration import evaluate_threshold
from cascade_core.evaluation.collect import CachedExample, load_cache
from cascade_core.evaluation.curves import DeferralCurve, deferral_curve, random_curve
from cascade_core.evaluation.report import qualities, scores_for
from cascade_core.types import Usage

#: cost measures: column name -> axis label
MEASURES = {"price": "price (stand-in $/token)", "flops": "compute (params × tokens)", "seconds": "compute (measured s)"}


@dataclass(frozen=True)
class QueryCosts:
    """Per-query cost of each way a query can go, for one measure (arrays over the queries)."""

    kept: np.ndarray  # the small tier answers
    deferred: np.ndarray  # the small tier's part of a deferral, plus the large tier's call
    all_large: np.ndarray  # the large tier alone


def query_costs(examples: list[CachedExample], measure: str, *, early_exit: bool, params: tuple[float, float]) -> QueryCosts:
    """Per-query costs under ``measure``; ``early_exit``: a deferral stops the small tier after one token."""
    def small_usage(e: CachedExample, deferred: bool) -> Usage:
        return Usage(e.small.usage.input_tokens, 1) if deferred and early_exit else e.small.usage

    if measure == "price":
        small, large = (lambda u: DEFAULT_PRICES["small"].cost(u)), (lambda u: DEFAULT_PRICES["large"].cost(u))
    elif measure == "flops":
        small, large = (lambda u: params[0] * u.total_tokens), (lambda u: params[1] * u.total_tokens)
    else:
        big = np.array([e.large_seconds for e in examples])
        mine = np.array([e.small_seconds for e in examples])
        return QueryCosts(mine, mine + big, big)
    big = np.array([large(e.large_usage) for e in examples])
    return QueryCosts(np.array([small(small_usage(e, False)) for e in examples]),
                      np.array([small(small_usage(e, True)) for e in examples]) + big, big)


def cost_curve(scores: np.ndarray, costs: QueryCosts, name: str) -> DeferralCurve:
    """Mean cost per query relative to all-large, at each deferral rate (lowest scores deferred first)."""
    curve = deferral_curve(scores, costs.kept, costs.deferred, name=name)
    return DeferralCurve(name, curve.rates, curve.quality / costs.all_large.mean())


def calibrated_point(examples: list[CachedExample], rule_path: str, calibration_path: str,
                     params: tuple[float, float]) -> dict[str, Any]:
    """Deferral rate, accuracy and relative costs of the calibrated threshold on these examples."""
    from cascade_core.decide.rule_file import load_rule

    calibration = json.loads(Path(calibration_path).read_text(encoding="utf-8"))
    rule = load_rule(rule_path)
    scores = scores_for(examples, {"rule": rule})["rule"]
    small_q, large_q = qualities(examples)
    report = evaluate_threshold(scores, small_q, large_q, float(calibration["sample"]["threshold"]))
    defer = scores < report.threshold
    point: dict[str, Any] = {"rule": f"calibrated {calibration.get('signal', 'rule')}",
                             "deferral_rate": report.deferral_rate, "accuracy": report.quality}
    for measure in MEASURES:
        c = query_costs(examples, measure, early_exit=False, params=params)  # the rule reads the whole answer
        point[measure] = float(np.where(defer, c.deferred, c.kept).sum() / c.all_large.sum())
    expected = calibration.get("holdout", {})
    if expected and abs(expected.get("deferral_rate", report.deferral_rate) - report.deferral_rate) > 1e-9:
        print(f"note: {calibration_path} reports a held-out deferral rate of {expected['deferral_rate']:.4f}, "
              f"this cache gives {report.deferral_rate:.4f} (another cache?)")
    return point


def plot(accuracy: DeferralCurve, random: DeferralCurve, costs: dict[str, DeferralCurve], point: dict[str, Any] | None,
         path: str, title: str) -> None:
    """Accuracy vs relative cost (left) and vs deferral rate (right), the calibrated point marked."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.6))
    for (measure, curve), style in zip(costs.items(), ("-", "--", ":"), strict=True):
        left.plot(curve.quality, accuracy.quality, style, lw=1.6, label=f"margin rule, {MEASURES[measure]}")
    right.plot(accuracy.rates, accuracy.quality, lw=1.6, label="margin rule")
    right.plot(random.rates, random.quality, "k--", lw=1.0, label="random deferral")
    left.plot([1.0], [accuracy.quality[-1]], "ks", ms=7, label="all-large")
    if point is not None:
        label = f"calibrated learned rule (defers {point['deferral_rate']:.0%})"
        left.plot([point["price"]], [point["accuracy"]], "r*", ms=13, label=label + ", price")
        right.plot([point["deferral_rate"]], [point["accuracy"]], "r*", ms=13, label=label)
    left.set_xlabel("cost per query relative to all-large")
    right.set_xlabel("deferral rate (fraction sent to the large model)")
    for ax in (left, right):
        ax.set_ylabel("accuracy")
        ax.set_xlim(0, max(1.05, ax.get_xlim()[1]))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7.5, loc="lower right")
    fig.suptitle(title, fontsize=10)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120, metadata={"Software": None})
    plt.close(fig)


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    p = harness.parser(__doc__, threads=None, tiny=None, quiet=False)
    p.add_argument("cache", help="collection cache of the test split (cascade collect)")
    p.add_argument("--rule", help="rule file whose calibrated threshold to mark (with --calibration)")
    p.add_argument("--calibration", help="JSON of `cascade calibrate` (its sample threshold is used)")
    p.add_argument("--params", type=float, nargs=2, default=[135e6, 1.54e9], metavar=("SMALL", "LARGE"),
                   help="parameter counts for the FLOPs measure (default: SmolLM2-135M, Qwen2.5-1.5B)")
    p.add_argument("--png", help="write the plot here")
    p.add_argument("--csv", help="write the table here")
    p.add_argument("--title", default="world_facts test split: SmolLM2-135M -> Qwen2.5-Coder-1.5B")
    args = p.parse_args(argv)
    if not Path(args.cache).is_file():
        sys.exit(f"cost_curve: no cache at {args.cache}; make one with scripts/reproduce_tables.sh "
                 "(or `cascade collect`), e.g. runs/reproduce/world_facts.test.<hash>.cache.jsonl")
    if bool(args.rule) != bool(args.calibration):
        sys.exit("cost_curve: --rule and --calibration go together")
    examples = load_cache(args.cache)
    params = (args.params[0], args.params[1])
    small_q, large_q = qualities(examples)
    margin = scores_for(examples)["margin"]
    accuracy = deferral_curve(margin, small_q, large_q, name="margin")
    costs = {m: cost_curve(margin, query_costs(examples, m, early_exit=True, params=params), m) for m in MEASURES}
    point = calibrated_point(examples, args.rule, args.calibration, params) if args.rule else None
    rows: list[dict[str, Any]] = [{"rule": "margin", "deferral_rate": r, "accuracy": accuracy.quality_at(r), **{m: c.quality_at(r) for m, c in costs.items()}}
            for r in np.linspace(0, 1, 21)]
    print(f"{len(examples)} queries; small accuracy {small_q.mean():.3f}, large {large_q.mean():.3f}; "
          "costs relative to all-large")
    print(f"{'rule':>36} {'deferral':>9} {'accuracy':>9} {'price':>7} {'FLOPs':>7} {'seconds':>8}")
    for row in [*rows[::2], *([point] if point else [])]:
        print(f"{row['rule']:>36} {row['deferral_rate']:>9.2f} {row['accuracy']:>9.3f} {row['price']:>7.3f} "
              f"{row['flops']:>7.3f} {row['seconds']:>8.3f}")
    if args.csv:
        Path(args.csv).parent.mkdir(parents=True, exist_ok=True)
        with open(args.csv, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=["rule", "deferral_rate", "accuracy", *MEASURES])
            writer.writeheader()
            for row in [*rows, *([point] if point else [])]:
                writer.writerow({k: v if k == "rule" else round(float(v), 4) for k, v in row.items()})
    if args.png:
        plot(accuracy, random_curve(small_q, large_q), costs, point, args.png, args.title)
    return [*rows, *([point] if point else [])]


if __name__ == "__main__":
    main()
