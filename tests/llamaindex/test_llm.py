"""CascadeLLM's LLM surface: metadata, chat/complete (sync, async, streamed), decisions, errors."""

from __future__ import annotations

import logging

import pytest
from llama_index.core.base.llms.types import ChatMessage, TextBlock, VideoBlock
from llama_index.core.callbacks import CallbackManager, TokenCountingHandler
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events.llm import LLMChatEndEvent, LLMCompletionEndEvent
from llama_index.core.llms import MockLLM

from cascade_core import Cascade, ConfigurationError, InvalidRequestError, ThresholdRule
from cascade_core.testing import ScriptedModel
from cascade_core.testing.fake_server import FakeReply
from llamaindex_cascade import CascadeLLM, LlamaIndexLargeModel

from .fakes import CONFIDENT, LARGE_KEY, SMALL_KEY, UNSURE, make_llm, replies

FRANCE = [ChatMessage(role="user", content="What is the capital of France?")]
PERU = [ChatMessage(role="user", content="What is the capital of Peru?")]


@pytest.fixture(autouse=True)
def _script(small_server, large_server):
    small_server.set_responder(
        replies(
            ("France", FakeReply("Paris is the capital of France.", confidence=CONFIDENT)),
            ("Peru", FakeReply("Maybe Cusco.", confidence=UNSURE)),
        )
    )
    large_server.set_responder(replies(default=FakeReply("Lima is the capital of Peru.")))


def test_metadata_reports_small_tier_window_and_function_calling(llm):
    meta = llm.metadata
    assert meta.is_chat_model and meta.is_function_calling_model
    assert meta.model_name == "cascade(small-model -> gpt-4o-mini)"
    small = ScriptedModel("x")
    small.context_window = 8192  # a TransformersModel exposes its window this way
    assert CascadeLLM(small=small, large=MockLLM()).metadata.context_window == 8192
    assert CascadeLLM(small=small, large=MockLLM(), context_window=1000).metadata.context_window == 1000


def test_keeps_confident_small_answer_and_records_decision(llm, small_server, large_server):
    response = llm.chat(FRANCE)
    assert response.message.content == "Paris is the capital of France."
    decision = response.additional_kwargs["cascade"]
    assert decision["tier"] == 0 and not decision["deferred"]
    assert decision["signal"] == "margin" and decision["threshold"] == 0.3 and decision["score"] > 0.3
    assert decision["saved"] > 0 and decision["cost"] < decision["all_large_cost"]
    assert response.raw["cascade"] == decision and response.raw["response"] is None
    assert response.raw["usage"]["total_tokens"] > 0
    assert large_server.requests == []


def test_defers_when_margin_below_threshold(llm, small_server, large_server):
    response = llm.chat(PERU)
    assert response.message.content == "Lima is the capital of Peru."
    decision = response.additional_kwargs["cascade"]
    assert decision["tier"] == 1 and decision["deferred"] and decision["model_name"] == "gpt-4o-mini"
    assert decision["score"] < decision["threshold"] and "margin" in decision["reason"]
    assert decision["decisions"][0]["early_exit"] is True
    assert [run["tier"] for run in decision["runs"]] == [0, 1]
    assert decision["runs"][0]["output_tokens"] == 1  # the small tier was stopped after one token
    assert response.raw["response"] is not None  # the large tier's own raw response
    assert len(large_server.requests) == 1


async def test_async_chat_and_complete_give_the_same_decisions(llm):
    kept = await llm.achat(FRANCE)
    deferred = await llm.acomplete("What is the capital of Peru?")
    assert kept.additional_kwargs["cascade"]["tier"] == 0
    assert deferred.text == "Lima is the capital of Peru."
    assert deferred.additional_kwargs["cascade"]["tier"] == 1


def test_complete_carries_the_decision(llm):
    response = llm.complete("What is the capital of France?")
    assert response.text == "Paris is the capital of France."
    assert response.additional_kwargs["cascade"]["tier"] == 0
    assert response.raw["cascade"]["deferred"] is False


def test_stream_chat_streams_kept_answer_and_ends_with_decision(llm):
    chunks = list(llm.stream_chat(FRANCE))
    assert len(chunks) > 2
    assert "".join(c.delta or "" for c in chunks) == "Paris is the capital of France."
    assert all(c.additional_kwargs.get("cascade_tier") == 0 for c in chunks[:-1])
    assert chunks[-1].message.content == "Paris is the capital of France."
    assert chunks[-1].additional_kwargs["cascade"]["tier"] == 0


def test_stream_decides_on_first_token_and_closes_the_small_stream(small_server, large_server):
    long_unsure = FakeReply(" ".join(["maybe"] * 60), confidence=UNSURE, delay_s=0.01)
    small_server.set_responder(replies(default=long_unsure))
    llm = make_llm(small_server, large_server)
    chunks = list(llm.stream_chat(PERU))
    assert "".join(c.delta or "" for c in chunks) == "Lima is the capital of Peru."
    assert all(c.additional_kwargs.get("cascade_tier") == 1 for c in chunks[:-1])
    assert chunks[-1].additional_kwargs["cascade"]["decisions"][0]["early_exit"]
    assert small_server.events_sent[-1] < 20  # far fewer than the 60 tokens scripted


