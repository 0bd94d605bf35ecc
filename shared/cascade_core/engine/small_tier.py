"""The plan for one small (non-final) tier: route the request, read its steps, decide, answer or defer.

A sub-generator of :func:`cascade_core.engine.machine.plan`, yielding the same effects
(:mod:`cascade_core.engine.effects`): ``OpenSteps``, ``NextStep`` …, ``CloseSteps``, and ``Emit``
for a kept answer. A rule that decides on the first step (first-token margin) is applied right
after it: a deferral closes the stream at once; a kept answer is streamed from there on (when no
answer check needs the whole text). Other rules and any answer check see the full generation.

A rule whose scorer reads no log-probs gets the answer as plain text instead of a step stream
(``GenerateTexts``), and a scorer that needs sampled answers (``sample_agreement``) gets its k samples
after it (:mod:`~cascade_core.engine.sampling`); such a rule decides on the whole answer and its
samples, so a kept answer is emitted after the decision.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Generator
from dataclasses import dataclass, replace
from typing import Any

from cascade_core.decide.rules import DeferralRule, RuleOutcome
from cascade_core.engine.answer_check import check_answer
from cascade_core.engine.effects import END, CloseSteps, Effect, Emit, NextStep, OpenSteps
from cascade_core.engine.plan_state import Fallback, PlanState, TierView
from cascade_core.engine.result import CascadeChunk, CascadeResult, Decision, TierRun
from cascade_core.engine.routing import fit_small_request, skip_reason
from cascade_core.engine.sampling import add_samples, rule_needs_logprobs, rule_sampling, text_generation
from cascade_core.engine.steps import StepAccumulator
from cascade_core.engine.sticky import STICKY_KEY
from cascade_core.engine.tool_calls import render_for_text_model
from cascade_core.errors import ConfigurationError, InvalidRequestError, SignalError
from cascade_core.types import Generation, Request, StepsEnd, Usage

__all__ = ["StepPull", "pull_steps", "rule_outcome", "small_request", "small_tier"]

logger = logging.getLogger(__name__)


@dataclass
class StepPull:
    """A small tier's step stream being read (kept by the caller, so it survives an error)."""

    steps: StepAccumulator
    outcome: RuleOutcome | None = None  # decided on the first step (first-step rules only)
    early: bool = False  # the rule deferred after the first step: the stream was cut there
    emitted: bool = False  # some text already went to the caller

    @property
    def kept(self) -> bool:
        return self.outcome is not None and not self.outcome.defer


def small_request(request: Request, rule: DeferralRule) -> Request:
    """The request as a text-only small tier gets it (tools rendered, the rule's first-step tokens asked for)."""
    text_request = render_for_text_model(request)
    tokens = rule.first_step_tokens
    return text_request.replace(first_step_tokens=tokens) if tokens else text_request


def small_tier(state: PlanState, index: int, media: frozenset[str]) -> Generator[Effect, Any, CascadeResult | None]:
    """Tier ``index``: the result if its answer is kept, else None (its decision is recorded)."""
    rule, tier = state.rules[index], state.tiers[index]
    if state.request.metadata.get(STICKY_KEY):
        state.decisions.append(Decision(index, True, None, None, "sticky",
                                        f"tier {index} skipped: this conversation was escalated earlier (sticky escalation)"))
        return None
    if media and tier.modalities is not None and not media <= tier.modalities:
        state.decisions.append(Decision(index, True, None, None, "multimodal", skip_reason(index, tier, media)))
        return None
    request, context_note = fit_small_request(index, tier, small_request(state.request, rule))
    if request is None:
        state.decisions.append(Decision(index, True, None, None, "context", context_note))
        return None
    pull = StepPull(StepAccumulator(state.request.stop))
    started = time.perf_counter()
    try:
        generation = yield from _generate(state, index, request, pull)
    except (ConfigurationError, InvalidRequestError):
        raise
    except Exception as err:
        if pull.emitted or state.on_small_error != "defer":
            raise
        logger.warning("tier %d (%s) failed, deferring: %s", index, tier.model_name, err)
        yield CloseSteps(index)
        state.runs.append(TierRun(index, tier.model_name, Usage(), time.perf_counter() - started, 0.0))
        state.decisions.append(Decision(index, True, None, None, "error", f"tier {index} failed: {type(err).__name__}: {err}"))
        return None
    state.runs.append(TierRun(index, tier.model_name, generation.usage, time.perf_counter() - started, tier.cost(generation.usage)))
    if not generation.steps and not generation.text:
        state.decisions.append(Decision(index, True, None, None, "empty", f"tier {index} produced no tokens; deferring"))
        return None
    state.fallback = Fallback(index, request, generation)
    kept = _judge(state, index, generation, pull.outcome, context_note)
    if kept is None:
        return None
    if state.streaming and not pull.emitted:
        for piece in pull.steps.pieces if kept.steps else (kept.text,):
            yield Emit(CascadeChunk(piece, index))
    result = state.result(kept.text, index, generation=kept)
    yield Emit(CascadeChunk("", index, result=result))
    return result


