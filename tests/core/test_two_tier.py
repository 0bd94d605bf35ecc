"""The one two-tier factory both framework adapters build their cascade with."""

from __future__ import annotations

import pytest

from cascade_core import (
    Cascade,
    ConfigurationError,
    DynamicBudgetThreshold,
    Pricing,
    ThresholdRule,
    two_tier_cascade,
)
from cascade_core.engine.two_tier import DEFAULT_THRESHOLD, deferral_rule, given_cascade
from cascade_core.testing import ScriptedModel


def test_default_rule_is_the_margin_at_0_3():
    cascade = two_tier_cascade(ScriptedModel("a"), ScriptedModel("b"))
    rule = cascade.rules[0]
    assert rule.scorer.name == "margin" and rule.policy.decide(DEFAULT_THRESHOLD - 0.01)[0] is True


def test_signal_threshold_and_params_build_a_threshold_rule():
    rule = deferral_rule(signal="chow_quantile", threshold=-2.0, signal_params={"alpha": 0.0})
    assert rule.scorer.name == "chow_quantile(alpha=0)"


def test_a_threshold_policy_is_accepted():
    policy = DynamicBudgetThreshold(deferral_rate=0.3)
    assert two_tier_cascade(ScriptedModel("a"), ScriptedModel("b"), threshold=policy).rules[0].policy is policy


def test_settings_reach_the_cascade():
    cascade = two_tier_cascade(ScriptedModel("a"), ScriptedModel("b"), small_pricing=Pricing(1, 2), max_new_tokens=7,
                               on_large_error="small", small_timeout=None, deadline=5.0)
    assert cascade.tiers[0].pricing == Pricing(1, 2) and cascade.max_new_tokens == 7


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"small": None}, "needs cascade=, or both small= and large="),
        ({"small": "a name"}, r"X.small must be a cascade_core small model"),
        ({"large": 42}, r"X.large must be"),
        ({"signal": "chow_sum"}, "signal='chow_sum' needs a threshold= on its scale"),
        ({"signal": "nope"}, "unknown signal 'nope'"),
        ({"threshold": 5.0}, "outside the signal's range"),
        ({"rule": ThresholdRule(), "threshold": 0.5}, r"pass rule= or signal=/threshold=/signal_params=, not both"),
        ({"rule": "not a rule"}, r"X.rule must be a cascade_core DeferralRule"),
        ({"small_pricing": {"input": 1}}, r"X.small_pricing must be a cascade_core Pricing"),
    ],
)
def test_bad_settings_raise_a_configuration_error_naming_them(kwargs, fragment):
    parts = {"small": ScriptedModel("a"), "large": ScriptedModel("b")}
    with pytest.raises(ConfigurationError, match=fragment):
        two_tier_cascade(**{**parts, **kwargs}, owner="X")


def test_a_ready_cascade_refuses_settings_beside_it():
    cascade = Cascade([ScriptedModel("a"), ScriptedModel("b")])
    assert given_cascade(cascade, owner="X", signal="margin", signal_params={}, deadline=120.0) is cascade
    with pytest.raises(ConfigurationError, match=r"X: give either cascade= or small=/large=.*\['small'\]"):
        given_cascade(cascade, owner="X", small=ScriptedModel("a"))
    with pytest.raises(ConfigurationError, match=r"set \['on_large_error'\] on the Cascade itself"):
        given_cascade(cascade, owner="X", on_large_error="small")
    with pytest.raises(ConfigurationError, match="X.cascade must be a cascade_core.Cascade"):
        given_cascade("nope", owner="X")
