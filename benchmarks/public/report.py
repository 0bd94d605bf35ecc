"""The public-benchmark table: every method on the same caches, AUC-DF ± bootstrap SE per task, cost at 95 %.

    python -m benchmarks.public.report --fit 100 --test 300            # after collect, embed and peers
    python -m benchmarks.public.report --tasks world_facts rag --runs runs/inhouse --small smollm2 --name inhouse

Reads what ``benchmarks.public.collect`` / ``embed`` / ``peers`` wrote under ``runs/public`` and, per small
tier and task, compares on the TEST split (everything fitted on the fit split only):

- ``random`` and ``oracle`` (the baselines of paper A);
- each single signal of the small tier's answer: first-token margin (among the labels' first tokens on
  label tasks), Chow-Sum, Chow-Average, Chow-Quantile at α = 0 / 0.1 / 0.5 / 0.9, entropy;
- ``cascade fit``'s rule: :func:`~cascade_core.evaluation.rule_selection.select_rule` with the CLI's default
  grid, chosen by 5-fold cross-validation on the fit split;
- ``router``: a :class:`~cascade_core.decide.router.QueryRouter` over the small model's prompt embedding
  and length (pre-generation; fitted on the fit split);
- ``hybrid``: route away what the router rates worst, cascade the rest on the fit rule's score, one
  deferral budget shared by both stages (the split chosen on the fit split with cross-fitted scores);
- ``cascadeflow``: cascadeflow 1.2.0's own ``drafter_quality`` over its own drafts (``logprobs``: the
  drafter asked for log-probs; ``default``: its text heuristic), escalations scored with the large
  tier's answer from the same collection; and ``cascadeflow_rule``: its log-prob confidence formula
  ``clamp(exp(mean log-prob) × 1.5, 0.1, 1)`` applied to our own small answers (its rule alone).

Costs (:class:`~cascade_core.evaluation.routing.QueryCosts`) are compute: a model's parameters times
the tokens it reads and writes (mean per test query; wall seconds on a shared 2-core CPU depend more
on what else runs than on the model, so they are recorded but not used). A kept query costs the small
generation, a deferred one small + large; with a router every query also pays its prefill of the
query part (a separate embedding call), and a routed-away one pays that prefill + large but no small
generation. "cost @95 %" is the share of the all-large cost at which a method first reaches 95 % of
the large tier's test accuracy (above 1: dearer than all-large). Writes
``docs/figures/public_benchmark.{json,md}``, ``docs/figures/public_<small>.png`` (deferral curves) and
``docs/figures/public_<small>_cost.png`` (accuracy vs compute).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from benchmarks.public import harness  # noqa: E402

FIGURES = Path("docs/figures")
SIGNALS = ("margin", "chow_sum", "chow_average", "chow_quantile(alpha=0)", "chow_quantile(alpha=0.1)",
           "chow_quantile(alpha=0.5)", "chow_quantile(alpha=0.9)", "entropy")
CASCADEFLOW = ("cascadeflow_logprobs", "cascadeflow_default")
METHODS = ("random", *SIGNALS, "fit_rule", "router", "hybrid", "cascadeflow_rule", *CASCADEFLOW, "oracle")
RANKED = tuple(m for m in METHODS if m not in ("random", "oracle"))
TARGET = 0.95  # of the large tier's test accuracy
RESAMPLES = 200
FOLDS = 5


def _rule_scores(rule: Any, examples: list) -> np.ndarray:
    from cascade_core.evaluation.report import scores_for

    return scores_for(examples, {"rule": rule})["rule"]


def fit_rule(fit: list, small_q: np.ndarray, large_q: np.ndarray, seed: int) -> tuple[Any, str, Callable[[list], np.ndarray]]:
    """``cascade fit``'s choice on the fit split (its default grid and 5-fold CV), with a function that
    scores examples and the winner's name."""
    from cascade_core.cli.commands import _shared_label_tokens
    from cascade_core.evaluation.rule_selection import learned_grid, select_rule

    labels = _shared_label_tokens(fit)
    grid = learned_grid(None, ("small_correct", "large_better", "quality_gap"), random_state=seed)
    selection = select_rule([e.small for e in fit], small_q, large_q, cv=FOLDS, learned=grid, margin_labels=labels,
                            labels_per_example=[e.label_tokens for e in fit], seed=seed)
    return selection.rule, selection.winner["candidate"], lambda examples: _rule_scores(selection.rule, examples)


