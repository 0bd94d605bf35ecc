"""The cascade's control flow as a sans-I/O generator.

:func:`plan` never calls a model. It *yields effects* (open a tier's step stream, pull the next
step, close it, ask the last tier for a completion or a chunk, emit a chunk to the caller) and is
resumed with their results. :mod:`cascade_core.engine.cascade` has a thin synchronous driver and
a thin asynchronous driver that carry out the effects, so sync, async, streaming and batch calls
all share this one implementation of the decision logic.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from cascade_core.backends.base import CompletionChunk, StepsEnd
from cascade_core.decide.rules import DeferralRule, RuleOutcome
from cascade_core.engine.result import CascadeChunk, CascadeResult, Decision, TierRun
from cascade_core.engine.routing import check_media, fit_small_request, skip_reason
from cascade_core.engine.stops import StopFilter
from cascade_core.engine.tool_calls import ToolCallError, parse_tool_calls, render_for_text_model
from cascade_core.errors import ConfigurationError, InvalidRequestError, LargeTierError, SignalError
from cascade_core.redact import redact
from cascade_core.types import Completion, Generation, Request, TokenStep, ToolCall, Usage

__all__ = ["AnswerCheck", "Effect", "plan"]

logger = logging.getLogger(__name__)

#: A caller-supplied check of a small-tier answer: returns a reason to reject it (→ defer) or None.
AnswerCheck = Callable[[Generation], "str | None"]

END = object()  # what a driver sends back when a stream is exhausted


@dataclass(frozen=True)
class OpenSteps:
    tier: int
    request: Request


@dataclass(frozen=True)
class NextStep:
    tier: int


@dataclass(frozen=True)
class CloseSteps:
    tier: int


@dataclass(frozen=True)
class Complete:
    tier: int
    request: Request


@dataclass(frozen=True)
class OpenChunks:
    tier: int
    request: Request


@dataclass(frozen=True)
class NextChunk:
    tier: int


@dataclass(frozen=True)
class Emit:
    chunk: CascadeChunk


Effect = OpenSteps | NextStep | CloseSteps | Complete | OpenChunks | NextChunk | Emit


@dataclass
class TierView:
    """What the plan needs to know about a tier (no model calls)."""

    model_name: str
    cost: Callable[[Usage], float]
    count_tokens: Callable[[str], int]
    modalities: frozenset[str] | None = None  # what the tier accepts (None: anything)
    context_window: int | None = None  # prompt + answer tokens the tier takes (None: unknown)
    max_new_tokens: int | None = None  # the tier's default answer length


@dataclass
class _SmallRun:
    """Accumulates one small tier's step stream."""

    stops: StopFilter
    steps: list[TokenStep] = field(default_factory=list)
    pieces: list[str] = field(default_factory=list)
    end: StepsEnd | None = None
    stopped_by_string: bool = False

    @property
    def text(self) -> str:
        return "".join(self.pieces)


def _small_request(request: Request, rule: DeferralRule) -> Request:
    text_request = render_for_text_model(request)
    tokens = rule.first_step_tokens
    return text_request.replace(first_step_tokens=tokens) if tokens else text_request


def _generation(run: _SmallRun, tier: TierView, request: Request, early: bool) -> Generation:
    end = run.end or StepsEnd(finish_reason="stop" if run.stopped_by_string else "length")
    usage = end.usage or Usage(tier.count_tokens(request.prompt_text), len(run.steps))
    finish = "early_exit" if early else ("stop" if run.stopped_by_string else end.finish_reason)
    return Generation(
        text=run.text,
        steps=tuple(run.steps),
        usage=usage,
        finish_reason=finish,
        model_name=tier.model_name,
        embedding=end.embedding,
    )


def _decide(rule: DeferralRule, generation: Generation, index: int) -> RuleOutcome:
    """The rule's outcome; a reply the signal cannot score (NaN log-probs, missing alternatives) defers."""
    try:
        return rule.decide(generation)
    except SignalError as err:
        signal = getattr(getattr(rule, "scorer", None), "name", type(rule).__name__)
        logger.warning("tier %d: %s; deferring", index, err)
        return RuleOutcome(True, math.nan, math.nan, signal, f"defer: tier {index} reply cannot be scored: {err}")


