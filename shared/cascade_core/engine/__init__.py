"""The cascade engine: one sans-I/O plan, sync and async drivers."""

from cascade_core.engine.cascade import Cascade, Tier
from cascade_core.engine.result import CascadeChunk, CascadeResult, Decision, TierRun
from cascade_core.engine.two_tier import two_tier_cascade

__all__ = ["Cascade", "CascadeChunk", "CascadeResult", "Decision", "Tier", "TierRun", "two_tier_cascade"]
