"""CascadeLLM(calibration_file=...) behind a real LlamaIndex query engine: the certified threshold decides."""

from __future__ import annotations

import pytest
from llama_index.core import Document, VectorStoreIndex

from cascade_core import ConfigurationError
from cascade_core.decide.calibration_file import CalibrationFile
from cascade_core.decide.risk import RiskControlledThreshold, certify_threshold
from cascade_core.decide.rule_file import SignalRule
from cascade_core.testing.fake_server import FakeReply
from llamaindex_cascade import HashingEmbedding

from .fakes import CONFIDENT, UNSURE, make_llm, replies


@pytest.fixture
def calibration(tmp_path):
    # margins of 0.8 were right, margins of 0.1 wrong: the certified threshold keeps >= 0.8
    cert = certify_threshold([0.8] * 100 + [0.1] * 100, [1] * 100 + [0] * 100, epsilon=0.05, delta=0.1)
    return CalibrationFile(SignalRule("margin").to_dict(), threshold=cert.threshold, certificate=cert).save(tmp_path / "c.json")


def test_a_calibration_file_decides_behind_a_query_engine(small_server, large_server, calibration):
    small_server.set_responder(replies(("the capital of Quintar?", FakeReply("Zorblax.", confidence=CONFIDENT)),
                                       default=FakeReply("Water?", confidence=UNSURE)))
    large_server.set_responder(replies(default=FakeReply("Liquid methane.")))
    llm = make_llm(small_server, large_server, rule=None, calibration_file=calibration)
    policy = llm.cascade.rules[0].policy
    assert isinstance(policy, RiskControlledThreshold) and policy.threshold == 0.8
    index = VectorStoreIndex.from_documents([Document(text="Zorblax is the capital of Quintar.")],
                                            embed_model=HashingEmbedding())
    engine = index.as_query_engine(llm=llm, similarity_top_k=1)
    assert str(engine.query("What is the capital of Quintar?")) == "Zorblax."  # margin 0.91 >= 0.8: kept
    assert str(engine.query("What is the ocean made of?")) == "Liquid methane."  # deferred
    assert len(large_server.requests) == 1


def test_a_calibration_file_excludes_a_rule(small_server, large_server, calibration):
    with pytest.raises(ConfigurationError, match=r"do not pass \['rule'\]"):
        make_llm(small_server, large_server, calibration_file=calibration)  # make_llm passes a margin rule
