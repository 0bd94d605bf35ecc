"""Any LlamaIndex LLM as the large (last) tier of a ``cascade_core`` cascade.

The wrapper implements the core :class:`~cascade_core.backends.base.LargeModel` protocol:
``complete`` / ``acomplete`` / ``stream`` / ``astream`` / ``count_tokens``. Tools reach a
``FunctionCallingLLM`` natively (``chat_with_tools``); other LLMs see them rendered as text and
their ``<tool_call>`` answers are parsed. The LLM's own ``ChatResponse`` is passed through as
``Completion.raw`` (one per chunk when streaming), so the caller gets its tool calls and metadata.

Example:
    >>> from llama_index.core.llms import MockLLM
    >>> large = LlamaIndexLargeModel(MockLLM(max_tokens=4))
    >>> from cascade_core.types import Request
    >>> large.complete(Request.from_prompt("hello")).model_name
    'unknown'
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

from llama_index.core.base.llms.base import BaseLLM
from llama_index.core.base.llms.types import ChatMessage, ChatResponse
from llama_index.core.llms.function_calling import FunctionCallingLLM

from cascade_core.cost import count_tokens
from cascade_core.engine.content import ALL_MODALITIES
from cascade_core.engine.tool_calls import recover_text_tool_calls, render_for_text_model
from cascade_core.errors import ConfigurationError
from cascade_core.types import Completion, CompletionChunk, Request, ToolCall, Usage
from llamaindex_cascade._convert import to_chat_messages, to_llama_tools, tool_calls_of, usage_of

__all__ = ["LlamaIndexLargeModel"]

logger = logging.getLogger(__name__)

_WITH_TOOLS = {
    "chat": "chat_with_tools",
    "achat": "achat_with_tools",
    "stream_chat": "stream_chat_with_tools",
    "astream_chat": "astream_chat_with_tools",
}


@dataclass(frozen=True)
class _LargeCall:
    """One request translated for the LLM: either a plain chat or a native tool call."""

    messages: list[ChatMessage]
    tool_kwargs: dict[str, Any] | None  # arguments of ``chat_with_tools`` when tools are native
    request: Request

    def answer(self, llm: BaseLLM, response: ChatResponse | None) -> tuple[tuple[ToolCall, ...], str]:
        """The response's tool calls and visible text: native calls as they are, else calls written as text."""
        text = (response.message.content or "") if response is not None else ""
        if response is None:
            return (), text
        if self.tool_kwargs is not None and (native := tool_calls_of(response)):
            return native, text
        # a text-only LLM (tools rendered into its prompt), or a function-calling LLM whose server
        # returned the call as text (llama.cpp with Qwen2.5 writes a ```json block as content)
        calls, text = recover_text_tool_calls(text, self.request)
        if not calls and self.request.tools and self.request.tool_choice != "none":
            logger.debug("%s: answer is not a valid tool call, kept as text", type(llm).__name__)
        return calls, text

    def completion(self, llm: BaseLLM, model_name: str, response: ChatResponse) -> Completion:
        calls, text = self.answer(llm, response)
        usage = usage_of(response)  # None: the cascade counts the tokens itself
        return Completion(
            text, usage or Usage(), model_name, calls, "tool_calls" if calls else None, raw=response
        )

    def chunk(self, response: ChatResponse) -> CompletionChunk:
        return CompletionChunk(response.delta or "", raw=response, usage=usage_of(response))

    def last_chunk(self, llm: BaseLLM, response: ChatResponse | None) -> CompletionChunk:
        return CompletionChunk("", tool_calls=self.answer(llm, response)[0])


class LlamaIndexLargeModel:
    """A LlamaIndex LLM (OpenAI, Anthropic, Ollama, …) as the last tier of a cascade.

    Args:
        llm: Any LlamaIndex ``LLM``. A ``FunctionCallingLLM`` gets tools natively.
        name: Model name recorded in results (default: ``llm.metadata.model_name``).

    Example:
        >>> from llama_index.core.llms import MockLLM
        >>> from cascade_core import Cascade
        >>> from cascade_core.testing import ScriptedModel
        >>> cascade = Cascade([ScriptedModel("Paris", confidence=0.2), LlamaIndexLargeModel(MockLLM(max_tokens=3))])
        >>> cascade.invoke("Capital of France?").tier
        1
    """

    def __init__(self, llm: BaseLLM, *, name: str | None = None) -> None:
        if not isinstance(llm, BaseLLM):
            raise ConfigurationError(
                f"LlamaIndexLargeModel.llm must be a llama_index LLM, got {type(llm).__name__}"
            )
        self.llm = llm
        self.model_name = name or llm.metadata.model_name

    def __repr__(self) -> str:  # never the LLM's own repr: it may hold an API key
        return f"LlamaIndexLargeModel(llm={type(self.llm).__name__}, model_name={self.model_name!r})"

    @property
    def context_window(self) -> int:
        return self.llm.metadata.context_window

    @property
    def input_modalities(self) -> frozenset[str]:
        """Image, audio and document blocks are passed through to the LLM (LlamaIndex's metadata does
        not say which it accepts; the LLM's own integration raises for the ones it cannot take)."""
        return ALL_MODALITIES

    def count_tokens(self, text: str) -> int:
        return count_tokens(text)

    @property
    def _native_tools(self) -> bool:
        return isinstance(self.llm, FunctionCallingLLM) and self.llm.metadata.is_function_calling_model

    def _call(self, request: Request) -> _LargeCall:
        if not request.tools or request.tool_choice == "none":
            return _LargeCall(to_chat_messages(request.messages), None, request)
        if not self._native_tools:
            return _LargeCall(to_chat_messages(render_for_text_model(request).messages), None, request)
        choice = request.tool_choice
        kwargs: dict[str, Any] = {
            "tools": to_llama_tools(request.tools),
            "chat_history": to_chat_messages(request.messages),
            "allow_parallel_tool_calls": True,
            "tool_required": choice not in (None, "auto"),
        }
        if choice not in (None, "auto", "none", "required"):
            kwargs["tool_choice"] = choice  # a tool name
        return _LargeCall(kwargs["chat_history"], kwargs, request)

    def _send(self, call: _LargeCall, method: str) -> Any:
        """Call ``llm.<method>`` (or its ``*_with_tools`` twin when tools go natively)."""
        if call.tool_kwargs is not None:
            return getattr(self.llm, _WITH_TOOLS[method])(**call.tool_kwargs)
        return getattr(self.llm, method)(call.messages)

    # -- LargeModel protocol: thin sync / async drivers ------------------------------------------
    def complete(self, request: Request) -> Completion:
        call = self._call(request)
        return call.completion(self.llm, self.model_name, self._send(call, "chat"))

    async def acomplete(self, request: Request) -> Completion:
        call = self._call(request)
        return call.completion(self.llm, self.model_name, await self._send(call, "achat"))

    def stream(self, request: Request) -> Iterator[CompletionChunk]:
        call = self._call(request)
        last = None
        for last in self._send(call, "stream_chat"):
            yield call.chunk(last)
        yield call.last_chunk(self.llm, last)

    async def astream(self, request: Request) -> AsyncIterator[CompletionChunk]:
        call = self._call(request)
        last = None
        async for last in await self._send(call, "astream_chat"):
            yield call.chunk(last)
        yield call.last_chunk(self.llm, last)