def _number(value: float) -> float | None:
    return None if value is None or math.isnan(value) else value


def _check_answer(
    generation: Generation, request: Request, check: AnswerCheck | None
) -> tuple[str | None, tuple[ToolCall, ...]]:
    """Reason to reject a small answer (or None) and the tool calls parsed from it."""
    calls: tuple[ToolCall, ...] = ()
    if request.tools and request.tool_choice != "none":
        try:
            calls = parse_tool_calls(generation.text, request.tools)
        except ToolCallError as err:
            return f"small-tier tool call rejected: {err}", ()
        if not calls and (request.tool_choice in ("required", "any") or request.tool_choice in {t.name for t in request.tools}):
            return f"tool_choice={request.tool_choice!r} but the small tier called no tool", ()
    if check is not None:
        try:  # the check sees the parsed tool calls (e.g. to validate their arguments)
            reason = check(replace(generation, tool_calls=calls))
        except Exception as err:  # a failing check is a rejection, never a crash of the call
            reason = f"{type(err).__name__}: {err}"
        if reason:
            return f"answer check failed: {reason}", calls
    return None, calls


def plan(
    tiers: Sequence[TierView],
    rules: Sequence[DeferralRule],
    request: Request,
    *,
    streaming: bool,
    check: AnswerCheck | None = None,
    on_small_error: str = "defer",
    on_large_error: str = "raise",
) -> Generator[Effect, Any, CascadeResult]:
    """The cascade for one request, as a generator of effects returning a :class:`CascadeResult`.

    Non-final tiers are small models: their steps are pulled one by one. A rule that decides on
    the first step (first-token margin) is applied right after it: a deferral closes the stream at
    once; a kept answer is streamed from there on (when no answer check needs the whole text).
    Other rules and any answer check see the full generation; its text is emitted after the
    decision. The last tier answers whatever reaches it; if it fails, ``on_large_error`` says
    whether to raise :class:`LargeTierError` or fall back to the last small answer.
    """
    decisions: list[Decision] = []
    fallback: _Fallback | None = None
    runs: list[TierRun] = []
    last = len(tiers) - 1
    must_buffer = check is not None or bool(request.tools)
    media = check_media(tiers, request)
    for index in range(last):
        rule, tier = rules[index], tiers[index]
        if media and tier.modalities is not None and not media <= tier.modalities:
            decisions.append(Decision(index, True, None, None, "multimodal", skip_reason(index, tier, media)))
            continue
        small_request, context_note = fit_small_request(index, tier, _small_request(request, rule))
        if small_request is None:
            decisions.append(Decision(index, True, None, None, "context", context_note))
            continue
        run = _SmallRun(StopFilter(request.stop))
        started = time.perf_counter()
        outcome = None
        early = False
        emitted = False
        try:
            yield OpenSteps(index, small_request)
            while True:
                event = yield NextStep(index)
                if isinstance(event, StepsEnd) or event is END:
                    run.end = event if isinstance(event, StepsEnd) else None
                    break
                run.steps.append(event)
                piece, stopped = run.stops.feed(event.output_text)
                run.pieces.append(piece)
                if streaming and outcome is not None and not outcome.defer and not must_buffer and piece:
                    yield Emit(CascadeChunk(piece, index))
                    emitted = True
                if stopped:
                    run.stopped_by_string = True
                    # a backend that stops at the stop string itself sends its end event (usage,
                    # embedding) next: read one more event for it; one that would go on is closed
                    after = yield NextStep(index)
                    run.end = after if isinstance(after, StepsEnd) else None
                    break
                if outcome is None and rule.first_step_only and len(run.steps) == 1:
                    outcome = _decide(rule, _generation(run, tier, small_request, early=False), index)
                    if outcome.defer:
                        early = True
                        break
                    if streaming and not must_buffer and run.text:
                        yield Emit(CascadeChunk(run.text, index))
                        emitted = True
            if not run.stopped_by_string and not early:
                run.pieces.append(run.stops.flush())
        except (ConfigurationError, InvalidRequestError):
            raise
        except Exception as err:
            if emitted or on_small_error != "defer":
                raise
            logger.warning("tier %d (%s) failed, deferring: %s", index, tier.model_name, err)
            yield CloseSteps(index)
            runs.append(TierRun(index, tier.model_name, Usage(), time.perf_counter() - started, 0.0))
            decisions.append(Decision(index, True, None, None, "error", f"tier {index} failed: {type(err).__name__}: {err}"))
            continue
        yield CloseSteps(index)
        generation = _generation(run, tier, small_request, early)
        runs.append(TierRun(index, tier.model_name, generation.usage, time.perf_counter() - started, tier.cost(generation.usage)))
        if not generation.steps:
            decisions.append(Decision(index, True, None, None, "empty", f"tier {index} produced no tokens; deferring"))
            continue
        fallback = _Fallback(index, small_request, generation)
        if outcome is None:
            outcome = _decide(rule, generation, index)
        score, threshold = _number(outcome.score), _number(outcome.threshold)
        decision = Decision(index, outcome.defer, score, threshold, outcome.signal, outcome.reason + context_note, early)
        if not outcome.defer:
            rejection, calls = _check_answer(generation, request, check)
            if rejection is not None:
                decision = Decision(index, True, score, threshold, outcome.signal, rejection, early)
                fallback = None  # an answer that failed validation is no fallback
            else:
                generation = replace(generation, tool_calls=calls)
        decisions.append(decision)
        if decision.defer:
            continue
        if streaming and not emitted:
            for piece in run.pieces:
                if piece:
                    yield Emit(CascadeChunk(piece, index))
        result = _result(tiers, request, decisions, runs, generation.text, index, generation=generation)
        yield Emit(CascadeChunk("", index, result=result))
        return result

    tier = tiers[last]
    started = time.perf_counter()
    progress = _LargeProgress()
    try:
        completion = yield from _ask_large(tier, last, request, streaming, progress)
    except (ConfigurationError, InvalidRequestError):
        raise
    except Exception as err:
        record = decisions[-1].reason if decisions else "no decision"
        message = f"tier {last} ({tier.model_name}) failed after the deferral ({record}): {type(err).__name__}: {redact(str(err))}"
        runs.append(TierRun(last, tier.model_name, Usage(), time.perf_counter() - started, 0.0))
        if on_large_error != "small" or progress.emitted or fallback is None:
            raise LargeTierError(message, tier=last, decisions=tuple(decisions)) from err
        logger.warning("%s; answering from tier %d (on_large_error='small')", message, fallback.tier)
        answer = yield from _fall_back(tiers, request, decisions, runs, fallback, streaming, message, check)
        if answer is None:
            raise LargeTierError(message, tier=last, decisions=tuple(decisions)) from err
        return answer
    runs.append(TierRun(last, completion.model_name or tier.model_name, completion.usage, time.perf_counter() - started, tier.cost(completion.usage)))
    result = _result(tiers, request, decisions, runs, completion.text, last, completion=completion)
    yield Emit(CascadeChunk("", last, result=result))
    return result


