"""ChatCascade behaviour: decisions, streaming per rule, tools, structured output, errors, secrets."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.tools import tool
from lc_fakes import FAKE_KEY, large_chat_openai
from pydantic import BaseModel, Field

from cascade_core import Cascade, ConfigurationError, Pricing, ThresholdRule
from cascade_core.backends.openai import OpenAIModel
from cascade_core.testing import ScriptedModel
from langchain_cascade import ChatCascade, LangChainLargeModel

DEAD_URL = "http://127.0.0.1:9/v1"


@tool
def magic_function(input: int) -> int:
    """Apply a magic function to an input."""
    return input + 2


class City(BaseModel):
    """A city."""

    name: str = Field(description="The city's name")
    country: str = Field(description="The country it is in")


class TokenRecorder(BaseCallbackHandler):
    def __init__(self) -> None:
        self.tokens: list[str] = []

    def on_llm_new_token(self, token: Any, **kwargs: Any) -> None:
        self.tokens.append(token if isinstance(token, str) else "")


@pytest.fixture
def llm(small: OpenAIModel, large: Any) -> ChatCascade:
    return ChatCascade(small=small, large=large, threshold=0.3,
                       small_pricing=Pricing(0.02, 0.02), large_pricing=Pricing(0.15, 0.60))


def cascade_meta(message: Any) -> dict[str, Any]:
    return message.response_metadata["cascade"]


# -- decisions ------------------------------------------------------------------------------------
def test_keeps_confident_answer_and_defers_unsure_one(llm: ChatCascade) -> None:
    kept = llm.invoke("What is the capital of France?")
    deferred = llm.invoke("What is the capital of France? [unsure]")

    assert kept.content.startswith("Hello from the small model")
    assert kept.response_metadata["model_name"] == "small-fake"
    meta = cascade_meta(kept)
    assert (meta["tier"], meta["deferred"], meta["signal"], meta["threshold"]) == (0, False, "margin", 0.3)
    assert meta["score"] > 0.3 and meta["reason"].startswith("keep")
    assert meta["saved"] > 0 and meta["cost"] < meta["all_large_cost"]

    assert deferred.content.startswith("Hello from the large model")
    assert deferred.response_metadata["model_name"] == "large-fake"
    meta = cascade_meta(deferred)
    assert (meta["tier"], meta["deferred"]) == (1, True)
    assert meta["score"] < 0.3 and meta["reason"].startswith("defer")
    assert meta["decisions"][0]["early_exit"] is True  # the margin rule decided after one token
    assert [r["model_name"] for r in meta["runs"]] == ["small-fake", "large-fake"]


def test_usage_metadata_sums_every_tier_called(llm: ChatCascade) -> None:
    deferred = llm.invoke("Hi [unsure]")
    runs = cascade_meta(deferred)["runs"]
    assert deferred.usage_metadata["input_tokens"] == sum(r["input_tokens"] for r in runs)
    assert deferred.usage_metadata["output_tokens"] == sum(r["output_tokens"] for r in runs)


def test_large_tier_message_is_passed_through(llm: ChatCascade) -> None:
    deferred = llm.invoke("Hi [unsure]")
    assert deferred.response_metadata["model_provider"] == "openai"  # ChatOpenAI's own metadata
    assert "token_usage" in deferred.response_metadata and "refusal" in deferred.additional_kwargs


async def test_async_paths_make_the_same_decisions(llm: ChatCascade) -> None:
    kept, deferred = await llm.ainvoke("Hi"), await llm.ainvoke("Hi [unsure]")
    assert (cascade_meta(kept)["tier"], cascade_meta(deferred)["tier"]) == (0, 1)
    chunks = [c async for c in llm.astream("Hi [unsure]")]
    assert "".join(c.text for c in chunks).startswith("Hello from the large model")
    assert cascade_meta(chunks[-1])["tier"] == 1


def test_batch_keeps_input_order(llm: ChatCascade) -> None:
    out = llm.batch(["one", "two [unsure]", "three"])
    assert [cascade_meta(m)["tier"] for m in out] == [0, 1, 0]
    assert "one" in out[0].content and "three" in out[2].content


async def test_abatch_keeps_input_order(llm: ChatCascade) -> None:
    out = await llm.abatch(["one [unsure]", "two"])
    assert [cascade_meta(m)["tier"] for m in out] == [1, 0]


def test_built_from_a_core_cascade_and_core_large_model(small: OpenAIModel, large_server: Any) -> None:
    large = OpenAIModel("large-core", base_url=large_server.base_url, api_key=FAKE_KEY, max_retries=0)
    llm = ChatCascade(cascade=Cascade([small, large], rules=ThresholdRule("margin", 0.3)))
    assert cascade_meta(llm.invoke("Hi [unsure]"))["model_name"] == "large-core"
    with_tool = llm.bind_tools([magic_function], tool_choice="magic_function")
    message = with_tool.invoke("magic_function(7) please [unsure]")
    assert message.tool_calls[0]["args"] == {"input": 7}
    full = None
    for chunk in with_tool.stream("magic_function(7) please [unsure]"):
        full = chunk if full is None else full + chunk
    assert full.tool_calls[0]["name"] == "magic_function" and full.tool_calls[0]["args"] == {"input": 7}


# -- streaming --------------------------------------------------------------------------------------
def test_margin_rule_streams_kept_small_tokens_and_fires_callbacks_once(llm: ChatCascade) -> None:
    recorder = TokenRecorder()
    chunks = list(llm.stream("Stream please", config={"callbacks": [recorder]}))
    text = "".join(c.text for c in chunks)
    assert text == "Hello from the small model. You said: Stream please"
    assert len([c for c in chunks if c.text]) > 3  # token by token, not one buffered piece
    assert "".join(recorder.tokens) == text  # every token reported exactly once
    assert chunks[-1].chunk_position == "last" and cascade_meta(chunks[-1])["tier"] == 0


def test_margin_rule_closes_small_stream_after_first_token_when_deferring(llm: ChatCascade, small_server: Any) -> None:
    before = len(small_server.requests)
    chunks = list(llm.stream("A long question that the small tier is [unsure] about"))
    assert len(small_server.requests) == before + 1
    text = "".join(c.text for c in chunks)
    assert text.startswith("Hello from the large model")  # nothing of the small answer was emitted
    assert cascade_meta(chunks[-1])["decisions"][0]["early_exit"] is True


def test_whole_sequence_rule_emits_only_the_answer_that_is_kept(small: OpenAIModel, large: Any) -> None:
    llm = ChatCascade(small=small, large=large, signal="chow_average", threshold=-1.0)
    kept = list(llm.stream("Hi"))
    assert "".join(c.text for c in kept).startswith("Hello from the small model")
    assert cascade_meta(kept[-1])["signal"] == "chow_average"
    llm = ChatCascade(small=small, large=large, signal="chow_average", threshold=-0.01)
    deferred = list(llm.stream("Hi"))
    assert "".join(c.text for c in deferred).startswith("Hello from the large model")  # no small text leaked


def test_streaming_flag_streams_inside_invoke(small: OpenAIModel, large: Any) -> None:
    recorder = TokenRecorder()
    llm = ChatCascade(small=small, large=large, streaming=True)
    message = llm.invoke("Hi", config={"callbacks": [recorder]})
    assert len(recorder.tokens) > 3 and "".join(recorder.tokens) == message.content


# -- tools ---------------------------------------------------------------------------------------
def test_small_tier_tool_call_becomes_tool_calls(llm: ChatCascade) -> None:
    message = llm.bind_tools([magic_function], tool_choice="any").invoke("What is magic_function(3)? Use the tool.")
    assert cascade_meta(message)["tier"] == 0
    assert message.content == ""  # no <tool_call> markup in the content
    assert [(c["name"], c["args"]) for c in message.tool_calls] == [("magic_function", {"input": 3})]
    assert message.tool_calls[0]["id"]


def test_small_tier_tool_call_streams_as_tool_call_chunks(llm: ChatCascade) -> None:
    chunks = list(llm.bind_tools([magic_function]).stream("Use the tool: magic_function(5)"))
    assert all("<tool_call>" not in c.text for c in chunks)
    full = chunks[0]
    for chunk in chunks[1:]:
        full = full + chunk
    assert full.tool_calls[0]["args"] == {"input": 5} and cascade_meta(full)["tier"] == 0


def test_small_tool_call_naming_no_bound_tool_defers(llm: ChatCascade) -> None:
    message = llm.bind_tools([magic_function]).invoke("Use the tool: magic_function(3) [bad-tool]")
    meta = cascade_meta(message)
    assert meta["tier"] == 1 and "no bound tool 'no_such_tool'" in meta["reason"]
    assert message.tool_calls[0]["name"] == "magic_function"


def test_tool_choice_naming_no_bound_tool_raises_at_bind(llm: ChatCascade) -> None:
    with pytest.raises(ValueError, match="tool_choice 'nope'"):
        llm.bind_tools([magic_function], tool_choice="nope")


def test_tool_choice_true_forces_the_single_tool(llm: ChatCascade) -> None:
    bound = llm.bind_tools([magic_function], tool_choice=True)
    assert bound.kwargs["tool_choice"] == "magic_function"


# -- structured output ------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["json_schema", "function_calling", "json_mode"])
def test_structured_output_into_pydantic_model_is_kept(llm: ChatCascade, method: str) -> None:
    structured = llm.with_structured_output(City, method=method, include_raw=True)
    out = structured.invoke("Paris is in France. Return JSON with 'name' and 'country' keys.")
    assert isinstance(out["parsed"], City) and out["parsing_error"] is None
    assert cascade_meta(out["raw"])["tier"] == 0


@pytest.mark.parametrize("method", ["json_schema", "json_mode"])
def test_small_answer_that_does_not_parse_defers(llm: ChatCascade, method: str) -> None:
    structured = llm.with_structured_output(City, method=method, include_raw=True)
    out = structured.invoke("Paris is in France [bad-json]. Return JSON with 'name' and 'country' keys.")
    meta = cascade_meta(out["raw"])
    assert meta["tier"] == 1 and "does not parse" in meta["reason"]
    assert isinstance(out["parsed"], City)


def test_small_tool_call_failing_validation_defers(small: OpenAIModel, large: Any) -> None:
    class Strict(BaseModel):
        """A value."""

        value: int = Field(ge=100)

    llm = ChatCascade(small=small, large=large)
    out = llm.with_structured_output(Strict, method="function_calling", include_raw=True).invoke("Give 5")
    meta = cascade_meta(out["raw"])
    assert meta["tier"] == 1 and "Strict" in meta["reason"]


def test_structured_output_rejects_unknown_method(llm: ChatCascade) -> None:
    with pytest.raises(ValueError, match="method must be one of"):
        llm.with_structured_output(City, method="xml")  # type: ignore[arg-type]


# -- bad input -------------------------------------------------------------------------------------
def test_empty_messages_raise_a_clear_error(llm: ChatCascade) -> None:
    with pytest.raises(ValueError, match="no messages"):
        llm.invoke([])


def test_unroutable_content_part_raises_naming_the_part(llm: ChatCascade) -> None:
    # images, audio and files are routed past the small tier (tests/langchain/test_lc_multimodal.py)
    message = HumanMessage(content=[{"type": "text", "text": "What is this?"},
                                    {"type": "video", "url": "https://example.com/v.mp4"}])
    with pytest.raises(ValueError, match=r"messages\[1\] \(human\) has a 'video' content part"):
        llm.invoke([SystemMessage("Be brief."), message])


def test_list_content_with_text_and_tool_use_is_accepted(llm: ChatCascade) -> None:
    history = [HumanMessage("1 + 2?"),
               AIMessage([{"type": "text", "text": "adding"},
                          {"type": "tool_use", "id": "t1", "name": "magic_function", "input": {"input": 1}}],
                         tool_calls=[{"name": "magic_function", "args": {"input": 1}, "id": "t1"}]),
               HumanMessage([{"type": "text", "text": "and now?"}])]
    assert isinstance(llm.invoke(history), AIMessage)


# -- configuration and secrets ----------------------------------------------------------------------------
def test_construction_errors_name_the_field(small: OpenAIModel, large: Any) -> None:
    with pytest.raises(ConfigurationError, match="small must be a cascade_core small model"):
        ChatCascade(small=large, large=large)
    with pytest.raises(ConfigurationError, match="needs cascade=, or both small= and large="):
        ChatCascade(small=small)
    with pytest.raises(ConfigurationError, match="outside the signal's range"):
        ChatCascade(small=small, large=large, threshold=5.0)
    with pytest.raises(ConfigurationError, match="either cascade= or small="):
        ChatCascade(cascade=Cascade([ScriptedModel("a"), ScriptedModel("b")]), small=small)
    with pytest.raises(ConfigurationError, match="unknown signal 'no_such_signal'; allowed values"):
        ChatCascade(small=small, large=large, signal="no_such_signal")


def test_api_key_never_in_repr_logs_or_errors(caplog: pytest.LogCaptureFixture) -> None:
    secret = "sk-very-secret-0123456789"
    llm = ChatCascade(small="small-x", small_base_url=DEAD_URL, small_api_key=secret,
                      large="large-x", base_url=DEAD_URL, api_key=secret, timeout=2, max_retries=0)
    assert llm.api_key.get_secret_value() == secret
    shown = [repr(llm), str(llm), json.dumps(llm.model_dump(mode="json"), default=str),
             repr(llm._identifying_params), repr(llm._get_ls_params())]
    with caplog.at_level(logging.DEBUG), pytest.raises(Exception) as info:
        llm.invoke("hi")
    shown += [str(info.value), repr(info.value), caplog.text]
    assert all(secret not in text for text in shown)


def test_large_chat_model_key_not_in_repr(small: OpenAIModel, large_server: Any) -> None:
    large = large_chat_openai(large_server)
    llm = ChatCascade(small=small, large=large)
    assert FAKE_KEY not in repr(llm) and FAKE_KEY not in str(llm)
    assert FAKE_KEY not in repr(LangChainLargeModel(large))


def test_token_counting_works_offline(llm: ChatCascade) -> None:
    assert llm.get_num_tokens("hello world") == 2
    assert len(llm.get_token_ids("hello world")) == 2
    assert llm.get_num_tokens_from_messages([HumanMessage("hello world")]) > 0


def test_profile_and_tracing_params(llm: ChatCascade) -> None:
    assert llm.profile["tool_calling"] and llm.profile["structured_output"]
    assert llm.profile["image_inputs"] is False
    params = llm._get_ls_params(stop=["\n"])
    assert params["ls_provider"] == "cascade" and params["ls_stop"] == ["\n"]
    assert params["ls_model_name"] == "cascade(small-fake->large-fake)"
    assert llm._identifying_params["tiers"] == ["small-fake", "large-fake"]


def test_stop_strings_reach_both_tiers(llm: ChatCascade) -> None:
    assert llm.invoke("Hi there", stop=["small"]).content == "Hello from the "
    assert llm.invoke("Hi there [unsure]", stop=["large"]).content.startswith("Hello from the")
