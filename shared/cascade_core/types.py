"""Framework-free data types shared by backends, signals, rules and the engine.

Requests (:class:`Request`, :class:`Message`, :class:`ToolSpec`), what tiers send back
(:class:`TokenStep` … :class:`StepsEnd` from a small tier's step stream, :class:`Completion` and
:class:`CompletionChunk` from the last tier) and what they cost (:class:`Usage`).

The adapters translate LangChain / LlamaIndex objects into these types and back; nothing here
knows about either framework.

Example:
    >>> from cascade_core.types import Message, Request
    >>> req = Request.from_messages([Message("user", "What is the capital of France?")])
    >>> req.messages[0].role
    'user'
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np

from cascade_core.errors import InvalidRequestError, SignalError

__all__ = [
    "Completion",
    "CompletionChunk",
    "Generation",
    "Message",
    "Request",
    "Role",
    "StepsEnd",
    "TextSamples",
    "TokenAlternative",
    "TokenStep",
    "ToolCall",
    "ToolSpec",
    "Usage",
]

Role = Literal["system", "user", "assistant", "tool"]


def _check_text(value: str, where: str) -> None:
    """Reject text that cannot be sent as UTF-8 (a lone surrogate such as ``"\\ud800"``)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:
        raise InvalidRequestError(
            f"{where} is not valid Unicode: lone surrogate {value[err.start]!r} at position {err.start}; "
            "decode the text properly (e.g. errors='replace') before sending it"
        ) from None
_ROLES: tuple[str, ...] = ("system", "user", "assistant", "tool")


@dataclass(frozen=True)
class ToolCall:
    """A call of a tool requested by a model.

    Attributes:
        name: Name of the tool.
        arguments: Parsed JSON arguments.
        id: Identifier used to match the tool's result message.
    """

    name: str
    arguments: dict[str, Any]
    id: str = ""