def _generate(state: PlanState, index: int, request: Request, pull: StepPull) -> Generator[Effect, Any, Generation]:
    """Tier ``index``'s generation: its step stream read into ``pull`` (and closed), or — for a rule that
    reads no log-probs — its answer as text; then the samples the rule's scorer needs, if any."""
    rule, tier = state.rules[index], state.tiers[index]
    if rule_needs_logprobs(rule):
        yield from pull_steps(index, tier, request, pull, rule=rule, live=state.stream_live)
        yield CloseSteps(index)
        generation = pull.steps.generation(tier.model_name, lambda: tier.count_tokens(request.prompt_text), early=pull.early)
    else:
        generation = yield from text_generation(index, tier.model_name, request)
    plan = rule_sampling(rule)
    if plan is not None and (generation.steps or generation.text) and generation.complete:
        generation = yield from add_samples(index, request, generation, plan)
    return generation


def pull_steps(
    index: int, tier: TierView, request: Request, pull: StepPull, *, rule: DeferralRule | None, live: bool
) -> Generator[Effect, Any, None]:
    """Read tier ``index``'s step stream into ``pull`` (the caller closes it).

    ``rule``: applied right after the first step when it decides on that step alone.
    ``live``: text of an answer kept on the first step is emitted as it becomes visible.
    """
    steps = pull.steps
    yield OpenSteps(index, request)
    while not steps.done:
        event = yield NextStep(index)
        visible = steps.finish() if event is END else steps.add(event)
        if live and pull.kept and visible:
            yield Emit(CascadeChunk(visible, index))
            pull.emitted = True
        if steps.stopped:
            # a backend that stops at the stop string itself sends its end event (usage,
            # embedding) next: read one more event for it; one that would go on is closed
            after = yield NextStep(index)
            if isinstance(after, StepsEnd):
                steps.add(after)
            return
        if rule is not None and rule.first_step_only and pull.outcome is None and len(steps.steps) == 1 and not steps.done:
            pull.outcome = rule_outcome(rule, steps.generation(tier.model_name, lambda: tier.count_tokens(request.prompt_text)), index)
            if pull.outcome.defer:
                pull.early = True
                return
            if live and steps.text:
                yield Emit(CascadeChunk(steps.text, index))
                pull.emitted = True


def _judge(
    state: PlanState, index: int, generation: Generation, outcome: RuleOutcome | None, context_note: str
) -> Generation | None:
    """Record tier ``index``'s decision; the answer (with its tool calls) if it is kept, else None."""
    if outcome is None:
        outcome = rule_outcome(state.rules[index], generation, index)
    score, threshold = _number(outcome.score), _number(outcome.threshold)
    early = not generation.complete
    decision = Decision(index, outcome.defer, score, threshold, outcome.signal, outcome.reason + context_note, early)
    kept = None
    if not outcome.defer:
        rejection, calls = check_answer(generation, state.request, state.check)
        if rejection is not None:
            decision = Decision(index, True, score, threshold, outcome.signal, rejection, early)
            state.fallback = None  # an answer that failed validation is no fallback
        else:
            kept = replace(generation, tool_calls=calls)
    state.decisions.append(decision)
    return kept


def rule_outcome(rule: DeferralRule, generation: Generation, index: int) -> RuleOutcome:
    """The rule's outcome; a reply the signal cannot score (NaN log-probs, missing alternatives) defers."""
    try:
        return rule.decide(generation)
    except SignalError as err:
        signal = getattr(getattr(rule, "scorer", None), "name", type(rule).__name__)
        logger.warning("tier %d: %s; deferring", index, err)
        return RuleOutcome(True, math.nan, math.nan, signal, f"defer: tier {index} reply cannot be scored: {err}")


def _number(value: float) -> float | None:
    return None if value is None or math.isnan(value) else value
