"""Conversion between LangChain message/tool objects and ``cascade_core`` types.

Only translation lives here: no scoring, thresholds or retries (those are the core's).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.messages.ai import UsageMetadata
from langchain_core.utils.function_calling import convert_to_openai_tool

from cascade_core.engine.content import MediaPart
from cascade_core.engine.result import CascadeChunk, CascadeResult
from cascade_core.engine.tool_choice import normalize_tool_choice
from cascade_core.engine.visible import VisibleStream, visible_text
from cascade_core.errors import InvalidRequestError
from cascade_core.types import Message, Request, ToolCall, ToolSpec, Usage

__all__ = [
    "from_core_messages",
    "response_schema_of",
    "to_ai_message",
    "to_core_messages",
    "to_core_tool_choice",
    "to_core_tools",
    "to_langchain_tool_choice",
    "usage_metadata",
]

#: Content-part types that carry no text for the model and are represented elsewhere
#: (tool calls live in ``AIMessage.tool_calls``; reasoning is not replayed to either tier).
_SKIPPED_PARTS = frozenset({"tool_use", "tool_call", "tool_call_chunk", "function_call", "reasoning", "thinking"})
_CHAT_ROLES = {"human": "user", "user": "user", "ai": "assistant", "assistant": "assistant", "system": "system",
               "developer": "system", "tool": "tool"}


#: LangChain content-part types (standard v1 blocks and OpenAI chat-completions forms) by media kind.
_MEDIA_PARTS = {"image": "image", "image_url": "image", "audio": "audio", "input_audio": "audio", "file": "file"}


def _media_part(part: Mapping[str, Any], kind: str) -> MediaPart:
    mime = str(part.get("mime_type") or "")
    if kind == "file" and mime.startswith(("image/", "audio/")):
        kind = mime.split("/", 1)[0]
    return MediaPart(_MEDIA_PARTS.get(kind, kind), mime, raw=dict(part))


def _content_of(message: BaseMessage, index: int) -> tuple[str, tuple[MediaPart, ...]]:
    """The text of a message and its image/audio/file parts (kept whole, for the tier that takes them)."""
    content = message.content
    if isinstance(content, str):
        return content, ()
    texts: list[str] = []
    media: list[MediaPart] = []
    for part in content:
        if isinstance(part, str):
            texts.append(part)
            continue
        kind = part.get("type") if isinstance(part, Mapping) else type(part).__name__
        if kind == "text":
            texts.append(str(part.get("text", "")))
        elif kind in _MEDIA_PARTS and isinstance(part, Mapping):
            media.append(_media_part(part, kind))
        elif kind not in _SKIPPED_PARTS:
            raise InvalidRequestError(
                f"messages[{index}] ({message.type}) has a {kind!r} content part; ChatCascade accepts text, "
                f"image, audio and file parts ({sorted(_MEDIA_PARTS)})"
            )
    return "".join(texts), tuple(media)


def _lc_content(message: Message) -> str | list[Any]:
    """A core message's content for a LangChain model: its text, plus its media parts as they came."""
    if not message.parts:
        return message.content
    text = [{"type": "text", "text": message.content}] if message.content else []
    return [*text, *(p.raw if p.raw is not None else {"type": p.kind, "mime_type": p.mime_type} for p in message.parts)]


def _tool_calls_of(message: AIMessage) -> tuple[ToolCall, ...]:
    return tuple(ToolCall(c["name"], dict(c.get("args") or {}), c.get("id") or "") for c in message.tool_calls)


def to_core_messages(messages: Sequence[BaseMessage]) -> tuple[Message, ...]:
    """LangChain messages as core :class:`~cascade_core.types.Message` objects.

    Raises:
        InvalidRequestError: no messages, a non-text content part, or an unsupported message type.
    """
    if not messages:
        raise InvalidRequestError("ChatCascade got no messages: pass at least one message")
    out: list[Message] = []
    for i, message in enumerate(messages):
        text, parts = _content_of(message, i)
        if isinstance(message, SystemMessage):
            out.append(Message("system", text, parts=parts))
        elif isinstance(message, HumanMessage):
            out.append(Message("user", text, parts=parts))
        elif isinstance(message, AIMessage):
            out.append(Message("assistant", text, tool_calls=_tool_calls_of(message), parts=parts))
        elif isinstance(message, ToolMessage):
            out.append(Message("tool", text, tool_call_id=message.tool_call_id, name=message.name, parts=parts))
        elif isinstance(message, FunctionMessage):
            out.append(Message("tool", text, name=message.name, parts=parts))
        elif isinstance(message, ChatMessage) and message.role in _CHAT_ROLES:
            out.append(Message(_CHAT_ROLES[message.role], text, parts=parts))  # type: ignore[arg-type]
        else:
            raise InvalidRequestError(
                f"messages[{i}] has unsupported type {type(message).__name__} "
                f"(role {getattr(message, 'role', message.type)!r}); use system, human, ai or tool messages"
            )
    return tuple(out)


def from_core_messages(messages: Sequence[Message]) -> list[BaseMessage]:
    """Core messages as LangChain messages (what a LangChain large tier receives)."""
    out: list[BaseMessage] = []
    for m in messages:
        content = _lc_content(m)
        if m.role == "system":
            out.append(SystemMessage(content))
        elif m.role == "user":
            out.append(HumanMessage(content))
        elif m.role == "assistant":
            calls = [{"name": c.name, "args": dict(c.arguments), "id": c.id or None, "type": "tool_call"}
                     for c in m.tool_calls]
            out.append(AIMessage(content, tool_calls=calls))
        else:
            out.append(ToolMessage(content, tool_call_id=m.tool_call_id or "", name=m.name))
    return out


