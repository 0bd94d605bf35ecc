"""The effects the cascade's plan yields, and what a driver sends back for each.

:func:`cascade_core.engine.machine.plan` is a generator: it yields one effect at a time and is
resumed (``send``) with the effect's result, or has the effect's exception thrown in (``throw``)
when carrying it out failed. The plan then decides whether that failure defers, falls back or
propagates. Drivers (:mod:`cascade_core.engine.cascade`) do nothing but carry effects out.

==================  =====================================================  ==================================
Effect              The driver does                                        and sends back
==================  =====================================================  ==================================
:class:`Route`      score ``request`` with the cascade's router (one        a :class:`RouteScore`
                    prefill for its prompt embedding, or none)
:class:`OpenSteps`  open tier ``tier``'s step stream for ``request``        ``None``
                    (``stream_steps`` / ``astream_steps``)
:class:`NextStep`   read the next event of that step stream                 a ``TokenStep``, the ``StepsEnd``,
                                                                            or :data:`END` when exhausted
:class:`CloseSteps` close that step stream (stops generation); no error     ``None``
                    if it was never opened
:class:`GenerateTexts` ``n`` answers of tier ``tier`` as plain text, no      a :class:`~cascade_core.types.TextSamples`
                    log-probs (``generate_texts`` / ``agenerate_texts``):
                    the greedy one (temperature 0) or k samples
:class:`Complete`   ask the last tier for a whole answer (``complete`` /    a :class:`~cascade_core.types.Completion`
                    ``acomplete``)
:class:`OpenChunks` open the last tier's answer stream (``stream`` /         ``None``
                    ``astream``)
:class:`NextChunk`  read the next piece of that answer stream               a ``CompletionChunk``, or :data:`END`
:class:`Emit`       hand ``chunk`` to the caller (a streaming call yields   ``None``
                    it; the last one carries the ``CascadeResult``)
==================  =====================================================  ==================================

Example — a plan driven by hand, without any model (see ``tests/core/test_plan.py``):
    >>> from cascade_core.engine.machine import TierView, plan
    >>> from cascade_core.decide.rules import ThresholdRule
    >>> from cascade_core.types import Request, StepsEnd, TokenAlternative, TokenStep, Usage
    >>> view = TierView("small", lambda usage: 0.0, len)
    >>> machine = plan([view, view], [ThresholdRule("margin", 0.5)], Request.from_prompt("Q"), streaming=False)
    >>> next(machine)
    OpenSteps(tier=0, request=...)
    >>> machine.send(None)
    NextStep(tier=0)
"""

from __future__ import annotations

from dataclasses import dataclass

from cascade_core.engine.result import CascadeChunk
from cascade_core.types import Request

__all__ = [
    "END", "CloseSteps", "Complete", "Effect", "Emit", "GenerateTexts", "NextChunk", "NextStep", "OpenChunks", "OpenSteps",
    "Route", "RouteScore",
]


class _End:
    """What a driver sends back for :class:`NextStep` / :class:`NextChunk` when the stream is exhausted."""

    def __repr__(self) -> str:
        return "END"


END = _End()
"""Sent back for :class:`NextStep` / :class:`NextChunk` when the stream is exhausted."""


@dataclass(frozen=True)
class Route:
    """Score ``request`` with the cascade's pre-generation router; send back a :class:`RouteScore`."""

    request: Request


@dataclass(frozen=True)
class RouteScore:
    """The router's verdict on one request, before any tier generates.

    Attributes:
        p_good: The router's estimate that the small tier's answer will be good.
        prompt_tokens: The prompt's length in the small model's tokens (a router feature).
        prefill: True when scoring ran a small-model prefill (the prompt embedding); its tokens
            are then charged to the first tier.
        latency_s: Seconds the scoring took.
    """

    p_good: float
    prompt_tokens: int
    prefill: bool
    latency_s: float = 0.0


@dataclass(frozen=True)
class OpenSteps:
    """Open the step stream of small tier ``tier`` for ``request``; send back ``None``."""

    tier: int
    request: Request


@dataclass(frozen=True)
class NextStep:
    """Read the next event of tier ``tier``'s step stream; send back a TokenStep, the StepsEnd, or END."""

    tier: int


@dataclass(frozen=True)
class CloseSteps:
    """Close tier ``tier``'s step stream (it may stop generating at once); send back ``None``."""

    tier: int


@dataclass(frozen=True)
class GenerateTexts:
    """Ask small tier ``tier`` for ``n`` plain-text answers to ``request``; send back its TextSamples.

    ``temperature`` 0 is the greedy answer (``n`` = 1); above 0, ``n`` samples, sample i seeded
    ``seed + i`` (``seed`` None: the backend's own randomness). No log-probs are asked for.
    """

    tier: int
    request: Request
    n: int
    temperature: float
    seed: int | None = None


@dataclass(frozen=True)
class Complete:
    """Ask tier ``tier`` for a whole answer to ``request``; send back its Completion."""

    tier: int
    request: Request


@dataclass(frozen=True)
class OpenChunks:
    """Open tier ``tier``'s streamed answer to ``request``; send back ``None``."""

    tier: int
    request: Request


@dataclass(frozen=True)
class NextChunk:
    """Read the next piece of tier ``tier``'s streamed answer; send back a CompletionChunk, or END."""

    tier: int


@dataclass(frozen=True)
class Emit:
    """Give ``chunk`` to the caller (streaming calls yield it); send back ``None``."""

    chunk: CascadeChunk


Effect = Route | OpenSteps | NextStep | CloseSteps | GenerateTexts | Complete | OpenChunks | NextChunk | Emit
