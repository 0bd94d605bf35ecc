"""The cascade's plan as a state machine, driven by hand: events in, effects out (no model, no driver).

Like h11's tests of its connection state machine: every test pushes what a driver would send
back (``send``/``throw``) and asserts the exact effects the plan yields next.
"""

from __future__ import annotations

import math

import pytest

from cascade_core.decide.rules import ThresholdRule
from cascade_core.engine.effects import (
    END,
    CloseSteps,
    Complete,
    Emit,
    NextChunk,
    NextStep,
    OpenChunks,
    OpenSteps,
)
from cascade_core.engine.machine import TierView, plan
from cascade_core.engine.result import CascadeResult
from cascade_core.errors import BackendError, LargeTierError
from cascade_core.types import (
    Completion,
    CompletionChunk,
    Request,
    StepsEnd,
    TokenAlternative,
    TokenStep,
    ToolSpec,
    Usage,
)

MARGIN = ThresholdRule("margin", 0.5)  # decides on the first step alone
SMALL = TierView("small", lambda u: 1e-7 * u.total_tokens, lambda text: len(text.split()))
LARGE = TierView("large", lambda u: 1e-5 * u.total_tokens, lambda text: len(text.split()))


def sure(text: str) -> TokenStep:
    """A step with a wide first-token margin (about 0.99 - 0.007)."""
    return TokenStep(text, math.log(0.99), (TokenAlternative(text, math.log(0.99)), TokenAlternative("x", -5.0)))


def unsure(text: str) -> TokenStep:
    """A step with a narrow first-token margin (0.40 - 0.35)."""
    return TokenStep(text, math.log(0.40), (TokenAlternative(text, math.log(0.40)), TokenAlternative("y", math.log(0.35))))


class Driven:
    """A plan and the effect it is waiting on; ``send``/``throw`` return the next effect."""

    def __init__(self, request: Request, **options: object) -> None:
        self.machine = plan([SMALL, LARGE], [options.pop("rule", MARGIN)], request, **options)  # type: ignore[arg-type]
        self.effect = next(self.machine)
        self.result: CascadeResult | None = None

    def send(self, value: object = None) -> object:
        try:
            self.effect = self.machine.send(value)
        except StopIteration as stop:
            self.result, self.effect = stop.value, None
        return self.effect

    def throw(self, error: BaseException) -> object:
        self.effect = self.machine.throw(error)
        return self.effect


def final(effect: object) -> CascadeResult:
    """The result carried by the plan's last effect (an ``Emit`` of an empty chunk)."""
    assert isinstance(effect, Emit) and effect.chunk.text == "" and effect.chunk.result is not None
    return effect.chunk.result


def test_keeps_a_confident_answer_and_reads_it_to_the_end():
    run = Driven(Request.from_prompt("Capital of France?"), streaming=False)
    assert isinstance(run.effect, OpenSteps) and run.effect.tier == 0
    assert run.send() == NextStep(0)
    assert run.send(sure(" Paris")) == NextStep(0)  # kept after the first step: read on
    assert run.send(sure(" it is")) == NextStep(0)
    assert run.send(StepsEnd(Usage(3, 2), "stop")) == CloseSteps(0)
    result = final(run.send())
    assert run.send() is None and run.result is result
    assert (result.text, result.tier, result.generation.finish_reason) == (" Paris it is", 0, "stop")
    assert result.decision.defer is False and result.decision.early_exit is False
    assert result.runs[0].usage == Usage(3, 2) and [r.tier for r in result.runs] == [0]


def test_defers_on_the_first_token_margin_and_closes_the_stream_at_once():
    request = Request.from_prompt("Capital of Australia?")
    run = Driven(request, streaming=False)
    run.send()
    assert run.send(unsure(" Sydney")) == CloseSteps(0)  # no second NextStep: generation stops here
    assert run.send() == Complete(1, request)
    result = final(run.send(Completion("Canberra", Usage(4, 1))))
    assert run.send() is None
    assert (result.text, result.tier) == ("Canberra", 1)
    decision = result.decisions[0]
    assert decision.defer and decision.early_exit and decision.signal == "margin"
    assert decision.score == pytest.approx(0.05, abs=1e-6) and decision.threshold == 0.5
    assert [r.tier for r in result.runs] == [0, 1] and result.runs[0].usage.output_tokens == 1


def test_streams_a_kept_answer_live_and_stops_at_the_stop_string():
    run = Driven(Request.from_prompt("Q", stop=("\n",)), streaming=True)
    run.send()
    emitted = run.send(sure(" Paris"))
    assert isinstance(emitted, Emit) and (emitted.chunk.text, emitted.chunk.tier) == (" Paris", 0)
    assert run.send() == NextStep(0)
    # the stop string completes: nothing to show, and one more read for the backend's end event
    assert run.send(sure("\nQ:")) == NextStep(0)
    assert run.send(StepsEnd(Usage(2, 2), "stop")) == CloseSteps(0)
    result = final(run.send())  # the text was already streamed: not emitted again
    assert result.text == " Paris" and result.generation.finish_reason == "stop"
    assert result.runs[0].usage == Usage(2, 2)


def test_a_backend_that_goes_on_past_the_stop_string_is_closed():
    run = Driven(Request.from_prompt("Q", stop=("\n",)), streaming=False)
    run.send()
    run.send(sure(" Paris"))
    assert run.send(sure("\n")) == NextStep(0)
    assert run.send(sure(" Q:")) == CloseSteps(0)  # not an end event: the stream is closed instead
    result = final(run.send())
    assert result.text == " Paris" and len(result.generation.steps) == 2
    assert result.runs[0].usage == Usage(1, 2)  # no end event: prompt counted, one token per step


