"""The BFCL table: small-only, large-only and three cascades per category, from the recorded caches.

    python -m benchmarks.public.bfcl.report                      # reads runs/bfcl, writes docs/figures/bfcl.*

Per category, on the test split (rules fitted on the fit split of all categories pooled — a few
dozen questions per category are too few to fit one per category):

* **small / large**: BFCL accuracy of each tier alone (an invalid small call counts as wrong);
* **parse-only**: the cascade keeps every answer whose calls pass the schema check (what peers do);
* **ToolCallRule**: thresholds on the least sure call's name margin / argument quantile, calibrated on fit;
* **learned**: the rule over paper A's and the tool-call features chosen by cross-validated AUC-DF on fit;
* **router** (when ``benchmarks.public.bfcl.embed`` has run): the pre-generation
  :class:`~cascade_core.decide.router.QueryRouter` over Qwen2.5-Coder-0.5B's embedding of the question's
  messages and their length, chosen by ``select_router`` (``cascade fit --router``) on fit; a question it
  keeps still has its small answer's calls schema-checked (invalid ones defer, as in every row).

Columns: accuracy and deferral rate of each operating point; AUC-DF (area under accuracy vs deferral
rate, every answer ordered by the rule's score, forced deferrals first) of the learned rule, of the
tool-name margin alone and of random/oracle; the learned rule's accuracy at 30 % and 50 % deferral;
the cost of reaching 95 % of large-only accuracy as a share of all-large cost, with the measured
seconds per question of each tier (``(c_s + r·c_l)/c_l``, r the smallest deferral rate that reaches it);
for the irrelevance categories the rate of calls made that should not have been.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.public import harness
from benchmarks.public.bfcl.data import CATEGORIES, IRRELEVANCE
from benchmarks.public.bfcl.rules import (
    Pair,
    forced_scores,
    select_learned,
    tool_call_rule_defers,
    tool_call_thresholds,
)
from benchmarks.public.bfcl.run import LARGE, RUNS, SMALL

FIGURES = Path("docs/figures")


def load_pairs(runs: Path, category: str, split: str) -> list[Pair]:
    """The questions of one category and split that both tiers answered."""
    from cascade_core.evaluation.collect import generation_from_dict

    small = harness.TierCache(runs / category / f"{SMALL}.{split}.jsonl").rows()
    large = harness.TierCache(runs / category / f"{LARGE}.{split}.jsonl").rows()
    return [Pair(i, category, s, large[i], generation_from_dict(s["generation"]) if s.get("generation") else None)
            for i, s in small.items() if i in large]


def _point(pairs: Sequence[Pair], defer: np.ndarray) -> dict[str, float]:
    small = np.array([p.small["quality"] for p in pairs])
    large = np.array([p.large["quality"] for p in pairs])
    return {"accuracy": float(np.where(defer, large, small).mean()), "deferral": float(defer.mean())}


_CALL_SHAPED = re.compile(r'"name"\s*:\s*"')


def _calls_made(pairs: Sequence[Pair], defer: np.ndarray, *, attempts: bool = False) -> float:
    """Share of questions answered with a tool call (irrelevance: each is a wrong call); with
    ``attempts``, answers whose text holds a call-shaped JSON (``"name": "…"``) that failed the schema
    check count too (BFCL's prompt-mode decoder would read some of them as calls)."""
    rows = [p.large if d else p.small for p, d in zip(pairs, defer, strict=True)]
    return float(np.mean([bool(r["calls"]) or (attempts and bool(_CALL_SHAPED.search(r.get("text") or "")))
                          for r in rows]))


def _rate_reaching(curve: Any, large_acc: float) -> float | None:
    """The smallest deferral rate whose accuracy reaches 95 % of large-only (None: never)."""
    reached = np.flatnonzero(curve.quality >= 0.95 * large_acc - 1e-12)
    return float(curve.rates[reached[0]]) if reached.size else None


def _cost_share(curve: Any, large_acc: float, c_s: float, c_l: float) -> float | None:
    """``(c_s + r·c_l)/c_l`` at the smallest deferral rate r whose accuracy reaches 95 % of large-only."""
    rate = _rate_reaching(curve, large_acc)
    return None if rate is None else float((c_s + rate * c_l) / c_l)


@dataclass
class RouterChoice:
    """The router ``select_router`` chose on the pooled fit split, and the embeddings it scores."""

    router: Any
    embeddings: dict[tuple[str, str], tuple[np.ndarray, float]]  # (category, id) -> (embedding, prompt tokens)
    seconds: float  # one embedding request, alone: the router's cost per question

    def scores(self, pairs: Sequence[Pair]) -> np.ndarray:
        rows = [self.embeddings[p.category, p.id] for p in pairs]
        return self.router.predict_good(np.stack([e for e, _ in rows]), np.array([t for _, t in rows]))


def select_router_choice(runs: Path, categories: Sequence[str], fit: Sequence[Pair], cv: int) -> RouterChoice | None:
    """The router fitted on the pooled fit split, or None when a category has no embeddings yet."""
    from benchmarks.public.bfcl.embed import embedding_path
    from cascade_core.evaluation.router_fit import select_router

    if not all(embedding_path(runs, c).exists() for c in categories):
        return None
    embeddings: dict[tuple[str, str], tuple[np.ndarray, float]] = {}
    seconds: list[float] = []
    for category in categories:
        data = np.load(embedding_path(runs, category))
        embeddings |= {(category, str(i)): (e.astype(np.float64), float(t))
                       for i, e, t in zip(data["ids"], data["embedding"], data["tokens"], strict=True)}
        seconds += [float(x) for x in data["seconds"]]
    missing = [p.id for p in fit if (p.category, p.id) not in embeddings]
    if missing:
        raise SystemExit(f"{len(missing)} fit questions have no prompt embedding (e.g. {missing[0]}); rerun "
                         "benchmarks.public.bfcl.embed with the sample of run")
    small = np.array([p.small["quality"] for p in fit])
    large = np.array([p.large["quality"] for p in fit])
    rows = [embeddings[p.category, p.id] for p in fit]
    router = select_router(np.stack([e for e, _ in rows]), np.array([t for _, t in rows]), small, large, cv=cv)
    return RouterChoice(router, embeddings, float(np.mean(seconds)))


def _router_cost_share(curve: Any, pairs: Sequence[Pair], large_acc: float, c_r: float, c_s: float, c_l: float) -> float | None:
    """``(c_r + (1 − routed)·c_s + r·c_l)/c_l`` at the smallest r reaching 95 % of large-only; the routed share is
    what the router sends away (r minus the kept questions whose calls failed the schema check)."""
    rate = _rate_reaching(curve, large_acc)
    if rate is None:
        return None
    routed = max(0.0, rate - float(np.mean([p.forced for p in pairs])))
    return float((c_r + (1.0 - routed) * c_s + rate * c_l) / c_l)


def category_row(pairs: Sequence[Pair], thresholds: dict[str, Any], learned: Any,
                 router: RouterChoice | None = None) -> dict[str, Any]:
    """Every number of one category's (or the pooled) test split."""
    from cascade_core.decide.tool_uncertainty import ToolNameMargin
    from cascade_core.evaluation.curves import deferral_curve, oracle_curve, random_curve

    small = np.array([p.small["quality"] for p in pairs])
    large = np.array([p.large["quality"] for p in pairs])
    forced = np.array([p.forced for p in pairs])
    tcr = tool_call_rule_defers(pairs, thresholds)
    name_margin = forced_scores(np.array([ToolNameMargin()(p.generation) if p.generation else 0.0 for p in pairs]),
                                pairs)
    curves = {"learned": deferral_curve(learned.scores(pairs), small, large, "learned"),
              "tool_name_margin": deferral_curve(name_margin, small, large, "tool name margin"),
              "parse_only": deferral_curve(forced_scores(np.ones(len(pairs)), pairs), small, large, "parse-only")}
    if router is not None:
        curves["router"] = deferral_curve(forced_scores(router.scores(pairs), pairs), small, large, "router")
    c_s = float(np.mean([p.small["seconds"] for p in pairs]))
    c_l = float(np.mean([p.large["seconds"] for p in pairs]))
    row: dict[str, Any] = {
        "n": len(pairs), "small": float(small.mean()), "large": float(large.mean()),
        "parse_only": _point(pairs, forced), "tool_call_rule": _point(pairs, tcr),
        "auc_df": {name: c.auc for name, c in curves.items()} | {"random": random_curve(small, large).auc,
                                                                   "oracle": oracle_curve(small, large).auc},
        "learned_at_30": curves["learned"].quality_at(0.3), "learned_at_50": curves["learned"].quality_at(0.5),
        "cost_share_95": _cost_share(curves["learned"], float(large.mean()), c_s, c_l),
        "small_seconds": c_s, "large_seconds": c_l,
        "small_invalid_calls": int(forced.sum()),
    }
    if router is not None:
        row["router_cost_share_95"] = _router_cost_share(curves["router"], pairs, float(large.mean()), router.seconds,
                                                         c_s, c_l)
    if all(p.category in IRRELEVANCE for p in pairs):
        none, every = np.zeros(len(pairs), bool), np.ones(len(pairs), bool)
        row["false_call_rate"] = {"small": _calls_made(pairs, none), "large": _calls_made(pairs, every),
                                  "parse_only": _calls_made(pairs, forced), "tool_call_rule": _calls_made(pairs, tcr),
                                  "large_with_attempts": _calls_made(pairs, every, attempts=True),
                                  "parse_only_with_attempts": _calls_made(pairs, forced, attempts=True)}
    row["_curves"] = curves
    return row


def _num(x: float | None) -> str:
    return "not checked" if x is None else f"{x:.3g}"


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.0f}%"


