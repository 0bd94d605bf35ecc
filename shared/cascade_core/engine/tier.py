"""A tier of the cascade (a model with its prices), and the checks a list of tiers must pass."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cascade_core.backends.base import LargeModel, SmallModel, TextGenerator
from cascade_core.cost import Pricing, count_tokens
from cascade_core.decide.rules import DeferralRule
from cascade_core.decide.scorers import min_top_k_of, needs_logprobs_of, sampling_of
from cascade_core.engine.context import check_context_window
from cascade_core.errors import ConfigurationError

__all__ = ["Tier", "check_tiers", "record_embeddings"]

logger = logging.getLogger(__name__)


@dataclass
class Tier:
    """A model in the cascade with its prices.

    Attributes:
        model: A :class:`SmallModel` (every tier but the last) or any :class:`LargeModel` (last).
        pricing: Price per million input/output tokens, for cost estimates.
        name: Display name (defaults to the model's ``model_name``).
        context_window: Prompt + answer tokens a small tier takes (default: the model's
            ``context_window``, e.g. a local model's ``max_position_embeddings``); longer
            conversations lose their oldest turns (see :mod:`cascade_core.engine.context`).

    Example:
        >>> from cascade_core.testing import ScriptedModel
        >>> Tier(ScriptedModel("hi", name="small"), Pricing(0.1, 0.4)).display_name
        'small'
    """

    model: Any
    pricing: Pricing = field(default_factory=Pricing)
    name: str | None = None
    context_window: int | None = None

    @property
    def effective_context_window(self) -> int | None:
        """Prompt + answer tokens the model takes: ``context_window``, else the model's own, else None."""
        own = self.context_window if self.context_window is not None else getattr(self.model, "context_window", None)
        return check_context_window(own, f"tier {self.display_name!r}")

    @property
    def display_name(self) -> str:
        return self.name or getattr(self.model, "model_name", "") or type(self.model).__name__

    def count_tokens(self, text: str) -> int:
        counter = getattr(self.model, "count_tokens", None)
        if counter is not None:
            try:
                return int(counter(text))
            except Exception as err:  # counting is for cost estimates only; never fail a call on it
                logger.debug("count_tokens of %s failed (%s); using tiktoken", self.display_name, err)
        return count_tokens(text)


def check_tiers(tiers: Sequence[Tier], rules: Sequence[Any]) -> None:
    """Raise :class:`ConfigurationError` unless every rule is a rule, every tier but the last gives
    log-probs with enough alternatives for its rule's signal (or, for a signal that compares
    answers, can generate plain-text answers), and the last tier can answer."""
    for i, rule in enumerate(rules):
        if not isinstance(rule, DeferralRule):
            raise ConfigurationError(f"rules[{i}] must be a DeferralRule such as ThresholdRule, got {rule!r}")
    for i, tier in enumerate(tiers[:-1]):
        if not isinstance(tier.model, SmallModel):
            raise ConfigurationError(
                f"tier {i} ({tier.display_name}) must expose token log-probs (stream_steps/astream_steps, "
                "top_k): only the last tier may be a text-only model"
            )
        scorer = getattr(rules[i], "scorer", rules[i])
        needs_top = min_top_k_of(scorer)
        if tier.model.top_k < needs_top:
            raise ConfigurationError(
                f"tier {i} ({tier.display_name}) has top_k={tier.model.top_k}; signal "
                f"{getattr(scorer, 'name', type(scorer).__name__)!r} needs top_k >= {needs_top}"
            )
        if getattr(scorer, "needs_embedding", False):
            _check_embedding(i, tier, scorer)
        if (sampling_of(scorer) is not None or not needs_logprobs_of(scorer)) and not isinstance(tier.model, TextGenerator):
            raise ConfigurationError(
                f"signal {getattr(scorer, 'name', type(scorer).__name__)!r} compares plain-text answers (greedy and "
                f"sampled), but tier {i} ({tier.display_name}) has no generate_texts/agenerate_texts: use an "
                "OpenAIModel, a TransformersModel or a ScriptedModel small tier"
            )
    if not isinstance(tiers[-1].model, LargeModel):
        raise ConfigurationError(
            f"last tier ({tiers[-1].display_name}) must provide complete/acomplete/stream/astream"
        )


def record_embeddings(tiers: Sequence[Tier], rules: Sequence[Any]) -> list[Tier]:
    """``tiers`` with every tier whose rule reads the small model's pooled embedding (Post-Hoc-Embed,
    ``scorer.needs_embedding``) switched to a twin that records it (``model.with_embedding()``).

    A model that cannot record one is left as it is; :func:`check_tiers` then says so.
    """
    out = list(tiers)
    for i, rule in enumerate(rules[: len(out) - 1]):
        scorer = getattr(rule, "scorer", rule)
        model = out[i].model
        if getattr(scorer, "needs_embedding", False) and not getattr(model, "record_embedding", False):
            switch = getattr(model, "with_embedding", None)
            if callable(switch):
                out[i] = dataclasses.replace(out[i], model=switch())
    return out


def _check_embedding(i: int, tier: Tier, scorer: Any) -> None:
    name = getattr(scorer, "name", type(scorer).__name__)
    if not getattr(tier.model, "record_embedding", False):
        raise ConfigurationError(
            f"rule {name!r} reads the small model's pooled embedding (Post-Hoc-Embed), but tier {i} "
            f"({tier.display_name}) cannot record one: use a local TransformersModel small tier, or fit the "
            "rule without the embedding (cascade fit --no-embedding)"
        )
    want, have = getattr(scorer, "embedding_dim", None), getattr(tier.model, "embedding_dim", None)
    if want is not None and have is not None and want != have:
        raise ConfigurationError(
            f"rule {name!r} was fitted on {want}-dimensional embeddings, but tier {i} ({tier.display_name}) "
            f"gives {have}-dimensional ones: fit the rule on this model's cache"
        )
