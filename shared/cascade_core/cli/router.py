"""The router parts of ``cascade``: ``collect --prompt-embedding``, ``fit --router``, ``calibrate --router``.

::

    cascade collect --data fit.jsonl --small embedded --large embedded --prompt-embedding --out fit.cache.jsonl
    cascade fit --router --cache fit.cache.jsonl --out router.json
    cascade calibrate --router router.json --signal margin --deferral-rate 0.3 --cache fit.cache.jsonl --out hybrid.json

``calibrate --router`` writes both thresholds of the route-then-cascade hybrid sharing the one
deferral budget (:func:`~cascade_core.evaluation.routing.calibrate_hybrid`): ``router.threshold``
and the cascade rule's ``threshold``, in one calibration file — which then serves as the ``calibration_file``
of both the ``[rule]`` and the ``[router]`` table of ``cascade serve``.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from cascade_core.errors import ConfigurationError

__all__ = ["prompt_embedder_of", "run_calibrate_router", "run_fit_router"]


def prompt_embedder_of(spec: str | None, small: Any) -> Any:
    """The embedder of ``--prompt-embedding``: ``small`` (the small tier's own) or ``openai:<base_url>#<model>``."""
    if spec is None:
        return None
    if spec == "small":
        from cascade_core.backends.base import prompt_embedder

        embedder = prompt_embedder(small)
        if embedder is None:
            raise ConfigurationError(
                f"--prompt-embedding: the small tier ({type(small).__name__}) cannot embed prompts itself; give "
                "--prompt-embedding openai:<base_url>#<model> (llama.cpp: cascade llama-server --model small --embedding)"
            )
        return embedder
    from cascade_core.backends.embedders import OpenAIEmbedder
    from cascade_core.cli.tiers import parse_tier_spec

    kind, base_url, model = parse_tier_spec(spec)
    if kind != "openai":
        raise ConfigurationError(f"--prompt-embedding takes 'small' or openai:<base_url>#<model>, got {spec!r}")
    return OpenAIEmbedder(base_url, model)


def run_fit_router(args: argparse.Namespace) -> int:
    from cascade_core.evaluation.collect import load_cache
    from cascade_core.evaluation.quality import resolve_quality_scorer
    from cascade_core.evaluation.report import qualities
    from cascade_core.evaluation.router_fit import DEFAULT_CS, router_features, select_router

    cache = load_cache(args.cache)
    small_q, large_q = qualities(cache, resolve_quality_scorer(args.scorer) if args.scorer else None)
    embeddings, tokens = router_features(cache, use_embedding=not args.no_embedding)
    if args.cv == 0:
        from cascade_core.decide.router import QueryRouter

        router = QueryRouter(C=1.0 if args.C is None else args.C, use_embedding=embeddings is not None)
        router.fit(embeddings, tokens, (small_q >= 0.5).astype(int))
        router.save(args.out)
        print(f"fitted a router on {len(cache)} examples ({router.n_features_in_} features), no comparison (--cv 0) -> {args.out}")
        return 0
    router = select_router(embeddings, tokens, small_q, large_q, cv=args.cv, repeats=args.cv_repeats,
                           Cs=DEFAULT_CS if args.C is None else (args.C,), seed=args.seed)
    router.save(args.out)
    assert router.selection_ is not None
    print(f"{args.cv}-fold cross-validation on {len(cache)} fit examples (held-out AUC-DF of the router alone):")
    for row in sorted(router.selection_["candidates"], key=lambda r: -r["auc_df"]):
        k = "all" if row["embedding_components"] is None else row["embedding_components"]
        print(f"  C={row['C']:<6g} components={k!s:<4} AUC-DF {row['auc_df']:.4f} ± {row['auc_df_se']:.4f}")
    w = router.selection_["winner"]
    print(f"winner: C={w['C']:g}, components={w['embedding_components']} -> {args.out}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(router.selection_, indent=1), encoding="utf-8")
    return 0


def _router_threshold(value: float) -> float:
    """A fit-split quantile as a probability threshold: -inf (route nothing) is 0, +inf (route all) is 1."""
    return 0.0 if value == -math.inf else 1.0 if value == math.inf else value


def run_calibrate_router(args: argparse.Namespace) -> int:
    """``cascade calibrate --router R``: both thresholds of the hybrid under one budget, written as a
    calibration file (the cascade rule, its threshold and the ``router`` part) to ``--out`` / ``--json``."""
    from cascade_core.cli.calibration import calibration_rule
    from cascade_core.decide.calibration_file import CalibrationFile
    from cascade_core.decide.router import QueryRouter
    from cascade_core.evaluation.collect import load_cache
    from cascade_core.evaluation.report import qualities
    from cascade_core.evaluation.router_fit import router_scores
    from cascade_core.evaluation.routing import apply_hybrid, calibrate_hybrid

    if args.deferral_rate is None:
        raise ConfigurationError("--router needs --deferral-rate (the share of queries both stages together send to the large tier)")
    if args.risk:
        raise ConfigurationError("--router calibrates to a deferral budget; --risk certifies a plain threshold: give one")
    router = QueryRouter.load(args.router)
    cache = load_cache(args.cache)
    rule, scores = calibration_rule(args, cache)
    name = rule.name
    small_q, large_q = qualities(cache)
    p_good = router_scores(router, cache)
    point = calibrate_hybrid(p_good, scores, small_q, large_q, args.deferral_rate)
    t_r = _router_threshold(point.router_threshold)
    _, rate, routed = apply_hybrid(point, p_good, scores, small_q, large_q)
    sample = {"n": len(cache), "deferral_rate": rate,
              "target_deferral_rate": args.deferral_rate, "quality": point.fit_quality, "route_share": routed}
    print(f"hybrid at deferral budget {args.deferral_rate:.3f}: route away p_good < {t_r:.6g} ({routed:.3f} of queries), "
          f"then defer {name} < {point.cascade_threshold:.6g}")
    print(f"  on {len(cache)} sample queries: deferral rate {rate:.3f}, quality {point.fit_quality:.3f} "
          f"(small only {small_q.mean():.3f}, large only {large_q.mean():.3f})")
    holdout = None
    if args.holdout:
        held = load_cache(args.holdout)
        _, h_scores = calibration_rule(args, held)
        h_small, h_large = qualities(held)
        quality, h_rate, h_routed = apply_hybrid(point, router_scores(router, held), h_scores, h_small, h_large)
        holdout = {"n": len(held), "deferral_rate": h_rate, "route_share": h_routed, "quality": quality}
        print(f"  on {len(held)} held-out queries: deferral rate {h_rate:.3f} ({h_routed:.3f} routed), quality {quality:.3f}")
    calibration = CalibrationFile(rule.to_dict(), threshold=point.cascade_threshold, sample=sample, holdout=holdout,
                                  router={"file": str(args.router), "threshold": t_r, "route_share": routed})
    for path in {p for p in (args.out, args.json) if p}:
        calibration.save(path)
        print(f"  -> {path}")
    return 0
