"""Deciding whether the small tier's answer is kept: signals -> scorers -> rules, against a threshold policy.

Runtime code only (numpy); the learned rule's fitting imports scikit-learn lazily.
"""

from cascade_core.decide.risk import RiskCertificate, RiskControlledThreshold, certify_threshold
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

__all__ = [
    "ChowAverage",
    "ChowQuantile",
    "ChowSum",
    "DeferralRule",
    "DynamicBudgetThreshold",
    "FixedThreshold",
    "Margin",
    "NegativeEntropy",
    "RiskCertificate",
    "RiskControlledThreshold",
    "RuleOutcome",
    "Scorer",
    "ThresholdPolicy",
    "ThresholdRule",
    "calibrate_threshold",
    "certify_threshold",
    "make_scorer",
]
