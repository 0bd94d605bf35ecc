"""Conversion between LlamaIndex objects and ``cascade_core`` types (no cascade logic here).

- ``ChatMessage`` (text, tool-call and tool-result blocks) → :class:`cascade_core.types.Message`
- ``BaseTool`` → :class:`LlamaIndexToolSpec` (a core ``ToolSpec`` that remembers its tool)
- :class:`cascade_core.CascadeResult` → ``ChatResponse`` carrying the decision
- core messages / tool specs → LlamaIndex objects, for a LlamaIndex LLM used as the large tier
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from llama_index.core.base.llms.types import (
    CachePoint,
    ChatMessage,
    ChatResponse,
    CompletionResponse,
    MessageRole,
    TextBlock,
    ThinkingBlock,
    ToolCallBlock,
)
from llama_index.core.bridge.pydantic import BaseModel, ValidationError
from llama_index.core.callbacks.token_counting import get_tokens_from_response
from llama_index.core.tools.types import BaseTool, ToolMetadata, ToolOutput

from cascade_core.engine import AnswerCheck
from cascade_core.engine.result import CascadeResult
from cascade_core.engine.tool_choice import normalize_tool_choice
from cascade_core.engine.visible import visible_text
from cascade_core.errors import InvalidRequestError
from cascade_core.types import Generation, Message, Request, ToolCall, ToolSpec, Usage
from llamaindex_cascade._media import media_part

__all__ = [
    "LlamaIndexToolSpec",
    "build_request",
    "chat_response",
    "to_chat_messages",
    "to_core_messages",
    "to_llama_tools",
    "tool_arguments_check",
    "tool_calls_of",
    "tool_kwargs_dict",
    "usage_of",
]

logger = logging.getLogger(__name__)

_ROLES: dict[str, str] = {
    MessageRole.SYSTEM.value: "system",
    MessageRole.DEVELOPER.value: "system",
    MessageRole.USER.value: "user",
    MessageRole.ASSISTANT.value: "assistant",
    MessageRole.MODEL.value: "assistant",
    MessageRole.CHATBOT.value: "assistant",
    MessageRole.TOOL.value: "tool",
    MessageRole.FUNCTION.value: "tool",
}
_SKIPPED_BLOCKS = (ThinkingBlock, CachePoint)  # model-private reasoning / cache markers carry no prompt text


@dataclass(frozen=True)
class LlamaIndexToolSpec(ToolSpec):
    """A core :class:`~cascade_core.types.ToolSpec` that keeps the LlamaIndex tool it describes.

    The small tier sees only the JSON schema; a LlamaIndex large tier gets the original tool back.
    """

    tool: Any = field(default=None, compare=False, repr=False)


# -- LlamaIndex → core -----------------------------------------------------------------------------
def _arguments(raw: Any, where: str) -> dict[str, Any]:
    if isinstance(raw, Mapping):
        return dict(raw)
    if isinstance(raw, str):
        try:
            parsed = json.loads(raw) if raw.strip() else {}
        except json.JSONDecodeError as err:
            raise InvalidRequestError(
                f"{where}: tool call arguments are not valid JSON: {raw[:80]!r}"
            ) from err
        return parsed if isinstance(parsed, dict) else {"value": parsed}
    raise InvalidRequestError(
        f"{where}: tool call arguments must be a dict or a JSON string, got {type(raw).__name__}"
    )


def _legacy_tool_calls(message: ChatMessage, where: str) -> list[ToolCall]:
    """Tool calls stored OpenAI-style in ``additional_kwargs["tool_calls"]`` (older integrations)."""
    calls = []
    for item in message.additional_kwargs.get("tool_calls") or []:
        if isinstance(item, Mapping):
            function, call_id = item.get("function") or {}, item.get("id") or ""
            name, arguments = function.get("name", ""), function.get("arguments", "{}")
        else:
            function, call_id = getattr(item, "function", None), getattr(item, "id", "") or ""
            name, arguments = getattr(function, "name", ""), getattr(function, "arguments", "{}")
        calls.append(ToolCall(name or "", _arguments(arguments, where), call_id))
    return calls


def _core_message(index: int, message: ChatMessage, names_by_id: dict[str, str]) -> Message:
    where = f"messages[{index}]"
    if not isinstance(message, ChatMessage):
        raise InvalidRequestError(f"{where} must be a llama_index ChatMessage, got {type(message).__name__}")
    role_value = message.role.value if isinstance(message.role, MessageRole) else str(message.role)
    role = _ROLES.get(role_value)
    if role is None:
        raise InvalidRequestError(
            f"{where} has role {role_value!r}; the cascade accepts {sorted(set(_ROLES))}"
        )
    texts: list[str] = []
    calls: list[ToolCall] = []
    parts: list[Any] = []
    for block in message.blocks:
        if isinstance(block, TextBlock):
            texts.append(block.text)
        elif (part := media_part(block)) is not None:
            parts.append(part)
        elif isinstance(block, ToolCallBlock):
            calls.append(
                ToolCall(block.tool_name, _arguments(block.tool_kwargs, where), block.tool_call_id or "")
            )
        elif not isinstance(block, _SKIPPED_BLOCKS):
            raise InvalidRequestError(
                f"{where} ({role_value}) contains a {type(block).__name__} ({block.block_type!r} block); "
                "the cascade accepts text, image, audio, document, tool-call and tool-result blocks"
            )
    if not calls:
        calls = _legacy_tool_calls(message, where)
    for call in calls:
        if call.id:
            names_by_id[call.id] = call.name
    tool_call_id = message.additional_kwargs.get("tool_call_id") if role == "tool" else None
    name = message.additional_kwargs.get("name") or message.additional_kwargs.get("tool_name")
    if role == "tool" and not name and tool_call_id:
        name = names_by_id.get(tool_call_id)
    return Message(role, "\n".join(texts), tuple(calls), tool_call_id, name, tuple(parts))  # type: ignore[arg-type]


def to_core_messages(messages: Sequence[ChatMessage]) -> tuple[Message, ...]:
    """Convert LlamaIndex chat messages to core messages.

    Raises:
        InvalidRequestError: no messages, an unknown role, or a block the cascade cannot route
            (e.g. video); the message names the offending message and block.
    """
    if isinstance(messages, ChatMessage | str) or not messages:
        raise InvalidRequestError(
            "CascadeLLM got no messages: pass a non-empty list of ChatMessage (or a non-empty prompt)"
        )
    names_by_id: dict[str, str] = {}
    return tuple(_core_message(i, m, names_by_id) for i, m in enumerate(messages))


def to_tool_specs(tools: Sequence[BaseTool]) -> tuple[LlamaIndexToolSpec, ...]:
    """Describe LlamaIndex tools as core tool specs (the same JSON schema OpenAI would receive)."""
    specs = []
    for i, tool in enumerate(tools):
        metadata = getattr(tool, "metadata", None)
        if not isinstance(metadata, ToolMetadata) or not metadata.name:
            raise InvalidRequestError(f"tools[{i}] must be a llama_index BaseTool with a name, got {tool!r}")
        function = metadata.to_openai_tool(skip_length_check=True)["function"]
        specs.append(
            LlamaIndexToolSpec(function["name"], function["description"], function["parameters"], tool=tool)
        )
    return tuple(specs)


_CALL_KWARGS = frozenset(
    {"tools", "tool_choice", "tool_required", "allow_parallel_tool_calls", "max_tokens", "stop"}
)


def build_request(
    messages: Sequence[ChatMessage],
    kwargs: Mapping[str, Any],
    *,
    default_max_tokens: int | None = None,
) -> tuple[Request, tuple[BaseTool, ...]]:
    """The core request for one LlamaIndex call, and the LlamaIndex tools bound to it.

    Understood keyword arguments: ``tools``, ``tool_choice``, ``tool_required``,
    ``allow_parallel_tool_calls`` (applied to the response), ``max_tokens`` and ``stop``.
    Other keyword arguments are ignored (logged at debug level).
    """
    ignored = sorted(set(kwargs) - _CALL_KWARGS)
    if ignored:
        logger.debug("CascadeLLM ignores call arguments %s", ignored)
    tools = tuple(kwargs.get("tools") or ())
    stop = kwargs.get("stop") or ()
    specs = to_tool_specs(tools)
    request = Request(
        messages=to_core_messages(messages),
        tools=specs,
        tool_choice=normalize_tool_choice(
            kwargs.get("tool_choice"), [spec.name for spec in specs], required=bool(kwargs.get("tool_required"))
        )
        if tools
        else None,
        max_new_tokens=default_max_tokens if kwargs.get("max_tokens") is None else kwargs["max_tokens"],
        stop=(stop,) if isinstance(stop, str) else tuple(stop),
    )
    return request, tools


def _schema_errors(err: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or '<root>'}: {e['msg']}" for e in err.errors()[:5])


def tool_arguments_check(tools: Sequence[BaseTool]) -> AnswerCheck | None:
    """A core ``check=`` hook rejecting small-tier tool calls whose arguments fail the tool's schema.

    For structured prediction the output class *is* the tool's schema, so an invalid small answer
    is rejected and the cascade defers it.
    """
    schemas: dict[str, type[BaseModel]] = {}
    for spec, tool in zip(to_tool_specs(tools), tools, strict=True):
        fn_schema = tool.metadata.fn_schema
        if isinstance(fn_schema, type) and issubclass(fn_schema, BaseModel):
            schemas[spec.name] = fn_schema
    if not schemas:
        return None

    def check(generation: Generation) -> str | None:
        for call in generation.tool_calls:
            schema = schemas.get(call.name)
            if schema is None:
                continue
            try:
                schema.model_validate(call.arguments)
            except ValidationError as err:
                return f"arguments of tool {call.name!r} do not match its schema ({_schema_errors(err)})"
        return None

    return check


# -- core → LlamaIndex ----------------------------------------------------------------------------
def usage_of(response: ChatResponse | CompletionResponse) -> Usage | None:
    """Token usage a LlamaIndex response reports (in ``raw`` or ``additional_kwargs``), if any."""
    try:
        prompt, completion = get_tokens_from_response(response)
    except Exception:  # an unusual raw object: usage is then counted by the cascade
        return None
    return Usage(int(prompt), int(completion)) if prompt or completion else None


def _usage_dict(usage: Usage) -> dict[str, int]:
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
    }


def tool_call_blocks(calls: Sequence[ToolCall]) -> list[ToolCallBlock]:
    return [
        ToolCallBlock(tool_call_id=c.id or None, tool_name=c.name, tool_kwargs=dict(c.arguments))
        for c in calls
    ]


def tool_kwargs_dict(raw: Any) -> dict[str, Any]:
    """A ``ToolCallBlock`` 's arguments as a dict (``{}`` when they are not a JSON object)."""
    try:
        return _arguments(raw, "tool call")
    except InvalidRequestError:
        return {}