def _folds(n: int, seed: int) -> list[np.ndarray]:
    return np.array_split(np.random.default_rng(seed).permutation(n), FOLDS)


def cross_fitted_rule_scores(rule: Any, fit: list, small_q: np.ndarray, large_q: np.ndarray, seed: int) -> np.ndarray:
    """The fit rule's scores on its own fit split, each fold scored by a copy fitted on the other folds
    (a single signal has nothing to fit: its scores as they are)."""
    from cascade_core.decide.learned.rule import LearnedDeferral, deferral_labels

    if not isinstance(rule, LearnedDeferral):
        return _rule_scores(rule, fit)
    out = np.empty(len(fit))
    for held in _folds(len(fit), seed):
        train = np.setdiff1d(np.arange(len(fit)), held)
        copy = LearnedDeferral(**rule.get_params())
        copy.fit_generations([fit[i].small for i in train], deferral_labels(small_q[train], large_q[train], copy.target))
        out[held] = _rule_scores(copy, [fit[i] for i in held])
    return out


COSTS = ("compute", "price")


def query_costs(kind: str, small: str, test: list, query_tokens: np.ndarray) -> Any:
    """Mean per-query costs of the test split: ``compute`` = parameters × tokens read and written,
    ``price`` = the stand-in prices of the embedded tiers (``DEFAULT_PRICES``, per million tokens).
    The router reads the query part once (a separate prefill: kept queries pay it too)."""
    from cascade_core.backends.defaults import DEFAULT_PRICES
    from cascade_core.evaluation.routing import QueryCosts
    from cascade_core.types import Usage

    small_usage = [e.small.usage for e in test]
    large_usage = [e.large_usage for e in test]
    if kind == "compute":
        def per(name: str, usages: list[Usage]) -> float:
            return harness.PARAMETERS[name] * float(np.mean([u.input_tokens + u.output_tokens for u in usages]))
    else:
        def per(name: str, usages: list[Usage]) -> float:
            pricing = DEFAULT_PRICES[harness.TIERS[name][0]]
            return float(np.mean([pricing.cost(u) for u in usages]))
    router = per(small, [Usage(int(t), 0) for t in query_tokens])
    return QueryCosts(small=per(small, small_usage), large=per(harness.LARGE_TIER, large_usage), router=router,
                      router_kept=router)


def load_embeddings(folder: Path, small: str, ids: list[str]) -> tuple[np.ndarray, np.ndarray, float]:
    """Prompt embeddings and prompt tokens of ``ids`` (from ``embed.py``), and the mean seconds of one
    embedding request (the router's cost per query)."""
    path = folder / f"{small}.prompt_embedding.npz"
    if not path.exists():
        raise SystemExit(f"{path} is missing: run `python -m benchmarks.public.embed --tiers {small}` first")
    data = np.load(path)
    index = {str(i): k for k, i in enumerate(data["ids"])}
    missing = [i for i in ids if i not in index]
    if missing:
        raise SystemExit(f"{folder}: {len(missing)} ids have no prompt embedding; run benchmarks.public.embed")
    rows = [index[i] for i in ids]
    return data["embedding"][rows].astype(np.float64), data["tokens"][rows].astype(np.float64), float(np.mean(data["seconds"]))


