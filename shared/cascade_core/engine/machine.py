"""The cascade's control flow as a sans-I/O generator.

:func:`plan` never calls a model. It *yields effects* and is resumed with their results (or has
their errors thrown in); :mod:`cascade_core.engine.effects` lists every effect, what the driver does
for it and what it sends back:

- ``OpenSteps`` / ``NextStep`` / ``CloseSteps``: open, read and close a small tier's step stream
  (the driver sends back ``None``, then each ``TokenStep``, the ``StepsEnd``, or ``END``);
- ``Complete``: the last tier's whole answer (sent back: a ``Completion``);
- ``OpenChunks`` / ``NextChunk``: the last tier's streamed answer (sent back: each ``CompletionChunk``, then ``END``);
- ``Emit``: a ``CascadeChunk`` for the caller (the last one carries the ``CascadeResult``);
- ``Route``: with a pre-generation router, the request's score before any tier (sent back: a ``RouteScore``).

:mod:`cascade_core.engine.cascade` has a thin synchronous driver and a thin asynchronous driver
that carry out the effects, so sync, async, streaming and batch calls all share this one
implementation of the decision logic. The plan is composed of two sub-generators:
:func:`~cascade_core.engine.small_tier.small_tier` for every tier but the last, then
:func:`~cascade_core.engine.last_tier.last_tier`.

Example (the whole plan driven by hand, no model — ``tests/core/test_plan.py`` has more):
    >>> from cascade_core.decide.rules import ThresholdRule
    >>> from cascade_core.types import Request, StepsEnd, TokenAlternative, TokenStep
    >>> view = TierView("m", lambda usage: 0.0, len)
    >>> machine = plan([view, view], [ThresholdRule("margin", 0.5)], Request.from_prompt("Q"), streaming=False)
    >>> [type(next(machine)).__name__, type(machine.send(None)).__name__]
    ['OpenSteps', 'NextStep']
    >>> sure = TokenStep("Paris", -0.01, (TokenAlternative("Paris", -0.01), TokenAlternative("Rome", -5.0)))
    >>> machine.send(sure)  # the margin rule keeps it after this first step: read on
    NextStep(tier=0)
    >>> machine.send(StepsEnd())
    CloseSteps(tier=0)
    >>> emit = machine.send(None)
    >>> emit.chunk.result.text, emit.chunk.result.tier
    ('Paris', 0)
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import Any

from cascade_core.decide.rules import DeferralRule
from cascade_core.engine.answer_check import AnswerCheck
from cascade_core.engine.effects import (
    END,
    CloseSteps,
    Complete,
    Effect,
    Emit,
    NextChunk,
    NextStep,
    OpenChunks,
    OpenSteps,
    Route,
    RouteScore,
)
from cascade_core.engine.last_tier import last_tier
from cascade_core.engine.plan_state import PlanState, TierView
from cascade_core.engine.result import CascadeResult
from cascade_core.engine.route_stage import route_first
from cascade_core.engine.routing import check_media
from cascade_core.engine.small_tier import small_tier
from cascade_core.types import Request

__all__ = [
    "END",
    "AnswerCheck",
    "CloseSteps",
    "Complete",
    "Effect",
    "Emit",
    "NextChunk",
    "NextStep",
    "OpenChunks",
    "OpenSteps",
    "Route",
    "RouteScore",
    "TierView",
    "plan",
]


def plan(
    tiers: Sequence[TierView],
    rules: Sequence[DeferralRule],
    request: Request,
    *,
    streaming: bool,
    check: AnswerCheck | None = None,
    on_small_error: str = "defer",
    on_large_error: str = "raise",
    router_threshold: float | None = None,
) -> Generator[Effect, Any, CascadeResult]:
    """The cascade for one request, as a generator of effects returning a :class:`CascadeResult`.

    Non-final tiers are small models: their steps are pulled one by one. A rule that decides on
    the first step (first-token margin) is applied right after it: a deferral closes the stream at
    once; a kept answer is streamed from there on (when no answer check needs the whole text).
    Other rules and any answer check see the full generation; its text is emitted after the
    decision. The last tier answers whatever reaches it; if it fails, ``on_large_error`` says
    whether to raise :class:`~cascade_core.errors.LargeTierError` or fall back to the last small answer.

    Args:
        tiers: What the plan knows of each tier, cheapest first.
        rules: One deferral rule per non-final tier.
        request: The request.
        streaming: Emit the answer's text as it comes (else only the final chunk with the result).
        check: Rejects a small answer (returns a reason) to force a deferral.
        on_small_error: ``"defer"``: a failing small tier defers; ``"raise"``: its error propagates.
        on_large_error: ``"raise"`` or ``"small"`` (answer from the last small answer instead).
        router_threshold: With a router (:mod:`~cascade_core.engine.route_stage`): the request is
            scored first (a ``Route`` effect) and goes straight to the last tier when ``p_good`` is below this.
    """
    state = PlanState(tiers, rules, request, streaming, check, on_small_error, on_large_error)
    media = check_media(tiers, request)
    if router_threshold is not None and (yield from route_first(state, router_threshold)):
        return (yield from last_tier(state))
    for index in range(state.last):
        result = yield from small_tier(state, index, media)
        if result is not None:
            return result
    return (yield from last_tier(state))