def tool_calls_of(response: ChatResponse) -> tuple[ToolCall, ...]:
    """Core tool calls from the ``ToolCallBlock`` s (or legacy ``tool_calls``) of a response message."""
    blocks = [b for b in response.message.blocks if isinstance(b, ToolCallBlock)]
    if not blocks:
        return tuple(_legacy_tool_calls(response.message, "response"))
    return tuple(ToolCall(b.tool_name, tool_kwargs_dict(b.tool_kwargs), b.tool_call_id or "") for b in blocks)


def large_response(result: CascadeResult) -> ChatResponse | None:
    """The LlamaIndex ``ChatResponse`` of a LlamaIndex large tier, if that tier answered."""
    raw = result.completion.raw if result.completion is not None else None
    if isinstance(raw, list):  # streamed: the last chunk holds the whole message
        raw = next((r for r in reversed(raw) if isinstance(r, ChatResponse)), None)
    return raw if isinstance(raw, ChatResponse) else None


def chat_response(result: CascadeResult, *, delta: str | None = None) -> ChatResponse:
    """The ``ChatResponse`` for a cascade result.

    The message holds the answer text and one ``ToolCallBlock`` per tool call (from either tier);
    a LlamaIndex large tier's other blocks (e.g. thinking) and message ``additional_kwargs`` are
    kept. ``additional_kwargs["cascade"]`` and ``raw["cascade"]`` hold :meth:`CascadeResult.as_dict`;
    ``raw["usage"]`` the tokens of every tier called; ``raw["response"]`` the large tier's own
    ``raw`` when it answered.
    """
    decision = result.as_dict()
    large = large_response(result)
    text = visible_text(result)
    blocks: list[Any] = (
        [b for b in large.message.blocks if not isinstance(b, TextBlock | ToolCallBlock)] if large else []
    )
    if text or not result.tool_calls:
        blocks.append(TextBlock(text=text))
    blocks.extend(tool_call_blocks(result.tool_calls))
    message = ChatMessage(
        role=MessageRole.ASSISTANT,
        blocks=blocks,
        additional_kwargs=dict(large.message.additional_kwargs) if large else {},
    )
    usage = _usage_dict(result.usage)
    raw = {"cascade": decision, "usage": usage, "response": large.raw if large else None}
    return ChatResponse(
        message=message, raw=raw, delta=delta, additional_kwargs={"cascade": decision, **usage}
    )


