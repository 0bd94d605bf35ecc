"""Tool-call uncertainty: score a small-tier tool call on its own tokens, not on the whole answer.

A small model's ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>`` can parse and name a
bound tool and still be a guess. The first token of such an answer is markup (``<``), so the
first-token margin says nothing about the choice; what matters is how sure the model was of the
*tool name* and of the *arguments*. This module finds each call's character span in the generated
text (tagged, fenced or bare JSON), maps it to the decoding steps that produced it, and computes:

* the **tool-name margin**: the smallest probability margin ``p1 − p2`` over the steps that wrote
  the tool name (a close runner-up at the name means the model hesitated between tools);
* the **argument quantile**: Chow-Quantile (the α-quantile of token log-probs; α=0 = the least
  confident token) over the steps that wrote the arguments object.

:class:`ToolNameMargin` and :class:`ToolArgumentsQuantile` are scorers for any
:class:`~cascade_core.decide.rules.ThresholdRule`; :class:`ToolCallRule` adds both checks to another rule.
With several calls in one answer, the least confident call counts.

Example:
    >>> import math
    >>> from cascade_core.types import Generation, TokenAlternative, TokenStep
    >>> def step(tok, p, p2=0.0):
    ...     top = (TokenAlternative(tok, math.log(p)),) + ((TokenAlternative("x", math.log(p2)),) if p2 else ())
    ...     return TokenStep(tok, math.log(p), top)
    >>> steps = [step('<tool_call>{"name": "', 0.99), step("get_weather", 0.55, 0.40),
    ...          step('", "arguments": {"city": "', 0.99), step("Paris", 0.30, 0.25), step('"}}</tool_call>', 0.99)]
    >>> gen = Generation("".join(s.token for s in steps), tuple(steps))
    >>> (call,) = tool_call_uncertainty(gen)
    >>> call.name, round(call.name_margin, 2), round(math.exp(call.arguments_quantile), 2)
    ('get_weather', 0.15, 0.3)
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cascade_core.decide import signals
from cascade_core.decide.rules import DeferralRule, RuleOutcome
from cascade_core.decide.scorers import ChowQuantile, Margin, Scorer, min_top_k_of
from cascade_core.decide.thresholds import check_threshold
from cascade_core.errors import ConfigurationError
from cascade_core.types import Generation

__all__ = [
    "ToolArgumentsQuantile",
    "ToolCallRule",
    "ToolCallSpan",
    "ToolCallUncertainty",
    "ToolNameMargin",
    "find_tool_call_spans",
    "tool_call_uncertainty",
]

_TAGGED = re.compile(r"<tool_call>(.*?)(?:</tool_call>|$)", re.DOTALL)
_NAME_KEY = re.compile(r'"name"\s*:\s*(?=")')
_ARGS_KEY = re.compile(r'"(?:arguments|parameters)"\s*:\s*')
_decoder = json.JSONDecoder()


@dataclass(frozen=True)
class ToolCallSpan:
    """Where one tool call sits in a generated text (character offsets, end exclusive).

    Attributes:
        name: The tool name.
        call: ``(start, end)`` of the call's JSON object.
        name_span: ``(start, end)`` of the name string's characters (without quotes).
        arguments_span: ``(start, end)`` of the arguments JSON value (``None`` if absent).
    """

    name: str
    call: tuple[int, int]
    name_span: tuple[int, int]
    arguments_span: tuple[int, int] | None


def _json_at(text: str, start: int) -> tuple[Any, int] | None:
    try:
        return _decoder.raw_decode(text, start)
    except json.JSONDecodeError:
        return None


def _span_of(text: str, start: int, end: int) -> ToolCallSpan | None:
    """The call object decoded at ``start`` (ending at ``end``), located field by field."""
    decoded = _json_at(text, start)
    if decoded is None or not isinstance(decoded[0], dict) or not isinstance(decoded[0].get("name"), str):
        return None
    obj = decoded[0]
    args: tuple[int, int] | None = None
    for match in _ARGS_KEY.finditer(text, start, end):
        value = _json_at(text, match.end())
        if value is not None and value[0] == obj.get("arguments", obj.get("parameters")):
            args = (match.end(), value[1])
            break
    for match in _NAME_KEY.finditer(text, start, end):
        value = _json_at(text, match.end())
        inside_args = args is not None and args[0] <= match.start() < args[1]
        if value is not None and value[0] == obj["name"] and not inside_args:
            return ToolCallSpan(obj["name"], (start, end), (match.end() + 1, value[1] - 1), args)
    return None


def _spans_in(text: str) -> list[ToolCallSpan]:
    spans: list[ToolCallSpan] = []
    for block in _TAGGED.finditer(text):
        begin = text.find("{", block.start(1), block.end(1))
        decoded = _json_at(text, begin) if begin >= 0 else None
        if decoded is not None and (span := _span_of(text, begin, decoded[1])) is not None:
            spans.append(span)
    if spans or "<tool_call>" in text:
        return spans
    position = text.find("{")
    while position >= 0:
        decoded = _json_at(text, position)
        span = _span_of(text, position, decoded[1]) if decoded is not None else None
        if span is not None:
            spans.append(span)
        position = text.find("{", decoded[1] if span is not None and decoded is not None else position + 1)
    return spans


def _undoubled(text: str) -> tuple[str, list[int], list[int]]:
    """``text`` with every doubled brace (``{{``, ``}}``) read once, and where each character of the
    result starts and ends in ``text``."""
    chars: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    i = 0
    while i < len(text):
        width = 2 if text[i] in "{}" and text[i + 1:i + 2] == text[i] else 1
        chars.append(text[i])
        starts.append(i)
        ends.append(i + width)
        i += width
    return "".join(chars), starts, ends


def find_tool_call_spans(text: str) -> list[ToolCallSpan]:
    """Every tool call in ``text``: ``<tool_call>`` blocks, or else JSON objects with a ``"name"``
    (bare, in a fenced code block, wrapped in ``<tool_response>`` or after other text), in order.

    Calls whose braces are all doubled (``{{"name": …, "arguments": {{…}}}}``, which the parser in
    :mod:`cascade_core.engine.tool_calls` accepts) are found too, their spans in ``text``'s own offsets.

    >>> [s.name for s in find_tool_call_spans('```json\\n{"name": "add", "arguments": {"a": 1}}\\n```')]
    ['add']
    >>> text = '{{"name": "add", "arguments": {{"a": 1}}}}'
    >>> (span,) = find_tool_call_spans(text)
    >>> text[slice(*span.arguments_span)]
    '{{"a": 1}}'
    """
    spans = _spans_in(text)
    if spans or "{{" not in text:
        return spans
    clean, starts, ends = _undoubled(text)

    def back(span: tuple[int, int]) -> tuple[int, int]:
        return starts[span[0]], ends[span[1] - 1]

    return [ToolCallSpan(s.name, back(s.call), back(s.name_span), back(s.arguments_span) if s.arguments_span else None)
            for s in _spans_in(clean)]


def _step_offsets(generation: Generation) -> np.ndarray:
    """Start offset of every step's text in the generated text, plus the total length."""
    lengths = [len(step.output_text) for step in generation.steps]
    return np.concatenate([[0], np.cumsum(lengths)]).astype(int)


