"""Scorers: named deferral scores computed from a :class:`~cascade_core.types.Generation`.

A scorer wraps a pure signal from :mod:`cascade_core.decide.signals` (or a learned model) and tells the
engine two things it needs: the score's valid range (to validate thresholds) and whether the
score is known after the first decoding step (so the engine can stop the small model early).

Example:
    >>> from cascade_core.decide.scorers import make_scorer
    >>> make_scorer("chow_quantile", alpha=0.1).name
    'chow_quantile(alpha=0.1)'
    >>> make_scorer("margin").first_step_only
    True
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from cascade_core.decide import signals
from cascade_core.errors import ConfigurationError, SignalError
from cascade_core.types import Generation

__all__ = [
    "SCORERS",
    "ChowAverage",
    "ChowQuantile",
    "ChowSum",
    "Margin",
    "NegativeEntropy",
    "Scorer",
    "make_scorer",
]


@runtime_checkable
class Scorer(Protocol):
    """What a deferral rule needs from a score: higher = more confident.

    Attributes:
        name: Readable name recorded in every decision.
        first_step_only: True when the score only needs the first decoding step.
        score_range: ``(low, high)`` of valid scores, for threshold validation.
        min_top_k: Alternatives per step the small tier must record (checked against its
            ``top_k`` when the cascade is built; optional, default 0).
    """

    @property
    def name(self) -> str: ...

    @property
    def first_step_only(self) -> bool: ...

    @property
    def score_range(self) -> tuple[float, float]: ...

    def __call__(self, generation: Generation) -> float:
        """Score one generation."""
        ...


def _require_steps(generation: Generation, name: str) -> None:
    if not generation.steps:
        raise SignalError(f"scorer {name!r} needs at least one generated token; the generation is empty")


@dataclass(frozen=True)
class Margin:
    """First-token margin p(top1) − p(top2) (paper B); decides after the first step.

    Attributes:
        kind: ``"probability"`` (range [0, 1]) or ``"logit"`` (range [0, ∞)).
        labels: Class-label first tokens for classification (margin among labels only).
        distinct: Free-form QA: ignore alternatives that are prefixes/continuations of top-1.

    Example:
        >>> Margin(labels=("positive", "negative")).name
        "margin(labels=['positive', 'negative'])"
    """

    kind: signals.MarginKind = "probability"
    labels: tuple[str, ...] | None = None
    distinct: bool = True
    first_step_only: bool = field(default=True, init=False)
    min_top_k: int = field(default=2, init=False)

    def __post_init__(self) -> None:
        if self.kind not in ("probability", "logit"):
            raise ConfigurationError(f"Margin.kind must be 'probability' or 'logit', got {self.kind!r}")
        if self.labels is not None:
            labels = tuple(self.labels)
            if len({label.strip().casefold() for label in labels}) < 2:
                raise ConfigurationError(f"Margin.labels needs at least 2 distinct labels, got {list(labels)}")
            object.__setattr__(self, "labels", labels)

    @property
    def name(self) -> str:
        parts = [] if self.kind == "probability" else [f"kind={self.kind}"]
        if self.labels:
            parts.append(f"labels={list(self.labels)}")
        return "margin" + (f"({', '.join(parts)})" if parts else "")

    @property
    def score_range(self) -> tuple[float, float]:
        return (0.0, 1.0) if self.kind == "probability" else (0.0, float("inf"))

    def __call__(self, generation: Generation) -> float:
        _require_steps(generation, self.name)
        labels = list(self.labels) if self.labels else None
        return signals.first_token_margin(
            generation.steps[0], kind=self.kind, labels=labels, distinct=self.distinct and labels is None
        )


@dataclass(frozen=True)
class _SequenceScorer:
    first_step_only: bool = field(default=False, init=False)
    min_top_k: int = field(default=0, init=False)
    score_range: tuple[float, float] = field(default=(float("-inf"), 0.0), init=False)


@dataclass(frozen=True)
class ChowSum(_SequenceScorer):
    """Sequence log-probability Σ log p_t(y_t) (paper A)."""

    name: str = field(default="chow_sum", init=False)

    def __call__(self, generation: Generation) -> float:
        _require_steps(generation, self.name)
        return signals.chow_sum(generation.logprobs)


@dataclass(frozen=True)
class ChowAverage(_SequenceScorer):
    """Mean token log-probability (paper A)."""

    name: str = field(default="chow_average", init=False)

    def __call__(self, generation: Generation) -> float:
        _require_steps(generation, self.name)
        return signals.chow_average(generation.logprobs)


@dataclass(frozen=True)
class ChowQuantile(_SequenceScorer):
    """α-quantile of token log-probs (paper A); α=0 is the least confident token."""

    alpha: float = 0.0

    def __post_init__(self) -> None:
        signals.chow_quantile([0.0], self.alpha)  # validates alpha

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"chow_quantile(alpha={self.alpha:g})"

    def __call__(self, generation: Generation) -> float:
        _require_steps(generation, self.name)
        return signals.chow_quantile(generation.logprobs, self.alpha)


@dataclass(frozen=True)
class NegativeEntropy(_SequenceScorer):
    """Minus the mean per-token entropy estimated from the top-k (higher = more confident)."""

    name: str = field(default="entropy", init=False)
    min_top_k: int = field(default=2, init=False)

    def __call__(self, generation: Generation) -> float:
        _require_steps(generation, self.name)
        return -signals.mean_token_entropy(generation.top_logprobs)


SCORERS: dict[str, Callable[..., Scorer]] = {
    "margin": Margin,
    "chow_sum": ChowSum,
    "chow_average": ChowAverage,
    "chow_quantile": ChowQuantile,
    "entropy": NegativeEntropy,
}


def make_scorer(name: str | Scorer, **params: Any) -> Scorer:
    """Build a scorer by name (``margin``, ``chow_sum``, ``chow_average``, ``chow_quantile``, ``entropy``).

    A scorer object is returned unchanged. ``params`` go to the scorer's constructor
    (``alpha=`` for ``chow_quantile``; ``kind=``, ``labels=``, ``distinct=`` for ``margin``).
    """
    if not isinstance(name, str):
        if isinstance(name, Scorer):
            if params:
                raise ConfigurationError("scorer parameters can only be given with a scorer name")
            return name
        raise ConfigurationError(f"signal must be a name in {sorted(SCORERS)} or a Scorer, got {name!r}")
    key = name.strip().lower().replace("-", "_")
    if key not in SCORERS:
        raise ConfigurationError(f"unknown signal {name!r}; allowed values: {sorted(SCORERS)}")
    if key == "margin" and "labels" in params and params["labels"] is not None:
        params = {**params, "labels": tuple(params["labels"])}
    try:
        return SCORERS[key](**params)
    except TypeError as err:
        raise ConfigurationError(f"invalid parameters for signal {name!r}: {err}") from err


def min_top_k_of(scorer: Any) -> int:
    """Alternatives per step a scorer needs (its declared ``min_top_k``; 0 when it declares none)."""
    value = getattr(scorer, "min_top_k", 0)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def labels_of(scorer: Scorer) -> Sequence[str]:
    """Label first-tokens a scorer needs recorded at the first step (empty if none)."""
    labels = getattr(scorer, "labels", None)
    return tuple(labels) if labels else ()
