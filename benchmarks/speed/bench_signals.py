"""Benchmark 4: what the deferral signals cost next to the generation they judge.

Generates one answer of up to 256 tokens to an open-ended prompt with the small model
(``Cascade.invoke``, answer kept),
then times every signal's rule on that generation — first-token margin, Chow-Sum, Chow-Average,
Chow-Quantile, entropy, and a fitted learned rule (logistic, paper A's features) — as
``ThresholdRule(...).decide``, averaged over ``--repeats`` calls. Prints each as a share of the
generation time. Target: all of them together <= 1 % of the generation.

    python -m benchmarks.speed.bench_signals [--tokens 256] [--repeats 200]
"""

from __future__ import annotations

import time

import numpy as np
from tqdm import tqdm

from benchmarks import harness
from cascade_core import Cascade, Request, ThresholdRule
from cascade_core.decide.learned.rule import LearnedDeferral
from cascade_core.testing import ScriptedModel


def learned_rule(generation) -> LearnedDeferral:
    """A logistic learned rule fitted on perturbed copies of this generation's features."""
    rule = LearnedDeferral(model="logistic")
    base = rule.features([generation])[0]
    rng = np.random.default_rng(0)
    X = base + rng.normal(scale=np.abs(base) * 0.1 + 0.1, size=(64, base.size))
    return rule.fit(X, (X[:, 0] > base[0]).astype(int))


def main(argv: list[str] | None = None) -> dict[str, float]:
    p = harness.parser(__doc__)
    p.add_argument("--tokens", type=int, default=256)
    p.add_argument("--repeats", type=int, default=200)
    p.add_argument("--prompt", default="Once upon a time, in a small village by the sea,", help="an open-ended prompt")
    args = harness.parse_and_pin(p, argv)
    small = harness.small_model(args.tiny, max_new_tokens=args.tokens)
    cascade = Cascade([small, ScriptedModel("stub")], rules=ThresholdRule("margin", 0.0))
    request = Request.from_prompt(harness.prompts(True, 1)[0] if args.tiny else args.prompt)
    cascade.invoke(Request.from_prompt("Hello", max_new_tokens=2))  # warm-up
    started = time.perf_counter()
    result = cascade.invoke(request)
    t_generate = time.perf_counter() - started
    assert not result.deferred, result.decision.reason
    generation = result.generation
    rules = {name: ThresholdRule(name, 0.5 if name == "margin" else -1.0) for name in ("margin", "chow_sum", "chow_average", "entropy")}
    rules["chow_quantile"] = ThresholdRule("chow_quantile", -1.0, alpha=0.1)
    rules["learned (logistic)"] = ThresholdRule(learned_rule(generation), 0.5)
    print(f"machine: {harness.machine()}")
    print(f"model: {small.model_name}; generation of {len(generation.steps)} tokens took {t_generate * 1000:.0f} ms")
    total = 0.0
    shares: dict[str, float] = {}
    for name, rule in tqdm(rules.items(), desc="signals", disable=args.quiet):
        started = time.perf_counter()
        for _ in range(args.repeats):
            rule.decide(generation)
        per_call = (time.perf_counter() - started) / args.repeats
        total += per_call
        shares[name] = per_call / t_generate
        tqdm.write(f"{name:>20}: {per_call * 1e6:8.0f} us  = {shares[name] * 100:.3f} % of the generation")
    shares["all"] = total / t_generate
    print(f"{'all signals':>20}: {total * 1e6:8.0f} us  = {shares['all'] * 100:.3f} % of the generation (target <= 1 %)")
    return shares


if __name__ == "__main__":
    main()
