"""Sampled answers for a rule that compares answers (``sample_agreement``): the plan's part, no I/O.

Two sub-generators of :func:`~cascade_core.engine.small_tier.small_tier`, yielding
:class:`~cascade_core.engine.effects.GenerateTexts` effects (the drivers call the tier's
``generate_texts`` / ``agenerate_texts``):

- :func:`text_generation`: the greedy answer as plain text, for a rule whose scorer reads no
  log-probs (``needs_logprobs = False``) — none are asked for, so a server without them serves it,
  and none are made up: the :class:`~cascade_core.types.Generation` has no steps;
- :func:`add_samples`: the scorer's k samples at temperature T (its
  :class:`~cascade_core.decide.scorers.SamplingPlan`), added to the generation with their usage,
  so the tier's usage counts all k + 1 calls.

A failing call raises into the small tier's plan, where ``on_small_error`` applies as for any
small-tier failure.

Example (driven by hand, no model):
    >>> from cascade_core.decide.scorers import SamplingPlan
    >>> from cascade_core.types import Generation, Request, TextSamples, Usage
    >>> machine = add_samples(0, Request.from_prompt("Q"), Generation("Paris", (), Usage(3, 1)), SamplingPlan(2, 0.7))
    >>> next(machine)
    GenerateTexts(tier=0, request=..., n=2, temperature=0.7, seed=0)
    >>> try:
    ...     machine.send(TextSamples(("Paris", "Lyon"), Usage(6, 2), calls=2))
    ... except StopIteration as stop:
    ...     print(stop.value.samples, stop.value.usage, stop.value.sample_usage.output_tokens)
    ('Paris', 'Lyon') Usage(input_tokens=9, output_tokens=3) 2
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import replace
from typing import Any

from cascade_core.decide.scorers import SamplingPlan, needs_logprobs_of, sampling_of
from cascade_core.engine.effects import Effect, GenerateTexts
from cascade_core.engine.stops import truncate_at_stop
from cascade_core.errors import BackendError
from cascade_core.types import Generation, Request, TextSamples

__all__ = ["add_samples", "rule_needs_logprobs", "rule_sampling", "text_generation"]


def _scorer(rule: Any) -> Any:
    return getattr(rule, "scorer", rule)


def rule_needs_logprobs(rule: Any) -> bool:
    """Whether the rule's scorer reads token log-probs (True unless it declares ``needs_logprobs = False``)."""
    return needs_logprobs_of(_scorer(rule))


def rule_sampling(rule: Any) -> SamplingPlan | None:
    """The samples the rule's scorer needs (its ``sampling``), or None."""
    return sampling_of(_scorer(rule))


def _checked(index: int, value: Any, n: int) -> TextSamples:
    if not isinstance(value, TextSamples) or len(value.texts) != n or not all(isinstance(t, str) for t in value.texts):
        got = len(value.texts) if isinstance(value, TextSamples) else type(value).__name__
        raise BackendError(f"tier {index}: generate_texts was asked for {n} answers and returned {got}")
    return value


def text_generation(index: int, model_name: str, request: Request) -> Generator[Effect, Any, Generation]:
    """Tier ``index``'s greedy answer as text (no log-probs asked for): a Generation without steps."""
    reply = _checked(index, (yield GenerateTexts(index, request, 1, 0.0, None)), 1)
    text = truncate_at_stop(reply.texts[0], request.stop) if request.stop else reply.texts[0]
    return Generation(text, (), reply.usage, "stop", model_name)


def add_samples(index: int, request: Request, generation: Generation, plan: SamplingPlan) -> Generator[Effect, Any, Generation]:
    """``generation`` with ``plan.k`` answers sampled at ``plan.temperature``, their usage added to its own."""
    reply = _checked(index, (yield GenerateTexts(index, request, plan.k, plan.temperature, plan.seed)), plan.k)
    texts = tuple(truncate_at_stop(t, request.stop) if request.stop else t for t in reply.texts)
    return replace(generation, samples=texts, usage=generation.usage + reply.usage, sample_usage=reply.usage)
