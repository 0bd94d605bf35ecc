"""OpenTelemetry spans of cascade calls, recorded with the SDK's in-memory exporter."""

from __future__ import annotations

import asyncio

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from cascade_core import Cascade, ThresholdRule
from cascade_core.observe import telemetry
from cascade_core.testing import ScriptedModel


@pytest.fixture(scope="module")
def provider_exporter():
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):  # the first test module to need OTel sets it up
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


@pytest.fixture()
def spans(provider_exporter):
    provider_exporter.clear()
    yield provider_exporter
    provider_exporter.clear()


def _cascade(confidence=0.9, fail=False):
    small = ScriptedModel("Paris is nice", confidence=confidence, name="small", fail=fail)
    large = ScriptedModel("Paris, France", name="large")
    return Cascade([small, large], rules=ThresholdRule("margin", 0.5))


def _tree(exporter):
    finished = exporter.get_finished_spans()
    roots = [s for s in finished if s.name == "cascade"]
    assert len(roots) == 1, [s.name for s in finished]
    root = roots[0]
    children = sorted((s for s in finished if s.parent is not None and s.parent.span_id == root.context.span_id),
                      key=lambda s: s.attributes["cascade.tier"])
    assert len(children) == len(finished) - 1  # every other span is a child of the call
    return root, children


def test_kept_call_is_a_span_with_the_decision_and_one_tier_child(spans):
    result = _cascade(0.9).invoke("Capital of France?")
    root, children = _tree(spans)
    assert [c.name for c in children] == ["chat small"]
    a = root.attributes
    assert a["cascade.tier"] == 0 and a["cascade.deferred"] is False and a["cascade.signal"] == "margin"
    assert a["cascade.score"] == pytest.approx(result.decision.score) and a["cascade.threshold"] == 0.5
    assert a["cascade.early_exit"] is False and a["cascade.reason"].startswith("keep")
    assert a["gen_ai.operation.name"] == "chat" and a["gen_ai.response.model"] == "small"
    assert a["gen_ai.usage.output_tokens"] == result.usage.output_tokens == 3
    assert a["cascade.saved"] == pytest.approx(result.saved) and a["cascade.cost"] == pytest.approx(result.cost)
    assert children[0].attributes["gen_ai.request.model"] == "small"
    assert children[0].start_time >= root.start_time and children[0].end_time <= root.end_time


def test_deferred_call_has_a_child_per_tier_with_its_own_decision(spans):
    result = _cascade(0.3).invoke("Capital of France?")
    root, (small, large) = _tree(spans)
    assert result.tier == 1 and root.attributes["cascade.deferred"] is True
    assert small.attributes["cascade.deferred"] is True and small.attributes["cascade.early_exit"] is True
    assert small.attributes["gen_ai.usage.output_tokens"] == 1  # stopped after its first token
    assert large.name == "chat large" and large.attributes["gen_ai.usage.output_tokens"] == 2
    assert "cascade.signal" not in large.attributes  # the last tier is not judged
    assert small.end_time <= large.start_time


def test_streamed_and_async_calls_are_traced_the_same(spans):
    cascade = _cascade(0.3)
    assert "".join(c.text for c in cascade.stream("q")) == "Paris, France"
    _, children = _tree(spans)
    assert [c.name for c in children] == ["chat small", "chat large"]
    spans.clear()

    async def run():
        return [c async for c in cascade.astream("q")]

    asyncio.run(run())
    root, children = _tree(spans)
    assert root.attributes["cascade.streaming"] is True and len(children) == 2


def test_failing_small_tier_span_records_the_error(spans):
    result = _cascade(fail=True).invoke("q")
    root, (small, _) = _tree(spans)
    assert result.tier == 1 and small.status.status_code is StatusCode.ERROR
    assert small.attributes["error.type"] == "BackendError"
    assert any(e.name == "exception" for e in small.events)
    assert root.status.status_code is not StatusCode.ERROR  # the call itself succeeded


def test_concurrent_calls_get_separate_span_trees(spans):
    cascade = _cascade(0.3)
    asyncio.run(cascade.abatch(["a", "b", "c", "d"], max_concurrency=4))
    finished = spans.get_finished_spans()
    roots = [s for s in finished if s.name == "cascade"]
    assert len(roots) == 4 and len({r.context.trace_id for r in roots}) == 4
    for root in roots:
        kids = [s for s in finished if s.parent is not None and s.parent.span_id == root.context.span_id]
        assert len(kids) == 2 and all(k.context.trace_id == root.context.trace_id for k in kids)


def test_stream_closed_early_ends_its_spans(spans):
    cascade = Cascade([ScriptedModel("one two three four", confidence=0.9), ScriptedModel("x")])
    stream = cascade.stream("q")
    next(stream)
    stream.close()
    root, children = _tree(spans)
    assert root.attributes["cascade.cancelled"] is True and len(children) == 1


def test_raising_call_marks_the_span_as_error(spans):
    cascade = Cascade([ScriptedModel("a", fail=True), ScriptedModel("b")], on_small_error="raise")
    with pytest.raises(Exception, match="scripted failure"):
        cascade.invoke("q")
    root, _ = _tree(spans)
    assert root.status.status_code is StatusCode.ERROR


def test_without_opentelemetry_calls_are_not_traced(spans, monkeypatch):
    monkeypatch.setattr(telemetry, "_otel_trace", None)
    assert telemetry.tracing_observer(["a", "b"], streaming=False) is None
    assert _cascade(0.9).invoke("q").tier == 0
    assert spans.get_finished_spans() == ()


def test_without_a_configured_provider_no_observer_is_attached(spans, monkeypatch):
    # the API's default ProxyTracerProvider would only hand out no-op spans: skip the work entirely
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: trace.ProxyTracerProvider())
    assert telemetry.tracing_observer(["a", "b"], streaming=False) is None
    assert _cascade(0.9).invoke("q").tier == 0 and spans.get_finished_spans() == ()
