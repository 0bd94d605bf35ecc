"""Features and training targets of the learned post-hoc deferral rule (paper A).

Pure functions over a :class:`~cascade_core.types.Generation` (numpy out), used by
:class:`cascade_core.decide.learned.rule.LearnedDeferral`.

Example:
    >>> from cascade_core.types import Generation, TokenStep
    >>> generation_features(Generation("a", (TokenStep("a", -0.5),))).shape
    (15,)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from cascade_core.decide import signals
from cascade_core.errors import ConfigurationError
from cascade_core.types import Generation

__all__ = ["BASE_FEATURE_NAMES", "TARGETS", "deferral_labels", "generation_features"]

TARGETS = ("small_correct", "large_better", "quality_gap")
"""Training targets: ``small_correct`` (y = 1 when the small answer is right), ``large_better``
(y = 0 when the small answer is wrong and the large one right, the defer-worthy case; 1 otherwise),
``quality_gap`` (regression on quality(large) − quality(small); the score is its negation)."""

BASE_FEATURE_NAMES: tuple[str, ...] = (
    *(f"quantile_{a:g}" for a in signals.QUANTILE_ALPHAS),
    "chow_sum",
    "chow_average",
    "length",
    "first_token_margin",
)


def generation_features(
    generation: Generation,
    *,
    use_embedding: bool = False,
    margin_labels: Sequence[str] | None = None,
) -> np.ndarray:
    """Paper A's feature vector of one generation (names: :data:`BASE_FEATURE_NAMES`, then the embedding).

    An empty generation (no tokens) gives zeros. ``margin_labels`` restricts the first-token
    margin to class-label first tokens (classification tasks). When the first step has fewer
    than two recorded alternatives, the margin feature is its lower bound ``max(0, 2 p1 − 1)``.

    >>> from cascade_core.types import TokenStep
    >>> f = generation_features(Generation("ab", (TokenStep("a", -1.0), TokenStep("b", 0.0))))
    >>> f[[0, 10, 11, 12, 13]].tolist()
    [-1.0, 0.0, -1.0, -0.5, 2.0]
    """
    lps = generation.logprobs
    if lps.size:
        quantiles = signals.quantile_features(lps)
        first = generation.steps[0]
        if margin_labels:
            margin = signals.first_token_margin(first, labels=list(margin_labels))
        elif len(first.top) >= 2:
            margin = signals.first_token_margin(first, distinct=True)
        else:  # no alternatives recorded: p2 <= 1 - p1 gives the lower bound max(0, 2 p1 - 1)
            margin = max(0.0, 2.0 * math.exp(first.logprob) - 1.0)
        base = np.concatenate([quantiles, [signals.chow_sum(lps), signals.chow_average(lps), lps.size, margin]])
    else:
        base = np.zeros(len(BASE_FEATURE_NAMES))
    if not use_embedding:
        return base
    if generation.embedding is None:
        raise ConfigurationError(
            "use_embedding=True but the generation has no embedding; record it with the backend's "
            "record_embedding=True (TransformersModel) or set use_embedding=False"
        )
    return np.concatenate([base, np.asarray(generation.embedding, dtype=np.float64).reshape(-1)])


def deferral_labels(small_quality: ArrayLike, large_quality: ArrayLike | None = None, target: str = "small_correct") -> np.ndarray:
    """Training targets from per-example qualities (1 = correct, 0 = wrong, or any score in [0, 1]).

    >>> deferral_labels([1, 0, 0], [1, 1, 0], "large_better").tolist()
    [1, 0, 1]
    >>> deferral_labels([1, 0], [0, 1], "quality_gap").tolist()
    [-1.0, 1.0]
    """
    if target not in TARGETS:
        raise ConfigurationError(f"target must be one of {list(TARGETS)}, got {target!r}")
    small = np.asarray(small_quality, dtype=np.float64).reshape(-1)
    if target == "small_correct":
        return (small >= 0.5).astype(int)
    if large_quality is None:
        raise ConfigurationError(f"target={target!r} needs the large model's quality as well")
    large = np.asarray(large_quality, dtype=np.float64).reshape(-1)
    if large.shape != small.shape:
        raise ConfigurationError(f"small and large qualities differ in length: {small.size} vs {large.size}")
    if target == "large_better":
        return (~((small < 0.5) & (large >= 0.5))).astype(int)
    return large - small
