"""Tool-call uncertainty: spans of calls in the text, name margin and argument quantile over the
steps that wrote them, and rules that defer a parseable but unsure call. Scripted models only: the
measurement on the real agent workload is separate work."""

from __future__ import annotations

import json
import math

import pytest

from cascade_core import Cascade, ConfigurationError, Request, ThresholdRule, ToolSpec
from cascade_core.backends.base import TokenModelBase
from cascade_core.decide.tool_uncertainty import (
    ToolArgumentsQuantile,
    ToolCallRule,
    ToolNameMargin,
    find_tool_call_spans,
    tool_call_uncertainty,
)
from cascade_core.types import Generation, StepsEnd, TokenAlternative, TokenStep, Usage


def step(token, p, p2=None):
    p2 = min(p, (1 - p) * 0.8) if p2 is None else p2
    return TokenStep(token, math.log(p), (TokenAlternative(token, math.log(p)), TokenAlternative("<alt>", math.log(p2))))


def call_steps(name_p, arg_p, name="get_weather", city="Paris"):
    """A tagged call whose markup is near-certain; the name and the argument value at given p."""
    return [step("<tool_call>", 0.99), step('{"name": "', 0.99), step(name, name_p), step('", "arguments": ', 0.99),
            step('{"city": "', 0.99), step(city, arg_p), step('"}}', 0.99), step("</tool_call>", 0.99)]


def generation(steps):
    return Generation("".join(s.token for s in steps), tuple(steps))


class StepScript(TokenModelBase):
    """A small tier that emits given steps (one script per call, cycled)."""

    top_k = 2

    def __init__(self, *scripts, name="small"):
        self.scripts, self.model_name, self.calls = scripts, name, []

    def count_tokens(self, text):
        return len(text.split())

    def stream_steps(self, request):
        self.calls.append(request)
        steps = self.scripts[(len(self.calls) - 1) % len(self.scripts)]
        yield from steps
        yield StepsEnd(Usage(5, len(steps)), "stop")


class Large(StepScript):
    pass


TOOLS = (ToolSpec("get_weather", "Weather in a city", {"type": "object", "properties": {"city": {"type": "string"}},
                                                        "required": ["city"]}),
         ToolSpec("get_time", "Time in a city", {"type": "object", "properties": {"city": {"type": "string"}}}))


def test_spans_cover_tagged_fenced_and_bare_calls():
    tagged = 'ok <tool_call>{"name": "get_time", "arguments": {"city": "Rome"}}</tool_call>'
    (span,) = find_tool_call_spans(tagged)
    assert tagged[slice(*span.name_span)] == "get_time" and tagged[slice(*span.arguments_span)] == '{"city": "Rome"}'
    fenced = 'Sure:\n```json\n{"name": "add", "arguments": {"a": 1, "b": 2}}\n```'
    assert [s.name for s in find_tool_call_spans(fenced)] == ["add"]
    bare = '{"name": "a", "arguments": {}} and {"name": "b", "parameters": {"x": [1, 2]}}'
    spans = find_tool_call_spans(bare)
    assert [s.name for s in spans] == ["a", "b"] and bare[slice(*spans[1].arguments_span)] == '{"x": [1, 2]}'


def test_name_inside_the_arguments_is_not_taken_for_the_tool_name():
    text = '<tool_call>{"arguments": {"name": "Bob"}, "name": "greet"}</tool_call>'
    (span,) = find_tool_call_spans(text)
    assert span.name == "greet" and text[slice(*span.name_span)] == "greet"


@pytest.mark.parametrize("text", ["no call here", '<tool_call>{"name": "x", "argu', '{"title": "not a call"}', ""])
def test_text_without_a_complete_call_has_no_span(text):
    assert find_tool_call_spans(text) == []


def test_uncertainty_reads_only_the_steps_of_the_name_and_arguments():
    (call,) = tool_call_uncertainty(generation(call_steps(name_p=0.5, arg_p=0.2)))
    assert call.name == "get_weather" and call.name_steps == (2,)
    assert call.name_margin == pytest.approx(0.5 - 0.4)
    assert call.arguments_steps == (4, 5, 6) and call.arguments_quantile == pytest.approx(math.log(0.2))


def test_token_straddling_the_span_boundary_counts():
    steps = [step('<tool_call>{"name": "get', 0.6), step('_time", "arguments": {}}</tool_call>', 0.97)]
    (call,) = tool_call_uncertainty(generation(steps))
    assert call.name == "get_time" and call.name_steps == (0, 1)
    assert call.name_margin == pytest.approx(0.6 - 0.32)


