"""Deferral rules: score a small-model generation and decide whether to defer.

A :class:`ThresholdRule` pairs a :class:`~cascade_core.decide.scorers.Scorer` (a signal such as the
first-token margin, or a learned rule) with a :class:`~cascade_core.decide.thresholds.ThresholdPolicy`.

Example:
    >>> import numpy as np
    >>> from cascade_core.types import Generation, TokenAlternative, TokenStep
    >>> rule = ThresholdRule("margin", threshold=0.3)
    >>> step = TokenStep("Paris", np.log(0.5), (TokenAlternative("Paris", np.log(0.5)),
    ...                                         TokenAlternative("Lyon", np.log(0.4))))
    >>> rule.decide(Generation("Paris", (step,))).defer
    True
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from cascade_core.decide.scorers import Scorer, labels_of, make_scorer
from cascade_core.decide.thresholds import FixedThreshold, ThresholdPolicy, check_threshold
from cascade_core.errors import CascadeError, SignalError
from cascade_core.types import Generation

__all__ = ["DeferralRule", "RuleOutcome", "ThresholdRule"]


@dataclass(frozen=True)
class RuleOutcome:
    """What a rule decided about one generation."""

    defer: bool
    score: float
    threshold: float
    signal: str
    reason: str


@runtime_checkable
class DeferralRule(Protocol):
    """Anything the engine can ask "defer this generation?"."""

    @property
    def first_step_only(self) -> bool:
        """True if the decision only needs the first decoding step."""
        ...

    @property
    def first_step_tokens(self) -> tuple[str, ...]:
        """Token strings whose first-step log-probs the small model must record."""
        ...

    def decide(self, generation: Generation) -> RuleOutcome:
        """Decide for one generation."""
        ...


class ThresholdRule:
    """Defer when the scorer's value is below the threshold policy's threshold.

    Args:
        signal: A scorer name (``"margin"``, ``"chow_sum"``, ``"chow_average"``, ``"chow_quantile"``,
            ``"entropy"``) or a scorer object (e.g. a fitted learned rule).
        threshold: A number (fixed threshold) or a :class:`ThresholdPolicy`.
        **signal_params: Parameters of a named signal (``alpha=0.1``, ``labels=[...]``, ``kind="logit"``).

    Example:
        >>> ThresholdRule("chow_quantile", threshold=-2.0, alpha=0.0).scorer.name
        'chow_quantile(alpha=0)'
    """

    def __init__(self, signal: str | Scorer = "margin", threshold: float | ThresholdPolicy = 0.3, **signal_params: Any) -> None:
        self.scorer: Scorer = make_scorer(signal, **signal_params)
        if isinstance(threshold, ThresholdPolicy):
            self.policy: ThresholdPolicy = threshold
        else:
            self.policy = FixedThreshold(
                check_threshold(threshold, self.scorer.score_range, name=f"threshold for {self.scorer.name}")
            )

    @property
    def first_step_only(self) -> bool:
        return bool(self.scorer.first_step_only)

    @property
    def first_step_tokens(self) -> tuple[str, ...]:
        return tuple(labels_of(self.scorer))

    def decide(self, generation: Generation) -> RuleOutcome:
        try:
            score = float(self.scorer(generation))
        except CascadeError:
            raise
        except Exception as err:  # a runtime fault while scoring this reply: the engine defers, with the reason
            raise SignalError(f"scorer {self.scorer.name!r} failed on the generation: {type(err).__name__}: {err}") from err
        if math.isnan(score):
            return RuleOutcome(True, score, math.nan, self.scorer.name, f"{self.scorer.name} is NaN; deferring")
        defer, threshold = self.policy.decide(score)
        relation = ">=" if not defer else "<" if score < threshold else "= (tie, deferred at random to meet the rate)"
        verdict = "defer" if defer else "keep"
        reason = f"{verdict}: {self.scorer.name}={score:.4g} {relation} threshold {threshold:.4g}"
        return RuleOutcome(defer, score, threshold, self.scorer.name, reason)

    def __repr__(self) -> str:
        return f"ThresholdRule(signal={self.scorer.name!r}, policy={self.policy!r})"
