"""Tool calls as real models write them: each case is a recorded output of Qwen2.5-Coder on llama.cpp.

Recorded outputs (verbatim):
* ``TOOL_RESPONSE``: Qwen2.5-Coder-1.5B, agent workload step 2 (after a ``country_facts`` result), through
  ``ChatOpenAI.bind_tools`` on llama.cpp 2026-12-03 — the call is wrapped in the tag its chat template uses
  for tool *results*, and llama.cpp returns it as content.
* ``DOUBLED``/``DOUBLED_TRUNCATED``: the same model in the agent workload (``benchmarks/results/agent_langchain.json``,
  Cuba and Solomon Islands) — an empty ``<tools></tools>`` echo, then the call with doubled outer braces; the second
  answer repeats the call until the 64-token limit cuts it.
"""

from __future__ import annotations

import json

import pytest

from cascade_core import Cascade, ThresholdRule
from cascade_core.backends.openai import OpenAIModel
from cascade_core.engine.tool_calls import (
    ToolCallError,
    parse_tool_calls,
    recover_tool_calls,
    strip_tool_calls,
)
from cascade_core.testing import ScriptedModel
from cascade_core.testing.fake_server import FakeOpenAIServer, FakeReply
from cascade_core.types import Request, ToolSpec

CALCULATOR = ToolSpec("calculator", "a op b", {
    "type": "object", "required": ["a", "operation", "b"],
    "properties": {"a": {"type": "number"}, "operation": {"type": "string", "enum": ["add", "divide"]},
                   "b": {"type": "number"}}})
TOOLS = (CALCULATOR,)
TOOL_RESPONSE = ('<tool_response>\n{"name": "calculator", "arguments": {"a": 586000, "operation": "divide", "b": 1000}}'
                 '\n</tool_response>')
DOUBLED = ('<tools></tools>\n{{"name": "calculator", "arguments": {"a": 11230000, "operation": "divide", '
           '"b": 110340000}}}')
DOUBLED_TRUNCATED = ('<tools></tools>\n{{"name": "calculator", "arguments": {"a": 1000000, "operation": "divide", '
                     '"b": 2880000}}}\n<tools></tools>\n{{"name": "calculator", "arguments": {"a":')


def test_call_wrapped_in_tool_response_tags_is_parsed():
    (call,) = parse_tool_calls(TOOL_RESPONSE, TOOLS)
    assert (call.name, call.arguments) == ("calculator", {"a": 586000, "operation": "divide", "b": 1000})
    assert strip_tool_calls(TOOL_RESPONSE) == ""


def test_tool_result_in_tool_response_tags_is_not_a_call():
    text = '<tool_response>\n{"name": "France", "population": 68000000}\n</tool_response> It has 68 million.'
    assert recover_tool_calls(text, TOOLS) == ()
    assert strip_tool_calls(text) == text


def test_doubled_braces_after_an_empty_tools_echo_are_parsed():
    (call,) = parse_tool_calls(DOUBLED, TOOLS)
    assert call.arguments == {"a": 11230000, "operation": "divide", "b": 110340000}
    assert strip_tool_calls(DOUBLED) == ""


def test_fully_doubled_braces_are_parsed():
    (call,) = parse_tool_calls('{{"name": "calculator", "arguments": {{"a": 1, "operation": "add", "b": 2}}}}', TOOLS)
    assert call.arguments == {"a": 1, "operation": "add", "b": 2}


def test_call_cut_off_by_the_token_limit_is_malformed_not_text():
    with pytest.raises(ToolCallError, match="not valid JSON"):
        parse_tool_calls(DOUBLED_TRUNCATED, TOOLS)
    assert recover_tool_calls(DOUBLED_TRUNCATED, TOOLS) == ()  # a large tier's answer stays text


def test_json_in_prose_that_names_no_bound_tool_stays_text():
    text = 'Here is the record: {"name": "Bob", "age": 3}.'
    assert recover_tool_calls(text, TOOLS) == ()
    assert strip_tool_calls(text) == text