def test_least_sure_of_several_calls_decides_the_scorers():
    steps = call_steps(0.99, 0.9) + call_steps(0.6, 0.4, name="get_time", city="Rome")
    gen = generation(steps)
    assert [c.name for c in tool_call_uncertainty(gen)] == ["get_weather", "get_time"]
    assert ToolNameMargin()(gen) == pytest.approx(0.6 - 0.32)
    assert ToolArgumentsQuantile()(gen) == pytest.approx(math.log(0.4))


def test_scorers_fall_back_to_the_ordinary_signal_without_a_call():
    gen = generation([step("Paris", 0.7), step(" is", 0.5)])
    assert ToolNameMargin()(gen) == pytest.approx(0.7 - 0.24)
    assert ToolArgumentsQuantile()(gen) == pytest.approx(math.log(0.5))


def _cascade(rule, *scripts):
    small = StepScript(*scripts)
    large = Large([step("large answer", 0.99)], name="large")
    return Cascade([small, large], rules=rule), small


def test_parseable_but_unsure_call_is_kept_by_margin_and_deferred_by_tool_call_rule():
    unsure_name = call_steps(name_p=0.45, arg_p=0.95)  # first token "<tool_call>" is near-certain
    request = Request.from_prompt("Weather in Paris?", tools=TOOLS)
    kept, _ = _cascade(ThresholdRule("margin", 0.3), unsure_name)
    before = kept.invoke(request)
    assert before.tier == 0 and before.tool_calls[0].name == "get_weather"  # accepted because it parses
    checked, _ = _cascade(ToolCallRule(ThresholdRule("margin", 0.3), name_threshold=0.3), unsure_name)
    after = checked.invoke(request)
    assert after.tier == 1 and after.decision.signal == "tool_name_margin"
    assert after.decision.score == pytest.approx(0.45 - 0.44) and "get_weather" in after.decision.reason


def test_unsure_argument_defers_and_a_sure_call_is_kept():
    request = Request.from_prompt("Weather in Paris?", tools=TOOLS)
    rule = ToolCallRule(ThresholdRule("margin", 0.3), name_threshold=0.3, arguments_threshold=math.log(0.5))
    cascade, _ = _cascade(rule, call_steps(0.97, 0.3), call_steps(0.97, 0.9))
    unsure, sure = cascade.invoke(request), cascade.invoke(request)
    assert unsure.tier == 1 and unsure.decision.signal == "tool_arguments_quantile(alpha=0)"
    assert sure.tier == 0 and sure.tool_calls[0].arguments == {"city": "Paris"}
    assert sure.decision.signal == "margin"  # a kept call reports the base rule's decision


def test_threshold_rule_on_the_tool_name_margin():
    request = Request.from_prompt("Weather?", tools=TOOLS)
    cascade, _ = _cascade(ThresholdRule(ToolNameMargin(), 0.3), call_steps(0.5, 0.9), call_steps(0.97, 0.9))
    assert [cascade.invoke(request).tier for _ in range(2)] == [1, 0]


def test_text_answers_are_decided_by_the_base_rule():
    rule = ToolCallRule(ThresholdRule("margin", 0.3), name_threshold=0.9)
    cascade, _ = _cascade(rule, [step("Paris", 0.95)])
    result = cascade.invoke(Request.from_prompt("Capital of France?", tools=TOOLS))
    assert result.tier == 0 and result.decision.signal == "margin"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"base": object()}, "must be a DeferralRule"), ({"name_threshold": None}, "needs name_threshold"),
     ({"name_threshold": 1.5}, "name_threshold=1.5 is outside"), ({"arguments_threshold": 0.5}, "arguments_threshold=0.5")],
)
def test_bad_tool_call_rule_settings(kwargs, message):
    settings = {"base": ThresholdRule("margin", 0.3), **kwargs}
    with pytest.raises(ConfigurationError, match=message):
        ToolCallRule(**settings)


def test_bad_alpha_is_rejected():
    with pytest.raises(ConfigurationError):
        ToolArgumentsQuantile(alpha=2.0)


def test_call_json_round_trip_matches_parsed_arguments():
    gen = generation(call_steps(0.9, 0.9, city="Lima"))
    (span,) = find_tool_call_spans(gen.text)
    assert json.loads(gen.text[slice(*span.arguments_span)]) == {"city": "Lima"}
