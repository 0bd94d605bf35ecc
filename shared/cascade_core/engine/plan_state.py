"""What the plan knows about one call: the tiers (as views), its settings, and what has happened so far.

Shared by the plan's sub-generators (:mod:`~cascade_core.engine.small_tier`,
:mod:`~cascade_core.engine.last_tier`); no model calls, no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cascade_core.decide.rules import DeferralRule
from cascade_core.engine.answer_check import AnswerCheck
from cascade_core.engine.result import CascadeResult, Decision, TierRun
from cascade_core.types import Completion, Generation, Request, Usage

__all__ = ["Fallback", "PlanState", "TierView"]


@dataclass
class TierView:
    """What the plan needs to know about a tier (no model calls)."""

    model_name: str
    cost: Callable[[Usage], float]
    count_tokens: Callable[[str], int]
    modalities: frozenset[str] | None = None  # what the tier accepts (None: anything)
    context_window: int | None = None  # prompt + answer tokens the tier takes (None: unknown)
    max_new_tokens: int | None = None  # the tier's default answer length


@dataclass(frozen=True)
class Fallback:
    """The last small answer that could stand in for a failed large tier."""

    tier: int
    request: Request
    generation: Generation


@dataclass
class PlanState:
    """One call's settings and record: decisions taken, tiers run, the fallback answer."""

    tiers: Sequence[TierView]
    rules: Sequence[DeferralRule]
    request: Request
    streaming: bool
    check: AnswerCheck | None = None
    on_small_error: str = "defer"
    on_large_error: str = "raise"
    decisions: list[Decision] = field(default_factory=list)
    runs: list[TierRun] = field(default_factory=list)
    fallback: Fallback | None = None
    route: dict[str, Any] | None = None  # the router's verdict (engine.route_stage), when the cascade has one

    @property
    def last(self) -> int:
        """Index of the last tier."""
        return len(self.tiers) - 1

    @property
    def stream_live(self) -> bool:
        """A kept small answer is emitted as it is generated (streaming, and nothing needs the whole text first)."""
        return self.streaming and self.check is None and not self.request.tools

    def result(
        self, text: str, tier_index: int, *, generation: Generation | None = None, completion: Completion | None = None
    ) -> CascadeResult:
        """The call's result, answered by ``tier_index`` with ``text``."""
        last = self.tiers[-1]
        large_run = next((r for r in self.runs if r.tier == self.last), None)
        if large_run is not None:
            all_large = large_run.cost
        else:  # estimate: the prompt and an answer as long as the one given, at the last tier's prices
            all_large = last.cost(Usage(last.count_tokens(self.request.prompt_text), last.count_tokens(text)))
        return CascadeResult(
            text=text,
            tier=tier_index,
            model_name=self.runs[-1].model_name if self.runs else self.tiers[tier_index].model_name,
            decisions=tuple(self.decisions),
            runs=tuple(self.runs),
            tool_calls=(generation.tool_calls if generation else completion.tool_calls if completion else ()),
            cost=sum(r.cost for r in self.runs),
            all_large_cost=all_large,
            generation=generation,
            completion=completion,
            metadata=dict(self.request.metadata) | ({"router": dict(self.route)} if self.route is not None else {}),
        )
