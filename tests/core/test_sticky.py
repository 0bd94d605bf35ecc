"""Sticky escalation in the core: the LRU of escalated conversations and the plan's "sticky" skip."""

from __future__ import annotations

import pytest

from cascade_core import Cascade, ThresholdRule
from cascade_core.engine.result import CascadeResult
from cascade_core.engine.sticky import STICKY_KEY, StickySessions, conversation_key, session_of
from cascade_core.errors import ConfigurationError
from cascade_core.testing import ScriptedModel
from cascade_core.types import Message, Request


def _result(tier: int) -> CascadeResult:
    return CascadeResult("answer", tier, "m", (), ())


def _conversation(opening: str, *later: str) -> Request:
    messages = [Message("system", "You are an agent."), Message("user", opening)]
    for text in later:
        messages += [Message("assistant", "…"), Message("user", text)]
    return Request.from_messages(messages)


def test_later_steps_of_an_escalated_conversation_are_marked():
    sessions = StickySessions()
    request, key = sessions.route(_conversation("book a flight"))
    assert STICKY_KEY not in request.metadata
    sessions.record(key, _result(1))
    later, later_key = sessions.route(_conversation("book a flight", "to Lisbon", "on Friday"))
    assert later_key == key and later.metadata[STICKY_KEY] is True


def test_kept_steps_and_other_conversations_stay_unmarked():
    sessions = StickySessions()
    _, key = sessions.route(_conversation("book a flight"))
    sessions.record(key, _result(0))
    assert STICKY_KEY not in sessions.route(_conversation("book a flight", "to Lisbon"))[0].metadata
    _, other = sessions.route(_conversation("find a hotel"))
    sessions.record(other, _result(1))
    assert STICKY_KEY not in sessions.route(_conversation("book a flight", "to Lisbon"))[0].metadata


def test_session_id_separates_conversations_with_the_same_opening():
    sessions = StickySessions()
    _, a = sessions.route(_conversation("hi"), session_id="a")
    sessions.record(a, _result(1))
    assert sessions.route(_conversation("hi", "next"), session_id="a")[0].metadata[STICKY_KEY]
    assert STICKY_KEY not in sessions.route(_conversation("hi", "next"), session_id="b")[0].metadata
    assert conversation_key(_conversation("hi"), "a") != conversation_key(_conversation("hi"))


def test_least_recently_used_conversation_is_forgotten_first():
    sessions = StickySessions(max_sessions=2)
    keys = []
    for opening in ("one", "two"):
        _, key = sessions.route(_conversation(opening))
        sessions.record(key, _result(1))
        keys.append(key)
    sessions.route(_conversation("one", "again"))  # "one" used last: "two" is the oldest now
    _, three = sessions.route(_conversation("three"))
    sessions.record(three, _result(1))
    assert keys[0] in sessions and keys[1] not in sessions and three in sessions and len(sessions) == 2


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "10"])
def test_bad_max_sessions_is_a_configuration_error(bad):
    with pytest.raises(ConfigurationError, match="max_sessions must be a positive int"):
        StickySessions(bad)


def test_session_of_reads_the_first_known_key():
    assert session_of({"conversation_id": "c", "thread_id": "t"}) == "t"
    assert session_of({"other": 1}) is None


def test_plan_skips_the_small_tier_of_a_marked_request():
    small, large = ScriptedModel("small answer", confidence=0.99), ScriptedModel("large answer")
    cascade = Cascade([small, large], rules=ThresholdRule("margin", 0.3))
    request = Request.from_prompt("q")
    assert cascade.invoke(request).tier == 0
    served = len(small.calls)
    result = cascade.invoke(request.replace(metadata={STICKY_KEY: True}))
    assert result.tier == 1 and result.text == "large answer" and len(small.calls) == served
    (decision,) = result.decisions
    assert decision.defer and decision.signal == "sticky" and "escalated earlier" in decision.reason
