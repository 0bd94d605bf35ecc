"""The cascade engine: one sans-I/O plan, sync and async drivers.

Adapters import from here: :class:`Cascade`, :class:`Tier`, :data:`AnswerCheck` (the type of
``Cascade.invoke(check=...)``), the ``DEFAULT_*`` timeouts, and the result types.
"""

from cascade_core.engine.answer_check import AnswerCheck
from cascade_core.engine.cascade import (
    DEFAULT_DEADLINE,
    DEFAULT_LARGE_TIMEOUT,
    DEFAULT_SMALL_TIMEOUT,
    Cascade,
    Tier,
)
from cascade_core.engine.result import CascadeChunk, CascadeResult, Decision, TierRun
from cascade_core.engine.steps import StepAccumulator
from cascade_core.engine.two_tier import two_tier_cascade

__all__ = [
    "DEFAULT_DEADLINE",
    "DEFAULT_LARGE_TIMEOUT",
    "DEFAULT_SMALL_TIMEOUT",
    "AnswerCheck",
    "Cascade",
    "CascadeChunk",
    "CascadeResult",
    "Decision",
    "StepAccumulator",
    "Tier",
    "TierRun",
    "two_tier_cascade",
]
