"""The cascade decision as a LlamaIndex instrumentation event.

Every :class:`~llamaindex_cascade.CascadeLLM` answer dispatches one :class:`CascadeDecisionEvent`
through LlamaIndex's instrumentation dispatcher (``llama_index.core.instrumentation``), inside the
LLM call's span, so event handlers and observability integrations see which tier answered and why.

Example:
    >>> from llama_index.core.instrumentation import get_dispatcher
    >>> from llama_index.core.instrumentation.event_handlers import BaseEventHandler
    >>> class Seen(BaseEventHandler):
    ...     events: list = []
    ...     def handle(self, event, **kwargs):
    ...         if isinstance(event, CascadeDecisionEvent):
    ...             self.events.append(event)
    >>> seen = Seen()
    >>> get_dispatcher().add_event_handler(seen)
    >>> from cascade_core import Cascade
    >>> from cascade_core.testing import ScriptedModel
    >>> from llamaindex_cascade import CascadeLLM
    >>> _ = CascadeLLM(cascade=Cascade([ScriptedModel("a"), ScriptedModel("b")])).complete("q")
    >>> seen.events[-1].tier, seen.events[-1].deferred
    (0, False)
    >>> get_dispatcher().event_handlers.remove(seen)
"""

from __future__ import annotations

from typing import Any

from llama_index.core.base.llms.types import ChatResponse
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.events import BaseEvent

from cascade_core.engine.result import CascadeResult
from llamaindex_cascade._convert import chat_response

__all__ = ["CascadeDecisionEvent", "respond"]

dispatcher = get_dispatcher(__name__)


class CascadeDecisionEvent(BaseEvent):
    """Which tier answered a :class:`~llamaindex_cascade.CascadeLLM` call and why.

    Attributes:
        tier: Index of the tier that answered (0 = the small model).
        model_name: The model that answered.
        deferred: True if the small tier's answer was not used.
        signal: The deciding signal (``None`` for a single-tier call).
        score: Its value.
        threshold: The threshold it was compared with.
        reason: Why ("keep: margin=0.8 >= threshold 0.3", "multimodal", ...).
        early_exit: True if a small tier was stopped after its first token.
        input_tokens: Prompt tokens over every tier called.
        output_tokens: Generated tokens over every tier called.
        cost: Estimated cost of the call.
        saved: Estimated cost saved versus sending it straight to the last tier.
        decision: The full :meth:`CascadeResult.as_dict`.
    """

    tier: int
    model_name: str
    deferred: bool
    signal: str | None = None
    score: float | None = None
    threshold: float | None = None
    reason: str = ""
    early_exit: bool = False
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    saved: float = 0.0
    decision: dict[str, Any] = {}

    @classmethod
    def class_name(cls) -> str:
        return "CascadeDecisionEvent"


def respond(result: CascadeResult, *, delta: str | None = None) -> ChatResponse:
    """The final LlamaIndex response of a call, after dispatching its :class:`CascadeDecisionEvent`."""
    decision = result.decision
    usage = result.usage
    dispatcher.event(CascadeDecisionEvent(
        tier=result.tier, model_name=result.model_name, deferred=result.deferred,
        signal=decision.signal if decision else None, score=decision.score if decision else None,
        threshold=decision.threshold if decision else None,
        reason=decision.reason if decision else "single tier",
        early_exit=any(d.early_exit for d in result.decisions),
        input_tokens=usage.input_tokens, output_tokens=usage.output_tokens,
        cost=result.cost, saved=result.saved, decision=result.as_dict(),
    ))
    return chat_response(result, delta=delta)
