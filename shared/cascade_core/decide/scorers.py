"""Scorers: named deferral scores computed from a :class:`~cascade_core.types.Generation`.

A scorer wraps a pure signal from :mod:`cascade_core.decide.signals` (or a learned model) and tells the
engine what it needs: the score's valid range (to validate thresholds), whether the score is
known after the first decoding step (so the engine can stop the small model early), and —
declared, optional — how many top-k alternatives it reads (``min_top_k``), whether it reads
token log-probs at all (``needs_logprobs``, default True) and whether it needs sampled answers
(``sampling``, a :class:`SamplingPlan`).

Example:
    >>> from cascade_core.decide.scorers import make_scorer
    >>> make_scorer("chow_quantile", alpha=0.1).name
    'chow_quantile(alpha=0.1)'
    >>> make_scorer("margin").first_step_only
    True
"""

from __future__ import annotations

import math
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
    "SampleAgreement",
    "SamplingPlan",
    "Scorer",
    "WrappedScorer",
    "make_scorer",
    "needs_logprobs_of",
    "sampling_of",
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


@dataclass(frozen=True)
class SamplingPlan:
    """What a sampling scorer asks of the small tier: ``k`` extra answers at ``temperature``.

    Attributes:
        k: Sampled answers per query (besides the greedy one).
        temperature: Their sampling temperature (> 0).
        seed: Seed of the first sample (sample i uses ``seed + i``: reproducible and distinct);
            ``None`` lets the backend draw its own.
    """

    k: int
    temperature: float
    seed: int | None = 0


@dataclass(frozen=True)
class SampleAgreement:
    """Sample agreement: the share of k answers sampled at temperature T that agree with the greedy one.

    Needs **no log-probs** — only answer texts — so it judges small tiers served where log-probs are
    unavailable (many hosted APIs). The cost is stated: **k + 1 small calls per query** (the
    greedy answer, then k samples; each sample is a full generation), all counted in the small tier's
    usage. Answers are compared by their normalised first line
    (:func:`~cascade_core.decide.signals.sample_agreement`). The decision waits for the whole answer and
    the samples, so a kept answer streams only after them.

    Attributes:
        k: Samples per query (>= 1).
        temperature: Their temperature (> 0, at most 2).
        seed: Seed of sample 0 (sample i: ``seed + i``); ``None``: the backend's own randomness.

    Example:
        >>> from cascade_core import Cascade, ThresholdRule
        >>> from cascade_core.testing import ScriptedModel
        >>> small = ScriptedModel("Paris", samples=[["Paris", "Paris.", "Lyon", "paris"]])
        >>> cascade = Cascade([small, ScriptedModel("Paris, France")],
        ...                   rules=ThresholdRule(SampleAgreement(k=4, temperature=0.7), threshold=0.5))
        >>> result = cascade.invoke("What is the capital of France?")
        >>> result.tier, result.decision.signal, result.decision.score
        (0, 'sample_agreement(k=4, temperature=0.7)', 0.75)
        >>> make_scorer("sample_agreement", k=4, temperature=0.7).sampling
        SamplingPlan(k=4, temperature=0.7, seed=0)
    """

    k: int = 4
    temperature: float = 0.7
    seed: int | None = 0
    first_step_only: bool = field(default=False, init=False)
    min_top_k: int = field(default=0, init=False)
    needs_logprobs: bool = field(default=False, init=False)
    score_range: tuple[float, float] = field(default=(0.0, 1.0), init=False)

    def __post_init__(self) -> None:
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 1:
            raise ConfigurationError(f"SampleAgreement.k must be an int >= 1 (samples per query), got {self.k!r}")
        t = self.temperature
        if isinstance(t, bool) or not isinstance(t, (int, float)) or math.isnan(t) or not 0.0 < t <= 2.0:
            raise ConfigurationError(
                f"SampleAgreement.temperature must be a number in (0, 2] (0 would repeat the greedy answer), got {t!r}"
            )
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0):
            raise ConfigurationError(f"SampleAgreement.seed must be a non-negative int or None, got {self.seed!r}")
        object.__setattr__(self, "temperature", float(t))

    @property
    def name(self) -> str:
        return f"sample_agreement(k={self.k}, temperature={self.temperature:g})"

    @property
    def sampling(self) -> SamplingPlan:
        """The k samples at temperature T this scorer needs the small tier to draw."""
        return SamplingPlan(self.k, self.temperature, self.seed)

    def __call__(self, generation: Generation) -> float:
        if len(generation.samples) < self.k:
            raise SignalError(
                f"scorer {self.name!r} needs {self.k} sampled answers; the generation has {len(generation.samples)} "
                "(a cache collected without `cascade collect --samples`, or a small tier that drew fewer)"
            )
        return signals.sample_agreement(generation.text, generation.samples[: self.k])


SCORERS: dict[str, Callable[..., Scorer]] = {
    "margin": Margin,
    "chow_sum": ChowSum,
    "chow_average": ChowAverage,
    "chow_quantile": ChowQuantile,
    "entropy": NegativeEntropy,
    "sample_agreement": SampleAgreement,
}


def make_scorer(name: str | Scorer, **params: Any) -> Scorer:
    """Build a scorer by name (``margin``, ``chow_sum``, ``chow_average``, ``chow_quantile``, ``entropy``,
    ``sample_agreement``).

    A scorer object is returned unchanged. ``params`` go to the scorer's constructor
    (``alpha=`` for ``chow_quantile``; ``kind=``, ``labels=``, ``distinct=`` for ``margin``;
    ``k=``, ``temperature=``, ``seed=`` for ``sample_agreement``).
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


class WrappedScorer:
    """What a scorer that wraps another (``self.scorer``) passes through unchanged: whether it decides on
    the first step, the alternatives per step, log-prob use and the sampled answers it needs. The
    wrapper defines ``name``, ``score_range``, ``labels`` and ``__call__`` itself."""

    scorer: Scorer

    @property
    def first_step_only(self) -> bool:
        return bool(self.scorer.first_step_only)

    @property
    def min_top_k(self) -> int:
        """Alternatives per step the underlying scorer needs."""
        return min_top_k_of(self.scorer)

    @property
    def needs_logprobs(self) -> bool:
        """Whether the underlying scorer reads token log-probs."""
        return needs_logprobs_of(self.scorer)

    @property
    def sampling(self) -> SamplingPlan | None:
        """The sampled answers the underlying scorer needs, if any."""
        return sampling_of(self.scorer)


def min_top_k_of(scorer: Any) -> int:
    """Alternatives per step a scorer needs (its declared ``min_top_k``; 0 when it declares none)."""
    value = getattr(scorer, "min_top_k", 0)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def needs_logprobs_of(scorer: Any) -> bool:
    """Whether a scorer reads token log-probs (its declared ``needs_logprobs``; True when it declares none)."""
    return getattr(scorer, "needs_logprobs", True) is not False


def sampling_of(scorer: Any) -> SamplingPlan | None:
    """The sampled answers a scorer needs (its declared ``sampling``), or None."""
    plan = getattr(scorer, "sampling", None)
    return plan if isinstance(plan, SamplingPlan) else None


def labels_of(scorer: Scorer) -> Sequence[str]:
    """Label first-tokens a scorer needs recorded at the first step (empty if none)."""
    labels = getattr(scorer, "labels", None)
    return tuple(labels) if labels else ()
