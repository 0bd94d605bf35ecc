"""CascadeLLM dispatches its decision as a LlamaIndex instrumentation event, inside the call's span."""

from __future__ import annotations

from typing import Any

import pytest
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events.llm import LLMChatEndEvent

from cascade_core import Cascade, ThresholdRule
from cascade_core.testing import ScriptedModel
from llamaindex_cascade import CascadeDecisionEvent, CascadeLLM


class Collector(BaseEventHandler):
    events: list[Any] = []

    def handle(self, event: Any, **kwargs: Any) -> None:
        self.events.append(event)


@pytest.fixture()
def collector():
    handler = Collector(events=[])
    root = get_dispatcher()
    root.add_event_handler(handler)
    yield handler
    root.event_handlers.remove(handler)


def _llm(confidence: float) -> CascadeLLM:
    cascade = Cascade([ScriptedModel("Paris", confidence=confidence, name="small"), ScriptedModel("Paris, France", name="large")],
                      rules=ThresholdRule("margin", 0.5))
    return CascadeLLM(cascade=cascade)


def _decisions(collector):
    return [e for e in collector.events if isinstance(e, CascadeDecisionEvent)]


@pytest.mark.parametrize(("confidence", "tier"), [(0.95, 0), (0.3, 1)])
def test_chat_dispatches_one_decision_event(collector, confidence, tier):
    response = _llm(confidence).chat([ChatMessage(role="user", content="Capital of France?")])
    (event,) = _decisions(collector)
    assert event.tier == tier == response.additional_kwargs["cascade"]["tier"]
    assert event.deferred is (tier == 1) and event.signal == "margin" and event.threshold == 0.5
    assert event.early_exit is (tier == 1) and event.output_tokens >= 1
    assert event.decision == response.additional_kwargs["cascade"]
    # inside the LLM call's instrumentation span, next to LlamaIndex's own LLM events
    end = next(e for e in collector.events if isinstance(e, LLMChatEndEvent))
    assert event.span_id is not None and event.span_id == end.span_id


async def test_streamed_and_completion_calls_dispatch_the_decision(collector):
    llm = _llm(0.3)
    gen = await llm.astream_chat([ChatMessage(role="user", content="q")])
    texts = [r.delta async for r in gen]
    assert "".join(t for t in texts if t) == "Paris, France"
    llm.complete("q")
    assert [e.tier for e in _decisions(collector)] == [1, 1]
