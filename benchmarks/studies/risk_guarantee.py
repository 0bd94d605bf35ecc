"""Does the risk-controlled threshold keep its promise on real caches, and what does the promise cost?

For every collection pair found (``<root>/<task>/<small>.fit.cache.jsonl`` with its
``.test.cache.jsonl``), fit and test are pooled into one population of labelled queries. For each
risk (``kept_error``, ``quality_loss``), each ε (by default the population's own risk when 40 % and
60 % of it is deferred by the margin: levels the task can reach) and each calibration size n, over
``--splits`` random draws:

- **iid** (the guarantee's own setting): the calibration sample is n queries drawn with
  replacement from the population; the realised risk of the threshold is the *population's* risk
  at it (exact: the population is the distribution). The violation rate P(R(t̂) > ε) must be at
  most δ, within Monte-Carlo error.
- **split** (what a user sees): n queries without replacement calibrate, the rest of the pool tests;
  the realised risk is the test split's. Its violation rate also counts the test split's own
  sampling noise, so it can exceed δ when the true risk sits just under ε.

Both compare :func:`~cascade_core.decide.risk.certify_threshold` with the naive threshold
(:func:`~cascade_core.decide.risk.empirical_threshold`: sample risk ≤ ε, no bound), and report how
much more the certified one defers. Signal: the first-token margin (over the task's labels).

    python -m benchmarks.studies.risk_guarantee --root /work/main/runs/public \\
        --png docs/figures/risk_guarantee.png --json benchmarks/results/risk_guarantee.json
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import harness
from cascade_core.decide.risk import certify_threshold, empirical_threshold
from cascade_core.decide.rule_file import SignalRule
from cascade_core.evaluation.collect import load_cache
from cascade_core.evaluation.report import qualities, scores_for
from cascade_core.evaluation.risk_report import realised_risk

RISKS = ("kept_error", "quality_loss")


@dataclass(frozen=True)
class Population:
    """One task × small model: the pooled fit + test caches."""

    name: str
    scores: np.ndarray
    small: np.ndarray
    large: np.ndarray

    def risk(self, threshold: float, risk: str, idx: np.ndarray | None = None) -> float:
        sel = slice(None) if idx is None else idx
        return realised_risk(self.scores[sel], self.small[sel], self.large[sel], threshold, risk)

    def risk_at_deferral(self, rate: float, risk: str) -> float:
        threshold = float(np.quantile(self.scores, rate, method="lower")) if rate > 0 else -math.inf
        return self.risk(threshold, risk)


def load_population(fit: Path) -> Population:
    test = fit.with_name(fit.name.replace(".fit.cache.jsonl", ".test.cache.jsonl"))
    pool = load_cache(fit) + load_cache(test)
    labels = [e.label_tokens for e in pool if e.label_tokens]
    params = {"labels": list(max(set(labels), key=labels.count))} if labels else {}
    rule = SignalRule("margin", params)
    small, large = qualities(pool)
    return Population(f"{fit.parent.name}/{fit.name.split('.')[0]}", scores_for(pool, {"m": rule})["m"],
                      (small >= 0.5).astype(int), (large >= 0.5).astype(int))


def _epsilon(pop: Population, risk: str, rate: float) -> float:
    """The population's risk at this deferral rate, rounded up to 0.005 (at least 0.005)."""
    return max(0.005, math.ceil(pop.risk_at_deferral(rate, risk) / 0.005) * 0.005)


