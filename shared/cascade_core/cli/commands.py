"""The ``cascade`` subcommands (argument parsing lives in :mod:`cascade_core.cli`)."""

from __future__ import annotations

import argparse
import json
import logging
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from cascade_core.cli.tiers import build_tier
from cascade_core.decide.learned.rule import LearnedDeferral, deferral_labels
from cascade_core.errors import ConfigurationError
from cascade_core.evaluation.collect import collect, collect_records, load_cache
from cascade_core.evaluation.quality import resolve_quality_scorer
from cascade_core.evaluation.report import (
    evaluate_cache,
    measured_costs,
    qualities,
    sample_signals,
    scores_for,
)

__all__ = ["run_calibrate", "run_collect", "run_eval", "run_fit", "run_serve"]

logger = logging.getLogger(__name__)


def run_collect(args: argparse.Namespace) -> int:
    resolve_quality_scorer(args.scorer)  # fail before loading models
    if args.samples:
        from cascade_core.decide.scorers import SampleAgreement

        try:
            SampleAgreement(k=args.samples, temperature=args.temperature, seed=args.sample_seed)
        except ConfigurationError as err:
            raise ConfigurationError(f"--samples/--temperature/--sample-seed: {err}") from err
    elif args.samples is not None and args.samples < 0:
        raise ConfigurationError(f"--samples must be >= 1 (0 or absent: no samples), got {args.samples}")
    stop = tuple(s.encode().decode("unicode_escape") for s in (args.stop or ["\\n"]))
    records = _bigbench_records(args) if args.data.startswith("bigbench:") else None
    tier_options = {"top_k": args.top_k, "max_new_tokens": args.max_new_tokens, "prompt_format": args.prompt_format}
    small = build_tier(args.small, "small", **tier_options)
    large = build_tier(args.large, "large", large_format=args.large_format, **tier_options)
    from cascade_core.cli.router import prompt_embedder_of

    options = {"max_new_tokens": args.max_new_tokens, "stop": stop, "quality": args.scorer,
               "record_embedding": args.embedding, "progress": not args.no_progress,
               "prompt_embedder": prompt_embedder_of(args.prompt_embedding, small),
               "samples": args.samples, "sample_temperature": args.temperature, "sample_seed": args.sample_seed}
    if records is None:
        rows = collect(args.data, small, large, args.out, on_error=args.on_error, limit=args.limit, **options)
    else:
        rows = collect_records(records, small, large, cache_path=args.out, **options)
    small_acc = np.mean([r.small_quality for r in rows])
    large_acc = np.mean([r.large_quality for r in rows])
    c_s, c_l = measured_costs(rows)
    print(f"cached {len(rows)} examples in {args.out}")
    print(f"small quality {small_acc:.3f} ({c_s:.2f} s/query), large quality {large_acc:.3f} ({c_l:.2f} s/query)")
    return 0