def _steps_over(offsets: np.ndarray, span: tuple[int, int]) -> list[int]:
    """Indices of the steps whose text overlaps ``[start, end)``."""
    start, end = span
    return [i for i in range(len(offsets) - 1) if offsets[i] < end and offsets[i + 1] > start and offsets[i + 1] > offsets[i]]


@dataclass(frozen=True)
class ToolCallUncertainty:
    """The uncertainty of one tool call, from the steps that wrote it.

    Attributes:
        name: The tool name.
        name_margin: Smallest probability margin ``p1 − p2`` over the name's steps.
        arguments_quantile: Chow-Quantile of the log-probs over the arguments' steps (the whole
            call's steps when it has no arguments).
        name_steps: Indices of the steps that wrote the name.
        arguments_steps: Indices of the steps that wrote the arguments.
    """

    name: str
    name_margin: float
    arguments_quantile: float
    name_steps: tuple[int, ...]
    arguments_steps: tuple[int, ...]


def tool_call_uncertainty(generation: Generation, alpha: float = 0.0) -> list[ToolCallUncertainty]:
    """The uncertainty of every tool call in a generation (empty list: no call found)."""
    signals.chow_quantile([0.0], alpha)  # validates alpha
    spans = find_tool_call_spans(generation.text)
    if not spans or not generation.steps:
        return []
    offsets = _step_offsets(generation)
    logprobs = generation.logprobs
    out = []
    for span in spans:
        name_steps = _steps_over(offsets, span.name_span)
        arg_steps = _steps_over(offsets, span.arguments_span or span.call)
        if not name_steps or not arg_steps:  # the span lies beyond the recorded steps (should not happen)
            continue
        margin = min(signals.first_token_margin(generation.steps[i], distinct=False) for i in name_steps)
        quantile = signals.chow_quantile(logprobs[arg_steps], alpha)
        out.append(ToolCallUncertainty(span.name, float(margin), float(quantile), tuple(name_steps), tuple(arg_steps)))
    return out


@dataclass(frozen=True)
class ToolNameMargin:
    """Scorer: the tool-name margin of the least sure call; ``fallback`` scores answers without one.

    Example:
        >>> ToolNameMargin().name, ToolNameMargin().score_range
        ('tool_name_margin', (0.0, 1.0))
    """

    fallback: Scorer = Margin()
    first_step_only: bool = False

    @property
    def name(self) -> str:
        return "tool_name_margin"

    @property
    def score_range(self) -> tuple[float, float]:
        return (0.0, 1.0)

    def __call__(self, generation: Generation) -> float:
        calls = tool_call_uncertainty(generation)
        return min(c.name_margin for c in calls) if calls else float(self.fallback(generation))


