"""Fitting a :class:`~cascade_core.decide.router.QueryRouter` on a collection cache (``cascade fit --router``).

The router's features come from the cache (``cascade collect --prompt-embedding``): the prompt
embedding and the prompt's token count (``CachedExample.prompt_tokens``, else the small tier's
``usage.input_tokens``). The label is the small answer being good (``small_quality >= 0.5``, the
``small_correct`` target of the learned rules). ``C`` and the number of embedding components are
chosen by cross-validated held-out AUC-DF of the router alone (:func:`~cascade_core.evaluation.routing.router_curve`),
on the same folds :mod:`~cascade_core.evaluation.rule_selection` uses, and the winner is refitted on
every example; its ``selection_`` records the comparison.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> emb = rng.normal(size=(60, 4)); small = (emb[:, 0] > 0).astype(float)
    >>> router = select_router(emb, np.full(60, 20), small, np.ones(60), cv=3, Cs=(0.1, 1.0), components=(None,))
    >>> router.selection_["winner"]["C"] in (0.1, 1.0)
    True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from cascade_core.decide.router import QueryRouter
from cascade_core.errors import CascadeError, ConfigurationError
from cascade_core.evaluation.collect import CachedExample
from cascade_core.evaluation.routing import router_curve
from cascade_core.evaluation.rule_selection import _folds

__all__ = ["DEFAULT_COMPONENTS", "DEFAULT_CS", "router_features", "router_scores", "select_router"]

DEFAULT_CS = (0.01, 0.1, 1.0, 10.0)
DEFAULT_COMPONENTS: tuple[int | None, ...] = (None, 8, 32)


def router_features(cache: Sequence[CachedExample], *, use_embedding: bool = True) -> tuple[np.ndarray | None, np.ndarray]:
    """``(embeddings, prompt_tokens)`` of cached examples (embeddings None without ``use_embedding``).

    Raises:
        ConfigurationError: an example has no prompt embedding (collect with ``--prompt-embedding``).
    """
    if not cache:
        raise ConfigurationError("the cache has no examples")
    tokens = np.array([c.prompt_tokens if c.prompt_tokens is not None else c.small.usage.input_tokens for c in cache])
    if not use_embedding:
        return None, tokens
    missing = [c.id for c in cache if c.prompt_embedding is None]
    if missing:
        raise ConfigurationError(
            f"{len(missing)} of {len(cache)} cached examples have no prompt embedding (first: {missing[0]!r}); collect with "
            "`cascade collect --prompt-embedding`, or fit a length-only router with --no-embedding"
        )
    sizes = {len(c.prompt_embedding or ()) for c in cache}
    if len(sizes) != 1:
        raise ConfigurationError(f"cached prompt embeddings have different sizes {sorted(sizes)}")
    return np.array([c.prompt_embedding for c in cache], dtype=np.float64), tokens


def router_scores(router: QueryRouter, cache: Sequence[CachedExample]) -> np.ndarray:
    """The router's ``p_good`` for each cached example."""
    embeddings, tokens = router_features(cache, use_embedding=router.use_embedding)
    return router.predict_good(embeddings, tokens)


def select_router(
    embeddings: ArrayLike | None,
    prompt_tokens: ArrayLike,
    small_quality: ArrayLike,
    large_quality: ArrayLike,
    *,
    cv: int = 5,
    repeats: int = 1,
    Cs: Sequence[float] = DEFAULT_CS,  # noqa: N803 - scikit-learn's name
    components: Sequence[int | None] = DEFAULT_COMPONENTS,
    seed: int = 0,
) -> QueryRouter:
    """The router (``C``, embedding components) with the best cross-validated AUC-DF, refitted on everything.

    ``embeddings=None`` fits a router on prompt length alone (``components`` are then ignored).
    Components at or above the embedding width, or above the training fold's size, are skipped.

    Raises:
        ConfigurationError: too few examples for ``cv`` folds, or only one kind of small answer.
    """
    small = np.asarray(small_quality, dtype=np.float64).reshape(-1)
    large = np.asarray(large_quality, dtype=np.float64).reshape(-1)
    n = small.size
    if isinstance(cv, bool) or not isinstance(cv, int) or cv < 2 or n < 2 * cv:
        raise ConfigurationError(f"{n} fit examples are too few for cv={cv!r}-fold cross-validation (need cv >= 2, n >= 2·cv)")
    good = (small >= 0.5).astype(int)
    use_embedding = embeddings is not None
    emb = np.asarray(embeddings, dtype=np.float64) if use_embedding else None
    width = emb.shape[1] if emb is not None and emb.ndim == 2 else 0
    fold_size = n - math.ceil(n / cv)
    ks = [k for k in components if k is None or (k < width and k < fold_size)] if use_embedding else [None]
    candidates: list[dict[str, Any]] = [{"C": float(c), "embedding_components": k} for c in Cs for k in dict.fromkeys(ks)]
    folds = _folds(good * 2 + (large >= 0.5).astype(int), cv, repeats, seed)
    rows: list[dict[str, Any]] = []
    for params in candidates:
        aucs: list[float] = []
        for train, held in folds:
            try:
                router = QueryRouter(use_embedding=use_embedding, **params).fit(
                    None if emb is None else emb[train], np.asarray(prompt_tokens)[train], good[train])
            except CascadeError:  # a fold with one kind of small answer only
                continue
            p = router.predict_good(None if emb is None else emb[held], np.asarray(prompt_tokens)[held])
            aucs.append(router_curve(p, small[held], large[held]).auc)
        if aucs:
            se = float(np.std(aucs, ddof=1) / math.sqrt(len(aucs))) if len(aucs) > 1 else 0.0
            rows.append({**params, "auc_df": float(np.mean(aucs)), "auc_df_se": se, "folds": len(aucs)})
    if not rows:
        raise ConfigurationError("no router could be fitted on any fold: the fit cache needs both good and bad small answers")
    winner = max(rows, key=lambda r: r["auc_df"])
    router = QueryRouter(use_embedding=use_embedding, C=winner["C"], embedding_components=winner["embedding_components"])
    router.fit(emb, prompt_tokens, good)
    router.selection_ = {"cv": cv, "repeats": repeats, "n": n, "candidates": rows, "winner": winner}
    return router