# -- tools ------------------------------------------------------------------------------------
def to_core_tools(tools: Sequence[Any] | None) -> tuple[ToolSpec, ...]:
    """Tools in any form LangChain accepts (BaseTool, function, pydantic class, dict) as ToolSpecs."""
    specs = []
    for tool in tools or ():
        function = convert_to_openai_tool(tool)["function"]
        specs.append(ToolSpec(
            function["name"],
            function.get("description", ""),
            function.get("parameters") or {"type": "object", "properties": {}},
        ))
    return tuple(specs)


def to_core_tool_choice(choice: Any, names: Sequence[str]) -> str | None:
    """LangChain's ``tool_choice`` values as the core's (see :func:`cascade_core.engine.tool_choice.normalize_tool_choice`).

    Raises:
        InvalidRequestError: a value that names no bound tool.
    """
    return normalize_tool_choice(choice, names)


def to_langchain_tool_choice(choice: str | None) -> str | None:
    """The core's tool choice as the value LangChain's ``bind_tools`` understands."""
    return "any" if choice == "required" else choice


def response_schema_of(response_format: Any) -> dict[str, Any] | None:
    """The JSON schema an OpenAI-style ``response_format`` asks for (json_object → any object)."""
    if response_format is None:
        return None
    if isinstance(response_format, Mapping):
        kind = response_format.get("type")
        if kind == "json_object":
            return {"type": "object"}
        if kind == "json_schema":
            spec = response_format.get("json_schema") or {}
            schema = dict(spec.get("schema") or {"type": "object"})
            schema.setdefault("title", spec.get("name", "response"))
            return schema
    raise InvalidRequestError(
        f"response_format must be {{'type': 'json_object'}} or {{'type': 'json_schema', 'json_schema': ...}}, "
        f"got {response_format!r}"
    )


# -- results ----------------------------------------------------------------------------------
def usage_metadata(usage: Usage) -> UsageMetadata:
    return UsageMetadata(input_tokens=usage.input_tokens, output_tokens=usage.output_tokens,
                         total_tokens=usage.total_tokens)


def lc_tool_calls(calls: Sequence[ToolCall]) -> list[dict[str, Any]]:
    return [{"name": c.name, "args": dict(c.arguments), "id": c.id or None, "type": "tool_call"} for c in calls]


def tool_call_chunks(calls: Sequence[ToolCall]) -> list[dict[str, Any]]:
    return [{"name": c.name, "args": json.dumps(c.arguments, ensure_ascii=False), "id": c.id or None, "index": i,
             "type": "tool_call_chunk"} for i, c in enumerate(calls)]


def response_metadata(result: CascadeResult) -> dict[str, Any]:
    """``model_name`` of the answering tier, its finish reason, and the decision under ``cascade``."""
    finish = (result.generation.finish_reason if result.generation is not None
              else result.completion.finish_reason if result.completion is not None else None)
    if result.tool_calls:
        finish = "tool_calls"
    meta: dict[str, Any] = {"model_name": result.model_name, "cascade": result.as_dict()}
    if finish:
        meta["finish_reason"] = finish
    return meta


def to_ai_message(result: CascadeResult) -> AIMessage:
    """The cascade's answer as an ``AIMessage``; a LangChain large tier's own message is passed through."""
    raw = result.completion.raw if result.completion is not None else None
    meta = response_metadata(result)
    if isinstance(raw, AIMessage):
        return raw.model_copy(update={
            "usage_metadata": usage_metadata(result.usage),
            "response_metadata": {**raw.response_metadata, **meta},
        })
    return AIMessage(visible_text(result), tool_calls=lc_tool_calls(result.tool_calls),
                     usage_metadata=usage_metadata(result.usage), response_metadata=meta)


def final_chunk(result: CascadeResult, text: str, streamed_tool_calls: bool) -> AIMessageChunk:
    """The last chunk of a stream: any buffered text, tool calls not yet streamed, usage and metadata."""
    calls = [] if streamed_tool_calls else tool_call_chunks(result.tool_calls)
    return AIMessageChunk(content=text, tool_call_chunks=calls, usage_metadata=usage_metadata(result.usage),
                          response_metadata=response_metadata(result), chunk_position="last")


def passthrough_chunk(raw: AIMessageChunk) -> AIMessageChunk:
    """A LangChain large tier's chunk without usage/metadata (the final chunk carries the totals once)."""
    return raw.model_copy(update={"usage_metadata": None, "response_metadata": {}, "chunk_position": None})


class StreamConverter:
    """Turns the core's :class:`~cascade_core.engine.result.CascadeChunk` stream into ``AIMessageChunk`` s.

    What text shows when is the core's :class:`~cascade_core.engine.visible.VisibleStream` (with
    tools bound a small answer is held and its ``<tool_call>`` markup becomes ``tool_call_chunks``);
    a LangChain large tier's own chunks are passed through.
    """

    def __init__(self, request: Request, n_tiers: int) -> None:
        self.visible = VisibleStream(request, n_tiers)
        self.streamed_tool_calls = False

    def feed(self, chunk: CascadeChunk) -> AIMessageChunk | None:
        if chunk.result is not None:
            return final_chunk(chunk.result, self.visible.final(chunk.result), self.streamed_tool_calls)
        text = self.visible.feed(chunk)
        if self.visible.holds(chunk):
            return None
        if isinstance(chunk.raw, AIMessageChunk):
            self.streamed_tool_calls = self.streamed_tool_calls or bool(chunk.raw.tool_call_chunks)
            return passthrough_chunk(chunk.raw)
        return AIMessageChunk(content=text) if text else None
