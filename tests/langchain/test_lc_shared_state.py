"""Two ChatCascade replicas in real LCEL chains enforce one budget through a real valkey-server
(``threshold_store="redis://…?key=…"``); with their own in-memory windows each spends the budget on its own slice."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from lc_fakes import large_chat_openai, small_model

from cascade_core import Cascade, ConfigurationError, DynamicBudgetThreshold, ThresholdRule
from cascade_core.testing import ScriptedModel
from langchain_cascade import ChatCascade

PROMPT = ChatPromptTemplate.from_messages([("human", "{question}")])


def _replica(small_server: Any, large_server: Any, store: str | None) -> ChatCascade:
    return ChatCascade(small=small_model(small_server), large=large_chat_openai(large_server),
                       threshold=DynamicBudgetThreshold(deferral_rate=0.5, warmup=4, window=64, initial_threshold=0.3),
                       threshold_store=store)


def _run(small_server: Any, large_server: Any, store: str | None) -> tuple[list[bool], list[bool]]:
    confident, unsure = _replica(small_server, large_server, store), _replica(small_server, large_server, store)
    chains = [PROMPT | llm | StrOutputParser() for llm in (confident, unsure)]
    kept_answers: tuple[list[bool], list[bool]] = ([], [])
    for i in range(12):  # skewed routing: one replica gets every confident query, the other every unsure one
        for replica, question in enumerate((f"What is {i} + 1?", f"What is {i} + 1? [unsure]")):
            answer = chains[replica].invoke({"question": question})
            kept_answers[replica].append(answer.startswith("Hello from the small model"))
    return kept_answers


def test_replicas_share_one_budget_through_the_store(small_server: Any, large_server: Any, redis_server: Any) -> None:
    confident_kept, unsure_kept = _run(small_server, large_server, f"{redis_server.url}?key=lc-fleet")
    assert all(confident_kept) and not any(unsure_kept)  # the fleet defers its least confident half

    import redis

    assert int(redis.Redis.from_url(redis_server.url).hget("{lc-fleet}:threshold.0:meta", "seen")) == 24


def test_per_process_windows_spend_the_budget_on_their_own_slice(small_server: Any, large_server: Any) -> None:
    confident_kept, unsure_kept = _run(small_server, large_server, None)
    assert not all(confident_kept)  # half of the confident replica's answers deferred: budget spent on its slice
    assert sum(confident_kept) + sum(unsure_kept) == pytest.approx(12, abs=3)


def test_threshold_store_beside_a_ready_cascade_is_refused() -> None:
    cascade = Cascade([ScriptedModel("a"), ScriptedModel("b")],
                      rules=ThresholdRule("margin", DynamicBudgetThreshold(deferral_rate=0.3)))
    with pytest.raises(ConfigurationError, match="set \\['threshold_store'\\] on the Cascade itself"):
        ChatCascade(cascade=cascade, threshold_store="redis://127.0.0.1:6379/0")


def test_store_url_password_not_in_repr() -> None:
    llm = ChatCascade(small=ScriptedModel("a"), large=ScriptedModel("b"),
                      threshold=DynamicBudgetThreshold(deferral_rate=0.3),
                      threshold_store="redis://:pw-very-secret@127.0.0.1:1/0?key=x")
    assert "pw-very-secret" not in repr(llm) and "pw-very-secret" not in str(llm.model_dump())
