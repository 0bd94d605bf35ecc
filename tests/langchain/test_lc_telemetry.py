"""ChatCascade runs carry the decision in their run metadata (what LangSmith shows) and are
traced as OpenTelemetry spans."""

from __future__ import annotations

import pytest
from langchain_core.tracers.base import BaseTracer
from langchain_core.tracers.schemas import Run

from cascade_core import Cascade, ThresholdRule
from cascade_core.testing import ScriptedModel
from langchain_cascade import ChatCascade


class RunCollector(BaseTracer):
    """A real LangChain tracer (as LangChainTracer is) that keeps finished runs in memory."""

    def __init__(self) -> None:
        super().__init__()
        self.runs: list[Run] = []

    def _persist_run(self, run: Run) -> None:  # root runs; the chat run is collected when it ends
        pass

    def _on_llm_end(self, run: Run) -> None:
        self.runs.append(run)


def _llm(confidence: float) -> ChatCascade:
    cascade = Cascade([ScriptedModel("Paris", confidence=confidence, name="small"), ScriptedModel("Paris, France", name="large")],
                      rules=ThresholdRule("margin", 0.5))
    return ChatCascade(cascade=cascade)


def _chat_run(collector: RunCollector) -> Run:
    runs = [r for r in collector.runs if r.run_type in ("llm", "chat_model")]
    assert len(runs) == 1
    return runs[0]


@pytest.mark.parametrize(("confidence", "tier"), [(0.95, 0), (0.3, 1)])
def test_invoke_run_metadata_carries_the_decision(confidence, tier):
    collector = RunCollector()
    msg = _llm(confidence).invoke("Capital of France?", config={"callbacks": [collector], "metadata": {"user": "u1"}})
    meta = _chat_run(collector).extra["metadata"]
    assert meta["user"] == "u1"  # the caller's metadata is kept
    decision = meta["cascade"]
    assert decision["tier"] == tier == msg.response_metadata["cascade"]["tier"]
    assert decision["deferred"] is (tier == 1) and decision["signal"] == "margin" and decision["threshold"] == 0.5
    assert decision["early_exit"] is (tier == 1) and decision["output_tokens"] >= 1
    assert decision["saved"] == pytest.approx(msg.response_metadata["cascade"]["saved"])


async def test_ainvoke_run_metadata_carries_the_decision():
    collector = RunCollector()
    await _llm(0.3).ainvoke("q", config={"callbacks": [collector]})
    assert _chat_run(collector).extra["metadata"]["cascade"]["tier"] == 1


async def test_streamed_run_records_the_decision_in_its_output():
    # LangChain's stream()/astream() do not hand the model its run manager, so the decision reaches
    # the run through the last chunk's response_metadata, which the tracer stores as the output
    collector = RunCollector()
    chunks = [c async for c in _llm(0.3).astream("q", config={"callbacks": [collector]})]
    assert "".join(c.content for c in chunks) == "Paris, France"
    message = _chat_run(collector).outputs["generations"][0][0]["message"]
    assert message["kwargs"]["response_metadata"]["cascade"]["tier"] == 1


def test_chat_cascade_call_is_an_otel_span():
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    _llm(0.3).invoke("q")
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert spans["cascade"].attributes["cascade.tier"] == 1 and "chat small" in spans and "chat large" in spans
    exporter.shutdown()
