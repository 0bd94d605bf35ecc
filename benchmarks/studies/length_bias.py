"""Length bias on real answers: does Chow-Sum over-defer long answers, and do the quantile and learned rules fix it?

    python -m benchmarks.studies.length_bias                       # 300 questions, SmolLM2-135M on llama.cpp
    python -m benchmarks.studies.length_bias --limit 20 --no-plot  # a smoke run

Paper A's observation: Chow-Sum (the sum of token log-probs) falls with every generated token, so at a
fixed deferral rate it sends long answers to the large tier whether or not they are wrong; Chow-Average
and Chow-Quantile do not scale with length, and a learned Post-Hoc rule can weigh length against the
log-probs. This script measures it on answers whose lengths really vary: the RAG workload's questions
(benchmarks/studies/workload_rag.py, drawn from the ``countryinfo`` records) with the country's own record as
context, and the small tier asked to reply in one sentence, so it writes 3 to ~40 tokens.

Only the small tier runs (the large tier is a scripted stand-in): length bias is about *which* answers
each signal defers, measured against whether the small answer was right. The learned rule (logistic,
Post-Hoc-Quantile features, target "small answer correct") is fitted on the first 40 % of the questions;
every number below is on the other 60 %. At one deferral rate (``--deferral-rate``, default 0.4) each
signal defers its lowest-scoring answers; the table gives the deferral rate per answer-length quartile
next to the small model's error rate there (what a perfect rule would follow), the rank correlation of
each score with length, and each score's AUROC for telling right answers from wrong ones.
Writes ``docs/figures/length_bias.png`` and ``benchmarks/results/length_bias.json``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import harness
from benchmarks.studies.workload_rag import is_correct, make_questions
from benchmarks.studies.workloads_common import document_text, load_countries

PROMPT = ("Answer the question using the context, in one sentence.\n\nContext:\n{context}\n\n"
          "Question: {question}")
SIGNALS = ["chow_sum", "chow_average", "chow_quantile(alpha=0)", "chow_quantile(alpha=0.5)", "margin", "learned"]


def build_records(n: int, seed: int) -> list[dict[str, Any]]:
    records = load_countries()
    by_name = {r["name"]: r for r in records}
    items = make_questions(records, n, seed)
    return [{"id": f"q{i}", "prompt": PROMPT.format(context=document_text(by_name[it["country"]]), question=it["question"]),
             "answer": it["gold"][0], "aliases": it["gold"][1:], "kind": it["kind"]} for i, it in enumerate(items)]


def quality(prediction: str, record: dict[str, Any]) -> float:
    return float(is_correct(prediction, [record["answer"], *record.get("aliases", [])]))


def auroc(scores: np.ndarray, correct: np.ndarray, resamples: int = 200, seed: int = 0) -> tuple[float, float]:
    """AUROC of ``scores`` for telling right answers from wrong ones, and its bootstrap standard error."""
    from sklearn.metrics import roc_auc_score

    if not 0 < correct.sum() < correct.size:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    boot = []
    for _ in range(resamples):
        idx = rng.integers(0, correct.size, correct.size)
        if 0 < correct[idx].sum() < idx.size:
            boot.append(roc_auc_score(correct[idx], scores[idx]))
    return float(roc_auc_score(correct, scores)), float(np.std(boot))


def analyse(examples: list[Any], fit_share: float, deferral_rate: float) -> dict[str, Any]:
    from scipy.stats import spearmanr

    from cascade_core.decide.learned.rule import LearnedDeferral
    from cascade_core.evaluation.curves import default_signals, signal_scores

    gens = [e.small for e in examples]
    correct = np.array([e.small_quality for e in examples])
    n_fit = int(round(fit_share * len(examples)))
    rule = LearnedDeferral(model="logistic", target="small_correct").fit_generations(gens[:n_fit], correct[:n_fit])
    scorers = {k: v for k, v in default_signals().items() if k in SIGNALS}
    scores = signal_scores(gens[n_fit:], scorers)
    scores["learned"] = np.array([rule(g) for g in gens[n_fit:]], dtype=float)
    test_correct = correct[n_fit:]
    lengths = np.array([len(g.steps) for g in gens[n_fit:]])
    edges = np.quantile(lengths, [0.25, 0.5, 0.75])
    bins = np.digitize(lengths, edges, right=True)
    out: dict[str, Any] = {
        "n_fit": n_fit, "n_test": int(lengths.size), "deferral_rate": deferral_rate,
        "small_accuracy": float(test_correct.mean()),
        "length_quartiles": [[int(lengths[bins == b].min()), int(lengths[bins == b].max())] for b in range(4) if (bins == b).any()],
        "error_rate_per_quartile": [float(1 - test_correct[bins == b].mean()) for b in range(4) if (bins == b).any()],
        "signals": {},
    }
    for name in SIGNALS:
        values = scores[name]
        k = int(round(deferral_rate * values.size))
        deferred = np.zeros(values.size, bool)
        deferred[np.argsort(values, kind="stable")[:k]] = True
        area, se = auroc(values, test_correct)
        out["signals"][name] = {
            "deferral_per_quartile": [float(deferred[bins == b].mean()) for b in range(4) if (bins == b).any()],
            "spearman_vs_length": float(spearmanr(values, lengths).statistic),
            "auroc_correct": area,
            "auroc_se": se,
            "wrong_kept": int((~deferred & (test_correct == 0)).sum()),
        }
    return out


def table(result: dict[str, Any]) -> str:
    quart = ["{}–{} tok".format(*q) for q in result["length_quartiles"]]
    lines = ["| | " + " | ".join(quart) + " | ρ(score, length) | AUROC ± se | wrong answers kept |",
             "|---|" + "---|" * (len(quart) + 3),
             "| small model's error rate | " + " | ".join(f"{e:.2f}" for e in result["error_rate_per_quartile"]) + " | | | |"]
    for name, s in result["signals"].items():
        lines.append(f"| deferred by {name} | " + " | ".join(f"{d:.2f}" for d in s["deferral_per_quartile"])
                     + f" | {s['spearman_vs_length']:+.2f} | {s['auroc_correct']:.3f} ± {s['auroc_se']:.3f} | {s['wrong_kept']} |")
    return "\n".join(lines)


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = np.arange(len(result["length_quartiles"]))
    labels = ["{}–{}".format(*q) for q in result["length_quartiles"]]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    ax.plot(x, result["error_rate_per_quartile"], "k--", lw=2, label="small model's error rate (ideal)")
    for name, s in result["signals"].items():
        ax.plot(x, s["deferral_per_quartile"], marker="o", label=name)
    ax.set_xticks(x, labels)
    ax.set_xlabel("small answer length (tokens), test quartiles")
    ax.set_ylabel(f"deferral rate at {result['deferral_rate']:.0%} overall")
    ax.set_title(f"Length bias, SmolLM2-135M answers, {result['n_test']} test questions")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = harness.parser(__doc__, threads=2, threads_help="llama.cpp / torch threads", tiny=None, quiet=False)
    parser.add_argument("--limit", type=int, default=300, help="questions (40 %% fit, 60 %% test)")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--small", default="llamacpp:small", help="small tier spec (cascade collect's --small)")
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--deferral-rate", type=float, default=0.4)
    parser.add_argument("--cache", default=str(harness.ROOT / "runs" / "length_bias.cache.jsonl"))
    parser.add_argument("--no-plot", action="store_true")
    parser.add_argument("--out", default=str(harness.RESULTS_DIR / "length_bias.json"))
    args = parser.parse_args(argv)
    harness.set_threads(1)
    from cascade_core.cli.tiers import build_tier
    from cascade_core.evaluation.collect import collect_records
    from cascade_core.testing import ScriptedModel

    small = build_tier(args.small, "small", top_k=5, max_new_tokens=args.max_new_tokens,
                       prompt_format="chat", threads=args.threads)
    examples = collect_records(build_records(args.limit, args.seed), small, ScriptedModel("(large tier not run)"),
                               cache_path=args.cache, max_new_tokens=args.max_new_tokens, quality=quality)
    result = analyse(examples, fit_share=0.4, deferral_rate=args.deferral_rate)
    print(table(result))
    if not args.no_plot:
        plot(result, harness.ROOT / "docs" / "figures" / "length_bias.png")
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    raise SystemExit(main())
