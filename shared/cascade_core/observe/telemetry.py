"""OpenTelemetry spans for cascade calls (no-op when ``opentelemetry-api`` is not installed).

Each call is a ``cascade`` span with one child span per tier called (``chat <model>``), named and
annotated after the OpenTelemetry GenAI semantic conventions where they apply
(``gen_ai.operation.name``, ``gen_ai.request.model``, ``gen_ai.response.model``,
``gen_ai.usage.input_tokens`` / ``output_tokens``), and the decision as ``cascade.*`` attributes:
tier, deferred, signal, score, threshold, reason, early_exit, cost, all_large_cost, saved. Spans go
to whatever tracer provider the application configured (``opentelemetry.trace.set_tracer_provider``);
with none configured the API's no-op tracer drops them.

Example:
    >>> from cascade_core import Cascade
    >>> from cascade_core.testing import ScriptedModel
    >>> Cascade([ScriptedModel("a"), ScriptedModel("b")]).invoke("q").text  # traced if OTel is set up
    'a'
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from typing import Any

from cascade_core.engine.machine import CloseSteps, Complete, Effect, Emit, OpenChunks, OpenSteps
from cascade_core.engine.result import CascadeResult, Decision, TierRun
from cascade_core.errors import require

__all__ = ["TRACER_NAME", "CascadeTracing", "decision_attributes", "tracing_observer"]

logger = logging.getLogger(__name__)

TRACER_NAME = "llm_cascade"

try:  # optional dependency: pip install 'llm-cascade[otel]'
    from opentelemetry import trace as _otel_trace
    from opentelemetry.trace import NoOpTracerProvider, ProxyTracerProvider, Status, StatusCode

    _NO_OP_PROVIDERS: tuple[type, ...] = (NoOpTracerProvider, ProxyTracerProvider)  # no SDK configured
except ImportError:  # pragma: no cover - depends on the environment
    _otel_trace = None  # type: ignore[assignment]
    _NO_OP_PROVIDERS = ()


def _clean(attributes: dict[str, Any]) -> dict[str, Any]:
    """OpenTelemetry attribute values must not be None; non-finite floats are kept as strings."""
    out: dict[str, Any] = {}
    for key, value in attributes.items():
        if value is None:
            continue
        if isinstance(value, float) and not math.isfinite(value):
            value = str(value)
        out[key] = value
    return out


def decision_attributes(result: CascadeResult) -> dict[str, Any]:
    """The decision of a call as flat span attributes (None values left out).

    >>> from cascade_core.engine.result import CascadeResult, Decision
    >>> r = CascadeResult("a", 0, "small", (Decision(0, False, 0.8, 0.3, "margin", "keep", True),), ())
    >>> decision_attributes(r)["cascade.early_exit"], decision_attributes(r)["cascade.score"]
    (True, 0.8)
    """
    summary = result.summary()
    return _clean({
        "gen_ai.response.model": summary.pop("model_name"),
        "gen_ai.usage.input_tokens": summary.pop("input_tokens"),
        "gen_ai.usage.output_tokens": summary.pop("output_tokens"),
        **{f"cascade.{key}": value for key, value in summary.items()},
        "cascade.drift_alarm": result.metadata.get("drift", {}).get("alarm"),
    })


def _tier_attributes(run: TierRun | None, decision: Decision | None) -> dict[str, Any]:
    attrs: dict[str, Any] = {}
    if run is not None:
        attrs.update({
            "gen_ai.response.model": run.model_name,
            "gen_ai.usage.input_tokens": run.usage.input_tokens,
            "gen_ai.usage.output_tokens": run.usage.output_tokens,
            "cascade.cost": run.cost,
        })
    if decision is not None:
        attrs.update({
            "cascade.deferred": decision.defer,
            "cascade.signal": decision.signal,
            "cascade.score": decision.score,
            "cascade.threshold": decision.threshold,
            "cascade.reason": decision.reason,
            "cascade.early_exit": decision.early_exit,
        })
    return _clean(attrs)


class CascadeTracing:
    """A plan observer that records one call as a span tree (see the module docstring).

    Args:
        tier_names: Display names of the tiers, cheapest first.
        streaming: Whether the call streams (recorded as ``cascade.streaming``).
        tracer: An OpenTelemetry tracer (default: ``trace.get_tracer("llm_cascade")``).
    """

    def __init__(self, tier_names: Sequence[str], *, streaming: bool, tracer: Any = None) -> None:
        if _otel_trace is None:
            require("opentelemetry.trace", "otel", purpose="CascadeTracing")
        self._tracer = tracer or _otel_trace.get_tracer(TRACER_NAME)
        self._names = list(tier_names)
        self._root = self._tracer.start_span("cascade", attributes={
            "gen_ai.operation.name": "chat", "gen_ai.request.model": "cascade(" + " -> ".join(self._names) + ")",
            "cascade.tiers": len(self._names), "cascade.streaming": streaming,
        })
        self._context = _otel_trace.set_span_in_context(self._root)
        self._spans: dict[int, Any] = {}
        self._ended_at: dict[int, int] = {}
        self._result: CascadeResult | None = None
        self._done = False

    @property
    def recording(self) -> bool:
        """False when the call's span records nothing (no-op tracer, or not sampled)."""
        return bool(self._root.is_recording())

    def on_effect(self, effect: Effect) -> None:
        if isinstance(effect, OpenSteps | OpenChunks | Complete) and effect.tier not in self._spans:
            name = self._names[effect.tier]
            self._spans[effect.tier] = self._tracer.start_span(f"chat {name}", context=self._context, attributes={
                "gen_ai.operation.name": "chat", "gen_ai.request.model": name, "cascade.tier": effect.tier,
            })
        elif isinstance(effect, CloseSteps):
            self._ended_at.setdefault(effect.tier, time.time_ns())
        elif isinstance(effect, Emit) and effect.chunk.result is not None:
            self._result = effect.chunk.result

    def on_effect_error(self, effect: Effect, error: BaseException) -> None:
        span = self._spans.get(getattr(effect, "tier", -1))
        if span is not None:
            span.record_exception(error)
            span.set_attribute("error.type", type(error).__name__)

    def on_finish(self, result: CascadeResult | None, error: BaseException | None) -> None:
        if self._done:
            return
        self._done = True
        result = result or self._result
        runs = {r.tier: r for r in result.runs} if result else {}
        decisions = {d.tier: d for d in result.decisions} if result else {}
        for tier, span in self._spans.items():
            span.set_attributes(_tier_attributes(runs.get(tier), decisions.get(tier)))
            decision = decisions.get(tier)
            if decision is not None and decision.signal == "error":
                span.set_status(Status(StatusCode.ERROR, decision.reason))
            span.end(end_time=self._ended_at.get(tier))
        if result is not None:
            self._root.set_attributes(decision_attributes(result))
        if error is not None:
            self._root.record_exception(error)
            self._root.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
        elif result is None:
            self._root.set_attribute("cascade.cancelled", True)
        self._root.end()


def tracing_observer(tier_names: Sequence[str], *, streaming: bool) -> CascadeTracing | None:
    """A :class:`CascadeTracing` for one call, or None when OpenTelemetry is not installed."""
    if _otel_trace is None or isinstance(_otel_trace.get_tracer_provider(), _NO_OP_PROVIDERS):
        return None
    tracing = CascadeTracing(tier_names, streaming=streaming)
    # no SDK configured (the API's no-op tracer) or the call is sampled out: nothing to record
    return tracing if tracing.recording else None