async def test_astream_complete_streams_deferred_answer(llm):
    chunks = [c async for c in await llm.astream_complete("What is the capital of Peru?")]
    assert chunks[-1].text == "Lima is the capital of Peru."
    assert "".join(c.delta or "" for c in chunks) == "Lima is the capital of Peru."
    assert chunks[-1].additional_kwargs["cascade"]["deferred"] is True


def test_callbacks_and_instrumentation_see_every_call(llm):
    counter = TokenCountingHandler()
    llm.callback_manager = CallbackManager([counter])
    ends: list[object] = []

    class Collect(BaseEventHandler):
        def handle(self, event, **kwargs):
            if isinstance(event, LLMChatEndEvent | LLMCompletionEndEvent) and event.response is not None:
                ends.append(event.response)

    handler = Collect()
    dispatcher = get_dispatcher()
    dispatcher.add_event_handler(handler)
    try:
        llm.chat(FRANCE)
        list(llm.stream_chat(PERU))
        llm.complete("What is the capital of France?")
        list(llm.stream_complete("What is the capital of Peru?"))
    finally:
        dispatcher.event_handlers.remove(handler)
    assert len(counter.llm_token_counts) == 4
    assert all(
        event.prompt_token_count > 0 and event.completion_token_count > 0
        for event in counter.llm_token_counts
    )
    final = [r for r in ends if "cascade" in r.additional_kwargs]
    assert [r.additional_kwargs["cascade"]["tier"] for r in final] == [0, 1, 0, 1]


def test_built_from_a_core_cascade():
    cascade = Cascade(
        [ScriptedModel("Paris", confidence=0.2, name="s"), ScriptedModel("Paris, France", name="l")],
        rules=ThresholdRule("margin", 0.5),
    )
    llm = CascadeLLM(cascade)
    response = llm.complete("Capital of France?")
    assert response.text == "Paris, France" and response.additional_kwargs["cascade"]["model_name"] == "l"


def test_large_tier_can_be_any_llamaindex_llm():
    llm = CascadeLLM(small=ScriptedModel("x", confidence=0.1), large=MockLLM(max_tokens=3))
    assert isinstance(llm.cascade.tiers[-1].model, LlamaIndexLargeModel)
    response = llm.chat(FRANCE)
    assert response.additional_kwargs["cascade"]["tier"] == 1 and response.message.content


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({}, "small= and large="),
        ({"small": ScriptedModel("x")}, "small= and large="),
        ({"cascade": "not a cascade"}, "must be a cascade_core.Cascade"),
        ({"small": MockLLM(), "large": MockLLM()}, "log-probs"),
        ({"small": ScriptedModel("x"), "large": MockLLM(), "signal": "nope", "threshold": 0.3}, "nope"),
        ({"small": ScriptedModel("x"), "large": MockLLM(), "threshold": 5.0}, "threshold"),
        ({"small": ScriptedModel("x"), "large": MockLLM(), "signal": "chow_sum"}, "needs a threshold"),
    ],
)
def test_bad_configuration_names_the_problem(kwargs, fragment):
    with pytest.raises(ConfigurationError, match=fragment):
        CascadeLLM(**kwargs)


def test_empty_messages_raise_a_clear_error(llm):
    with pytest.raises(InvalidRequestError, match="no messages"):
        llm.chat([])


def test_unroutable_block_raises_naming_the_block(llm):
    # image, audio and document blocks are routed past the small tier (tests/llamaindex/test_multimodal.py)
    message = ChatMessage(
        role="user", blocks=[TextBlock(text="What is this?"), VideoBlock(url="http://127.0.0.1/x.mp4")]
    )
    with pytest.raises(InvalidRequestError, match=r"messages\[0\].*VideoBlock"):
        llm.chat([message])


async def test_async_bad_input_raises_too(llm):
    with pytest.raises(InvalidRequestError, match="no messages"):
        await llm.astream_chat([])


def test_api_keys_never_in_repr_payload_or_errors(small_server, large_server, caplog):
    llm = make_llm(small_server, large_server)
    shown = repr(llm) + str(llm) + str(llm.to_payload()) + repr(llm.cascade) + repr(llm.cascade.tiers)
    assert SMALL_KEY not in shown and LARGE_KEY not in shown
    small_server.set_responder(lambda body: FakeReply(status=500))
    large_server.set_responder(lambda body: FakeReply(status=500))
    with caplog.at_level(logging.DEBUG), pytest.raises(Exception) as info:
        llm.chat(FRANCE)
    text = str(info.value) + repr(info.value) + caplog.text
    assert SMALL_KEY not in text and LARGE_KEY not in text


def test_signal_and_threshold_shorthand_builds_the_rule():
    llm = CascadeLLM(small=ScriptedModel("Paris", confidence=0.9), large=MockLLM(), threshold=0.95)
    assert llm.cascade.rules[0].scorer.name == "margin"
    assert llm.complete("Capital of France?").additional_kwargs["cascade"]["deferred"] is True
    chow = CascadeLLM(small=ScriptedModel("x"), large=MockLLM(), signal="chow_average", threshold=-1.0)
    assert chow.cascade.rules[0].scorer.name == "chow_average"
