"""Why does (or doesn't) the learned deferral rule beat the best single signal? Diagnostics on cached runs.

Everything is fitted on the *fit* cache only and measured on the *test* cache; nothing is tuned on
the test split (the "best single signal" column is the one chosen after seeing the test set, the
strictest comparison for the learned rule). Reports:

1. the test table: AUC-DF of every single signal, the fixed learned configurations, the rule
   ``cascade fit`` picks by cross-validation on the fit split ("cv-selected"), random and oracle, with
   bootstrap standard errors, and the paired bootstrap difference learned − best test signal;
2. a learning curve: test AUC-DF vs fit-set size (random subsamples of the fit split), PNG;
3. the standardised coefficients of the logistic rule (target small_correct);
4. calibration of its fitted probabilities P(small answer right) on the test split (ECE, bins);
5. per-attribute AUC-DF (a record field, default ``attribute``);
6. "would more data help?": fit and test pooled, fixed learned configurations fitted on n examples and
   compared with the best single signal on 100 disjoint held-out examples (not a test-split claim).

Run on caches written by ``cascade collect`` (e.g. by ``scripts/reproduce_tables.sh``)::

    python -m benchmarks.studies.learned_diagnostics --fit runs/world_facts.fit.cache.jsonl \\
        --test runs/world_facts.test.cache.jsonl --out-dir docs/figures/learned

``--synthetic`` runs the same report on generated data (the smoke test in tests/core).
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import harness
from cascade_core.decide.learned.rule import LearnedDeferral, deferral_labels
from cascade_core.decide.probability import expected_calibration_error, reliability_bins
from cascade_core.evaluation.collect import CachedExample, load_cache
from cascade_core.evaluation.curves import deferral_curve, oracle_curve, random_curve
from cascade_core.evaluation.report import qualities, scores_for
from cascade_core.evaluation.rule_selection import embedding_grid, learned_grid, select_rule
from cascade_core.types import Generation, TokenAlternative, TokenStep

#: Fixed learned configurations measured next to the cross-validated choice.
FIXED: dict[str, dict[str, Any]] = {
    "learned(logistic,small_correct,C=1)": {"model": "logistic", "target": "small_correct", "C": 1.0},
    "learned(logistic,quality_gap,C=0.3)": {"model": "logistic", "target": "quality_gap", "C": 0.3},
    "learned(hgb,large_better)": {"model": "hgb", "target": "large_better", "n_trees": 60, "max_leaf_nodes": 4,
                                  "learning_rate": 0.05},
}

#: With ``--embedding``: one Post-Hoc-Embed configuration (PCA to 32 components, a strong L2 penalty; the
#: one ``cascade fit`` picked on the RAG fit split), measured next to the others and along the learning curves.
EMBED_FIXED: dict[str, dict[str, Any]] = {
    "learned(logistic+embed/pca32,small_correct,C=0.03)": {"model": "logistic", "target": "small_correct", "C": 0.03,
                                                           "use_embedding": True, "embedding_components": 32},
}


def synthetic_caches(n_fit: int, n_test: int, seed: int = 0) -> tuple[list[CachedExample], list[CachedExample]]:
    """Generated examples: right iff first-token margin + least-confident token is high; a large tier that is
    right 85 % of the time; an ``attribute`` field with two values."""
    rng = np.random.default_rng(seed)

    def one(i: int) -> CachedExample:
        p2 = float(rng.uniform(0.01, 0.39))
        later = -rng.uniform(0.05, 0.3, size=int(rng.integers(2, 12)))
        low = float(rng.uniform(-3.0, -0.3))
        later[rng.integers(later.size)] = low
        ok = (0.2 - p2) / 0.19 + (low + 1.65) / 1.35 + rng.normal(0, 0.4) > 0
        steps = [TokenStep("a", math.log(0.6), (TokenAlternative("a", math.log(0.6)), TokenAlternative("z", math.log(p2))))]
        steps += [TokenStep(f"t{j}", float(lp), (TokenAlternative(f"t{j}", float(lp)), TokenAlternative("z", -6.0)))
                  for j, lp in enumerate(later)]
        return CachedExample(
            id=f"s{i}", record={"attribute": ("capital", "currency")[i % 2]}, small=Generation("x", tuple(steps)),
            large_text="y", small_quality=float(ok), large_quality=float(rng.random() < 0.85),
        )

    rows = [one(i) for i in range(n_fit + n_test)]
    return rows[:n_fit], rows[n_fit:]


def _fit(config: dict[str, Any], examples: Sequence[CachedExample]) -> LearnedDeferral:
    small, large = qualities(examples)
    rule = LearnedDeferral(**config)
    return rule.fit_generations([e.small for e in examples], deferral_labels(small, large, rule.target))


def bootstrap_auc(
    rules: dict[str, Any], test: Sequence[CachedExample], resamples: int = 200, seed: int = 0,
) -> tuple[dict[str, float], dict[str, np.ndarray], str]:
    """AUC-DF on ``test`` of every single signal, every rule in ``rules``, random and the oracle; the same
    on ``resamples`` bootstrap resamples of the questions (one array per name, paired across names); and
    the best single signal on ``test`` (picked after seeing it)."""
    small, large = qualities(test)
    scores = scores_for(test, rules)
    signals = [k for k in scores if k not in rules]
    auc = {k: deferral_curve(v, small, large).auc for k, v in scores.items()}
    auc["random"], auc["oracle"] = random_curve(small, large).auc, oracle_curve(small, large).auc
    best = max(signals, key=lambda k: auc[k])
    rng = np.random.default_rng(seed)
    boot: dict[str, list[float]] = {k: [] for k in auc}
    for _ in range(resamples):
        idx = rng.integers(0, small.size, small.size)
        s, lg = small[idx], large[idx]
        values = {k: deferral_curve(v[idx], s, lg).auc for k, v in scores.items()}
        values["random"], values["oracle"] = random_curve(s, lg).auc, oracle_curve(s, lg).auc
        for k, v in values.items():
            boot[k].append(v)
    return auc, {k: np.asarray(v) for k, v in boot.items()}, best


def test_table(rules: dict[str, Any], test: Sequence[CachedExample], resamples: int = 200, seed: int = 0) -> dict[str, Any]:
    """AUC-DF on the test split with bootstrap SEs; ``learned − best test signal`` paired per resample."""
    auc, boot, best = bootstrap_auc(rules, test, resamples, seed)
    rows = [{"rule": k, "auc_df": round(v, 4), "se": round(float(boot[k].std()), 4)} for k, v in auc.items()]
    for row in rows:
        if row["rule"] in rules:
            row["vs_best_signal"] = round(auc[row["rule"]] - auc[best], 4)
            row["vs_best_signal_se"] = round(float((boot[row["rule"]] - boot[best]).std()), 4)
    rows.sort(key=lambda r: -r["auc_df"])
    return {"n_test": len(test), "best_test_signal": best, "rows": rows}


def learning_curve(
    fit: Sequence[CachedExample], test: Sequence[CachedExample], sizes: Sequence[int], draws: int, cv: int, seed: int = 0,
    grid: list[dict[str, Any]] | None = None, fixed: dict[str, dict[str, Any]] = FIXED,
) -> list[dict[str, Any]]:
    """Test AUC-DF of the fixed configurations and the cv-selected rule, fitted on random subsets of the fit split."""
    small_t, large_t = qualities(test)
    rng = np.random.default_rng(seed)
    out = []
    for n in sizes:
        values: dict[str, list[float]] = {}
        for _ in range(draws if n < len(fit) else 1):
            sub = [fit[i] for i in rng.choice(len(fit), size=n, replace=False)]
            rules: dict[str, Any] = {}
            for name, config in fixed.items():
                try:
                    rules[name] = _fit(config, sub)
                except ValueError:  # e.g. one class only in a tiny subset
                    continue
            s, lg = qualities(sub)
            sel = select_rule([e.small for e in sub], s, lg, cv=cv, learned=grid,
                              labels_per_example=[e.label_tokens for e in sub])
            rules["cv-selected"] = sel.rule
            rules["signal chosen by CV"] = select_rule([e.small for e in sub], s, lg, cv=cv, learned=[]).rule
            for name, values_ in scores_for(test, rules).items():
                if name in rules:
                    values.setdefault(name, []).append(deferral_curve(values_, small_t, large_t).auc)
        for name, v in values.items():
            out.append({"n_fit": n, "rule": name, "auc_df": round(float(np.mean(v)), 4),
                        "se": round(float(np.std(v) / math.sqrt(len(v))), 4), "draws": len(v)})
    return out


def pooled_learning_curve(
    examples: Sequence[CachedExample], sizes: Sequence[int], held_out: int, draws: int, seed: int = 0,
    fixed: dict[str, dict[str, Any]] = FIXED,
) -> list[dict[str, Any]]:
    """Would more data help? Pool both splits (a separate question from the test-split claim, which this
    does not touch), draw ``held_out`` examples to measure on and ``n`` disjoint ones to fit on, and
    report the mean AUC-DF difference (fixed learned configuration − the best single signal *on that
    held-out draw*, and − the signal that is best on the ``n`` fit examples) with standard errors over draws."""
    rng = np.random.default_rng(seed)
    out = []
    for n in sizes:
        if n + held_out > len(examples):
            continue
        diffs: dict[str, list[float]] = {}
        fair: dict[str, list[float]] = {}
        for _ in range(draws):
            perm = rng.permutation(len(examples))
            held, sub = [examples[i] for i in perm[:held_out]], [examples[i] for i in perm[held_out:held_out + n]]
            small, large = qualities(held)
            rules: dict[str, Any] = {}
            for name, config in fixed.items():
                try:
                    rules[name] = _fit(config, sub)
                except ValueError:
                    continue
            scores = scores_for(held, rules)
            aucs = {k: deferral_curve(v, small, large).auc for k, v in scores.items()}
            best = max(aucs[k] for k in scores if k not in rules)
            s_fit, l_fit = qualities(sub)  # the signal a user would pick on their fit data
            fit_scores = scores_for(sub)
            picked = max(fit_scores, key=lambda k: deferral_curve(fit_scores[k], s_fit, l_fit).auc)
            for name in rules:
                diffs.setdefault(name, []).append(aucs[name] - best)
                fair.setdefault(name, []).append(aucs[name] - aucs[picked])
        for name, d in diffs.items():
            f = np.asarray(fair[name])
            out.append({"n_fit": n, "rule": name, "vs_best_signal": round(float(np.mean(d)), 4),
                        "se": round(float(np.std(d, ddof=1) / math.sqrt(len(d))), 4) if len(d) > 1 else None,
                        "vs_fit_chosen_signal": round(float(f.mean()), 4),
                        "fit_chosen_se": round(float(f.std(ddof=1) / math.sqrt(f.size)), 4) if f.size > 1 else None,
                        "draws": len(d), "held_out": held_out})
    return out


def plot_learning_curve(rows: list[dict[str, Any]], best_signal: tuple[str, float], path: Path) -> Path:
    from cascade_core.evaluation.plots import _pyplot, _save

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for name in dict.fromkeys(r["rule"] for r in rows):
        pts = [r for r in rows if r["rule"] == name]
        ax.errorbar([p["n_fit"] for p in pts], [p["auc_df"] for p in pts], yerr=[p["se"] for p in pts],
                    marker="o", capsize=3, label=name)
    ax.axhline(best_signal[1], color="k", ls="--", lw=1, label=f"best test signal: {best_signal[0]}")
    ax.set_xlabel("fit examples")
    ax.set_ylabel("test AUC-DF")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title("Learning curve (fit on subsets of the fit split, test split)")
    return _save(fig, path)


def diagnostics(
    fit: Sequence[CachedExample], test: Sequence[CachedExample], out_dir: Path, *, cv: int = 5, sizes: Sequence[int] | None = None,
    draws: int = 3, grid: list[dict[str, Any]] | None = None, field: str = "attribute", resamples: int = 200,
    repeats: int = 3, pooled_sizes: Sequence[int] | None = None, fixed: dict[str, dict[str, Any]] = FIXED,
) -> dict[str, Any]:
    """The whole report (also written to ``out_dir/learned_diagnostics.json``, plus the PNG)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    small_f, large_f = qualities(fit)
    selection = select_rule([e.small for e in fit], small_f, large_f, cv=cv, repeats=repeats, learned=grid,
                            labels_per_example=[e.label_tokens for e in fit])
    rules: dict[str, Any] = {name: _fit(config, fit) for name, config in fixed.items()}
    rules["cv-selected"] = selection.rule
    table = test_table(rules, test, resamples=resamples)
    logistic = rules["learned(logistic,small_correct,C=1)"]
    coefficients = dict(zip(logistic.feature_names_, np.round(logistic.layers_[0][0][:, 0], 4).tolist(), strict=True))
    small_t, large_t = qualities(test)
    calibration = {}
    for name in ("learned(logistic,small_correct,C=1)",):
        p = rules[name].predict_confidence(rules[name].features([e.small for e in test]))
        calibration[name] = {"ece": round(expected_calibration_error(p, small_t >= 0.5), 4),
                             "mean_p": round(float(p.mean()), 4), "accuracy": round(float((small_t >= 0.5).mean()), 4),
                             "bins": [[round(a, 3), round(b, 3), c] for a, b, c in reliability_bins(p, small_t >= 0.5)]}
    scores = scores_for(test, rules)
    best = table["best_test_signal"]
    groups: dict[str, list[int]] = {}
    for i, e in enumerate(test):
        groups.setdefault(str(e.record.get(field, "")), []).append(i)
    per_group = []
    for g, idx in sorted(groups.items()):
        s, lg = small_t[idx], large_t[idx]
        row = {"group": g, "n": len(idx), "small_acc": round(float(s.mean()), 3), "large_acc": round(float(lg.mean()), 3)}
        for name in (best, "cv-selected", "learned(logistic,small_correct,C=1)"):
            row[name] = round(deferral_curve(scores[name][idx], s, lg).auc, 4)
        row["oracle"] = round(oracle_curve(s, lg).auc, 4)
        per_group.append(row)
    sizes = list(sizes or [n for n in (40, 80, 120, 160, 240, 320) if n < len(fit)] + [len(fit)])
    curve = learning_curve(fit, test, sizes, draws, cv, grid=grid, fixed=fixed)
    best_auc = next(r["auc_df"] for r in table["rows"] if r["rule"] == best)
    png = plot_learning_curve(curve, (best, best_auc), out_dir / "learning_curve.png")
    pooled = pooled_learning_curve([*fit, *test], pooled_sizes or [n for n in (40, 80, 160, 240, 300) if n + 100 <= len(fit) + len(test)],
                                   held_out=100, draws=draws * 4, fixed=fixed)
    report = {
        "n_fit": len(fit), "n_test": len(test), "cv": cv, "selection": selection.to_dict(), "test": table,
        "coefficients_small_correct_logistic": coefficients, "calibration": calibration,
        "per_group": {"field": field, "rows": per_group}, "learning_curve": curve, "learning_curve_png": str(png),
        "pooled_learning_curve": pooled,
    }
    (out_dir / "learned_diagnostics.json").write_text(json.dumps(report, indent=1), encoding="utf-8")
    return report