def markdown(rows: dict[str, dict[str, Any]], meta: dict[str, Any]) -> str:
    routed = meta.get("router") is not None
    head = ("| category | n test | small | large | parse-only (defer) | ToolCallRule (defer) | learned AUC-DF "
            "| name-margin AUC-DF |" + (" router AUC-DF |" if routed else "") + " random / oracle AUC-DF "
            "| learned @30 % / @50 % | cost at 95 % of large |" + (" router cost at 95 % |" if routed else ""))
    lines = [head, "|" + "---|" * (11 + 2 * routed)]
    for cat, r in rows.items():
        a = r["auc_df"]
        lines.append(
            f"| {cat} | {r['n']} | {r['small']:.3f} | {r['large']:.3f} "
            f"| {r['parse_only']['accuracy']:.3f} ({_pct(r['parse_only']['deferral'])}) "
            f"| {r['tool_call_rule']['accuracy']:.3f} ({_pct(r['tool_call_rule']['deferral'])}) "
            f"| {a['learned']:.3f} | {a['tool_name_margin']:.3f} |" + (f" {a['router']:.3f} |" if routed else "")
            + f" {a['random']:.3f} / {a['oracle']:.3f} "
            f"| {r['learned_at_30']:.3f} / {r['learned_at_50']:.3f} | {_pct(r['cost_share_95'])} |"
            + (f" {_pct(r['router_cost_share_95'])} |" if routed else ""))
    irr = {c: r for c, r in rows.items() if "false_call_rate" in r}
    if irr:
        lines += ["", "| category | calls made that should not have been: small | large | parse-only | ToolCallRule "
                  "| large / parse-only, counting schema-invalid call-shaped text |", "|---|---|---|---|---|---|"]
        for cat, r in irr.items():
            f = r["false_call_rate"]
            lines.append(f"| {cat} | {_pct(f['small'])} | {_pct(f['large'])} | {_pct(f['parse_only'])} "
                         f"| {_pct(f['tool_call_rule'])} | {_pct(f['large_with_attempts'])} / "
                         f"{_pct(f['parse_only_with_attempts'])} |")
    t = meta["tool_call_rule"]
    lines += ["", f"ToolCallRule on fit ({meta['fit_questions']} questions): name_threshold={_num(t['name_threshold'])}, "
              f"arguments_threshold={_num(t['arguments_threshold'])}; learned rule chosen by {meta['cv']}-fold CV: "
              f"{meta['learned']['params']} (held-out AUC-DF {meta['learned']['auc_df']:.3f})."]
    if routed:
        lines.append(f"Router chosen by {meta['cv']}-fold CV on fit: C={meta['router']['params']['C']}, "
                     f"components={meta['router']['params']['embedding_components']}; one embedding request "
                     f"{meta['router']['seconds']:.3f} s (its cost in the router's cost column).")
    li = meta.get("llamaindex") or {}
    if li.get("n"):
        lines.append(f"CascadeLLM.achat_with_tools (qwen05 → qwen15, parse-only) on {li['n']} test questions: "
                     f"accuracy {li['accuracy']:.3f}, {_pct(li['deferred'])} deferred, {li['seconds']:.1f} s each.")
    for cat, o in (meta.get("smollm2") or {}).items():
        same = o[f"{SMALL}_on_same"]
        lines.append(f"SmolLM2-135M alone, {cat}: {o['accuracy']:.3f} on {o['n']} test questions "
                     f"({_pct(o['valid_calls'])} valid calls; Qwen2.5-Coder-0.5B on the same: "
                     f"{'—' if same is None else f'{same:.3f}'}).")
    return "\n".join(lines)


