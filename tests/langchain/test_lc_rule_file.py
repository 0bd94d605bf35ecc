"""ChatCascade with a rule file written by ``cascade fit`` (a single signal chosen by cross-validation)."""

from __future__ import annotations

from cascade_core import ThresholdRule
from cascade_core.decide.rule_file import SignalRule, load_rule
from cascade_core.testing import ScriptedModel
from langchain_cascade import ChatCascade


def test_signal_rule_file_routes_a_langchain_cascade(tmp_path):
    path = SignalRule("chow_average").save(tmp_path / "rule.json")
    rule = ThresholdRule(load_rule(path), -0.5)

    def tier(token_confidence: float) -> int:
        small = ScriptedModel("Paris is the capital", confidence=0.95, token_confidence=token_confidence)
        llm = ChatCascade(small=small, large=ScriptedModel("Paris"), rule=rule)
        meta = llm.invoke("Capital of France?").response_metadata["cascade"]
        assert meta["signal"] == "chow_average"
        return meta["tier"]

    assert tier(0.95) == 0 and tier(0.2) == 1
