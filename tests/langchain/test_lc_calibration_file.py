"""ChatCascade(calibration_file=...) in a real LCEL chain: the certified threshold decides, its rule is the file's."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate

from cascade_core import ConfigurationError
from cascade_core.decide.calibration_file import CalibrationFile
from cascade_core.decide.risk import RiskControlledThreshold, certify_threshold
from cascade_core.decide.rule_file import SignalRule
from langchain_cascade import ChatCascade


@pytest.fixture
def calibration(tmp_path):
    # margins of 0.8 were right, margins of 0.1 wrong: the certified threshold keeps >= 0.8
    cert = certify_threshold([0.8] * 100 + [0.1] * 100, [1] * 100 + [0] * 100, epsilon=0.05, delta=0.1)
    return CalibrationFile(SignalRule("margin").to_dict(), threshold=cert.threshold, certificate=cert).save(tmp_path / "c.json")


def test_a_calibration_file_decides_in_an_lcel_chain(small: Any, large: Any, calibration) -> None:
    llm = ChatCascade(small=small, large=large, calibration_file=calibration)
    policy = llm._cascade.rules[0].policy
    assert isinstance(policy, RiskControlledThreshold) and policy.threshold == 0.8
    chain = ChatPromptTemplate.from_messages([("human", "{q}")]) | llm
    kept = chain.invoke({"q": "Hi"}).response_metadata["cascade"]  # margin 0.91 >= 0.8
    deferred = chain.invoke({"q": "Hi [unsure]"}).response_metadata["cascade"]  # margin < 0
    assert (kept["tier"], kept["threshold"]) == (0, 0.8)
    assert (deferred["tier"], deferred["threshold"]) == (1, 0.8)
    assert (chain | StrOutputParser()).invoke({"q": "Hi [unsure]"}).startswith("Hello from the large model")


def test_a_calibration_file_excludes_other_rule_settings(small: Any, large: Any, calibration) -> None:
    with pytest.raises(ConfigurationError, match=r"calibration_file= carries its rule and threshold; do not pass \['threshold'\]"):
        ChatCascade(small=small, large=large, calibration_file=calibration, threshold=0.5)
