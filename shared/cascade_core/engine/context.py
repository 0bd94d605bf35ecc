"""Fit a conversation into the small tier's context window (pure functions used by the plan).

The small tier sees the whole conversation — system messages, earlier turns, tool calls and
results — not only the last message. When the conversation is longer than the tier's context
window allows (prompt + the tokens it may generate), the *oldest turns* are dropped, whole (a turn
starts at a user message and holds the answers, tool calls and tool results that follow it, so
no tool result loses its call). System messages and the last turn are always kept; when even they
do not fit, the small tier cannot see the question and the plan defers with reason ``"context"``.

Token counts come from the tier's own counter (its tokenizer for a local model) plus
:data:`MESSAGE_OVERHEAD` tokens per message for the chat template's role markers.

Example:
    >>> from cascade_core.types import Message, Request
    >>> req = Request.from_messages([Message("system", "Be brief."), Message("user", "one two three"),
    ...                              Message("assistant", "four five"), Message("user", "six?")])
    >>> fitted = fit_to_context(req, lambda t: len(t.split()), context_window=24, reserve=4)
    >>> [m.content for m in fitted.request.messages], fitted.dropped
    (['Be brief.', 'six?'], 2)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cascade_core.errors import ConfigurationError
from cascade_core.types import Message, Request

__all__ = ["MESSAGE_OVERHEAD", "FittedRequest", "check_context_window", "fit_to_context"]

#: Tokens counted per message for the chat template's role markers and separators.
MESSAGE_OVERHEAD = 8


@dataclass(frozen=True)
class FittedRequest:
    """A request cut to a context window.

    Attributes:
        request: The request the small tier will see.
        dropped: Messages dropped from the start of the conversation (0: it fitted whole).
        prompt_tokens: Estimated prompt tokens of ``request``.
    """

    request: Request
    dropped: int
    prompt_tokens: int


def check_context_window(value: Any, owner: str) -> int | None:
    """Validate a declared context window (None: unknown, no truncation)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"{owner} context_window must be a positive int or None, got {value!r}")
    return value


def _turns(messages: tuple[Message, ...]) -> list[list[int]]:
    """Indices of the non-system messages grouped in turns (a turn starts at a user message)."""
    turns: list[list[int]] = []
    for i, message in enumerate(messages):
        if message.role == "system":
            continue
        if message.role == "user" or not turns:
            turns.append([i])
        else:
            turns[-1].append(i)
    return turns


def fit_to_context(
    request: Request, count_tokens: Callable[[str], int], context_window: int, reserve: int = 0
) -> FittedRequest | None:
    """The request with its oldest turns dropped until ``prompt + reserve <= context_window``.

    Returns None when the system messages and the last turn alone do not fit.
    """
    messages = request.messages
    cost = [count_tokens(m.content) + MESSAGE_OVERHEAD for m in messages]
    budget = context_window - max(reserve, 0)
    total = sum(cost)
    if total <= budget:
        return FittedRequest(request, 0, total)
    turns = _turns(messages)
    dropped: set[int] = set()
    for turn in turns[:-1]:  # the last turn holds the question: never dropped
        dropped.update(turn)
        total -= sum(cost[i] for i in turn)
        if total <= budget:
            kept = tuple(m for i, m in enumerate(messages) if i not in dropped)
            return FittedRequest(request.replace(messages=kept), len(dropped), total)
    return None