def llamaindex_summary(runs: Path, categories: Sequence[str]) -> dict[str, Any]:
    rows = [r for c in categories for r in harness.TierCache(runs / c / "llamaindex.test.jsonl").rows().values()]
    if not rows:
        return {"n": 0}
    return {"n": len(rows), "accuracy": float(np.mean([r["quality"] for r in rows])),
            "deferred": float(np.mean([r["tier"] != 0 for r in rows])),
            "seconds": float(np.mean([r["seconds"] for r in rows]))}


def other_small(runs: Path, categories: Sequence[str], name: str = "smollm2") -> dict[str, Any]:
    """Another small tier measured alone (``run --also-small``): its accuracy per category, and qwen05's
    on the same questions."""
    out: dict[str, Any] = {}
    for cat in categories:
        rows = harness.TierCache(runs / cat / f"{name}.test.jsonl").rows()
        ours = harness.TierCache(runs / cat / f"{SMALL}.test.jsonl").rows()
        if rows:
            same = [i for i in rows if i in ours]
            out[cat] = {"n": len(rows), "accuracy": float(np.mean([r["quality"] for r in rows.values()])),
                        "valid_calls": float(np.mean([r["kind"] == "valid_call" for r in rows.values()])),
                        f"{SMALL}_on_same": float(np.mean([ours[i]["quality"] for i in same])) if same else None}
    return out