def study(pop: Population, risk: str, epsilon: float, n: int, delta: float, splits: int, seed: int) -> dict[str, Any]:
    """Violation rates and deferral of certified vs naive thresholds over random calibration draws."""
    rng = np.random.default_rng(seed)
    size = pop.scores.size
    large = pop.large if risk == "quality_loss" else None
    rows: dict[str, list[float]] = {k: [] for k in ("cert_viol", "naive_viol", "cert_defer", "naive_defer", "certified",
                                                    "split_cert_viol", "split_naive_viol")}
    can_split = n <= size - 100
    for _ in range(splits):
        idx = rng.integers(0, size, n)  # iid from the population
        args = (pop.scores[idx], pop.small[idx], None if large is None else large[idx])
        cert = certify_threshold(*args, risk=risk, epsilon=epsilon, delta=delta)
        naive = empirical_threshold(*args, risk=risk, epsilon=epsilon)
        rows["cert_viol"].append(pop.risk(cert.threshold, risk) > epsilon)
        rows["naive_viol"].append(pop.risk(naive, risk) > epsilon)
        rows["cert_defer"].append(float(np.mean(pop.scores < cert.threshold)))
        rows["naive_defer"].append(float(np.mean(pop.scores < naive)))
        rows["certified"].append(cert.certified)
        if can_split:
            perm = rng.permutation(size)
            cal, test = perm[:n], perm[n:]
            args = (pop.scores[cal], pop.small[cal], None if large is None else large[cal])
            t_cert = certify_threshold(*args, risk=risk, epsilon=epsilon, delta=delta).threshold
            t_naive = empirical_threshold(*args, risk=risk, epsilon=epsilon)
            rows["split_cert_viol"].append(pop.risk(t_cert, risk, test) > epsilon)
            rows["split_naive_viol"].append(pop.risk(t_naive, risk, test) > epsilon)
    out: dict[str, Any] = {"population": pop.name, "pool": int(size), "risk": risk, "epsilon": epsilon, "delta": delta,
                           "n": n, "splits": splits}
    for key, values in rows.items():
        out[key] = float(np.mean(values)) if values else None
    out["cert_viol_mc_se"] = math.sqrt(max(out["cert_viol"] * (1 - out["cert_viol"]), 1e-12) / splits)
    oracle = empirical_threshold(pop.scores, pop.small, pop.large if risk == "quality_loss" else None,
                                 risk=risk, epsilon=epsilon)
    out["oracle_defer"] = float(np.mean(pop.scores < oracle))  # the population's own best threshold
    out["extra_defer"] = out["cert_defer"] - out["naive_defer"]
    return out


