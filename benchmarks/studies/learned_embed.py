"""Post-Hoc-Embed (paper A): does the small model's pooled embedding help the learned deferral rule?

1. Runs the small tier (SmolLM2-135M, **fp32 transformers**, not the Q4 llama.cpp model of the
   existing caches, so its answers and accuracy differ from docs/evaluation.md) over the fit and test
   data files with ``collect_records(..., record_embedding=True)``. The large tier is not rerun: a
   scripted stand-in answers during collection and each id's large answer and quality are then taken
   from the existing llama.cpp cache (joined on id; a missing id is an error).
2. On the fit split only, :func:`~cascade_core.evaluation.rule_selection.select_rule` chooses by k-fold
   CV among every single signal, Post-Hoc-Quantile logistic rules and Post-Hoc-Embed logistic rules
   (several L2 strengths C, full embedding or its PCA reduction to a few components).
3. Every candidate is fitted on the whole fit split and measured on the test split: AUC-DF with
   bootstrap SEs, the difference to random, and the paired difference to the best *test* signal (the
   signal picked after seeing the test set, the strictest comparison).

Run (resumable: the small tier's caches live under ``--runs``)::

    OMP_NUM_THREADS=1 python -m benchmarks.studies.learned_embed --data-dir /work/main/runs/reproduce \\
        --runs runs/embed --out benchmarks/results/learned_embed.json

``--synthetic`` runs the analysis on generated data with a synthetic embedding (the smoke test).
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import harness
from benchmarks.studies.learned_diagnostics import bootstrap_auc
from benchmarks.studies.learned_diagnostics import synthetic_caches as generated_caches
from cascade_core.decide.learned.rule import LearnedDeferral, deferral_labels
from cascade_core.errors import DataFormatError
from cascade_core.evaluation.collect import CachedExample, collect_records, load_cache, read_jsonl
from cascade_core.evaluation.report import qualities
from cascade_core.evaluation.rule_selection import (
    candidate_label,
    embedding_grid,
    learned_grid,
    select_rule,
)

SMALL_TIER_NOTE = (
    "small tier: SmolLM2-135M-Instruct in fp32 transformers (few-shot completion prompts, greedy, "
    "max 10 new tokens, stop at newline), NOT the Q4 llama.cpp model of runs/reproduce; its answers and "
    "accuracy differ from docs/evaluation.md. Large tier: Qwen2.5-Coder-1.5B answers taken per id from the "
    "llama.cpp caches (not rerun)."
)

RAG_NOTE = (
    "small tier: SmolLM2-135M-Instruct in fp32 transformers (chat template, greedy, max 40 new tokens, stop at "
    "newline), NOT the Q4 llama.cpp model of runs/rag; its answers differ from benchmarks/studies/rag_caches.py's. "
    "Large tier: Qwen2.5-Coder-1.5B answers taken per id from the llama.cpp caches (not rerun)."
)
TARGETS = ("small_correct", "large_better", "quality_gap")
EMBED_C = (0.003, 0.03, 0.3)
COMPONENTS = (None, 8, 16, 32)


def candidate_grid(components: Sequence[int | None] = COMPONENTS) -> list[dict[str, Any]]:
    """Post-Hoc-Quantile logistic (C 0.03/0.3/3) and Post-Hoc-Embed logistic (C × embedding components), × targets."""
    return learned_grid(["logistic"], TARGETS) + embedding_grid(TARGETS, components, EMBED_C)


def join_large(small_rows: Sequence[CachedExample], large_cache: Sequence[CachedExample]) -> list[CachedExample]:
    """``small_rows`` with each id's large answer, quality and usage from ``large_cache`` (an id missing there raises)."""
    by_id = {e.id: e for e in large_cache}
    missing = [e.id for e in small_rows if e.id not in by_id]
    if missing:
        raise DataFormatError(f"{len(missing)} ids have no large answer in the llama.cpp cache, e.g. {missing[:3]}")
    return [
        dataclasses.replace(e, large_text=by_id[e.id].large_text, large_quality=by_id[e.id].large_quality,
                            large_seconds=by_id[e.id].large_seconds, large_usage=by_id[e.id].large_usage)
        for e in small_rows
    ]


