"""``CascadeLLM``: a LlamaIndex ``FunctionCallingLLM`` answered by a ``cascade_core`` cascade.

This module only translates: LlamaIndex messages and tools go in as a core
:class:`~cascade_core.types.Request`, the core :class:`~cascade_core.Cascade` decides and answers
(one implementation for sync, async and streaming), and its
:class:`~cascade_core.CascadeResult` comes back as a ``ChatResponse`` with the decision attached.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from llama_index.core.base.llms.base import BaseLLM
from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseAsyncGen,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseAsyncGen,
    CompletionResponseGen,
    LLMMetadata,
    MessageRole,
    ToolCallBlock,
)
from llama_index.core.bridge.pydantic import ConfigDict, Field
from llama_index.core.constants import DEFAULT_CONTEXT_WINDOW, DEFAULT_NUM_OUTPUTS
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.llms.llm import ToolSelection

from cascade_core.cost import Pricing
from cascade_core.decide.rules import DeferralRule, ThresholdRule
from cascade_core.decide.thresholds import ThresholdPolicy
from cascade_core.engine.cascade import (
    DEFAULT_DEADLINE,
    DEFAULT_LARGE_TIMEOUT,
    DEFAULT_SMALL_TIMEOUT,
    Cascade,
    Tier,
)
from cascade_core.engine.machine import AnswerCheck
from cascade_core.engine.result import CascadeChunk
from cascade_core.errors import ConfigurationError
from cascade_core.types import Request
from llamaindex_cascade._convert import (
    build_request,
    to_completion_response,
    tool_arguments_check,
    tool_kwargs_dict,
    visible_text,
)
from llamaindex_cascade._events import respond
from llamaindex_cascade.large import LlamaIndexLargeModel

if TYPE_CHECKING:
    from llama_index.core.tools.types import BaseTool

__all__ = ["CascadeLLM"]


@dataclass
class _Call:
    """One LlamaIndex call translated for the cascade."""

    request: Request
    check: AnswerCheck | None
    has_tools: bool


@dataclass
class _ChatStream:
    """Turns cascade chunks into LlamaIndex chat responses (shared by the sync and async streams).

    Text-mode tool calls of a small tier are never streamed as text: with tools bound the core
    buffers the small answer until it is judged anyway, so the buffered text is sent once, in the
    last response, without its ``<tool_call>`` markup.
    """

    call: _Call
    last_tier: int
    text: str = ""
    pending: list[str] = field(default_factory=list)

    def feed(self, chunk: CascadeChunk) -> list[ChatResponse]:
        if chunk.result is not None:
            full = visible_text(chunk.result)
            delta = full[len(self.text) :] if full.startswith(self.text) else ""
            return [respond(chunk.result, delta=delta)]
        if not chunk.text or (self.call.has_tools and chunk.tier < self.last_tier):
            return []
        self.text += chunk.text
        return [
            ChatResponse(
                message=ChatMessage(role=MessageRole.ASSISTANT, content=self.text),
                delta=chunk.text,
                raw=getattr(chunk.raw, "raw", None),
                additional_kwargs={"cascade_tier": chunk.tier},
            )
        ]


class CascadeLLM(FunctionCallingLLM):
    """A LlamaIndex LLM that answers with a small model when it is confident, else a large one.

    Every response carries the cascade's decision (tier, score, threshold, reason, cost) in
    ``response.additional_kwargs["cascade"]`` and ``response.raw["cascade"]``.

    Args:
        cascade: A ready :class:`cascade_core.Cascade`. Or build one from the parts below.
        small: The small tier: a core small model with token log-probs (``OpenAIModel`` against a
            server with logprobs, ``TransformersModel``, ``ScriptedModel``).
        large: The large tier: any LlamaIndex ``LLM`` (wrapped in :class:`LlamaIndexLargeModel`)
            or a core large model.
        rules: Deferral rule(s) (default: first-token margin below 0.3 defers).
        signal / threshold: Shorthand for ``rules=ThresholdRule(signal, threshold)`` (``"margin"``,
            ``"chow_sum"``, ``"chow_average"``, ``"chow_quantile"``, ``"entropy"``; a number or a
            threshold policy such as ``DynamicBudgetThreshold``).
        small_pricing / large_pricing: Prices per million tokens, for the cost figures.
        on_small_error / on_large_error: Failure policies (see :class:`cascade_core.Cascade`):
            a failing small tier defers (or raises); a failing large tier raises ``LargeTierError``
            (or, with ``"small"``, the small tier answers, flagged ``fallback`` in the metadata).
        small_timeout / large_timeout / deadline: Seconds (``None`` = no limit): a silent small
            tier defers, a silent large tier fails, no call outlives the deadline. Defaults 10 / 60 / 120.
        context_window: Reported context window (default: the small tier's).

    Instantiate:
        .. code-block:: python

            from cascade_core.backends.openai import OpenAIModel
            from llama_index.core import Settings
            from llama_index.llms.openai import OpenAI
            from llamaindex_cascade import CascadeLLM

            Settings.llm = CascadeLLM(
                small=OpenAIModel("qwen2.5-1.5b-instruct", base_url="http://127.0.0.1:8000/v1"),
                large=OpenAI(model="gpt-4o"),
                threshold=0.3,  # first-token margin below 0.3 defers
            )

    Invoke / stream:
        .. code-block:: python

            response = Settings.llm.chat([ChatMessage(role="user", content="Capital of France?")])
            response.additional_kwargs["cascade"]["tier"]     # 0 = small model answered
            for chunk in Settings.llm.stream_complete("Capital of Peru?"):
                print(chunk.delta, end="")

    Example:
        >>> from cascade_core.testing import ScriptedModel
        >>> llm = CascadeLLM(small=ScriptedModel("Paris", confidence=0.9),
        ...                  large=ScriptedModel("Paris, France"), threshold=0.5)
        >>> response = llm.complete("Capital of France?")
        >>> response.text, response.additional_kwargs["cascade"]["tier"]
        ('Paris', 0)
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    cascade: Cascade = Field(exclude=True, description="The core cascade that answers every call.")
    context_window: int | None = Field(
        default=None, gt=0, description="Context window reported in metadata (default: the small tier's)."
    )

    def __init__(
        self,
        cascade: Cascade | None = None,
        *,
        small: Any = None,
        large: Any = None,
        rules: DeferralRule | Sequence[DeferralRule] | None = None,
        signal: str = "margin",
        threshold: float | ThresholdPolicy | None = None,
        small_pricing: Pricing | None = None,
        large_pricing: Pricing | None = None,
        on_small_error: Literal["defer", "raise"] = "defer",
        on_large_error: Literal["raise", "small"] = "raise",
        small_timeout: float | None = DEFAULT_SMALL_TIMEOUT,
        large_timeout: float | None = DEFAULT_LARGE_TIMEOUT,
        deadline: float | None = DEFAULT_DEADLINE,
        **kwargs: Any,
    ) -> None:
        if cascade is None:
            if small is None or large is None:
                raise ConfigurationError("CascadeLLM needs cascade=Cascade(...) or both small= and large=")
            if isinstance(large, BaseLLM):
                large = LlamaIndexLargeModel(large)
            if threshold is None and signal != "margin":
                raise ConfigurationError(f"CascadeLLM: signal={signal!r} needs a threshold= on its scale")
            if threshold is not None:
                if rules is not None:
                    raise ConfigurationError("CascadeLLM: pass rules= or signal=/threshold=, not both")
                rules = ThresholdRule(signal, threshold)
            cascade = Cascade(
                [Tier(small, small_pricing or Pricing()), Tier(large, large_pricing or Pricing())],
                rules=rules,
                on_small_error=on_small_error,
                on_large_error=on_large_error,
                small_timeout=small_timeout,
                large_timeout=large_timeout,
                deadline=deadline,
            )
        elif small is not None or large is not None or rules is not None or threshold is not None:
            raise ConfigurationError(
                "CascadeLLM: pass either cascade= or small=/large=/rules=/threshold=, not both"
            )
        elif (on_small_error, on_large_error, small_timeout, large_timeout, deadline) != (
            "defer", "raise", DEFAULT_SMALL_TIMEOUT, DEFAULT_LARGE_TIMEOUT, DEFAULT_DEADLINE
        ):
            raise ConfigurationError(
                "CascadeLLM: with cascade=, set the failure policies and timeouts on the Cascade itself"
            )
        elif not isinstance(cascade, Cascade):
            raise ConfigurationError(
                f"CascadeLLM.cascade must be a cascade_core.Cascade, got {type(cascade).__name__}"
            )
        super().__init__(cascade=cascade, **kwargs)

    @classmethod
    def class_name(cls) -> str:
        return "CascadeLLM"

    @property
    def metadata(self) -> LLMMetadata:
        small = self.cascade.tiers[0].model
        window = self.context_window or getattr(small, "context_window", None) or DEFAULT_CONTEXT_WINDOW
        num_output = (
            self.cascade.max_new_tokens or getattr(small, "max_new_tokens", None) or DEFAULT_NUM_OUTPUTS
        )
        return LLMMetadata(
            context_window=int(window),
            num_output=int(num_output),
            is_chat_model=True,
            is_function_calling_model=True,
            model_name="cascade(" + " -> ".join(t.display_name for t in self.cascade.tiers) + ")",
        )

    # -- translation -----------------------------------------------------------------------------
    def _call(self, messages: Sequence[ChatMessage], kwargs: dict[str, Any]) -> _Call:
        request, tools = build_request(messages, kwargs)
        return _Call(request, tool_arguments_check(tools) if tools else None, bool(tools))

    def _prompt_call(self, prompt: str, kwargs: dict[str, Any]) -> _Call:
        return self._call([ChatMessage(role=MessageRole.USER, content=prompt)], kwargs)

    def _stream(self, call: _Call) -> _ChatStream:
        return _ChatStream(call, len(self.cascade.tiers) - 1)

    # -- chat ------------------------------------------------------------------------------------
    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        call = self._call(messages, kwargs)
        return respond(self.cascade.invoke(call.request, check=call.check))

    @llm_chat_callback()
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        call = self._call(messages, kwargs)
        return respond(await self.cascade.ainvoke(call.request, check=call.check))

    @llm_chat_callback()
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        call = self._call(messages, kwargs)
        return self._stream_responses(call)

    @llm_chat_callback()
    async def astream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseAsyncGen:
        call = self._call(messages, kwargs)
        return self._astream_responses(call)

    def _stream_responses(self, call: _Call) -> ChatResponseGen:
        stream = self._stream(call)
        for chunk in self.cascade.stream(call.request, check=call.check):
            yield from stream.feed(chunk)

    async def _astream_responses(self, call: _Call) -> ChatResponseAsyncGen:
        stream = self._stream(call)
        async for chunk in self.cascade.astream(call.request, check=call.check):
            for response in stream.feed(chunk):
                yield response

    # -- completion (a single user message) -------------------------------------------------------
    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        call = self._prompt_call(prompt, kwargs)
        return to_completion_response(respond(self.cascade.invoke(call.request, check=call.check)))

    @llm_completion_callback()
    async def acomplete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        call = self._prompt_call(prompt, kwargs)
        return to_completion_response(
            respond(await self.cascade.ainvoke(call.request, check=call.check))
        )

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
        call = self._prompt_call(prompt, kwargs)
        return (to_completion_response(r) for r in self._stream_responses(call))

    @llm_completion_callback()
    async def astream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseAsyncGen:
        call = self._prompt_call(prompt, kwargs)
        return (to_completion_response(r) async for r in self._astream_responses(call))

    # -- tools -----------------------------------------------------------------------------------
    def _prepare_chat_with_tools(
        self,
        tools: Sequence[BaseTool],
        user_msg: str | ChatMessage | None = None,
        chat_history: list[ChatMessage] | None = None,
        verbose: bool = False,
        allow_parallel_tool_calls: bool = False,
        tool_required: bool = False,
        tool_choice: str | dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        messages = list(chat_history or [])
        if isinstance(user_msg, str):
            user_msg = ChatMessage(role=MessageRole.USER, content=user_msg)
        if user_msg is not None:
            messages.append(user_msg)
        return {
            "messages": messages,
            "tools": list(tools),
            "tool_required": tool_required,
            "tool_choice": tool_choice,
            "allow_parallel_tool_calls": allow_parallel_tool_calls,
            **kwargs,
        }

    def _validate_chat_with_tools_response(
        self,
        response: ChatResponse,
        tools: Sequence[BaseTool],
        allow_parallel_tool_calls: bool = False,
        **kwargs: Any,
    ) -> ChatResponse:
        if not allow_parallel_tool_calls:  # keep the first call only, as OpenAI's integration does
            calls = [b for b in response.message.blocks if isinstance(b, ToolCallBlock)]
            if len(calls) > 1:
                response.message.blocks = [
                    b for b in response.message.blocks if not isinstance(b, ToolCallBlock) or b is calls[0]
                ]
        return response

    def get_tool_calls_from_response(
        self,
        response: ChatResponse,
        error_on_no_tool_call: bool = True,
        **kwargs: Any,
    ) -> list[ToolSelection]:
        calls = [b for b in response.message.blocks if isinstance(b, ToolCallBlock)]
        if not calls and error_on_no_tool_call:
            raise ValueError(f"Expected at least one tool call, but got {len(calls)} tool calls.")
        return [
            ToolSelection(
                tool_id=b.tool_call_id or "",
                tool_name=b.tool_name,
                tool_kwargs=tool_kwargs_dict(b.tool_kwargs),
            )
            for b in calls
        ]