def _cell(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def markdown(rows: list[dict[str, Any]]) -> str:
    head = ("| population | risk | ε | n | violations certified (iid) | naive (iid) | certified (split) | naive (split) "
            "| defers: certified | naive | population-best | certified runs |")
    lines = [head, "|" + "---|" * 12]
    for r in rows:
        lines.append(
            f"| {r['population']} | {r['risk']} | {r['epsilon']:.3f} | {r['n']} | {r['cert_viol']:.3f} ± {r['cert_viol_mc_se']:.3f} "
            f"| {r['naive_viol']:.3f} | {_cell(r['split_cert_viol'])} | {_cell(r['split_naive_viol'])} "
            f"| {r['cert_defer']:.3f} | {r['naive_defer']:.3f} | {r['oracle_defer']:.3f} | {r['certified']:.2f} |"
        )
    return "\n".join(lines)


def summary_markdown(rows: list[dict[str, Any]]) -> str:
    """One row per risk × n over every population and ε: violation rates (max, mean) and mean deferral."""
    head = ("| risk | n | cells | violations, certified: max (mean) | naive: max (mean) | certified, held-out split: max "
            "| defers: certified | naive | population-best | certified runs |")
    lines = [head, "|" + "---|" * 10]
    for risk in RISKS:
        for n in sorted({r["n"] for r in rows}):
            rs = [r for r in rows if r["risk"] == risk and r["n"] == n]
            if not rs:
                continue
            split = [r["split_cert_viol"] for r in rs if r["split_cert_viol"] is not None]

            def mean(key: str, rs: list[dict[str, Any]] = rs) -> float:
                return float(np.mean([r[key] for r in rs]))

            lines.append(
                f"| {risk} | {n} | {len(rs)} | {max(r['cert_viol'] for r in rs):.3f} ({mean('cert_viol'):.3f}) "
                f"| {max(r['naive_viol'] for r in rs):.3f} ({mean('naive_viol'):.3f}) | {_cell(max(split) if split else None)} "
                f"| {mean('cert_defer'):.3f} | {mean('naive_defer'):.3f} | {mean('oracle_defer'):.3f} | {mean('certified'):.2f} |"
            )
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], delta: float, path: str) -> None:
    """Violation rate (top) and extra deferral (bottom) vs n, per risk; one line per population and ε."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5), sharex=True)
    for col, risk in enumerate(RISKS):
        series: dict[tuple[str, float], list[dict[str, Any]]] = {}
        for r in rows:
            if r["risk"] == risk:
                series.setdefault((r["population"], r["epsilon"]), []).append(r)
        for (name, eps), rs in sorted(series.items()):
            ns = [r["n"] for r in rs]
            line = axes[0, col].plot(ns, [r["cert_viol"] for r in rs], "o-", lw=1.4, ms=4, label=f"{name}, ε={eps:.3f}")
            axes[0, col].plot(ns, [r["naive_viol"] for r in rs], "x:", lw=1.0, color=line[0].get_color())
            axes[1, col].plot(ns, [r["extra_defer"] for r in rs], "o-", lw=1.4, ms=4, color=line[0].get_color())
        axes[0, col].axhline(delta, color="k", ls="--", lw=1.0, label=f"δ = {delta:g}")
        axes[0, col].set_title(f"{risk}: P(realised risk > ε) — certified (o), naive (x)", fontsize=9)
        axes[1, col].set_title(f"{risk}: extra deferral of the certified threshold vs naive", fontsize=9)
        axes[1, col].set_xlabel("calibration size n")
        axes[1, col].set_xscale("log")
        for ax in axes[:, col]:
            ax.grid(alpha=0.3)
        axes[0, col].legend(fontsize=6, loc="center right")
    axes[0, 0].set_ylabel("violation rate")
    axes[1, 0].set_ylabel("deferral rate, certified − naive")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, metadata={"Software": None})
    plt.close(fig)


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    p = harness.parser(__doc__, threads=None, tiny=None)
    p.add_argument("--root", default=str(harness.ROOT / "runs" / "public"), help="folder of <task>/<small>.fit.cache.jsonl")
    p.add_argument("--splits", type=int, default=500, help="random calibration draws per cell (default %(default)s)")
    p.add_argument("--sizes", type=int, nargs="+", default=[100, 300, 1000], help="calibration sizes n")
    p.add_argument("--delta", type=float, default=0.1)
    p.add_argument("--deferral-levels", type=float, nargs="+", default=[0.4, 0.6],
                   help="ε = the population's risk when this fraction is deferred by the margin (default 0.4 0.6)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--png", default=str(harness.ROOT / "docs" / "figures" / "risk_guarantee.png"))
    p.add_argument("--json", default=str(harness.RESULTS_DIR / "risk_guarantee.json"))
    args = p.parse_args(argv)
    fits = sorted(Path(args.root).glob("*/*.fit.cache.jsonl"))
    fits = [f for f in fits if f.with_name(f.name.replace(".fit.", ".test.")).exists()]
    if not fits:
        sys.exit(f"no <task>/<small>.fit.cache.jsonl with its .test.cache.jsonl under {args.root}")
    pops = [load_population(f) for f in fits]
    cells = [(pop, risk, eps, n) for pop in pops for risk in RISKS
             for eps in sorted({_epsilon(pop, risk, level) for level in args.deferral_levels}) for n in args.sizes]
    from tqdm import tqdm

    rows = []
    for i, (pop, risk, eps, n) in enumerate(tqdm(cells, desc="risk cells", unit="cell", disable=args.quiet)):
        rows.append(study(pop, risk, eps, n, args.delta, args.splits, args.seed + i))
    worst = max(r["cert_viol"] - r["cert_viol_mc_se"] * 2 for r in rows)
    summary = {
        "delta": args.delta, "splits": args.splits, "sizes": args.sizes, "populations": [p.name for p in pops],
        "pool_sizes": [int(p.scores.size) for p in pops], "rows": rows,
        "max_certified_violation": max(r["cert_viol"] for r in rows),
        "max_naive_violation": max(r["naive_viol"] for r in rows),
        "all_within_delta": bool(worst <= args.delta),
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(summary, indent=1), encoding="utf-8")
    plot(rows, args.delta, args.png)
    print(markdown(rows))
    print()
    print(summary_markdown(rows))
    print(f"\nmax violation rate: certified {summary['max_certified_violation']:.3f}, naive "
          f"{summary['max_naive_violation']:.3f} (delta {args.delta:g}); within delta (2 MC SE): {summary['all_within_delta']}")
    print(f"-> {args.json}, {args.png}")
    return rows


if __name__ == "__main__":
    main()
