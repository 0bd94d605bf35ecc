"""Benchmark: the engine's own per-call overhead of the plan observers (tracing, drift monitor).

Scripted tiers (no model) make every call pure engine work, so this isolates what observing a call
costs: no observer at all, OpenTelemetry installed but no tracer provider configured (the API's
no-op tracer — the default for anyone who installs ``llm-cascade[otel]`` without setting up an
SDK), an SDK provider recording into memory, and a DriftMonitor. It prints microseconds per call
and each ratio to the no-observer run, measured in one run on this machine.

    python -m benchmarks.speed.bench_observers [--calls 3000]
"""

from __future__ import annotations

import time

from benchmarks import harness
from cascade_core import Cascade, ThresholdRule
from cascade_core.observe import telemetry
from cascade_core.observe.monitor import DriftMonitor
from cascade_core.testing import ScriptedModel


def per_call_us(cascade: Cascade, calls: int) -> float:
    for _ in range(100):  # warm-up
        cascade.invoke("q")
    started = time.perf_counter()
    for _ in range(calls):
        cascade.invoke("q")
    return (time.perf_counter() - started) / calls * 1e6


def make(monitor: DriftMonitor | None = None) -> Cascade:
    small = ScriptedModel("Paris is the capital", confidence=[0.9, 0.3], name="small")
    return Cascade([small, ScriptedModel("Paris, France", name="large")], rules=ThresholdRule("margin", 0.5),
                   monitor=monitor)


def main(argv: list[str] | None = None) -> None:
    parser = harness.parser(__doc__, threads=None, tiny=None, quiet=False)
    parser.add_argument("--calls", type=int, default=3000)
    args = parser.parse_args(argv)
    otel = telemetry._otel_trace
    telemetry._otel_trace = None  # as if opentelemetry-api were not installed
    base = per_call_us(make(), args.calls)
    telemetry._otel_trace = otel
    rows = [("no observer (OpenTelemetry absent)", base)]
    if otel is not None:
        rows.append(("OpenTelemetry API, no provider (no-op)", per_call_us(make(), args.calls)))
        telemetry._otel_trace = None
        rows.append(("DriftMonitor only", per_call_us(make(DriftMonitor(0.5, window=500)), args.calls)))
        telemetry._otel_trace = otel
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
        trace.set_tracer_provider(provider)
        rows.append(("OpenTelemetry SDK, in-memory exporter", per_call_us(make(), args.calls)))
    for name, us in rows:
        print(f"{name:42s} {us:8.1f} us/call   x{us / base:.2f}")


if __name__ == "__main__":
    main()