def _bigbench_records(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The records of ``--data bigbench:<task>`` (``--split``, ``--limit``, ``--shots``, ``--seed``)."""
    from cascade_core.evaluation.datasets.bigbench import bigbench_records

    task = args.data.partition(":")[2].strip().strip("/")
    if not task:
        raise ConfigurationError("--data bigbench: needs a task path, e.g. bigbench:fact_checker/fever")
    records = bigbench_records(task, args.split, limit=args.limit, shots=args.shots, seed=args.seed)
    if not records:
        raise ConfigurationError(f"--data {args.data} --split {args.split} --limit {args.limit} selects no examples")
    return records


def _shared_label_tokens(cache: list) -> tuple[str, ...] | None:
    tokens = Counter(c.label_tokens for c in cache if c.label_tokens)
    if not tokens:
        return None
    if len(tokens) > 1:
        logger.warning("examples have different label sets; the margin feature uses the most common one")
    return tokens.most_common(1)[0][0]


def _embedding_candidates(args: argparse.Namespace, cache: list) -> bool:
    """Whether Post-Hoc-Embed candidates join the comparison: every cached answer records the small
    model's embedding, logistic rules are compared, and neither --embedding nor --no-embedding says otherwise."""
    if args.signals_only or args.embedding or args.no_embedding or args.model not in ("auto", "logistic"):
        return False
    return bool(cache) and all(c.small.embedding is not None for c in cache)


def run_fit(args: argparse.Namespace) -> int:
    from cascade_core.evaluation.rule_selection import EMBEDDING_C, embedding_grid, learned_grid, select_rule

    if args.router:
        from cascade_core.cli.router import run_fit_router

        return run_fit_router(args)
    cache = load_cache(args.cache)
    small_q, large_q = qualities(cache, resolve_quality_scorer(args.scorer) if args.scorer else None)
    gens = [c.small for c in cache]
    labels = _shared_label_tokens(cache)
    target = {"gain": "quality_gap"}.get(args.target, args.target)
    fixed: dict = {"alpha": args.alpha, "hidden_units": args.hidden_units, "random_state": args.seed}
    if args.C is not None:
        fixed["C"] = args.C
    if args.embedding:
        fixed["use_embedding"] = True
    if args.no_monotone:
        fixed["monotone"] = False
    if args.cv == 0:
        model = "logistic" if args.model == "auto" else args.model
        rule = LearnedDeferral(
            model=model, target="small_correct" if target == "auto" else target, margin_labels=labels,
            **{"C": 1.0, **fixed},
        )
        rule.fit_generations(gens, deferral_labels(small_q, large_q, rule.target))
        rule.save(args.out)
        print(f"fitted {rule.name} on {len(cache)} examples ({rule.n_features_in_} features), no comparison (--cv 0) -> {args.out}")
        return 0
    targets = ("small_correct", "large_better", "quality_gap") if target == "auto" else (target,)
    models = None if args.model == "auto" else [args.model]
    grid = [] if args.signals_only else learned_grid(models, targets, **fixed)
    if _embedding_candidates(args, cache):
        grid += embedding_grid(targets, Cs=EMBEDDING_C if args.C is None else (args.C,), random_state=args.seed)
    selection = select_rule(
        gens, small_q, large_q, cv=args.cv, repeats=args.cv_repeats, learned=grid, margin_labels=labels,
        labels_per_example=[c.label_tokens for c in cache], seed=args.seed, extra_signals=sample_signals(cache),
    )
    selection.rule.save(args.out)
    print(f"{args.cv}-fold cross-validation on {len(cache)} fit examples (held-out AUC-DF, mean ± SE over folds):")
    print(selection.format_table())
    w = selection.winner
    print(f"winner: {w['candidate']} ({w['kind']}; {w['vs_best_signal']:+.4f} ± {w['vs_best_signal_se']:.4f} vs the best "
          f"single signal) -> {args.out}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(selection.to_dict(), indent=1), encoding="utf-8")
    return 0


def _scores(args: argparse.Namespace, cache: list) -> tuple[np.ndarray, str]:
    if args.rule:
        rule = LearnedDeferral.load(args.rule)
        return scores_for(cache, {rule.name: rule})[rule.name], rule.name
    scores = scores_for(cache)
    name = args.signal if args.signal != "chow_quantile" else f"chow_quantile(alpha={args.alpha:g})"
    if name == "sample_agreement" and name not in scores:
        raise ConfigurationError("--signal sample_agreement: the cache has no samples; collect it with "
                                 "`cascade collect --samples K --temperature T`")
    if name not in scores:
        raise ConfigurationError(f"unknown signal {args.signal!r}; allowed: {sorted(scores)}")
    return scores[name], name


def run_calibrate(args: argparse.Namespace) -> int:
    if args.probability:
        from cascade_core.cli.probability import run_probability

        return run_probability(args, _scores)
    if args.router:
        from cascade_core.cli.router import run_calibrate_router

        return run_calibrate_router(args)
    from cascade_core.cli.calibration import run_threshold_calibration

    return run_threshold_calibration(args)


def _parse_rules(specs: list[str]) -> dict[str, Any]:
    rules: dict[str, Any] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep:
            name, path = "", spec
        rule = LearnedDeferral.load(path)
        rules[name or rule.name] = rule
    return rules


def run_eval(args: argparse.Namespace) -> int:
    test = load_cache(args.cache)
    rules = _parse_rules(args.rule or [])
    calibration = load_cache(args.calibration_cache) if args.calibration_cache else None
    report = evaluate_cache(
        test, rules, calibration=calibration, small_cost=args.small_cost, large_cost=args.large_cost,
        orders=args.orders, warmup=args.warmup, seed=args.seed,
        rescore=resolve_quality_scorer(args.scorer) if args.scorer else None, group_by=args.group_by,
        bootstrap=args.bootstrap,
    )
    meta = report.meta
    check = None
    if args.calibration_file:
        from cascade_core.decide.calibration_file import load_calibration
        from cascade_core.evaluation.risk_report import check_calibration

        check = check_calibration(load_calibration(args.calibration_file), test,
                                  rescore=resolve_quality_scorer(args.scorer) if args.scorer else None, seed=args.seed)
        meta["calibration_file"] = check.to_dict()
    print(f"{meta['n']} test queries: small quality {meta['small_accuracy']:.3f}, large quality {meta['large_accuracy']:.3f}; "
          f"costs c_s={meta['small_cost']:.4g}, c_l={meta['large_cost']:.4g} ({meta['cost_unit']})")
    print(report.format_table())
    if check is not None:
        print()
        print("\n".join(check.format_lines()))
    if report.groups:
        print(f"\nAUC-DF by {args.group_by}:")
        print(report.format_table(report.groups))
    if args.group_csv and args.group_by:
        report.write_groups_csv(args.group_csv)
    if args.csv:
        report.write_csv(args.csv)
    if args.json:
        report.write_json(args.json)
    if args.plot:
        from cascade_core.evaluation.plots import plot_deferral_curves

        plot_deferral_curves(report.curves, report.random, report.oracle, args.plot, title=args.title or "Deferral curves")
    if args.budget_plot and report.budget_curves:
        from cascade_core.evaluation.plots import plot_budget_curves

        plot_budget_curves(report.budget_curves, args.budget_plot, title=args.title or "Budget curves")
    return 0


def run_serve(args: argparse.Namespace) -> int:
    # lazily: needs the 'serve' extra (starlette, uvicorn, prometheus-client)
    from cascade_core.serve import serve

    return serve(args.config, host=args.host, port=args.port)