def _print(report: dict[str, Any]) -> None:
    print(f"fit {report['n_fit']} / test {report['n_test']}; cv-selected on the fit split: {report['selection']['winner']}")
    print(f"{'rule':<42} {'AUC-DF':>7} {'SE':>6} {'vs best test signal':>20}")
    for r in report["test"]["rows"]:
        vs = f"{r['vs_best_signal']:+.4f} ± {r['vs_best_signal_se']:.4f}" if "vs_best_signal" in r else ""
        print(f"{r['rule']:<42} {r['auc_df']:>7.4f} {r['se']:>6.4f} {vs:>20}")
    print("coefficients (standardised features, logistic small_correct):", report["coefficients_small_correct_logistic"])
    print("calibration:", {k: {kk: v[kk] for kk in ("ece", "mean_p", "accuracy")} for k, v in report["calibration"].items()})
    for r in report["per_group"]["rows"]:
        print("group", r)
    for r in report["learning_curve"]:
        print("learning curve", r)
    for r in report["pooled_learning_curve"]:
        print("pooled learning curve", r)


def main(argv: Sequence[str] | None = None) -> int:
    p = harness.parser(__doc__, threads=None, tiny=None, quiet=False)
    p.add_argument("--fit", help="fit-split cache (cascade collect)")
    p.add_argument("--test", help="test-split cache")
    p.add_argument("--synthetic", action="store_true", help="generated data instead of caches (smoke test)")
    p.add_argument("--out-dir", required=True)
    p.add_argument("--cv", type=int, default=5)
    p.add_argument("--draws", type=int, default=3, help="random subsets per learning-curve size")
    p.add_argument("--sizes", type=int, nargs="*", help="learning-curve fit-set sizes")
    p.add_argument("--field", default="attribute", help="record field of the per-group table")
    p.add_argument("--cv-repeats", type=int, default=3, help="repeats of the k-fold split of the main selection")
    p.add_argument("--pooled-sizes", type=int, nargs="*", help="fit sizes of the pooled (fit+test) learning curve")
    p.add_argument("--embedding", action="store_true",
                   help="the caches record the small model's embedding: Post-Hoc-Embed joins the CV grid (as in "
                        "cascade fit) and the fixed configurations (EMBED_FIXED)")
    p.add_argument("--fast", action="store_true", help="a small learned grid (logistic only) and 50 bootstrap resamples")
    args = p.parse_args(argv)
    if args.synthetic:
        fit, test = synthetic_caches(160, 240)
    elif args.fit and args.test:
        fit, test = load_cache(args.fit), load_cache(args.test)
    else:
        p.error("give --fit and --test caches, or --synthetic")
    grid = [{"model": "logistic", "C": 1.0, "target": t} for t in ("small_correct", "quality_gap")] if args.fast else None
    fixed = FIXED
    if args.embedding:
        grid = (grid if grid is not None else learned_grid()) + embedding_grid()
        fixed = {**FIXED, **EMBED_FIXED}
    report = diagnostics(fit, test, Path(args.out_dir), cv=args.cv, sizes=args.sizes, draws=args.draws, grid=grid,
                         field=args.field, resamples=50 if args.fast else 200, repeats=args.cv_repeats,
                         pooled_sizes=args.pooled_sizes, fixed=fixed)
    _print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
