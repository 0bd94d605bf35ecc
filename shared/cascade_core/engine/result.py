"""What every cascade call returns: the answer and the decision that produced it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cascade_core.types import Completion, Generation, ToolCall, Usage

__all__ = ["CascadeChunk", "CascadeResult", "Decision", "TierRun"]


@dataclass(frozen=True)
class Decision:
    """One keep/defer decision taken after a non-final tier.

    Attributes:
        tier: Index of the tier whose answer was judged.
        defer: True if the query went on to the next tier.
        score: The deciding score (``None`` if no score could be computed, e.g. the tier failed).
        threshold: The threshold it was compared with (``None`` likewise).
        signal: Name of the scorer.
        reason: Human-readable reason ("defer: margin=0.12 < threshold 0.3", "validation failed: …").
        early_exit: True if the tier was stopped after its first decoding step.
    """

    tier: int
    defer: bool
    score: float | None
    threshold: float | None
    signal: str
    reason: str
    early_exit: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "tier": self.tier,
            "defer": self.defer,
            "score": self.score,
            "threshold": self.threshold,
            "signal": self.signal,
            "reason": self.reason,
            "early_exit": self.early_exit,
        }


@dataclass(frozen=True)
class TierRun:
    """Usage, latency and cost of one tier that was called for a query."""

    tier: int
    model_name: str
    usage: Usage
    latency_s: float
    cost: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "tier": self.tier,
            "model_name": self.model_name,
            "input_tokens": self.usage.input_tokens,
            "output_tokens": self.usage.output_tokens,
            "latency_s": self.latency_s,
            "cost": self.cost,
        }


@dataclass(frozen=True)
class CascadeResult:
    """The answer of a cascade call and everything about how it was reached.

    Attributes:
        text: The answer.
        tier: Index of the tier that answered (0 = smallest).
        model_name: Name of the model that answered.
        decisions: The decisions taken, one per judged tier, in order.
        runs: Usage/latency/cost of every tier that was called.
        tool_calls: Tool calls of the answer.
        cost: Estimated cost of this call (sum over tiers called).
        all_large_cost: Estimated cost had the query gone straight to the last tier.
        generation: The small-tier generation with token scores, when a small tier answered.
        completion: The last tier's completion, when it answered (its ``raw`` holds the framework object).
        fallback: True when the last tier failed and a small tier's answer was given instead
            (``Cascade(on_large_error="small")``); ``fallback_reason`` says what failed.
    """

    text: str
    tier: int
    model_name: str
    decisions: tuple[Decision, ...]
    runs: tuple[TierRun, ...]
    tool_calls: tuple[ToolCall, ...] = ()
    cost: float = 0.0
    all_large_cost: float = 0.0
    generation: Generation | None = None
    completion: Completion | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    fallback: bool = False
    fallback_reason: str | None = None

    @property
    def decision(self) -> Decision | None:
        """The last decision taken (the one that kept the answer, or the last deferral)."""
        return self.decisions[-1] if self.decisions else None

    @property
    def deferred(self) -> bool:
        """True if the answer did not come from the first tier."""
        return self.tier > 0

    @property
    def saved(self) -> float:
        """Estimated cost saved versus sending this query straight to the last tier."""
        return self.all_large_cost - self.cost

    @property
    def usage(self) -> Usage:
        """Token usage summed over every tier called."""
        total = Usage()
        for run in self.runs:
            total = total + run.usage
        return total

    def summary(self) -> dict[str, Any]:
        """The decision as one flat, JSON-ready dict (run metadata, span attributes)."""
        decision = self.decision
        return {
            "tier": self.tier,
            "model_name": self.model_name,
            "deferred": self.deferred,
            "signal": decision.signal if decision else None,
            "score": decision.score if decision else None,
            "threshold": decision.threshold if decision else None,
            "reason": decision.reason if decision else "single tier",
            "early_exit": any(d.early_exit for d in self.decisions),
            "input_tokens": self.usage.input_tokens,
            "output_tokens": self.usage.output_tokens,
            "cost": self.cost,
            "all_large_cost": self.all_large_cost,
            "saved": self.saved,
        }

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready summary of the decision (what the adapters attach as response metadata); with a
        pre-generation router also its verdict under ``"router"`` (``p_good``, ``threshold``, ``routed``)."""
        decision = self.decision
        router = {"router": dict(self.metadata["router"])} if isinstance(self.metadata.get("router"), dict) else {}
        return router | {
            "tier": self.tier,
            "model_name": self.model_name,
            "deferred": self.deferred,
            "score": decision.score if decision else None,
            "threshold": decision.threshold if decision else None,
            "signal": decision.signal if decision else None,
            "reason": decision.reason if decision else "single tier",
            "decisions": [d.as_dict() for d in self.decisions],
            "runs": [r.as_dict() for r in self.runs],
            "cost": self.cost,
            "all_large_cost": self.all_large_cost,
            "saved": self.saved,
            "fallback": self.fallback,
            "fallback_reason": self.fallback_reason,
        }


@dataclass(frozen=True)
class CascadeChunk:
    """One piece of a streamed cascade answer.

    Text chunks carry ``text`` and the ``tier`` that produced them (``raw`` is the backend's own
    chunk, e.g. a LangChain ``AIMessageChunk``, when the large tier streams). The last chunk of a
    stream has ``text=""`` and ``result`` set to the full :class:`CascadeResult`.
    """

    text: str
    tier: int
    raw: Any = None
    result: CascadeResult | None = None
