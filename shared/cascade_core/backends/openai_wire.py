"""Reading the OpenAI wire format: token log-probs into :class:`~cascade_core.types.TokenStep`, usage,
streamed tool-call deltas, and ``tool_choice`` in the API's spelling.

Pure functions over the ``openai`` package's response objects (or plain dicts of the same shape),
shared by the streaming and non-streaming paths of :class:`~cascade_core.backends.openai.OpenAIModel`.

Example:
    >>> step = read_step("Paris", -0.1, [("Paris", -0.1), ("Lyon", -2.5)])
    >>> step.token, [a.token for a in step.top]
    ('Paris', ['Paris', 'Lyon'])
"""

from __future__ import annotations

import json
import math
from typing import Any

from cascade_core.engine.tool_calls import recover_text_tool_calls
from cascade_core.errors import BackendError
from cascade_core.types import CompletionChunk, Request, TokenAlternative, TokenStep, ToolCall, Usage

__all__ = ["ToolCallDeltas", "api_tool_choice", "read_step", "read_steps", "read_usage", "tool_call_from_wire"]


def api_tool_choice(choice: str | None) -> Any:
    """The core's normalised ``tool_choice`` in the chat-completions API's spelling."""
    if choice in (None, "auto", "none", "required"):
        return choice
    return {"type": "function", "function": {"name": choice}}


_LOGPROB_TOLERANCE = 1e-6  # servers round; a log-prob a hair above 0 is 0, anything more is garbage


def _logprob(value: Any, token: Any, what: str) -> float:
    """A server-sent log-prob, checked: a number, not NaN, not positive (tiny rounding excepted)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if math.isnan(number) or number > _LOGPROB_TOLERANCE:
        raise BackendError(f"server sent an invalid {what} log-prob {value!r} for token {str(token)[:40]!r} (must be <= 0)")
    return min(0.0, number)


def _field(obj: Any, name: str) -> Any:
    """``obj.name`` or ``obj[name]`` (completion chunks carry llama.cpp's chat-style log-probs as plain dicts)."""
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


def read_step(token: str, logprob: Any, alternatives: list[tuple[str, Any]]) -> TokenStep:
    """One validated step: the token's log-prob and its alternatives, most likely first."""
    top = tuple(sorted((TokenAlternative(t, _logprob(lp, t, "alternative")) for t, lp in alternatives),
                       key=lambda a: a.logprob, reverse=True))
    return TokenStep(token, _logprob(logprob, token, "token"), top)


def read_steps(chunk: Any) -> list[TokenStep]:
    """TokenSteps from one streamed chunk's ``choices[0].logprobs`` (validated).

    Chat chunks carry ``logprobs.content`` (a list of tokens with ``top_logprobs``); completion chunks
    carry either the same list (llama.cpp) or the legacy ``tokens`` / ``token_logprobs`` /
    ``top_logprobs`` (a dict per token) form (OpenAI, vLLM).
    """
    if not chunk.choices:
        return []
    logprobs = _field(chunk.choices[0], "logprobs")
    if logprobs is None:
        return []
    content = _field(logprobs, "content")
    if content:
        return [
            read_step(_field(item, "token"), _field(item, "logprob"),
                  [(_field(a, "token"), _field(a, "logprob")) for a in (_field(item, "top_logprobs") or [])])
            for item in content
        ]
    tokens, values, tops = (_field(logprobs, k) or [] for k in ("tokens", "token_logprobs", "top_logprobs"))
    return [read_step(t, lp, list((top or {}).items())) for t, lp, top in zip(tokens, values, tops or [None] * len(tokens))]


def read_usage(raw: Any) -> Usage | None:
    """Token usage from a response's ``usage`` object, if the server sent one."""
    if raw is None:
        return None
    return Usage(int(raw.prompt_tokens or 0), int(raw.completion_tokens or 0))


class ToolCallDeltas:
    """Accumulates streamed tool-call deltas into complete calls.

    With tools bound it also holds the answer's text back (``hold``): a local server may return a
    call as text (llama.cpp with Qwen2.5 writes a ```json block), which becomes a tool call at the end.
    """

    def __init__(self, request: Request) -> None:
        self.parts: dict[int, dict[str, str]] = {}
        self.request = request
        self.hold = bool(request.tools) and request.tool_choice != "none"
        self.text: list[str] = []
        self.usage: Usage | None = None

    def end(self) -> list[CompletionChunk]:
        """The held text (tool-call markup removed when it was a call) and the final chunk with the calls."""
        calls, text = self.calls(), "".join(self.text)
        if not calls:
            calls, text = recover_text_tool_calls(text, self.request)
        held = [CompletionChunk(text, usage=self.usage)] if text or self.usage else []
        return [*held, CompletionChunk("", tool_calls=calls)]

    def add(self, chunk: Any) -> None:
        if not chunk.choices:
            return
        for delta in getattr(chunk.choices[0].delta, "tool_calls", None) or []:
            part = self.parts.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
            part["id"] = delta.id or part["id"]
            if delta.function is not None:
                part["name"] += delta.function.name or ""
                part["arguments"] += delta.function.arguments or ""

    def calls(self) -> tuple[ToolCall, ...]:
        return tuple(tool_call_from_wire(p["name"], p["arguments"], p["id"]) for _, p in sorted(self.parts.items()))


def tool_call_from_wire(name: str, arguments: str, call_id: str) -> ToolCall:
    """A :class:`ToolCall` from the wire's name and JSON-string arguments (not JSON -> BackendError)."""
    try:
        args = json.loads(arguments) if arguments else {}
    except json.JSONDecodeError as err:
        raise BackendError(f"server returned tool call {name!r} with arguments that are not JSON: {arguments[:80]!r}") from err
    return ToolCall(name, args if isinstance(args, dict) else {"value": args}, call_id)
