"""CascadeLLM with a rule file written by ``cascade fit`` (a single signal chosen by cross-validation)."""

from __future__ import annotations

from llama_index.core.llms import MockLLM

from cascade_core import ThresholdRule
from cascade_core.decide.rule_file import SignalRule, load_rule
from cascade_core.testing import ScriptedModel
from llamaindex_cascade import CascadeLLM


def test_signal_rule_file_routes_a_llamaindex_cascade(tmp_path):
    path = SignalRule("chow_average").save(tmp_path / "rule.json")
    rule = ThresholdRule(load_rule(path), -0.5)

    def tier(token_confidence: float) -> int:
        small = ScriptedModel("Paris is the capital", confidence=0.95, token_confidence=token_confidence)
        llm = CascadeLLM(small=small, large=MockLLM(max_tokens=3), rule=rule)
        meta = llm.complete("Capital of France?").additional_kwargs["cascade"]
        assert meta["signal"] == "chow_average"
        return meta["tier"]

    assert tier(0.95) == 0 and tier(0.2) == 1