class _SchemaToolMetadata(ToolMetadata):
    """Tool metadata whose parameters are a given JSON schema (for tools known only by schema)."""

    def __init__(self, spec: ToolSpec) -> None:
        super().__init__(description=spec.description, name=spec.name, fn_schema=None)
        self.parameters = dict(spec.parameters)

    def get_parameters_dict(self) -> dict:
        return dict(self.parameters)


class _SchemaTool(BaseTool):
    """A tool known only by its schema: a large tier may call it; the caller runs it."""

    def __init__(self, spec: ToolSpec) -> None:
        self._metadata = _SchemaToolMetadata(spec)

    @property
    def metadata(self) -> ToolMetadata:
        return self._metadata

    def __call__(self, input: Any) -> ToolOutput:
        raise InvalidRequestError(
            f"tool {self._metadata.name!r} is described by schema only; its caller runs it"
        )


def to_llama_tools(specs: Sequence[ToolSpec]) -> list[BaseTool]:
    """LlamaIndex tools for core tool specs (the original tool when the spec came from one)."""
    return [
        s.tool if isinstance(s, LlamaIndexToolSpec) and s.tool is not None else _SchemaTool(s) for s in specs
    ]


_LLAMA_ROLES = {
    "system": MessageRole.SYSTEM,
    "user": MessageRole.USER,
    "assistant": MessageRole.ASSISTANT,
    "tool": MessageRole.TOOL,
}


def to_chat_messages(messages: Sequence[Message]) -> list[ChatMessage]:
    """Core messages as LlamaIndex chat messages (tool calls as ``ToolCallBlock`` s)."""
    out = []
    for message in messages:
        blocks: list[Any] = (
            [TextBlock(text=message.content)] if message.content or not message.tool_calls else []
        )
        blocks.extend(p.raw for p in message.parts if p.raw is not None)
        blocks.extend(tool_call_blocks(message.tool_calls))
        extra: dict[str, Any] = {}
        if message.tool_call_id is not None:
            extra["tool_call_id"] = message.tool_call_id
        if message.name is not None and message.role == "tool":
            extra["name"] = message.name
        out.append(ChatMessage(role=_LLAMA_ROLES[message.role], blocks=blocks, additional_kwargs=extra))
    return out
