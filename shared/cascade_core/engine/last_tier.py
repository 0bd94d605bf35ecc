"""The plan for the last tier: it answers whatever reaches it; if it fails, raise or fall back.

A sub-generator of :func:`cascade_core.engine.machine.plan`, yielding ``Complete`` (a plain call)
or ``OpenChunks`` / ``NextChunk`` … (streaming, each piece passed on with ``Emit`` as it comes),
then the final ``Emit`` carrying the result. If the last tier fails, ``on_large_error`` says
whether to raise :class:`~cascade_core.errors.LargeTierError` or to answer with the last small
answer (read again in full, with ``OpenSteps`` / ``NextStep`` / ``CloseSteps``, if the rule had cut
it after one step) — never once the caller already has part of the large answer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Generator
from dataclasses import dataclass, replace
from typing import Any

from cascade_core.engine.answer_check import check_answer
from cascade_core.engine.effects import END, CloseSteps, Complete, Effect, Emit, NextChunk, OpenChunks
from cascade_core.engine.plan_state import Fallback, PlanState, TierView
from cascade_core.engine.result import CascadeChunk, CascadeResult, TierRun
from cascade_core.engine.small_tier import StepPull, pull_steps
from cascade_core.engine.steps import StepAccumulator
from cascade_core.errors import ConfigurationError, InvalidRequestError, LargeTierError
from cascade_core.redact import redact
from cascade_core.types import Completion, CompletionChunk, Generation, Request, ToolCall, Usage

__all__ = ["last_tier"]

logger = logging.getLogger(__name__)


@dataclass
class _LargeProgress:
    emitted: bool = False  # the caller has part of the large answer: no fallback may follow it


def last_tier(state: PlanState) -> Generator[Effect, Any, CascadeResult]:
    """The last tier's answer as the call's result (or the fallback's, see the module docstring)."""
    last, tier = state.last, state.tiers[state.last]
    started = time.perf_counter()
    progress = _LargeProgress()
    try:
        completion = yield from _ask(tier, last, state.request, state.streaming, progress)
    except (ConfigurationError, InvalidRequestError):
        raise
    except Exception as err:
        record = state.decisions[-1].reason if state.decisions else "no decision"
        message = f"tier {last} ({tier.model_name}) failed after the deferral ({record}): {type(err).__name__}: {redact(str(err))}"
        state.runs.append(TierRun(last, tier.model_name, Usage(), time.perf_counter() - started, 0.0))
        if state.on_large_error != "small" or progress.emitted or state.fallback is None:
            raise LargeTierError(message, tier=last, decisions=tuple(state.decisions)) from err
        logger.warning("%s; answering from tier %d (on_large_error='small')", message, state.fallback.tier)
        answer = yield from _fall_back(state, state.fallback, message)
        if answer is None:
            raise LargeTierError(message, tier=last, decisions=tuple(state.decisions)) from err
        return answer
    cost = tier.cost(completion.usage)
    state.runs.append(TierRun(last, completion.model_name or tier.model_name, completion.usage, time.perf_counter() - started, cost))
    result = state.result(completion.text, last, completion=completion)
    yield Emit(CascadeChunk("", last, result=result))
    return result


def _ask(
    tier: TierView, last: int, request: Request, streaming: bool, progress: _LargeProgress
) -> Generator[Effect, Any, Completion]:
    """The last tier's completion (streamed chunks are emitted as they come)."""
    if streaming:
        return (yield from _ask_streaming(tier, last, request, progress))
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


def _ask_streaming(
    tier: TierView, last: int, request: Request, progress: _LargeProgress
) -> Generator[Effect, Any, Completion]:
    yield OpenChunks(last, request)
    texts: list[str] = []
    usage: Usage | None = None
    calls: tuple[ToolCall, ...] = ()
    raws: list[Any] = []
    while (chunk := (yield NextChunk(last))) is not END:
        assert isinstance(chunk, CompletionChunk)
        texts.append(chunk.text)
        usage = chunk.usage or usage
        calls = chunk.tool_calls or calls
        raws.append(chunk.raw)
        if chunk.text or chunk.raw is not None:
            yield Emit(CascadeChunk(chunk.text, last, raw=chunk.raw))
            progress.emitted = True
    text = "".join(texts)
    usage = usage or Usage(tier.count_tokens(request.prompt_text), tier.count_tokens(text))
    return Completion(text, usage, tier.model_name, calls, raw=raws)


def _fall_back(state: PlanState, fallback: Fallback, reason: str) -> Generator[Effect, Any, CascadeResult | None]:
    """Answer from the small tier after the large one failed; None if that answer fails the request's checks."""
    tier = state.tiers[fallback.tier]
    generation: Generation | None = fallback.generation
    if not fallback.generation.complete:
        started = time.perf_counter()
        generation = yield from _regenerate(tier, fallback, state.request)
        if generation is None:
            return None
        state.runs.append(TierRun(fallback.tier, tier.model_name, generation.usage, time.perf_counter() - started, tier.cost(generation.usage)))
    assert generation is not None
    rejection, calls = check_answer(generation, state.request, state.check)
    if rejection is not None:
        return None
    generation = replace(generation, tool_calls=calls)
    if state.streaming and generation.text:
        yield Emit(CascadeChunk(generation.text, fallback.tier))
    result = replace(state.result(generation.text, fallback.tier, generation=generation), fallback=True, fallback_reason=reason)
    yield Emit(CascadeChunk("", fallback.tier, result=result))
    return result


def _regenerate(tier: TierView, fallback: Fallback, request: Request) -> Generator[Effect, Any, Generation | None]:
    """The small answer in full (the rule had cut it after one step); None if the small tier fails too."""
    pull = StepPull(StepAccumulator(request.stop))
    try:
        yield from pull_steps(fallback.tier, tier, fallback.request, pull, rule=None, live=False)
        yield CloseSteps(fallback.tier)
    except (ConfigurationError, InvalidRequestError):
        raise
    except Exception as err:  # the large tier's error is the one to report
        logger.warning("fallback generation on tier %d failed: %s", fallback.tier, err)
        return None
    return pull.steps.generation(tier.model_name, lambda: tier.count_tokens(fallback.request.prompt_text))