@dataclass
class _LargeProgress:
    emitted: bool = False


@dataclass(frozen=True)
class _Fallback:
    """The last small answer that could stand in for a failed large tier."""

    tier: int
    request: Request
    generation: Generation


def _ask_large(
    tier: TierView, last: int, request: Request, streaming: bool, progress: _LargeProgress
) -> Generator[Effect, Any, Completion]:
    """The last tier's completion (streamed chunks are emitted as they come)."""
    if streaming:
        yield OpenChunks(last, request)
        texts: list[str] = []
        usage: Usage | None = None
        large_calls: tuple[ToolCall, ...] = ()
        raws: list[Any] = []
        while True:
            chunk = yield NextChunk(last)
            if chunk is END:
                break
            assert isinstance(chunk, CompletionChunk)
            texts.append(chunk.text)
            usage = chunk.usage or usage
            large_calls = chunk.tool_calls or large_calls
            raws.append(chunk.raw)
            if chunk.text or chunk.raw is not None:
                yield Emit(CascadeChunk(chunk.text, last, raw=chunk.raw))
                progress.emitted = True  # the caller has large-tier output: no fallback may follow it
        text = "".join(texts)
        usage = usage or Usage(tier.count_tokens(request.prompt_text), tier.count_tokens(text))
        return Completion(text, usage, tier.model_name, large_calls, raw=raws)
    completion = yield Complete(last, request)
    assert isinstance(completion, Completion)
    if completion.usage == Usage():
        completion = Completion(
            completion.text,
            Usage(tier.count_tokens(request.prompt_text), tier.count_tokens(completion.text)),
            completion.model_name or tier.model_name,
            completion.tool_calls,
            completion.finish_reason,
            completion.raw,
        )
    return completion


