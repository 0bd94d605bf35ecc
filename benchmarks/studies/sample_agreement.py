"""Sample agreement vs first-token margin with the same small model: AUC-DF and what each costs.

The small tier is SmolLM2-135M (the ``smollm2`` tier) on its llama.cpp server, with few-shot completion
prompts. For every test question it gives the greedy answer (per-token log-probs: the first-token margin
is read from it) and ``--k`` answers sampled at ``--temperature`` (request i seeded i; no log-probs
asked for): the ``sample_agreement`` score is the share of samples whose normalised answer equals the
greedy one. Both signals judge the *same* greedy answer, so their deferral curves differ only in the
order in which they defer. Data: the world_facts test split and one public BIG-bench task
(``--task``, default ``qa_wikidata``). The large tier (Qwen2.5-Coder-1.5B, ``qwen15``) is read from the
public suite's cache (``<runs>/<task>/qwen15.test.jsonl``) when it has the question, else run here (as
for world_facts), into a resumable JSONL cache under ``--cache-dir``. The tiers run one at a time (the
small server is stopped before the large one starts), each with ``--threads`` threads.

Reported per data set: AUC-DF of margin, sample agreement, random and oracle with bootstrap standard
errors (and the paired difference agreement − margin), and the cost of each signal: small calls per
query (margin 1 — and a margin deferral can stop after one token; agreement k + 1), small tokens per
query and measured small-tier seconds. JSON to ``--json``, the deferral curves to ``--png``.

    OMP_NUM_THREADS=1 taskset -c 1 python -m benchmarks.studies.sample_agreement --threads 1
    python -m benchmarks.studies.sample_agreement --tiny      # 4 questions per data set, a smoke run
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import harness
from benchmarks.public import harness as public

TASK = "qa_wikidata"
SMALL, LARGE = "smollm2", "qwen15"
SCORES = ("margin", "sample_agreement")


def parse(argv: Sequence[str] | None) -> Any:
    p = harness.parser(__doc__, threads=1, threads_help="llama.cpp threads per server",
                       tiny="4 questions per data set with the real models (a smoke run; numbers meaningless)")
    p.add_argument("--k", type=int, default=4, help="samples per question (default %(default)s)")
    p.add_argument("--temperature", type=float, default=0.7, help="their temperature (default %(default)s)")
    p.add_argument("--task", default=TASK, help="the public BIG-bench task (default %(default)s)")
    p.add_argument("--world-facts", type=int, default=None, help="world_facts test questions (default: all)")
    p.add_argument("--test", type=int, default=300, help="test questions of the task (default %(default)s, as the suite)")
    p.add_argument("--runs", type=Path, default=public.RUNS, help="the public suite's caches (default %(default)s)")
    p.add_argument("--cache-dir", type=Path, default=Path("runs/sample_agreement"), help="this study's caches")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples (default %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    p.add_argument("--json", type=Path, default=None, help="results (default benchmarks/results/sample_agreement.json)")
    p.add_argument("--png", type=Path, default=None, help="plot (default docs/figures/sample_agreement.png)")
    args = p.parse_args(argv)
    from cascade_core.decide.scorers import SampleAgreement

    SampleAgreement(k=args.k, temperature=args.temperature)  # validates --k and --temperature by name
    if args.tiny:
        args.world_facts, args.test, args.bootstrap = 4, 4, 50
        args.cache_dir = args.cache_dir / "tiny"
    folder = args.cache_dir if args.tiny else None
    args.json = args.json or (folder / "sample_agreement.json" if folder else harness.RESULTS_DIR / "sample_agreement.json")
    args.png = args.png or (folder / "sample_agreement.png" if folder else harness.ROOT / "docs" / "figures" / "sample_agreement.png")
    return args


def datasets(args: Any) -> dict[str, list[dict[str, Any]]]:
    """The test records of world_facts and of the public task (prompt, answer, aliases)."""
    from cascade_core.evaluation.datasets.bigbench import bigbench_records
    from cascade_core.evaluation.datasets.world_facts import few_shot_prompt, load_world_facts

    wf = [{"id": ex.id, "prompt": few_shot_prompt(ex), "answer": ex.answer, "aliases": list(ex.aliases)}
          for ex in load_world_facts("test", limit=args.world_facts)]
    return {"world_facts": wf, args.task: bigbench_records(args.task, "test", limit=args.test)}  # the suite's test split


def run_small(name: str, records: list[dict[str, Any]], cache: public.TierCache, args: Any) -> dict[str, dict[str, Any]]:
    """The greedy answer (with log-probs) and k samples (without) of every record not yet cached."""
    from tqdm.auto import tqdm

    from cascade_core.evaluation.collect import generation_to_dict, run_samples
    from cascade_core.evaluation.collect import run_small as greedy
    from cascade_core.evaluation.quality import resolve_quality_scorer
    from cascade_core.types import Request

    score = resolve_quality_scorer("auto")
    rows = cache.rows()
    todo = [r for r in records if r["id"] not in rows]
    if not todo:
        return rows
    small = public.model(SMALL, args.threads)
    for record in tqdm(todo, desc=f"{SMALL} {name}", unit="q", disable=args.quiet):
        request = Request.from_prompt(record["prompt"], max_new_tokens=public.MAX_NEW_TOKENS, stop=public.STOP)
        started = time.perf_counter()
        generation = greedy(small, request)
        middle = time.perf_counter()
        generation = run_samples(small, request, generation, args.k, args.temperature, seed=0)
        row = {"id": record["id"], "seconds": middle - started, "sample_seconds": time.perf_counter() - middle,
               "quality": float(score(generation.text, record)), "generation": generation_to_dict(generation),
               "sampling": {"k": args.k, "temperature": args.temperature, "seed": 0}}
        cache.append(row)
        rows[row["id"]] = row
    return rows


def large_rows(name: str, records: list[dict[str, Any]], args: Any) -> dict[str, dict[str, Any]]:
    """The large tier's answers: the public suite's cache where it has them, else run here (resumable)."""
    found = public.TierCache(public.task_folder(args.runs, name) / f"{LARGE}.test.jsonl").rows() if name != "world_facts" else {}
    missing = [r for r in records if r["id"] not in found]
    if missing:
        own = public.TierCache(args.cache_dir / name.replace("/", "__") / f"{LARGE}.test.jsonl")
        found = {**found, **public.run_tier(LARGE, missing, own, threads=args.threads, quiet=args.quiet)}
    return found


def examples(records: list[dict[str, Any]], small: dict[str, dict[str, Any]], large: dict[str, dict[str, Any]]) -> list[Any]:
    from cascade_core.evaluation.collect import CachedExample, generation_from_dict
    from cascade_core.types import Usage

    return [CachedExample(
        id=r["id"], record={k: v for k, v in r.items() if k != "prompt"}, small=generation_from_dict(small[r["id"]]["generation"]),
        large_text=large[r["id"]]["text"], small_quality=small[r["id"]]["quality"], large_quality=large[r["id"]]["quality"],
        small_seconds=small[r["id"]]["seconds"], large_seconds=large[r["id"]]["seconds"],
        large_usage=Usage(*large[r["id"]]["usage"]), sample_seconds=small[r["id"]]["sample_seconds"],
        sampling=small[r["id"]]["sampling"],
    ) for r in records]


def measure(rows: list[Any], args: Any) -> dict[str, Any]:
    """AUC-DF (bootstrap SE) of both signals, random and oracle, and each signal's cost."""
    from cascade_core.evaluation.curves import deferral_curve, oracle_curve, random_curve
    from cascade_core.evaluation.report import qualities, scores_for

    small_q, large_q = qualities(rows)
    all_scores = scores_for(rows)
    scores = {"margin": all_scores["margin"], "sample_agreement": all_scores["sample_agreement"]}
    curves = {name: deferral_curve(s, small_q, large_q, name) for name, s in scores.items()}
    curves["random"], curves["oracle"] = random_curve(small_q, large_q), oracle_curve(small_q, large_q)
    rng = np.random.default_rng(args.seed)
    boot: dict[str, list[float]] = {name: [] for name in [*curves, "agreement_minus_margin"]}
    for _ in range(args.bootstrap):
        idx = rng.integers(0, len(rows), len(rows))
        aucs = {name: deferral_curve(s[idx], small_q[idx], large_q[idx]).auc for name, s in scores.items()}
        aucs["random"] = random_curve(small_q[idx], large_q[idx]).auc
        aucs["oracle"] = oracle_curve(small_q[idx], large_q[idx]).auc
        aucs["agreement_minus_margin"] = aucs["sample_agreement"] - aucs["margin"]
        for name, value in aucs.items():
            boot[name].append(value)
    greedy_in = float(np.mean([r.small.usage.input_tokens - r.small.sample_usage.input_tokens for r in rows]))
    greedy_out = float(np.mean([r.small.usage.output_tokens - r.small.sample_usage.output_tokens for r in rows]))
    sample_in = float(np.mean([r.small.sample_usage.input_tokens for r in rows]))
    sample_out = float(np.mean([r.small.sample_usage.output_tokens for r in rows]))
    greedy_s, sample_s = float(np.mean([r.small_seconds for r in rows])), float(np.mean([r.sample_seconds for r in rows]))
    return {
        "n": len(rows), "small_accuracy": float(small_q.mean()), "large_accuracy": float(large_q.mean()),
        "auc_df": {name: round(c.auc, 4) for name, c in curves.items()},
        "auc_df_se": {name: round(float(np.std(v)), 4) for name, v in boot.items()},
        "agreement_minus_margin": round(curves["sample_agreement"].auc - curves["margin"].auc, 4),
        "agreement_distinct_scores": int(np.unique(scores["sample_agreement"]).size),
        "cost": {
            "margin": {"small_calls_per_query": 1, "small_input_tokens": round(greedy_in, 1),
                       "small_output_tokens": round(greedy_out, 2), "small_seconds": round(greedy_s, 4)},
            "sample_agreement": {"small_calls_per_query": args.k + 1, "small_input_tokens": round(greedy_in + sample_in, 1),
                                 "small_output_tokens": round(greedy_out + sample_out, 2),
                                 "small_seconds": round(greedy_s + sample_s, 4)},
        },
        "curves": {name: {"rates": c.rates.round(4).tolist(), "quality": c.quality.round(4).tolist()} for name, c in curves.items()},
    }


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    fig, axes = plt.subplots(1, len(names), figsize=(5.5 * len(names), 4.2), squeeze=False)
    styles = {"margin": "-", "sample_agreement": "-", "random": ":", "oracle": "--"}
    for ax, name in zip(axes[0], names):
        res = results[name]
        for curve, data in res["curves"].items():
            label = f"{curve} (AUC-DF {res['auc_df'][curve]:.3f} ± {res['auc_df_se'][curve]:.3f})"
            ax.plot(data["rates"], data["quality"], styles.get(curve, "-"), label=label)
        ax.set(title=f"{name} (n={res['n']})", xlabel="deferral rate", ylabel="cascade quality")
        ax.legend(fontsize=8)
    fig.suptitle(f"SmolLM2-135M → Qwen2.5-Coder-1.5B: sample agreement (k={next(iter(results.values()))['k']}) vs first-token margin")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    data = datasets(args)
    small = {}
    for name, records in data.items():
        small[name] = run_small(name, records, public.TierCache(args.cache_dir / name.replace("/", "__") / f"{SMALL}.samples.jsonl"), args)
    public.stop_servers()  # one model process at a time
    results: dict[str, Any] = {}
    for name, records in data.items():
        rows = examples(records, small[name], large_rows(name, records, args))
        results[name] = measure(rows, args) | {"k": args.k, "temperature": args.temperature}
    public.stop_servers()
    out = {"small": public.TIERS[SMALL][1], "large": public.TIERS[LARGE][1], "threads": args.threads, "tiny": bool(args.tiny),
           "k": args.k, "temperature": args.temperature, "bootstrap": args.bootstrap, "datasets": results}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    plot(results, args.png)
    for name, res in results.items():
        auc, se, cost = res["auc_df"], res["auc_df_se"], res["cost"]
        print(f"{name} (n={res['n']}, small {res['small_accuracy']:.3f}, large {res['large_accuracy']:.3f}): AUC-DF "
              f"margin {auc['margin']:.3f}±{se['margin']:.3f}, sample agreement {auc['sample_agreement']:.3f}±"
              f"{se['sample_agreement']:.3f} (paired diff {res['agreement_minus_margin']:+.3f}±{se['agreement_minus_margin']:.3f}), "
              f"random {auc['random']:.3f}, oracle {auc['oracle']:.3f}; small calls/query 1 vs {args.k + 1}, "
              f"small seconds/query {cost['margin']['small_seconds']:.3f} vs {cost['sample_agreement']['small_seconds']:.3f}")
    print(f"wrote {args.json} and {args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
