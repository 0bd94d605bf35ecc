"""Whether a small-tier answer the rule would keep may stand: tool calls, tool choice, the caller's check.

Example:
    >>> from cascade_core.types import Generation, Request
    >>> check_answer(Generation("Paris", ()), Request.from_prompt("Q"), lambda g: "too short")
    ('answer check failed: too short', ())
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from cascade_core.engine.tool_calls import ToolCallError, parse_tool_calls
from cascade_core.types import Generation, Request, ToolCall

__all__ = ["AnswerCheck", "check_answer"]

#: A caller-supplied check of a small-tier answer: returns a reason to reject it (→ defer) or None.
#: It sees the generation with its parsed ``tool_calls`` (e.g. to validate structured output).
AnswerCheck = Callable[[Generation], "str | None"]


def check_answer(
    generation: Generation, request: Request, check: AnswerCheck | None
) -> tuple[str | None, tuple[ToolCall, ...]]:
    """Reason to reject a small answer (or None) and the tool calls parsed from it."""
    calls: tuple[ToolCall, ...] = ()
    if request.tools and request.tool_choice != "none":
        try:
            calls = parse_tool_calls(generation.text, request.tools)
        except ToolCallError as err:
            return f"small-tier tool call rejected: {err}", ()
        if not calls and (request.tool_choice == "required" or request.tool_choice in {t.name for t in request.tools}):
            return f"tool_choice={request.tool_choice!r} but the small tier called no tool", ()
    if check is not None:
        try:  # the check sees the parsed tool calls (e.g. to validate their arguments)
            reason = check(replace(generation, tool_calls=calls))
        except Exception as err:  # a failing check is a rejection, never a crash of the call
            reason = f"{type(err).__name__}: {err}"
        if reason:
            return f"answer check failed: {reason}", calls
    return None, calls
