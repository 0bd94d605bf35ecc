"""Any LangChain chat model as the cascade's large tier (a core ``LargeModel``).

The large tier needs no log-probs, so ``ChatOpenAI``, ``ChatAnthropic``, ``ChatOllama`` … all
work. Tools are bound natively to the wrapped model; its ``AIMessage`` / ``AIMessageChunk`` is
passed through as ``Completion.raw`` / ``CompletionChunk.raw`` so its tool calls, ids and
metadata reach the caller unchanged.

Example:
    >>> from langchain_core.language_models import GenericFakeChatModel
    >>> from cascade_core.types import Request
    >>> large = LangChainLargeModel(GenericFakeChatModel(messages=iter(["Paris."])), name="fake")
    >>> large.complete(Request.from_prompt("Capital of France?")).text
    'Paris.'
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.runnables import Runnable, RunnableConfig

from cascade_core.cost import count_tokens
from cascade_core.engine.tool_calls import recover_text_tool_calls
from cascade_core.errors import ConfigurationError
from cascade_core.types import Completion, CompletionChunk, Request, ToolCall, Usage
from langchain_cascade._convert import from_core_messages, lc_tool_calls, to_langchain_tool_choice

__all__ = ["LangChainLargeModel"]

# The wrapped model runs without the caller's callbacks: ChatCascade reports the answer (tokens,
# usage, metadata) itself; inheriting them would stream every large-tier token twice.
_ISOLATED: RunnableConfig = {"callbacks": []}


def _name_of(model: BaseChatModel) -> str:
    for attr in ("model_name", "model", "model_id", "deployment_name"):
        value = getattr(model, attr, None)
        if isinstance(value, str) and value:
            return value
    return model._llm_type


def _usage(message: BaseMessage) -> Usage | None:
    usage = getattr(message, "usage_metadata", None)
    if not usage:
        return None
    return Usage(int(usage.get("input_tokens") or 0), int(usage.get("output_tokens") or 0))


def _calls(message: AIMessage) -> tuple[ToolCall, ...]:
    return tuple(ToolCall(c["name"], dict(c.get("args") or {}), c.get("id") or "") for c in message.tool_calls)


def _as_json_answer(output: dict[str, Any]) -> AIMessage:
    """``with_structured_output(include_raw=True)``'s output as a message whose content is the JSON."""
    raw = output["raw"]
    if output.get("parsed") is not None and not isinstance(output["parsed"], dict | list):
        parsed = output["parsed"]
        text = parsed.model_dump_json() if hasattr(parsed, "model_dump_json") else json.dumps(parsed)
    elif output.get("parsed") is not None:
        text = json.dumps(output["parsed"], ensure_ascii=False)
    elif raw.tool_calls:  # the model answered with a tool call (its function-calling structured output)
        text = json.dumps(raw.tool_calls[0]["args"], ensure_ascii=False)
    else:
        text = raw.text
    return raw.model_copy(update={"content": text, "tool_calls": [], "invalid_tool_calls": [],
                                  "additional_kwargs": {}})