def collect_split(records: Sequence[dict[str, Any]], large_cache: Path, cache: Path, small: Any, *,
                  max_new_tokens: int = 10, quality: Any = "auto", progress: bool = True) -> list[CachedExample]:
    """Small tier with embeddings over ``records`` (cached in ``cache``), large answers joined from ``large_cache``."""
    from cascade_core.testing import ScriptedModel

    stand_in = ScriptedModel("(large answer taken from the llama.cpp cache)", name="stand-in")
    rows = collect_records(records, small, stand_in, cache_path=cache, max_new_tokens=max_new_tokens, stop=("\n",),
                           quality=quality, record_embedding=True, progress=progress)
    return join_large(rows, load_cache(large_cache))


def workload_splits(workload: str, data_dir: Path, runs: Path, threads: int) -> tuple[list[CachedExample], list[CachedExample]]:
    """Collect (or load) the fit and test splits of ``workload`` with the fp32 small tier's embedding.

    ``world_facts``: the data files and llama.cpp caches of ``scripts/reproduce_tables.sh`` in ``data_dir``
    (few-shot completion prompts, 10 tokens). ``rag``: the questions of ``benchmarks/studies/rag_caches.py``
    (rebuilt with its seed; chat prompts, 40 tokens, the workload's scorer) and its caches in ``data_dir``.
    """
    from cascade_core.backends.defaults import default_small_model

    if workload == "rag":
        from benchmarks.studies.length_bias import build_records, quality
        from benchmarks.studies.rag_caches import FIT, LIMIT, SEED

        records = build_records(LIMIT, SEED)
        small = default_small_model(threads=threads, prompt_format="chat")
        parts = {"fit": records[:FIT], "test": records[FIT:]}
        return tuple(  # type: ignore[return-value]
            collect_split(parts[split], data_dir / f"rag.{split}.cache.jsonl", runs / f"rag.{split}.transformers_embed.cache.jsonl",
                          small, max_new_tokens=40, quality=quality)
            for split in ("fit", "test"))
    small = default_small_model(threads=threads, prompt_format="completion")
    splits = []
    for split in ("fit", "test"):
        records = [r for _, r in read_jsonl(data_dir / f"world_facts.{split}.jsonl")]
        splits.append(collect_split(records, world_facts_cache(data_dir, split),
                                    runs / f"world_facts.{split}.transformers_embed.cache.jsonl", small))
    return splits[0], splits[1]


def world_facts_cache(data_dir: Path, split: str) -> Path:
    """The one ``world_facts.<split>.*.cache.jsonl`` (both tiers, llama.cpp) in ``data_dir``."""
    found = sorted(data_dir.glob(f"world_facts.{split}.*.cache.jsonl"))
    if len(found) != 1:
        raise DataFormatError(f"expected one world_facts.{split}.*.cache.jsonl in {data_dir}, found {len(found)}")
    return found[0]


def test_table(rules: dict[str, Any], test: Sequence[CachedExample], resamples: int, seed: int = 0) -> dict[str, Any]:
    """Test AUC-DF ± bootstrap SE of every rule and signal, minus random and minus the best test signal (paired)."""
    auc, boot, best = bootstrap_auc(rules, test, resamples, seed)
    rows = []
    for k, v in auc.items():
        if k == "oracle":
            continue
        b = boot[k]
        rows.append({
            "rule": k, "kind": "learned" if k in rules else "baseline" if k == "random" else "signal",
            "auc_df": round(v, 4), "se": round(float(b.std()), 4),
            "vs_random": round(v - auc["random"], 4), "vs_random_se": round(float((b - boot["random"]).std()), 4),
            "vs_best_test_signal": round(v - auc[best], 4),
            "vs_best_test_signal_se": round(float((b - boot[best]).std()), 4),
        })
    rows.sort(key=lambda r: -r["auc_df"])
    return {"n_test": len(test), "best_test_signal": best, "rows": rows}