def _regenerate(tier: TierView, fallback: _Fallback, stop: Sequence[str]) -> Generator[Effect, Any, Generation]:
    """Run a small tier to the end (its answer was cut after one step by a first-step rule)."""
    run = _SmallRun(StopFilter(tuple(stop)))
    yield OpenSteps(fallback.tier, fallback.request)
    while True:
        event = yield NextStep(fallback.tier)
        if isinstance(event, StepsEnd) or event is END:
            run.end = event if isinstance(event, StepsEnd) else None
            break
        run.steps.append(event)
        piece, stopped = run.stops.feed(event.output_text)
        run.pieces.append(piece)
        if stopped:
            run.stopped_by_string = True
            break
    if not run.stopped_by_string:
        run.pieces.append(run.stops.flush())
    yield CloseSteps(fallback.tier)
    return _generation(run, tier, fallback.request, early=False)


def _fall_back(
    tiers: Sequence[TierView],
    request: Request,
    decisions: list[Decision],
    runs: list[TierRun],
    fallback: _Fallback,
    streaming: bool,
    reason: str,
    check: AnswerCheck | None,
) -> Generator[Effect, Any, CascadeResult | None]:
    """Answer from the small tier after the large one failed; None if that answer fails the request's checks."""
    tier = tiers[fallback.tier]
    generation = fallback.generation
    if not generation.complete:
        started = time.perf_counter()
        try:
            generation = yield from _regenerate(tier, fallback, request.stop)
        except (ConfigurationError, InvalidRequestError):
            raise
        except Exception as err:  # the small tier failed too: the large tier's error is the one to report
            logger.warning("fallback generation on tier %d failed: %s", fallback.tier, err)
            return None
        runs.append(TierRun(fallback.tier, tier.model_name, generation.usage, time.perf_counter() - started, tier.cost(generation.usage)))
    rejection, calls = _check_answer(generation, request, check)
    if rejection is not None:
        return None
    generation = replace(generation, tool_calls=calls)
    if streaming and generation.text:
        yield Emit(CascadeChunk(generation.text, fallback.tier))
    result = _result(tiers, request, decisions, runs, generation.text, fallback.tier, generation=generation)
    result = replace(result, fallback=True, fallback_reason=reason)
    yield Emit(CascadeChunk("", fallback.tier, result=result))
    return result


def _result(
    tiers: Sequence[TierView],
    request: Request,
    decisions: list[Decision],
    runs: list[TierRun],
    text: str,
    tier_index: int,
    *,
    generation: Generation | None = None,
    completion: Completion | None = None,
) -> CascadeResult:
    last = tiers[-1]
    large_run = next((r for r in runs if r.tier == len(tiers) - 1), None)
    if large_run is not None:
        all_large = large_run.cost
    else:  # estimate: the prompt and an answer as long as the one given, at the last tier's prices
        all_large = last.cost(Usage(last.count_tokens(request.prompt_text), last.count_tokens(text)))
    model_name = runs[-1].model_name if runs else tiers[tier_index].model_name
    return CascadeResult(
        text=text,
        tier=tier_index,
        model_name=model_name,
        decisions=tuple(decisions),
        runs=tuple(runs),
        tool_calls=(generation.tool_calls if generation else completion.tool_calls if completion else ()),
        cost=sum(r.cost for r in runs),
        all_large_cost=all_large,
        generation=generation,
        completion=completion,
        metadata=dict(request.metadata),
    )