@dataclass(frozen=True)
class ToolArgumentsQuantile:
    """Scorer: Chow-Quantile over the arguments of the least sure call; ``fallback`` otherwise.

    Example:
        >>> ToolArgumentsQuantile(alpha=0.1).name
        'tool_arguments_quantile(alpha=0.1)'
    """

    alpha: float = 0.0
    fallback: Scorer | None = None
    first_step_only: bool = False

    def __post_init__(self) -> None:
        signals.chow_quantile([0.0], self.alpha)
        if self.fallback is None:
            object.__setattr__(self, "fallback", ChowQuantile(self.alpha))

    @property
    def name(self) -> str:
        return f"tool_arguments_quantile(alpha={self.alpha:g})"

    @property
    def score_range(self) -> tuple[float, float]:
        return (-math.inf, 0.0)

    def __call__(self, generation: Generation) -> float:
        calls = tool_call_uncertainty(generation, self.alpha)
        assert self.fallback is not None
        return min(c.arguments_quantile for c in calls) if calls else float(self.fallback(generation))


class ToolCallRule:
    """Another rule, plus: a tool call is kept only if its name margin and argument quantile clear
    their thresholds. Answers without a tool call are decided by ``base`` alone.

    Args:
        base: The rule for the answer as a whole (e.g. ``ThresholdRule("margin", 0.3)``).
        name_threshold: Minimum tool-name margin, in [0, 1] (None: not checked).
        arguments_threshold: Minimum argument Chow-Quantile, a log-prob <= 0 (None: not checked).
        alpha: Quantile of the argument log-probs (0 = least confident token).

    The rule needs the whole answer, so the small tier is not stopped after its first token (with
    tools bound the answer is buffered until judged anyway).

    Example:
        >>> from cascade_core.decide.rules import ThresholdRule
        >>> rule = ToolCallRule(ThresholdRule("margin", 0.3), name_threshold=0.2, arguments_threshold=-2.0)
        >>> rule.first_step_only
        False
    """

    def __init__(self, base: DeferralRule, *, name_threshold: float | None = 0.2,
                 arguments_threshold: float | None = None, alpha: float = 0.0) -> None:
        if not isinstance(base, DeferralRule):
            raise ConfigurationError(f"ToolCallRule.base must be a DeferralRule such as ThresholdRule, got {base!r}")
        if name_threshold is None and arguments_threshold is None:
            raise ConfigurationError("ToolCallRule needs name_threshold, arguments_threshold or both")
        self.base = base
        self.name_threshold = None if name_threshold is None else check_threshold(
            name_threshold, (0.0, 1.0), name="ToolCallRule.name_threshold")
        self.arguments_threshold = None if arguments_threshold is None else check_threshold(
            arguments_threshold, (-math.inf, 0.0), name="ToolCallRule.arguments_threshold")
        signals.chow_quantile([0.0], alpha)
        self.alpha = alpha

    @property
    def first_step_only(self) -> bool:
        return False

    @property
    def first_step_tokens(self) -> tuple[str, ...]:
        return tuple(self.base.first_step_tokens)

    @property
    def _base_scorer(self) -> Any:
        return getattr(self.base, "scorer", self.base)

    @property
    def min_top_k(self) -> int:
        """Alternatives per step the base rule's scorer needs (checked when the cascade is built)."""
        return min_top_k_of(self._base_scorer)

    @property
    def needs_embedding(self) -> bool:
        """Whether the base rule's scorer reads the small model's pooled embedding (the cascade then records it)."""
        return bool(getattr(self._base_scorer, "needs_embedding", False))

    @property
    def embedding_dim(self) -> int | None:
        """Width of the embedding the base rule's scorer reads (None: none, or not known)."""
        return getattr(self._base_scorer, "embedding_dim", None)

    def decide(self, generation: Generation) -> RuleOutcome:
        outcome = self.base.decide(generation)
        calls = tool_call_uncertainty(generation, self.alpha)
        if outcome.defer or not calls:
            return outcome
        checks: Sequence[tuple[str, float | None, float]] = (
            ("tool_name_margin", self.name_threshold, min(c.name_margin for c in calls)),
            (f"tool_arguments_quantile(alpha={self.alpha:g})", self.arguments_threshold,
             min(c.arguments_quantile for c in calls)),
        )
        for signal, threshold, score in checks:
            if threshold is not None and not score >= threshold:
                names = ", ".join(c.name for c in calls)
                return RuleOutcome(True, score, threshold, signal,
                                   f"defer: {signal}={score:.4g} < threshold {threshold:.4g} for tool call {names}")
        return outcome

    def __repr__(self) -> str:
        return (f"ToolCallRule(base={self.base!r}, name_threshold={self.name_threshold!r}, "
                f"arguments_threshold={self.arguments_threshold!r}, alpha={self.alpha!r})")