def analyse(fit: Sequence[CachedExample], test: Sequence[CachedExample], *, cv: int = 5, repeats: int = 3,
            resamples: int = 200, components: Sequence[int | None] = COMPONENTS) -> dict[str, Any]:
    """CV choice on ``fit``; every candidate (refitted on all of ``fit``) and the choice measured on ``test``."""
    small_f, large_f = qualities(fit)
    gens = [e.small for e in fit]
    grid = candidate_grid(components)
    selection = select_rule(gens, small_f, large_f, cv=cv, repeats=repeats, learned=grid)
    rules: dict[str, Any] = {}
    for params in grid:
        rule = LearnedDeferral(**params)
        rules[candidate_label(params)] = rule.fit_generations(gens, deferral_labels(small_f, large_f, rule.target))
    rules["cv-selected"] = selection.rule
    table = test_table(rules, test, resamples)
    emb_dim = next((int(np.asarray(e.small.embedding).size) for e in fit if e.small.embedding is not None), 0)
    small_t, large_t = qualities(test)
    return {
        "note": SMALL_TIER_NOTE, "n_fit": len(fit), "n_test": len(test), "embedding_dim": emb_dim,
        "accuracy": {"fit": {"small": round(float(small_f.mean()), 4), "large": round(float(large_f.mean()), 4)},
                     "test": {"small": round(float(small_t.mean()), 4), "large": round(float(large_t.mean()), 4)}},
        "cv_winner": selection.winner["candidate"], "selection": selection.to_dict(), "test": table,
    }


def synthetic_caches(n_fit: int, n_test: int, dim: int = 24, seed: int = 0) -> tuple[list[CachedExample], list[CachedExample]]:
    """learned_diagnostics' generated examples plus an embedding whose first direction carries the correctness."""
    fit, test = generated_caches(n_fit, n_test, seed)
    rng = np.random.default_rng(seed + 1)

    def embed(e: CachedExample) -> CachedExample:
        v = rng.normal(0.0, 1.0, dim)
        v[0] += 2.0 * (e.small_quality - 0.5)
        return dataclasses.replace(e, small=dataclasses.replace(e.small, embedding=v))

    return [embed(e) for e in fit], [embed(e) for e in test]


def _print(report: dict[str, Any]) -> None:
    print(report["note"])
    print(f"fit {report['n_fit']} / test {report['n_test']}, embedding dim {report['embedding_dim']}, "
          f"accuracy {report['accuracy']}; CV winner on the fit split: {report['cv_winner']}")
    print(f"{'rule':<52} {'AUC-DF':>7} {'SE':>6} {'vs random':>16} {'vs best test signal':>20}")
    for r in report["test"]["rows"]:
        print(f"{r['rule']:<52} {r['auc_df']:>7.4f} {r['se']:>6.4f} {r['vs_random']:>+8.4f} ± {r['vs_random_se']:.4f} "
              f"{r['vs_best_test_signal']:>+11.4f} ± {r['vs_best_test_signal_se']:.4f}")


def main(argv: Sequence[str] | None = None) -> int:
    p = harness.parser(__doc__, threads=1, threads_help="torch threads of the small tier", tiny=None, quiet=False)
    p.add_argument("--data-dir", type=Path, help="the workload's llama.cpp caches (world_facts: and its data files)")
    p.add_argument("--workload", choices=["world_facts", "rag"], default="world_facts")
    p.add_argument("--runs", type=Path, default=Path("runs/embed"), help="where the small tier's caches go")
    p.add_argument("--out", type=Path, required=True, help="results JSON")
    p.add_argument("--synthetic", action="store_true", help="generated data instead of running the model (smoke test)")
    p.add_argument("--collect-only", action="store_true")
    p.add_argument("--cv", type=int, default=5)
    p.add_argument("--cv-repeats", type=int, default=3)
    p.add_argument("--resamples", type=int, default=200)
    args = p.parse_args(argv)
    if args.synthetic:
        fit, test = synthetic_caches(160, 240)
    elif args.data_dir:
        try:
            fit, test = workload_splits(args.workload, args.data_dir, args.runs, args.threads)
        except DataFormatError as err:
            p.error(str(err))
        for split, rows in (("fit", fit), ("test", test)):  # both tiers in one cache: what `cascade fit/eval` read
            joined = args.runs / f"{args.workload}.{split}.embed_joined.cache.jsonl"
            joined.write_text("".join(e.to_json() + "\n" for e in rows), encoding="utf-8")
        if args.collect_only:
            return 0
    else:
        p.error("give --data-dir or --synthetic")
    report = analyse(fit, test, cv=args.cv, repeats=args.cv_repeats, resamples=args.resamples)
    if args.workload == "rag":
        report["note"] = RAG_NOTE
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    _print(report)
    return 0 if all(math.isfinite(r["auc_df"]) for r in report["test"]["rows"]) else 1


if __name__ == "__main__":
    sys.exit(main())