def test_nested_name_inside_arguments_is_one_call():
    tools = (ToolSpec("lookup", "", {"type": "object", "properties": {"filter": {"type": "object"}}}),)
    text = 'Sure: {"name": "lookup", "arguments": {"filter": {"name": "x"}}}'
    (call,) = parse_tool_calls(text, tools)
    assert call.arguments == {"filter": {"name": "x"}}
    assert strip_tool_calls(text) == "Sure:"


@pytest.mark.parametrize("text", [TOOL_RESPONSE, DOUBLED])
def test_small_tier_call_in_a_recorded_form_is_kept(text):
    cascade = Cascade([ScriptedModel(text, confidence=0.9), ScriptedModel("large")], rules=ThresholdRule("margin", 0.3))
    result = cascade.invoke(Request.from_prompt("586000 / 1000?", tools=TOOLS))
    assert result.tier == 0
    assert [c.name for c in result.tool_calls] == ["calculator"]


def test_small_tier_truncated_call_defers_instead_of_crashing():
    cascade = Cascade([ScriptedModel(DOUBLED_TRUNCATED, confidence=0.9), ScriptedModel("large answer")],
                      rules=ThresholdRule("margin", 0.3))
    result = cascade.invoke(Request.from_prompt("1000000 / 2880000?", tools=TOOLS))
    assert result.tier == 1
    assert result.decision.defer and "tool call re" in result.decision.reason
    assert result.text == "large answer"


@pytest.mark.parametrize(("content", "calls"), [(TOOL_RESPONSE, 1), (DOUBLED, 1), (DOUBLED_TRUNCATED, 0)])
def test_large_tier_text_in_a_recorded_form_over_http(content, calls):
    with FakeOpenAIServer(lambda body: FakeReply(content)) as server:
        large = OpenAIModel(model="qwen15", base_url=server.base_url, api_key="x", prompt_format="chat")
        cascade = Cascade([ScriptedModel("small", confidence=0.5), large], rules=ThresholdRule("margin", 1.0))
        result = cascade.invoke(Request.from_prompt("1000000 / 2880000?", tools=TOOLS))
    assert result.tier == 1
    assert len(result.tool_calls) == calls
    assert (result.text == "") if calls else (result.text == content)


def _generation(text: str, chunk: int = 3):
    """A generation writing ``text`` in ``chunk``-character steps, each certain except the steps inside the
    tool name (p = 0.6 against 0.3), so the name's margin shows which steps the span mapped to."""
    import math

    from cascade_core.types import Generation, TokenAlternative, TokenStep

    name_at = text.find("calculator")
    steps = []
    for start in range(0, len(text), chunk):
        piece = text[start:start + chunk]
        in_name = start < name_at + len("calculator") and start + chunk > name_at
        p = 0.6 if in_name else 0.99
        steps.append(TokenStep(piece, math.log(p), (TokenAlternative(piece, math.log(p)), TokenAlternative("x", math.log(0.3 if in_name else 0.005)))))
    return Generation(text, tuple(steps))


@pytest.mark.parametrize("text", [TOOL_RESPONSE, DOUBLED, DOUBLED_TRUNCATED,
                                  '{{"name": "calculator", "arguments": {{"a": 1, "operation": "add", "b": 2}}}}',
                                  '<tool_call>\n{{"name": "calculator", "arguments": {{"a": 1, "b": 2}}}}\n</tool_call>'])
def test_tool_call_uncertainty_finds_the_recorded_wrapped_forms(text):
    """The uncertainty of a call in each recorded wrapper is read from the steps that wrote its name and
    arguments, in the text's own offsets (the truncated repeat is no call)."""
    from cascade_core.decide.tool_uncertainty import find_tool_call_spans, tool_call_uncertainty

    (span,) = find_tool_call_spans(text)
    assert text[slice(*span.name_span)] == "calculator"
    arguments = text[slice(*span.arguments_span)]
    assert json.loads(arguments.replace("{{", "{").replace("}}", "}"))["a"] in (1, 586000, 11230000, 1000000)
    (call,) = tool_call_uncertainty(_generation(text))
    assert call.name == "calculator"
    assert call.name_margin == pytest.approx(0.3)
    assert call.arguments_steps and not set(call.arguments_steps) & set(call.name_steps)