def build(runs: Path, categories: Sequence[str], *, max_loss: float = 0.1, cv: int = 5) -> dict[str, Any]:
    fit = [p for c in categories for p in load_pairs(runs, c, "fit")]
    tests = {c: load_pairs(runs, c, "test") for c in categories}
    tests = {c: t for c, t in tests.items() if t}
    thresholds = tool_call_thresholds(fit, max_loss)
    learned = select_learned(fit, cv=cv)
    router = select_router_choice(runs, categories, fit, cv)
    rows = {c: category_row(t, thresholds, learned, router) for c, t in tests.items()}
    rows["all (pooled)"] = category_row([p for t in tests.values() for p in t], thresholds, learned, router)
    best = max(learned.table, key=lambda t: t["auc_df"] if t["folds"] else -1)
    meta = {"fit_questions": len(fit), "cv": cv, "max_loss": max_loss,
            "tool_call_rule": {k: thresholds[k] for k in ("name_threshold", "arguments_threshold")},
            "learned": {"params": learned.params, "auc_df": best["auc_df"], "candidates": learned.table},
            "router": None if router is None else {"params": router.router.get_params(), "seconds": router.seconds},
            "llamaindex": llamaindex_summary(runs, categories), "smollm2": other_small(runs, categories),
            "seconds": {"small": float(sum(p.small["seconds"] for c in categories for s in ("fit", "test")
                                           for p in load_pairs(runs, c, s))),
                        "large": float(sum(p.large["seconds"] for c in categories for s in ("fit", "test")
                                           for p in load_pairs(runs, c, s)))}}
    return {"rows": rows, "meta": meta}


def main(argv: list[str] | None = None) -> int:
    p = harness.parser(__doc__)
    p.set_defaults(runs=RUNS)
    p.add_argument("--categories", nargs="*", default=list(CATEGORIES), choices=CATEGORIES)
    p.add_argument("--out", type=Path, default=FIGURES / "bfcl", help="output stem (default %(default)s)")
    p.add_argument("--max-loss", type=float, default=0.1, help="ToolCallRule: right fit calls it may defer")
    args = p.parse_args(argv)
    from cascade_core.evaluation.curves import oracle_curve, random_curve
    from cascade_core.evaluation.plots import plot_deferral_curves

    result = build(args.runs, args.categories, max_loss=args.max_loss)
    rows, meta = result["rows"], result["meta"]
    text = markdown(rows, meta)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    saved = {"rows": {c: {k: v for k, v in r.items() if not k.startswith("_")} for c, r in rows.items()}, "meta": meta}
    args.out.with_suffix(".json").write_text(json.dumps(saved, indent=1, default=str) + "\n", encoding="utf-8")
    args.out.with_suffix(".md").write_text(text + "\n", encoding="utf-8")
    pooled = rows["all (pooled)"]
    pairs = [q for c in args.categories for q in load_pairs(args.runs, c, "test")]
    small = np.array([q.small["quality"] for q in pairs])
    large = np.array([q.large["quality"] for q in pairs])
    plot_deferral_curves(list(pooled["_curves"].values()), random_curve(small, large), oracle_curve(small, large),
                         args.out.with_suffix(".png"), title=f"BFCL v4, {len(pairs)} test questions, "
                         "Qwen2.5-Coder-0.5B → 1.5B")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