def router_scores(emb_fit: np.ndarray, tok_fit: np.ndarray, small_fit: np.ndarray, large_fit: np.ndarray,
                  emb_test: np.ndarray, tok_test: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """P(small answer good) on the test split from the router ``cascade fit --router`` chooses on the fit
    split (:func:`~cascade_core.evaluation.router_fit.select_router`), and the fit split's own
    cross-fitted probabilities (for the hybrid's split)."""
    from cascade_core.decide.router import QueryRouter
    from cascade_core.evaluation.router_fit import select_router

    router = select_router(emb_fit, tok_fit, small_fit, large_fit, cv=FOLDS, seed=seed)
    y_fit = (small_fit >= 0.5).astype(int)
    crossed = np.empty(y_fit.size)
    for held in _folds(y_fit.size, seed):
        train = np.setdiff1d(np.arange(y_fit.size), held)
        copy = QueryRouter(**router.get_params()).fit(emb_fit[train], tok_fit[train], y_fit[train])
        crossed[held] = copy.predict_good(emb_fit[held], tok_fit[held])
    return router.predict_good(emb_test, tok_test), crossed, router.get_params()


def peer_rows(folder: Path, setting: str, small: str, test: list,
              ids: list[str] | None = None) -> tuple[np.ndarray, np.ndarray] | None:
    """cascadeflow's drafter scores and the quality of its answers on the test ids (or on ``ids``, in
    that order); None if that setting did not run on all of them."""
    from cascade_core.evaluation.quality import resolve_quality_scorer

    rows = _peer_file(folder, setting, small)
    wanted = test if ids is None else [e for e in test if e.id in set(ids)]
    if not rows or any(e.id not in rows for e in wanted):
        return None
    score = resolve_quality_scorer("auto")
    quality, drafter = [], []
    for e in wanted:
        text = rows[e.id]["text"] or ""
        prefix = e.record.get("answer_prefix") or ""
        if prefix and text.lstrip().startswith(prefix):  # a chat answer repeating the prompt's "A:"
            text = text.lstrip()[len(prefix):]
        quality.append(float(score(text.strip(), e.record)))
        drafter.append(float(rows[e.id]["drafter_quality"] or 0.0))
    return np.array(drafter), np.array(quality)


def _peer_file(folder: Path, setting: str, drafter: str) -> dict[str, dict[str, Any]]:
    path = folder / f"cascadeflow.{setting}.{drafter}.jsonl"
    if not path.exists():
        return {}
    return {r["id"]: r for r in map(json.loads, path.read_text(encoding="utf-8").splitlines()) if r}


def peer_notes(folder: Path, small: str, test: list, scores: dict[str, np.ndarray], tl: np.ndarray) -> dict[str, Any]:
    """cascadeflow's settings that ran on a subset of the test prompts, each on its own subset: its
    default (no log-probs) score vs its log-prob score vs our margin on the same queries; how often its
    own verifier call is right next to our large answer; what its pre-router sends straight to the verifier."""
    from cascade_core.evaluation.curves import deferral_curve

    notes: dict[str, Any] = {}
    index = {e.id: i for i, e in enumerate(test)}
    default = _peer_file(folder, "default", small)
    both = peer_rows(folder, "logprobs", small, test, ids=list(default))
    mine = peer_rows(folder, "default", small, test, ids=list(default))
    if default and both is not None and mine is not None:
        idx = np.array([index[e.id] for e in test if e.id in default])  # test order, as peer_rows returns them
        ts = np.array([test[i].small_quality for i in idx])
        notes["default_subset"] = {
            "n": int(idx.size),
            "cascadeflow_default": deferral_curve(mine[0], mine[1], tl[idx]).auc,
            "cascadeflow_logprobs": deferral_curve(both[0], both[1], tl[idx]).auc,
            "margin": deferral_curve(scores["margin"][idx], ts, tl[idx]).auc,
            "default_draft_accuracy": float(mine[1].mean()),
        }
    verifier = peer_rows(folder, "verifier", small, test, ids=list(_peer_file(folder, "verifier", small)))
    if verifier is not None and verifier[1].size:
        ids = list(_peer_file(folder, "verifier", small))
        notes["verifier"] = {"n": len(ids), "its_accuracy": float(verifier[1].mean()),
                             "our_large_accuracy": float(np.mean([tl[index[i]] for i in ids if i in index]))}
    routed = _peer_file(folder, "pre_router", small)
    if routed:
        # sent straight: no draft scored (drafter_quality 0) and the verifier answered (accepted is null then)
        straight = [r for r in routed.values() if not r.get("drafter_quality") and r.get("model_used") == "verifier"]
        notes["pre_router"] = {"n": len(routed), "sent_straight_to_verifier": len(straight) / len(routed)}
    return notes


def evaluate_task(task: str, small: str, args: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    from cascade_core.evaluation.collect import load_cache
    from cascade_core.evaluation.curves import deferral_curve, oracle_curve, random_curve
    from cascade_core.evaluation.report import measured_costs, qualities, scores_for
    from cascade_core.evaluation.routing import cost_at_quality, fit_hybrid, hybrid_curve

    folder = harness.task_folder(args.runs, task)
    fit = load_cache(folder / f"{small}.fit.cache.jsonl")
    test = load_cache(folder / f"{small}.test.cache.jsonl")
    fs, fl = qualities(fit)
    ts, tl = qualities(test)
    seconds = measured_costs(test)
    scores: dict[str, np.ndarray] = {k: v for k, v in scores_for(test).items() if k in SIGNALS}
    # cascadeflow's log-prob confidence, clamp(exp(mean log-prob) x 1.5, 0.1, 1), on OUR small answers:
    # its rule alone, apart from its chat-only drafts
    scores["cascadeflow_rule"] = np.clip(np.exp(scores["chow_average"]) * 1.5, 0.1, 1.0)
    rule, winner, score_rule = fit_rule(fit, fs, fl, args.seed)
    scores["fit_rule"] = score_rule(test)
    rule_test = scores["fit_rule"]
    routed_methods = ("router", "hybrid")
    embedded = (folder / f"{small}.prompt_embedding.npz").exists()
    router_params: dict[str, Any] | None = None
    router_seconds: float | None = None
    if embedded:
        emb_f, tok_f, _ = load_embeddings(folder, small, [e.id for e in fit])
        emb_t, tok_t, router_seconds = load_embeddings(folder, small, [e.id for e in test])
        p_test, p_fit, router_params = router_scores(emb_f, tok_f, fs, fl, emb_t, tok_t, args.seed)
        scores["router"] = p_test
        points = fit_hybrid(p_fit, cross_fitted_rule_scores(rule, fit, fs, fl, args.seed), fs, fl, np.linspace(0, 1, 21))
    else:
        tok_t = np.zeros(len(test))
        print(f"{task} ({small}): no prompt embeddings, so no router or hybrid row; run "
              f"`python -m benchmarks.public.embed --tiers {small} --tasks {task}`", file=sys.stderr)
    costs = {kind: query_costs(kind, small, test, tok_t) for kind in COSTS}

    def auc_of(method: str, idx: np.ndarray) -> float:
        if method == "hybrid":
            return hybrid_curve(points, p_test[idx], rule_test[idx], ts[idx], tl[idx]).auc
        if method in peers:
            drafter, quality = peers[method]
            return deferral_curve(drafter[idx], quality[idx], tl[idx]).auc
        if method == "random":
            return random_curve(ts[idx], tl[idx]).auc
        if method == "oracle":
            return oracle_curve(ts[idx], tl[idx]).auc
        return deferral_curve(scores[method][idx], ts[idx], tl[idx]).auc

    peers: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for method in CASCADEFLOW:
        got = peer_rows(folder, method.split("_", 1)[1], small, test)
        if got is not None:
            peers[method] = got
    methods = [m for m in METHODS if (m not in CASCADEFLOW or m in peers) and (embedded or m not in routed_methods)]
    everything = np.arange(len(test))
    rng = np.random.default_rng(args.seed)
    draws = [rng.integers(0, len(test), len(test)) for _ in range(args.resamples)]
    row: dict[str, Any] = {
        "task": task, "small": small, "n_fit": len(fit), "n_test": len(test),
        "small_accuracy": float(ts.mean()), "large_accuracy": float(tl.mean()), "fit_rule": winner,
        "router": router_params, "cost": {k: vars(c) for k, c in costs.items()},
        "seconds": {"small": seconds[0], "large": seconds[1], "router": router_seconds},
        "auc": {}, "se": {}, **{f"{kind}_at_95": {} for kind in COSTS},
    }
    for method in methods:
        row["auc"][method] = auc_of(method, everything)
        row["se"][method] = float(np.std([auc_of(method, idx) for idx in draws]))
    target = TARGET * float(tl.mean())
    curves: dict[str, Any] = {}
    for method in methods:
        if method == "hybrid":
            curves[method] = hybrid_curve(points, p_test, rule_test, ts, tl)
        elif method in peers:
            curves[method] = deferral_curve(peers[method][0], peers[method][1], tl)
        elif method == "random":
            curves[method] = random_curve(ts, tl)
        elif method == "oracle":
            curves[method] = oracle_curve(ts, tl)
        else:
            curves[method] = deferral_curve(scores[method], ts, tl)
        routed = None if method == "hybrid" else curves[method].rates if method == "router" else 0.0
        for kind, cost in costs.items():
            value = cost_at_quality(curves[method], cost, target, routed_share=routed)
            row[f"{kind}_at_95"][method] = None if np.isnan(value) else value
    for method, (_, quality) in peers.items():
        row[method + "_draft_accuracy"] = float(quality.mean())
    row["cascadeflow_notes"] = peer_notes(folder, small, test, scores, tl)
    curves["_costs"] = costs["compute"]
    return row, curves


def rank_counts(rows: list[dict[str, Any]]) -> dict[str, int]:
    """In how many tasks each ranked method is best or second by AUC-DF."""
    counts = dict.fromkeys(RANKED, 0)
    for row in rows:
        ranked = sorted((m for m in RANKED if m in row["auc"]), key=lambda m: -row["auc"][m])
        for m in ranked[:2]:
            counts[m] += 1
    return counts


def markdown(rows: list[dict[str, Any]], small: str) -> str:
    """One table per small tier: methods as rows, tasks as columns; best **bold**, second _underlined_."""
    tasks = [r for r in rows if r["small"] == small]
    short = [r["task"].split("/")[-1].replace("subtask047_misc_answering_science_questions", "subtask047")
             .replace("products_sentence_en", "multiemo") for r in tasks]
    lines = [f"| method | {' | '.join(short)} | best or 2nd |", "|---|" + "---|" * (len(tasks) + 1)]
    lines.append("| small / large accuracy | " + " | ".join(
        f"{r['small_accuracy']:.2f} / {r['large_accuracy']:.2f}" for r in tasks) + " | |")
    counts = rank_counts(tasks)
    shown = [m for m in METHODS if any(m in r["auc"] for r in tasks)]  # e.g. no peer rows on the in-house workloads
    for method in shown:
        cells = []
        for r in tasks:
            if method not in r["auc"]:
                cells.append("—")
                continue
            ranked = sorted((m for m in RANKED if m in r["auc"]), key=lambda m: -r["auc"][m])
            text = f"{r['auc'][method]:.3f} ±{r['se'][method]:.3f}"
            if ranked and method == ranked[0]:
                text = f"**{text}**"
            elif len(ranked) > 1 and method == ranked[1]:
                text = f"<u>{text}</u>"
            cells.append(text)
        count = f"{counts[method]} of {len(tasks)}" if method in counts else ""
        lines.append(f"| {method} | {' | '.join(cells)} | {count} |")
    for kind, what in (("compute", "compute: parameters × tokens"), ("price", "stand-in prices")):
        lines += ["", f"Cost at {TARGET:.0%} of large-only accuracy, {what} (share of all-large; — = not reached):", "",
                  f"| method | {' | '.join(short)} |", "|---|" + "---|" * len(tasks)]
        for method in shown:
            if method == "random":
                continue
            cells = []
            for r in tasks:
                value = r[f"{kind}_at_95"].get(method)
                cells.append("—" if value is None else f"{value:.2f}")
            lines.append(f"| {method} | {' | '.join(cells)} |")
    return "\n".join(lines)


PLOTTED = ("margin", "fit_rule", "router", "hybrid", "cascadeflow_logprobs", "random", "oracle")


def _cost_axis(name: str, curve: Any, costs: Any) -> np.ndarray:
    routed = getattr(curve, "routed", None)
    if routed is None:
        routed = curve.rates if name == "router" else np.zeros_like(curve.rates)
    return costs.share(curve.rates, routed)


def plot(results: list[tuple[dict[str, Any], dict[str, Any]]], small: str, out: Path, axis: str = "deferral",
         stem: str = "public") -> Path:
    """One panel per task: accuracy vs deferral rate (``axis="deferral"``) or vs compute cost as a share
    of all-large (``axis="cost"``), for the main methods; cascadeflow's sweep sits on the same axes."""
    from cascade_core.evaluation.plots import _pyplot, _save

    plt = _pyplot()
    tasks = [(row, curves) for row, curves in results if row["small"] == small]
    cols = (len(tasks) + 1) // 2
    fig, axes = plt.subplots(2, cols, figsize=(4 * cols, 7), squeeze=False)
    for ax, (row, curves) in zip(axes.flat, tasks, strict=False):
        for name in PLOTTED:
            if name in curves:
                curve = curves[name]
                x = curve.rates if axis == "deferral" else _cost_axis(name, curve, curves["_costs"])
                style = ":" if name in ("random", "oracle") else "-"
                ax.plot(x, curve.quality, style, label=f"{name} {curve.auc:.3f}" if axis == "deferral" else name)
        if axis == "cost":
            ax.axhline(TARGET * row["large_accuracy"], color="grey", lw=0.6)
        ax.set_title(row["task"].split("/")[-1][:30], fontsize=9)
        ax.set_xlabel("deferral rate" if axis == "deferral" else "compute, share of all-large", fontsize=8)
        ax.set_ylabel("accuracy", fontsize=8)
        ax.legend(fontsize=6)
    what = "deferral curves" if axis == "deferral" else "accuracy vs compute (grey: 95 % of large-only)"
    fig.suptitle(f"{harness.TIERS[small][1]} → {harness.TIERS[harness.LARGE_TIER][1]}: test split, {what}")
    return _save(fig, out / (f"{stem}_{small}.png" if axis == "deferral" else f"{stem}_{small}_cost.png"))


def main(argv: list[str] | None = None) -> int:
    p = harness.parser(__doc__)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resamples", type=int, default=RESAMPLES, help="bootstrap resamples of the test split (default %(default)s)")
    p.add_argument("--small", nargs="+", default=["qwen05", "smollm2"], choices=harness.SMALL_TIERS)
    p.add_argument("--out", type=Path, default=FIGURES, help="folder for the JSON, markdown and PNG (default %(default)s)")
    p.add_argument("--name", default="public", help="output names: <name>_benchmark.{json,md}, <name>_<small>.png "
                   "(default %(default)s; the in-house workloads: --name inhouse)")
    args = p.parse_args(argv)
    from tqdm.auto import tqdm

    started = time.perf_counter()
    plan = [(s, t) for s in args.small for t in harness.task_names(args)]
    results = [evaluate_task(task, small, args) for small, task in tqdm(plan, desc="tasks", unit="task", disable=args.quiet)]
    rows = [row for row, _ in results]
    args.out.mkdir(parents=True, exist_ok=True)
    for small in args.small:
        plot(results, small, args.out, stem=args.name)
        plot(results, small, args.out, axis="cost", stem=args.name)
    (args.out / f"{args.name}_benchmark.json").write_text(json.dumps(rows, indent=1), encoding="utf-8")
    text = "\n\n".join(f"### {harness.TIERS[s][1]} → {harness.TIERS[harness.LARGE_TIER][1]}\n\n{markdown(rows, s)}"
                       for s in args.small)
    (args.out / f"{args.name}_benchmark.md").write_text(text + "\n", encoding="utf-8")
    print(text)
    print(f"wall time {time.perf_counter() - started:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
