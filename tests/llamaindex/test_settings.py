"""CascadeLLM and ChatCascade take the same settings, under the same names, with the same errors."""

from __future__ import annotations

import pytest
from llama_index.core.llms import MockLLM

from cascade_core import Cascade, ConfigurationError, ThresholdRule
from cascade_core.engine.two_tier import TWO_TIER_DEFAULTS
from cascade_core.testing import ScriptedModel
from langchain_cascade import ChatCascade, LangChainLargeModel
from llamaindex_cascade import CascadeLLM, LlamaIndexLargeModel


def test_rules_is_a_deprecated_name_of_rule():
    with pytest.warns(DeprecationWarning, match="use rule="):
        llm = CascadeLLM(small=ScriptedModel("Paris", confidence=0.9), large=MockLLM(), rules=ThresholdRule("margin", 0.95))
    assert llm.cascade.rules[0].policy.decide(0.9)[0] is True
    with pytest.warns(DeprecationWarning), pytest.raises(ConfigurationError, match="takes one rule, got 2"):
        CascadeLLM(small=ScriptedModel("a"), large=MockLLM(), rules=[ThresholdRule(), ThresholdRule()])


def test_both_adapters_declare_the_same_settings_as_described_fields():
    for adapter in (ChatCascade, CascadeLLM):
        fields = adapter.model_fields
        for name, default in TWO_TIER_DEFAULTS.items():
            assert name in fields, f"{adapter.__name__} lacks {name}"
            assert fields[name].description, f"{adapter.__name__}.{name} has no description"
            value = fields[name].get_default(call_default_factory=True)
            assert value == default or (name == "signal_params" and value == {}), (adapter.__name__, name)
        assert fields["max_tokens"].description and fields["cascade"].description


def test_signal_params_reach_the_rule_in_both_adapters():
    for adapter, large in ((ChatCascade, ScriptedModel("b")), (CascadeLLM, MockLLM())):
        llm = adapter(small=ScriptedModel("a"), large=large, signal="chow_quantile", threshold=-2.0,
                      signal_params={"alpha": 0.0})
        cascade = llm._cascade if isinstance(llm, ChatCascade) else llm.cascade
        assert cascade.rules[0].scorer.name == "chow_quantile(alpha=0)"


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"small": None}, "needs cascade=, or both small= and large="),
        ({"signal": "chow_sum"}, "needs a threshold= on its scale"),
        ({"threshold": 5.0}, "outside the signal's range"),
        ({"rule": ThresholdRule(), "threshold": 0.5}, "pass rule= or signal="),
        ({"cascade": Cascade([ScriptedModel("a"), ScriptedModel("b")])}, "either cascade= or small="),
    ],
)
def test_the_same_mistake_raises_the_same_error_in_both_adapters(kwargs, fragment):
    for adapter, large in ((ChatCascade, ScriptedModel("b")), (CascadeLLM, MockLLM())):
        with pytest.raises(ConfigurationError, match=fragment):
            adapter(**{"small": ScriptedModel("a"), "large": large, **kwargs})


def test_large_tier_wrappers_refuse_a_non_model_alike():
    for wrapper in (LangChainLargeModel, LlamaIndexLargeModel):
        with pytest.raises(ConfigurationError, match="must be a"):
            wrapper("gpt-4o")  # type: ignore[arg-type]


def test_tool_choice_naming_no_tool_is_the_same_error_in_both_adapters():
    from langchain_core.tools import tool
    from llama_index.core.tools import FunctionTool

    from cascade_core.errors import InvalidRequestError

    def add(a: int, b: int) -> int:
        """Add two ints."""
        return a + b

    chat = ChatCascade(small=ScriptedModel("a"), large=ScriptedModel("b"))
    with pytest.raises(InvalidRequestError, match="tool_choice 'nope'"):
        chat.bind_tools([tool(add)], tool_choice="nope")
    llm = CascadeLLM(small=ScriptedModel("a"), large=MockLLM())
    with pytest.raises(InvalidRequestError, match="tool_choice 'nope'"):
        llm.chat_with_tools([FunctionTool.from_defaults(add)], "1+2?", tool_choice="nope")
