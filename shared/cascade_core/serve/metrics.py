"""Prometheus metrics of one server (``GET /metrics``), on a registry of its own.

Each app gets its own :class:`~prometheus_client.CollectorRegistry`, so several apps in one
process (tests, or several servers) never share or collide on series. Labels are cascade names,
tier display names and fixed words — never keys, prompts or answers.

Example:
    >>> from cascade_core import Cascade, ThresholdRule
    >>> from cascade_core.testing import ScriptedModel
    >>> cascade = Cascade([ScriptedModel("Paris", name="small"), ScriptedModel("Paris", name="large")],
    ...                   rules=ThresholdRule("margin", 0.3))
    >>> metrics = ServeMetrics({"qa": cascade})
    >>> metrics.observe_result("qa", cascade.invoke("Capital of France?"), latency_s=0.01, stream=False)
    >>> metrics.value("cascade_requests_total", cascade="qa", tier="small")
    1.0
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from cascade_core.engine import Cascade, CascadeResult

__all__ = ["CONTENT_TYPE_LATEST", "ServeMetrics"]

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


class ServeMetrics:
    """The server's collectors: requests, deferrals, errors, latency, tokens, cost, thresholds.

    Args:
        cascades: The served cascades by name (their tiers name the ``tier`` label; their rules'
            current thresholds are read at every scrape).
        registry: Where to register (default: a new registry for this server).
    """

    def __init__(self, cascades: Mapping[str, Cascade], registry: CollectorRegistry | None = None) -> None:
        self.cascades = dict(cascades)
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter("cascade_requests", "Requests answered, by cascade and answering tier", ["cascade", "tier"], registry=r)
        self.deferrals = Counter("cascade_deferrals", "Deferrals, by cascade and the tier that deferred", ["cascade", "tier"], registry=r)
        self.errors = Counter("cascade_errors", "Errors, by cascade, tier ('-' when no tier is to blame) and kind: a tier "
                              "failure turned into a deferral (deferred), or a failed request (backend, timeout, invalid, internal)",
                              ["cascade", "tier", "kind"], registry=r)
        self.routed = Counter("cascade_routed", "Requests a pre-generation router sent straight to the last tier",
                              ["cascade"], registry=r)
        self.rejected = Counter("cascade_rejected", "Requests refused with 429 because the server was at capacity", registry=r)
        self.tier_latency = Histogram("cascade_tier_latency_seconds", "Time spent in a tier per request", ["cascade", "tier"],
                                      buckets=_LATENCY_BUCKETS, registry=r)
        self.request_latency = Histogram("cascade_request_latency_seconds", "End-to-end latency of answered requests",
                                         ["cascade", "stream"], buckets=_LATENCY_BUCKETS, registry=r)
        self.tokens = Counter("cascade_tokens", "Tokens spent, by cascade, tier and direction (input/output)",
                              ["cascade", "tier", "direction"], registry=r)
        self.cost = Counter("cascade_cost", "Estimated cost spent (tier prices)", ["cascade"], registry=r)
        self.all_large_cost = Counter("cascade_all_large_cost", "Estimated cost had every request gone to the last tier",
                                      ["cascade"], registry=r)
        self.saved = Gauge("cascade_cost_saved", "Estimated cost saved so far versus all-large (can go down)", ["cascade"], registry=r)
        self.threshold = Gauge("cascade_threshold", "Current threshold of the rule judging a tier (dynamic thresholds move)",
                               ["cascade", "tier"], registry=r)
        self.deferral_rate = Gauge("cascade_deferral_rate", "Observed fraction of answered requests not answered by the first tier",
                                   ["cascade"], registry=r)
        self.in_flight = Gauge("cascade_in_flight_requests", "Requests being served now", registry=r)
        self.store_up = Gauge("cascade_state_store_up", "1 while the cascade's shared state store answers, 0 while "
                              "decisions use this replica's own state", ["cascade"], registry=r)
        self.store_fallbacks = Counter("cascade_state_store_fallbacks", "Writes to the shared state store answered from "
                                       "this replica's own state (store down, slow or garbled)", ["cascade"], registry=r)
        self.store_errors = Counter("cascade_state_store_errors", "Failed round trips to the shared state store",
                                    ["cascade"], registry=r)
        self._store_seen: dict[str, tuple[int, int]] = {}  # the stores' counters at the last scrape
        self._lock = threading.Lock()
        self._counts: dict[str, list[int]] = {name: [0, 0] for name in self.cascades}  # [answered, deferred]
        for name, cascade in self.cascades.items():  # series exist (at 0) before the first request
            self.deferral_rate.labels(name).set(0.0)
            self.cost.labels(name)
            self.saved.labels(name)
            if cascade.router is not None:
                self.routed.labels(name)
            for tier in cascade.tiers:
                self.requests.labels(name, tier.display_name)

    def _tier_name(self, cascade: str, index: int) -> str:
        tiers = self.cascades[cascade].tiers
        return tiers[index].display_name if 0 <= index < len(tiers) else str(index)

    def observe_result(self, cascade: str, result: CascadeResult, *, latency_s: float, stream: bool) -> None:
        """Record one answered request."""
        self.requests.labels(cascade, self._tier_name(cascade, result.tier)).inc()
        for decision in result.decisions:
            if decision.defer:
                self.deferrals.labels(cascade, self._tier_name(cascade, decision.tier)).inc()
            if decision.signal == "routed":  # the router sent it on before any small tier generated
                self.routed.labels(cascade).inc()
            if decision.signal == "error":  # the engine deferred past a failing tier
                self.errors.labels(cascade, self._tier_name(cascade, decision.tier), "deferred").inc()
        for run in result.runs:
            tier = self._tier_name(cascade, run.tier)
            self.tier_latency.labels(cascade, tier).observe(run.latency_s)
            self.tokens.labels(cascade, tier, "input").inc(run.usage.input_tokens)
            self.tokens.labels(cascade, tier, "output").inc(run.usage.output_tokens)
        if math.isfinite(result.cost) and math.isfinite(result.all_large_cost):
            self.cost.labels(cascade).inc(max(0.0, result.cost))
            self.all_large_cost.labels(cascade).inc(max(0.0, result.all_large_cost))
            self.saved.labels(cascade).inc(result.saved)
        self.request_latency.labels(cascade, str(stream).lower()).observe(latency_s)
        with self._lock:
            counts = self._counts.setdefault(cascade, [0, 0])
            counts[0] += 1
            counts[1] += int(result.deferred)
            rate = counts[1] / counts[0]
        self.deferral_rate.labels(cascade).set(rate)

    def observe_error(self, cascade: str, kind: str, tier: int | None = None) -> None:
        """Record one failed request (``kind``: ``timeout``, ``backend``, ``internal``, ``invalid``)."""
        self.errors.labels(cascade, "-" if tier is None else self._tier_name(cascade, tier), kind).inc()

    def refresh(self) -> None:
        """Read every rule's current threshold (a dynamic threshold moves with the scores it sees) and the
        shared state store's health."""
        for name, cascade in self.cascades.items():
            for index, rule in enumerate(cascade.rules):
                value = getattr(getattr(rule, "policy", None), "current_threshold", None)
                if isinstance(value, (int, float)):
                    self.threshold.labels(name, self._tier_name(name, index)).set(float(value))
        self._refresh_stores()

    def _refresh_stores(self) -> None:
        """Bring the state-store series up to the stores' own counters (cascades with a shared store only)."""
        for name, cascade in self.cascades.items():
            health = getattr(getattr(cascade, "threshold_store", None), "health", None)
            if health is None:
                continue
            self.store_up.labels(name).set(0.0 if health.down else 1.0)
            fallbacks, errors = self._store_seen.get(name, (0, 0))
            self.store_fallbacks.labels(name).inc(max(0, health.fallbacks - fallbacks))
            self.store_errors.labels(name).inc(max(0, health.errors - errors))
            self._store_seen[name] = (health.fallbacks, health.errors)

    def render(self) -> bytes:
        """The exposition text (Prometheus format) after a :meth:`refresh`."""
        self.refresh()
        return generate_latest(self.registry)

    def value(self, name: str, **labels: str) -> float | None:
        """Current value of one sample (for tests and health reports)."""
        return self.registry.get_sample_value(name, labels)
