"""cascade_core — framework-free LLM cascades driven by the small model's token-level uncertainty.

Example:
    >>> from cascade_core import Cascade, ThresholdRule
    >>> from cascade_core.testing import ScriptedModel
    >>> cascade = Cascade([ScriptedModel("Paris", confidence=0.2), ScriptedModel("Paris, France")],
    ...                   rules=ThresholdRule("margin", 0.5))
    >>> cascade.invoke("Capital of France?").tier
    1
"""

from cascade_core import _moved
from cascade_core.cost import CostSummary, Pricing, count_tokens, summarize_costs
from cascade_core.decide.rules import DeferralRule, RuleOutcome, ThresholdRule
from cascade_core.decide.scorers import (
    ChowAverage,
    ChowQuantile,
    ChowSum,
    Margin,
    NegativeEntropy,
    Scorer,
    make_scorer,
)
from cascade_core.decide.thresholds import (
    DynamicBudgetThreshold,
    FixedThreshold,
    ThresholdPolicy,
    calibrate_threshold,
)
from cascade_core.engine import (
    Cascade,
    CascadeChunk,
    CascadeResult,
    Decision,
    Tier,
    TierRun,
    two_tier_cascade,
)
from cascade_core.errors import (
    BackendError,
    CascadeError,
    ConfigurationError,
    DataFormatError,
    DeadlineExceededError,
    InvalidRequestError,
    LargeTierError,
    LogprobsUnavailableError,
    MissingDependencyError,
    ModelNotAvailableError,
    NotFittedError,
    RuleFileError,
    SignalError,
    TierTimeoutError,
)
from cascade_core.types import (
    Completion,
    Generation,
    Message,
    Request,
    TokenAlternative,
    TokenStep,
    ToolCall,
    ToolSpec,
    Usage,
)

_moved.install()

__version__ = "0.1.0"

__all__ = [
    "BackendError",
    "Cascade",
    "CascadeChunk",
    "CascadeError",
    "CascadeResult",
    "ChowAverage",
    "ChowQuantile",
    "ChowSum",
    "Completion",
    "ConfigurationError",
    "CostSummary",
    "DataFormatError",
    "DeadlineExceededError",
    "Decision",
    "DeferralRule",
    "DynamicBudgetThreshold",
    "FixedThreshold",
    "Generation",
    "InvalidRequestError",
    "LargeTierError",
    "LogprobsUnavailableError",
    "Margin",
    "MissingDependencyError",
    "Message",
    "ModelNotAvailableError",
    "NegativeEntropy",
    "NotFittedError",
    "Pricing",
    "Request",
    "RuleFileError",
    "RuleOutcome",
    "Scorer",
    "SignalError",
    "ThresholdPolicy",
    "ThresholdRule",
    "Tier",
    "TierTimeoutError",
    "TierRun",
    "TokenAlternative",
    "TokenStep",
    "ToolCall",
    "ToolSpec",
    "Usage",
    "calibrate_threshold",
    "count_tokens",
    "make_scorer",
    "summarize_costs",
    "two_tier_cascade",
]
