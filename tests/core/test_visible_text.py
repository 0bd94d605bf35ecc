"""What of an answer a caller sees: small-tier tool-call markup never shows as text."""

from __future__ import annotations

from cascade_core import Cascade, ThresholdRule
from cascade_core.engine.tool_calls import recover_text_tool_calls
from cascade_core.engine.visible import VisibleStream, visible_text
from cascade_core.testing import ScriptedModel
from cascade_core.types import Request, ToolSpec

TOOLS = (ToolSpec("add", "Add", {"type": "object", "properties": {"a": {"type": "integer"}}}),)
CALL = 'Let me add.<tool_call>{"name": "add", "arguments": {"a": 1}}</tool_call>'


def _shown(cascade: Cascade, request: Request) -> tuple[str, object]:
    stream = VisibleStream(request, len(cascade.tiers))
    pieces, result = [], None
    for chunk in cascade.stream(request):
        if chunk.result is None:
            pieces.append(stream.feed(chunk))
        else:
            result = chunk.result
            pieces.append(stream.final(result))
    return "".join(pieces), result


def test_kept_small_tool_call_shows_only_its_prose():
    cascade = Cascade([ScriptedModel(CALL, confidence=0.9), ScriptedModel("large")], rules=ThresholdRule("margin", 0.3))
    request = Request.from_prompt("1+?", tools=TOOLS)
    shown, result = _shown(cascade, request)
    assert shown == "Let me add." == visible_text(result)
    assert [c.name for c in result.tool_calls] == ["add"]


def test_text_streams_as_it_comes_without_tools():
    cascade = Cascade([ScriptedModel("Paris", confidence=0.9), ScriptedModel("large")])
    request = Request.from_prompt("Capital?")
    stream = VisibleStream(request, 2)
    texts = [stream.feed(c) for c in cascade.stream(request) if c.result is None]
    assert "".join(texts) == "Paris" and not any(stream.holds(c) for c in cascade.stream(request))


def test_deferred_answer_is_not_repeated_at_the_end():
    cascade = Cascade([ScriptedModel("no", confidence=0.1), ScriptedModel("Paris, France")])
    shown, result = _shown(cascade, Request.from_prompt("Capital?", tools=TOOLS))
    assert shown == "Paris, France" == result.text


def test_large_tier_text_calls_are_recovered_once_for_every_backend():
    request = Request.from_prompt("q", tools=TOOLS)
    calls, text = recover_text_tool_calls(CALL, request)
    assert [c.arguments for c in calls] == [{"a": 1}] and text == "Let me add."
    assert recover_text_tool_calls(CALL, request.replace(tool_choice="none")) == ((), CALL)
    assert recover_text_tool_calls(CALL, Request.from_prompt("q")) == ((), CALL)