@dataclass(frozen=True)
class ToolSpec:
    """A tool a model may call, described by a JSON schema (OpenAI function format).

    Attributes:
        name: Tool name (what the model must emit).
        description: What the tool does.
        parameters: JSON schema of the arguments object.
    """

    name: str
    description: str = ""
    parameters: Mapping[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})

    def to_openai(self) -> dict[str, Any]:
        """The tool in OpenAI's ``tools=[{"type": "function", ...}]`` format."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": dict(self.parameters),
            },
        }


@dataclass(frozen=True)
class Message:
    """One chat message.

    Attributes:
        role: ``"system"``, ``"user"``, ``"assistant"`` or ``"tool"``.
        content: The text of the message.
        tool_calls: Tool calls made by an assistant message.
        tool_call_id: For ``role="tool"``: the id of the call this message answers.
        name: Optional name (tool name for tool results).
        parts: Non-text content (:class:`~cascade_core.engine.content.MediaPart`: images, audio, files);
            a text-only small tier is skipped for such a request (see :mod:`cascade_core.engine.content`).
    """

    role: Role
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    name: str | None = None
    parts: tuple[Any, ...] = ()

    def __post_init__(self) -> None:
        if self.role not in _ROLES:
            raise InvalidRequestError(f"message role must be one of {list(_ROLES)}, got {self.role!r}")
        if not isinstance(self.content, str):
            raise InvalidRequestError(
                f"message content must be text (str), got {type(self.content).__name__}; "
                "pass images, audio, files and other non-text content as parts=(MediaPart(...), ...)"
            )
        _check_text(self.content, f"{self.role} message content")
        from cascade_core.engine.content import MediaPart

        if not isinstance(self.parts, tuple):
            object.__setattr__(self, "parts", tuple(self.parts))
        for part in self.parts:
            if not isinstance(part, MediaPart):
                raise InvalidRequestError(f"message parts must be cascade_core.engine.content.MediaPart, got {type(part).__name__}")

    def to_openai(self) -> dict[str, Any]:
        """The message as an OpenAI chat-completions message dict."""
        out: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.tool_calls:
            import json

            out["tool_calls"] = [
                {
                    "id": call.id or f"call_{i}",
                    "type": "function",
                    "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
                }
                for i, call in enumerate(self.tool_calls)
            ]
        if self.tool_call_id is not None:
            out["tool_call_id"] = self.tool_call_id
        if self.name is not None and self.role == "tool":
            out["name"] = self.name
        return out


@dataclass(frozen=True)
class Request:
    """Everything a tier needs to answer one query.

    Attributes:
        messages: The conversation, oldest first (at least one message).
        tools: Tools the model may call.
        tool_choice: ``None``/``"auto"``, ``"none"``, ``"required"`` (``"any"`` is read as it) or a tool name.
        max_new_tokens: Cap on generated tokens (``None`` = the backend's default).
        stop: Stop strings; generation ends before the first one.
        response_schema: JSON schema the answer must follow (structured output), if any.
        first_step_tokens: Token strings whose first-step log-probs the small tier should record
            even when they are outside the top-k (label first-tokens for a classification margin).
        metadata: Free-form values passed through to the result.
        temperature: Sampling temperature for the tiers (``None`` = each backend's own setting).
    """

    messages: tuple[Message, ...]
    tools: tuple[ToolSpec, ...] = ()
    tool_choice: str | None = None
    max_new_tokens: int | None = None
    stop: tuple[str, ...] = ()
    response_schema: Mapping[str, Any] | None = None
    first_step_tokens: tuple[str, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)
    temperature: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.messages, tuple):
            object.__setattr__(self, "messages", tuple(self.messages))
        if not self.messages:
            raise InvalidRequestError("request has no messages: pass at least one message")
        for i, message in enumerate(self.messages):
            if not isinstance(message, Message):
                raise InvalidRequestError(
                    f"messages[{i}] must be a cascade_core.types.Message, got {type(message).__name__}"
                )
        if self.max_new_tokens is not None and (
            isinstance(self.max_new_tokens, bool) or not isinstance(self.max_new_tokens, int) or self.max_new_tokens < 1
        ):
            raise InvalidRequestError(f"max_new_tokens must be a positive int, got {self.max_new_tokens!r}")
        if self.temperature is not None and (
            isinstance(self.temperature, bool) or not isinstance(self.temperature, (int, float))
            or not 0 <= self.temperature <= 2
        ):
            raise InvalidRequestError(f"temperature must be a number in [0, 2], got {self.temperature!r}")
        if isinstance(self.stop, str):
            object.__setattr__(self, "stop", (self.stop,))
        elif not isinstance(self.stop, tuple):
            object.__setattr__(self, "stop", tuple(self.stop))
        if any(not isinstance(s, str) or not s for s in self.stop):
            raise InvalidRequestError(f"stop must be non-empty strings, got {self.stop!r}")
        for stop in self.stop:
            _check_text(stop, "stop string")
        if not isinstance(self.tools, tuple):
            object.__setattr__(self, "tools", tuple(self.tools))
        names = [t.name for t in self.tools]
        if self.tool_choice == "any":  # LangChain's spelling of "required": read once, here
            object.__setattr__(self, "tool_choice", "required")
        if self.tool_choice not in (None, "auto", "none", "required") and self.tool_choice not in names:
            raise InvalidRequestError(
                f"tool_choice {self.tool_choice!r} is neither 'auto', 'none', 'required' nor a bound tool {names}"
            )

    @classmethod
    def from_messages(cls, messages: Iterable[Message], **kwargs: Any) -> Request:
        """Build a request from messages and optional fields."""
        return cls(messages=tuple(messages), **kwargs)

    @classmethod
    def from_prompt(cls, prompt: str, **kwargs: Any) -> Request:
        """Build a single-user-message request from a prompt string."""
        return cls(messages=(Message("user", prompt),), **kwargs)

    def replace(self, **changes: Any) -> Request:
        """A copy with some fields changed."""
        return replace(self, **changes)

    @property
    def prompt_text(self) -> str:
        """All message contents joined by newlines (used for token counting)."""
        return "\n".join(m.content for m in self.messages)


@dataclass(frozen=True)
class Usage:
    """Token counts of one model call."""

    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.input_tokens + other.input_tokens, self.output_tokens + other.output_tokens)


@dataclass(frozen=True)
class TokenAlternative:
    """One candidate token at a decoding step with its log-probability."""

    token: str
    logprob: float


@dataclass(frozen=True)
class TokenStep:
    """One decoding step of the small model.

    Attributes:
        token: The emitted token's text.
        logprob: Log-probability of the emitted token, ``log p_t(y_t)``.
        top: The top-k alternatives at this step, sorted by log-prob descending (plus any
            requested ``first_step_tokens`` at step 0). Empty if the backend gives none.
        token_id: Vocabulary id when known.
        text: The text this step adds to the output when it differs from ``token`` (incremental
            detokenisation: ``""`` while a multi-byte character is incomplete). ``None`` = ``token``.
    """

    token: str
    logprob: float
    top: tuple[TokenAlternative, ...] = ()
    token_id: int | None = None
    text: str | None = None

    @property
    def output_text(self) -> str:
        """The text this step contributes to the answer."""
        return self.token if self.text is None else self.text

    def __post_init__(self) -> None:
        if math.isnan(self.logprob) or self.logprob > 1e-6:
            raise SignalError(f"token log-prob must be <= 0 and not NaN, got {self.logprob}")


@dataclass(frozen=True)
class Generation:
    """One small-model generation: the tokens, their log-probs and top-k, optionally an embedding.

    This is what every uncertainty signal is computed from.

    Attributes:
        text: Generated text (after stop-string truncation).
        steps: One :class:`TokenStep` per generated token.
        usage: Token usage of the call.
        finish_reason: ``"stop"``, ``"length"``, ``"early_exit"`` (stopped by the cascade after the
            first step) or ``"tool_calls"``.
        model_name: Name of the model that generated it.
        embedding: Pooled hidden state (mean over generated tokens of the last layer), if recorded.
        tool_calls: Tool calls parsed from the text, if any.
        samples: Texts of answers sampled at a temperature > 0 for the same request (what the
            ``sample_agreement`` signal compares with ``text``); empty unless the rule asked for them.
            ``steps`` may then be empty too: a rule that needs no log-probs gets the answer as text.
        sample_usage: The part of ``usage`` spent on ``samples`` (``usage`` counts every call made
            for this generation: the greedy one and the k sampled ones).
    """

    text: str
    steps: tuple[TokenStep, ...]
    usage: Usage = field(default_factory=Usage)
    finish_reason: str = "stop"
    model_name: str = ""
    embedding: np.ndarray | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    samples: tuple[str, ...] = ()
    sample_usage: Usage = field(default_factory=Usage)

    @property
    def logprobs(self) -> np.ndarray:
        """Per-token log-probs ``log p_t(y_t)`` as a float array of length T."""
        return np.fromiter((s.logprob for s in self.steps), dtype=np.float64, count=len(self.steps))

    @property
    def top_logprobs(self) -> list[np.ndarray]:
        """Per step, the top-k log-probs (descending)."""
        return [np.array([a.logprob for a in s.top], dtype=np.float64) for s in self.steps]

    @property
    def complete(self) -> bool:
        """False when the cascade stopped the model early (only the first step exists)."""
        return self.finish_reason != "early_exit"


@dataclass(frozen=True)
class Completion:
    """A text answer of any tier (what the large tier must give).

    Attributes:
        text: Answer text.
        usage: Token usage.
        model_name: Name of the model that answered.
        tool_calls: Tool calls requested by the model.
        finish_reason: Why generation ended, if known.
        raw: The backend's own object (e.g. a LangChain ``AIMessage``), passed through untouched.
    """

    text: str
    usage: Usage = field(default_factory=Usage)
    model_name: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: str | None = None
    raw: Any = None


@dataclass(frozen=True)
class TextSamples:
    """Answers generated as plain text (no log-probs) for one request: what ``generate_texts`` returns.

    Attributes:
        texts: One answer per generation, stop strings cut.
        usage: Token usage of all of them together.
        calls: Model calls made (requests to a server; 1 for a batched local generation of all).
    """

    texts: tuple[str, ...]
    usage: Usage = field(default_factory=Usage)
    calls: int = 1


@dataclass(frozen=True)
class StepsEnd:
    """Last event of a small tier's step stream: usage, why it ended, optional pooled embedding."""

    usage: Usage | None = None
    finish_reason: str = "stop"
    embedding: np.ndarray | None = None


@dataclass(frozen=True)
class CompletionChunk:
    """One streamed piece of a large-tier answer.

    Attributes:
        text: Text delta.
        raw: The backend's own chunk object (e.g. a LangChain ``AIMessageChunk``), untouched.
        usage: Usage, usually only on the last chunk.
        tool_calls: Complete tool calls known at this chunk (usually the last).
    """

    text: str = ""
    raw: Any = None
    usage: Usage | None = None
    tool_calls: tuple[ToolCall, ...] = ()


def ensure_messages(messages: Sequence[Message] | Request) -> Request:
    """Coerce a sequence of messages or a request into a :class:`Request`."""
    if isinstance(messages, Request):
        return messages
    if isinstance(messages, str):
        return Request.from_prompt(messages)
    return Request.from_messages(messages)