class LangChainLargeModel:
    """A core ``LargeModel`` backed by a LangChain ``BaseChatModel``.

    Args:
        chat_model: The LangChain chat model.
        name: Name recorded in results (default: the model's ``model_name`` / ``model``).

    Example:
        >>> from langchain_openai import ChatOpenAI  # doctest: +SKIP
        >>> large = LangChainLargeModel(ChatOpenAI(model="gpt-4o-mini"))  # doctest: +SKIP
    """

    def __init__(self, chat_model: BaseChatModel, *, name: str | None = None) -> None:
        if not isinstance(chat_model, BaseChatModel):
            raise ConfigurationError(
                f"LangChainLargeModel.chat_model must be a LangChain BaseChatModel, got {type(chat_model).__name__}"
            )
        self.chat_model = chat_model
        self.model_name = name or _name_of(chat_model)

    def __repr__(self) -> str:
        return f"LangChainLargeModel({type(self.chat_model).__name__}, model_name={self.model_name!r})"

    @property
    def input_modalities(self) -> frozenset[str]:
        """What the wrapped model accepts, from its LangChain model profile (``image_inputs``,
        ``audio_inputs``, ``pdf_inputs``); a kind the profile does not rule out is passed through."""
        profile = getattr(self.chat_model, "profile", None) or {}
        flags = {"image": "image_inputs", "audio": "audio_inputs", "file": "pdf_inputs"}
        return frozenset({"text"} | {kind for kind, key in flags.items() if profile.get(key) is not False})

    def count_tokens(self, text: str) -> int:
        # BaseChatModel.get_num_tokens may try to download a tokenizer; the core's counter is offline.
        return count_tokens(text)

    # -- request translation (shared by the four entry points) -------------------------------------
    def _runnable(self, request: Request) -> tuple[Runnable[Any, Any], bool]:
        """The model bound to the request's tools / limits, and whether it is a structured-output runnable."""
        model: Runnable[Any, Any] = self.chat_model
        bind: dict[str, Any] = {}
        if request.stop:
            bind["stop"] = list(request.stop)
        if request.max_new_tokens is not None and "max_tokens" in type(self.chat_model).model_fields:
            bind["max_tokens"] = request.max_new_tokens
        if request.tools and request.tool_choice != "none":
            tool_choice = to_langchain_tool_choice(request.tool_choice)
            extra = {"tool_choice": tool_choice} if tool_choice is not None else {}
            model = self.chat_model.bind_tools([t.to_openai() for t in request.tools], **extra)
            return (model.bind(**bind) if bind else model), False
        if bind:
            model = self.chat_model.bind(**bind)
        if request.response_schema is not None:
            schema = dict(request.response_schema)
            method = "json_schema" if schema.get("properties") else "json_mode"
            target = model if isinstance(model, BaseChatModel) else self.chat_model
            try:
                return target.with_structured_output(schema, method=method, include_raw=True), True
            except (NotImplementedError, TypeError, ValueError):  # the model has no such method: its default
                return target.with_structured_output(schema, include_raw=True), True
        return model, False

    def _completion(self, output: Any, structured: bool, request: Request) -> Completion:
        message: AIMessage = _as_json_answer(output) if structured else _with_text_tool_calls(output, request)
        return Completion(
            text=message.text,
            usage=_usage(message) or Usage(),
            model_name=message.response_metadata.get("model_name") or self.model_name,
            tool_calls=_calls(message),
            finish_reason=message.response_metadata.get("finish_reason"),
            raw=message,
        )

    @staticmethod
    def _one_chunk(completion: Completion) -> CompletionChunk:
        """A whole (structured) answer as the single chunk of a stream."""
        message = completion.raw
        raw = AIMessageChunk(content=message.content, id=message.id, response_metadata=message.response_metadata)
        return CompletionChunk(completion.text, raw=raw, usage=completion.usage)

    # -- LargeModel protocol -------------------------------------------------------------------------
    def complete(self, request: Request) -> Completion:
        runnable, structured = self._runnable(request)
        return self._completion(runnable.invoke(from_core_messages(request.messages), _ISOLATED), structured, request)

    async def acomplete(self, request: Request) -> Completion:
        runnable, structured = self._runnable(request)
        return self._completion(await runnable.ainvoke(from_core_messages(request.messages), _ISOLATED), structured, request)

    def stream(self, request: Request) -> Iterator[CompletionChunk]:
        runnable, structured = self._runnable(request)
        if structured:  # structured answers are parsed whole, so they arrive as one chunk
            yield self._one_chunk(self._completion(runnable.invoke(from_core_messages(request.messages), _ISOLATED), True, request))
            return
        chunks = _Chunks(request)
        for chunk in runnable.stream(from_core_messages(request.messages), _ISOLATED):
            yield from chunks.add(chunk)
        yield from chunks.end()

    async def astream(self, request: Request) -> AsyncIterator[CompletionChunk]:
        runnable, structured = self._runnable(request)
        if structured:
            output = await runnable.ainvoke(from_core_messages(request.messages), _ISOLATED)
            yield self._one_chunk(self._completion(output, True, request))
            return
        chunks = _Chunks(request)
        async for chunk in runnable.astream(from_core_messages(request.messages), _ISOLATED):
            for piece in chunks.add(chunk):
                yield piece
        for piece in chunks.end():
            yield piece


class _Chunks:
    """The wrapped model's chunks as core chunks; the last one carries the aggregated tool calls.

    With tools bound the answer is held back until it ends: a local model served over the OpenAI
    protocol may write its call as text (a ```json block), which only becomes a tool call whole.
    """

    def __init__(self, request: Request) -> None:
        self.request = request
        self.hold = bool(request.tools) and request.tool_choice != "none"
        self.full: AIMessageChunk | None = None

    def add(self, chunk: AIMessageChunk) -> list[CompletionChunk]:
        self.full = chunk if self.full is None else self.full + chunk
        return [] if self.hold else [CompletionChunk(chunk.text, raw=chunk, usage=_usage(chunk))]

    def end(self) -> list[CompletionChunk]:
        if self.full is None:
            return [CompletionChunk("")]
        if not self.hold:
            return [CompletionChunk("", tool_calls=_calls(self.full))]
        message = _with_text_tool_calls(self.full, self.request)
        whole = AIMessageChunk(content=message.content, id=message.id, response_metadata=message.response_metadata,
                               usage_metadata=message.usage_metadata, tool_call_chunks=[
                                   {"name": c["name"], "args": json.dumps(c["args"]), "id": c.get("id"), "index": i,
                                    "type": "tool_call_chunk"} for i, c in enumerate(message.tool_calls)])
        return [CompletionChunk(message.text, raw=whole, usage=_usage(message)),
                CompletionChunk("", tool_calls=_calls(message))]


def _with_text_tool_calls(message: AIMessage, request: Request) -> AIMessage:
    """``message`` with a tool call written as text turned into ``tool_calls`` (content stripped).

    Only when the model returned no native call; see
    :func:`cascade_core.engine.tool_calls.recover_text_tool_calls`.
    """
    if message.tool_calls:
        return message
    calls, text = recover_text_tool_calls(message.text, request)
    if not calls:
        return message
    return message.model_copy(update={"content": text, "tool_calls": lc_tool_calls(calls), "invalid_tool_calls": []})