def test_text_held_as_a_possible_stop_string_is_released_at_the_end():
    run = Driven(Request.from_prompt("Q", stop=("\n\n",)), streaming=True)
    run.send()
    assert run.send(sure(" Paris")).chunk.text == " Paris"
    assert run.send() == NextStep(0)
    assert run.send(sure("\n")) == NextStep(0)  # "\n" may start the stop string: held back
    released = run.send(StepsEnd(Usage(1, 2)))
    assert isinstance(released, Emit) and released.chunk.text == "\n"
    assert run.send() == CloseSteps(0)
    assert final(run.send()).text == " Paris\n"


def test_a_failing_small_tier_defers_to_the_last_tier():
    request = Request.from_prompt("Q")
    run = Driven(request, streaming=False)
    run.send()
    assert run.throw(BackendError("small is down")) == CloseSteps(0)
    assert run.send() == Complete(1, request)
    result = final(run.send(Completion("answer", Usage(1, 1))))
    decision = result.decisions[0]
    assert decision.defer and decision.signal == "error"
    assert decision.reason == "tier 0 failed: BackendError: small is down"
    assert result.tier == 1 and result.runs[0].usage == Usage()


def test_a_failing_small_tier_raises_when_told_to():
    run = Driven(Request.from_prompt("Q"), streaming=False, on_small_error="raise")
    run.send()
    with pytest.raises(BackendError, match="small is down"):
        run.throw(BackendError("small is down"))


def test_a_small_tier_failing_after_its_text_was_streamed_raises():
    run = Driven(Request.from_prompt("Q"), streaming=True)
    run.send()
    assert isinstance(run.send(sure(" Paris")), Emit)  # the caller already has text from tier 0
    run.send()
    with pytest.raises(BackendError):
        run.throw(BackendError("died mid-answer"))


def test_an_answer_check_failing_defers_and_nothing_was_shown():
    request = Request.from_prompt("Give JSON")
    run = Driven(request, streaming=True, check=lambda generation: f"not JSON: {generation.text!r}")
    run.send()
    assert run.send(sure(" Paris")) == NextStep(0)  # held back: the check needs the whole text
    assert run.send(StepsEnd(Usage(2, 1))) == CloseSteps(0)
    assert run.send() == OpenChunks(1, request)
    decision = final_after_large(run, ["{}"]).decisions[0]
    assert decision.defer and not decision.early_exit
    assert decision.reason == "answer check failed: not JSON: ' Paris'"


def final_after_large(run: Driven, pieces: list[str]) -> CascadeResult:
    """Feed the last tier's streamed ``pieces`` (each must be emitted at once), then END."""
    assert run.send() == NextChunk(1)
    for piece in pieces:
        emitted = run.send(CompletionChunk(piece))
        assert isinstance(emitted, Emit) and (emitted.chunk.text, emitted.chunk.tier) == (piece, 1)
        assert run.send() == NextChunk(1)
    return final(run.send(END))


def test_streams_the_last_tier_chunk_by_chunk():
    request = Request.from_prompt("Capital of Australia?")
    run = Driven(request, streaming=True)
    run.send()
    assert run.send(unsure(" Sydney")) == CloseSteps(0)  # a deferred answer is never shown
    assert run.send() == OpenChunks(1, request)
    assert run.send() == NextChunk(1)
    assert run.send(CompletionChunk("Can")).chunk.text == "Can"
    assert run.send() == NextChunk(1)
    assert run.send(CompletionChunk("", usage=Usage(5, 2))) == NextChunk(1)  # nothing to show
    result = final(run.send(END))
    assert (result.text, result.tier, result.runs[-1].usage) == ("Can", 1, Usage(5, 2))


def test_a_failing_last_tier_raises_with_the_decisions_taken():
    request = Request.from_prompt("Q")
    run = Driven(request, streaming=False)
    run.send()
    run.send(unsure(" x"))
    run.send()
    with pytest.raises(LargeTierError) as raised:
        run.throw(BackendError("large is down"))
    assert raised.value.decisions[0].early_exit and "large is down" in str(raised.value)


WEATHER = ToolSpec("get_weather", "Weather in a city",
                   {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})
CALL = '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>'


def test_tool_call_text_is_held_back_until_it_is_parsed():
    request = Request.from_prompt("Weather in Paris?", tools=(WEATHER,))
    run = Driven(request, streaming=True)
    run.send()
    assert run.send(sure(CALL[:20])) == NextStep(0)  # no Emit: a tool call must parse first
    assert run.send(sure(CALL[20:])) == NextStep(0)
    assert run.send(StepsEnd(Usage(9, 2))) == CloseSteps(0)
    shown = [run.send(), run.send()]
    assert [e.chunk.text for e in shown] == [CALL[:20], CALL[20:]]  # emitted only once kept
    result = final(run.send())
    assert [(c.name, c.arguments) for c in result.tool_calls] == [("get_weather", {"city": "Paris"})]


def test_a_tool_call_that_does_not_parse_defers_without_showing_it():
    request = Request.from_prompt("Weather in Paris?", tools=(WEATHER,))
    run = Driven(request, streaming=True)
    run.send()
    assert run.send(sure('<tool_call>{"name": "get_weather", "arguments": {}}</tool_call>')) == NextStep(0)
    assert run.send(StepsEnd()) == CloseSteps(0)
    assert run.send() == OpenChunks(1, request)
    result = final_after_large(run, ["It is sunny."])
    assert result.decisions[0].reason.startswith("small-tier tool call rejected: tool 'get_weather'")
    assert result.text == "It is sunny."
