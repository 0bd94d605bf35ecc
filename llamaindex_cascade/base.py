"""``CascadeLLM``: a LlamaIndex ``FunctionCallingLLM`` answered by a ``cascade_core`` cascade.

This module only translates: LlamaIndex messages and tools go in as a core
:class:`~cascade_core.types.Request`, the core :class:`~cascade_core.Cascade` decides and answers
(one implementation for sync, async and streaming), and its
:class:`~cascade_core.CascadeResult` comes back as a ``ChatResponse`` with the decision attached.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from llama_index.core.base.llms.base import BaseLLM
from llama_index.core.base.llms.generic_utils import (
    achat_to_completion_decorator,
    astream_chat_to_completion_decorator,
    chat_to_completion_decorator,
    stream_chat_to_completion_decorator,
)
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
from pydantic import SkipValidation

from cascade_core.backends.base import LargeModel, PromptEmbedder, SmallModel
from cascade_core.cost import Pricing
from cascade_core.decide.router import QueryRouter
from cascade_core.decide.rules import DeferralRule
from cascade_core.decide.thresholds import ThresholdPolicy
from cascade_core.engine import AnswerCheck
from cascade_core.engine.cascade import (
    DEFAULT_DEADLINE,
    DEFAULT_LARGE_TIMEOUT,
    DEFAULT_SMALL_TIMEOUT,
    Cascade,
)
from cascade_core.engine.result import CascadeChunk
from cascade_core.engine.tool_calls import ToolCallError
from cascade_core.engine.two_tier import DEFAULT_SIGNAL, TWO_TIER_DEFAULTS, given_cascade, two_tier_cascade
from cascade_core.engine.visible import VisibleStream
from cascade_core.errors import ConfigurationError
from cascade_core.types import Request
from llamaindex_cascade._convert import build_request, tool_arguments_check, tool_kwargs_dict
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


class _ChatStream:
    """Turns cascade chunks into LlamaIndex chat responses (shared by the sync and async streams).

    Which text shows when is the core's :class:`~cascade_core.engine.visible.VisibleStream`: a
    small tier's text-mode tool calls are never streamed as text; the visible rest of a held small
    answer comes in the last response.
    """

    def __init__(self, call: _Call, n_tiers: int) -> None:
        self.visible = VisibleStream(call.request, n_tiers)
        self.text = ""

    def feed(self, chunk: CascadeChunk) -> list[ChatResponse]:
        if chunk.result is not None:
            return [respond(chunk.result, delta=self.visible.final(chunk.result))]
        delta = self.visible.feed(chunk)
        if not delta:
            return []
        self.text += delta
        return [
            ChatResponse(
                message=ChatMessage(role=MessageRole.ASSISTANT, content=self.text),
                delta=delta,
                raw=getattr(chunk.raw, "raw", None),
                additional_kwargs={"cascade_tier": chunk.tier},
            )
        ]


def _one_rule(rules: Any) -> Any:
    """The deprecated ``rules=`` value as the single rule a two-tier cascade takes."""
    if isinstance(rules, DeferralRule) or rules is None:
        return rules
    if isinstance(rules, Sequence) and not isinstance(rules, str):
        if len(rules) != 1:
            raise ConfigurationError(f"CascadeLLM: a two-tier cascade takes one rule, got {len(rules)} in rules=")
        return rules[0]
    return rules  # not a rule: the factory names the problem


class CascadeLLM(FunctionCallingLLM):
    """A LlamaIndex LLM that answers with a small model when it is confident, else a large one.

    Every response carries the cascade's decision (tier, score, threshold, reason, cost) in
    ``response.additional_kwargs["cascade"]`` and ``response.raw["cascade"]``.

    Every setting below is a typed field; ``small``/``large``/``rule``/``signal``/``threshold``/
    ``signal_params``/pricing/failure policies/timeouts have the same names and defaults as
    :class:`langchain_cascade.ChatCascade`: both build their cascade with
    :func:`cascade_core.engine.two_tier.two_tier_cascade`.

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

    # Core objects are typed by their protocols but not checked by pydantic (SkipValidation): the
    # core factory checks them, so a wrong value raises the same ConfigurationError as in ChatCascade.
    # They are excluded from serialisation (not JSON data) and from the repr (a LlamaIndex LLM's own
    # repr may show its API key).
    cascade: SkipValidation[Cascade | None] = Field(
        default=None, exclude=True, repr=False,
        description="The core cascade that answers every call: given ready, or built from the fields below.",
    )
    small: SkipValidation[SmallModel | None] = Field(
        default=None, exclude=True, repr=False,
        description="Small tier: a core small model with token log-probs (OpenAIModel, TransformersModel, ScriptedModel).",
    )
    large: SkipValidation[BaseLLM | LargeModel | None] = Field(
        default=None, exclude=True, repr=False,
        description="Large tier: any LlamaIndex LLM (wrapped in LlamaIndexLargeModel) or a core large model.",
    )
    rule: SkipValidation[DeferralRule | None] = Field(
        default=None, exclude=True, repr=False, description="A core DeferralRule (e.g. a learned rule) instead of signal/threshold."
    )
    signal: str = Field(
        default=DEFAULT_SIGNAL, description="Deferral signal: margin, chow_sum, chow_average, chow_quantile, entropy or sample_agreement."
    )
    threshold: SkipValidation[float | ThresholdPolicy | None] = Field(
        default=None, exclude=True,
        description="Defer below this number or ThresholdPolicy; None: 0.3 for margin, required for other signals.",
    )
    signal_params: dict[str, Any] = Field(
        default_factory=dict, description="Parameters of the signal (alpha for chow_quantile, labels for a margin, k and temperature for sample_agreement)."
    )
    calibration_file: str | Path | None = Field(
        default=None,
        description="A file `cascade calibrate --out` wrote: its rule and (certified) threshold, instead of signal/threshold.",
    )
    small_pricing: Pricing | None = Field(default=None, description="Small-tier price per million tokens.")
    large_pricing: Pricing | None = Field(default=None, description="Large-tier price per million tokens.")
    on_small_error: Literal["defer", "raise"] = Field(
        default="defer", description="What a failing small tier does: defer to the large tier, or raise."
    )
    on_large_error: Literal["raise", "small"] = Field(
        default="raise",
        description="What a failing large tier does: raise LargeTierError, or answer from the small tier (fallback).",
    )
    small_timeout: float | None = Field(
        default=DEFAULT_SMALL_TIMEOUT, description="Seconds the small tier may stay silent per step before deferring."
    )
    large_timeout: float | None = Field(
        default=DEFAULT_LARGE_TIMEOUT, description="Seconds the large tier may take for its answer (or between chunks)."
    )
    deadline: float | None = Field(default=DEFAULT_DEADLINE, description="Seconds one call may take in all.")
    router: SkipValidation[QueryRouter | str | PathLike[str] | None] = Field(
        default=None, description="A pre-generation QueryRouter (or its file's path): requests it rates hard skip the small tier."
    )
    """A fitted :class:`cascade_core.decide.router.QueryRouter` with a threshold, or the path of a router file."""
    router_embedder: SkipValidation[PromptEmbedder | None] = Field(
        default=None, description="The router's prompt embedder (default: the small tier's own, if it has one)."
    )
    """The router's prompt embedder, e.g. ``OpenAIEmbedder`` (default: the small tier's own prompt embedding)."""
    threshold_store: Any = Field(
        default=None, exclude=True, repr=False,
        description="Where a dynamic threshold keeps its window: None (this process), a redis://...?key=name URL "
        "(shared by every process naming it) or a cascade_core StateStore.",
    )
    max_tokens: int | None = Field(default=None, gt=0, description="Cap on generated tokens per call (both tiers).")
    context_window: int | None = Field(
        default=None, gt=0, description="Context window reported in metadata (default: the small tier's)."
    )

    def __init__(self, cascade: Cascade | None = None, **kwargs: Any) -> None:
        if "rules" in kwargs:
            warnings.warn("CascadeLLM(rules=...) is deprecated: use rule= (as ChatCascade does)",
                          DeprecationWarning, stacklevel=2)
            rules = _one_rule(kwargs.pop("rules"))
            if rules is not None and kwargs.get("rule") is not None:
                raise ConfigurationError("CascadeLLM: pass rule= (rules= is its deprecated name), not both")
            kwargs["rule"] = kwargs.get("rule") or rules
        super().__init__(cascade=cascade, **kwargs)
        # built after pydantic validation, so a bad setting raises the core's ConfigurationError as it
        # is, the same error ChatCascade raises for the same mistake
        self.cascade = self._make_cascade()

    def _make_cascade(self) -> Cascade:
        settings = {name: getattr(self, name) for name in TWO_TIER_DEFAULTS}
        if self.cascade is not None:
            return given_cascade(self.cascade, owner="CascadeLLM", **settings)
        if isinstance(self.large, BaseLLM):
            settings["large"] = LlamaIndexLargeModel(self.large)
        return two_tier_cascade(**settings, max_new_tokens=self.max_tokens, owner="CascadeLLM")

    @classmethod
    def class_name(cls) -> str:
        return "CascadeLLM"

    @property
    def metadata(self) -> LLMMetadata:
        small = self._ready.tiers[0].model
        window = self.context_window or getattr(small, "context_window", None) or DEFAULT_CONTEXT_WINDOW
        num_output = (
            self._ready.max_new_tokens or getattr(small, "max_new_tokens", None) or DEFAULT_NUM_OUTPUTS
        )
        return LLMMetadata(
            context_window=int(window),
            num_output=int(num_output),
            is_chat_model=True,
            is_function_calling_model=True,
            model_name="cascade(" + " -> ".join(t.display_name for t in self._ready.tiers) + ")",
        )

    @property
    def _ready(self) -> Cascade:
        assert self.cascade is not None  # set by __init__
        return self.cascade

    # -- translation -----------------------------------------------------------------------------
    def _call(self, messages: Sequence[ChatMessage], kwargs: dict[str, Any]) -> _Call:
        request, tools = build_request(messages, kwargs)
        return _Call(request, tool_arguments_check(tools) if tools else None)

    # -- chat: the four entry points, each a thin driver of the core cascade ------------------------
    def _chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        call = self._call(messages, kwargs)
        return respond(self._ready.invoke(call.request, check=call.check))

    async def _achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        call = self._call(messages, kwargs)
        return respond(await self._ready.ainvoke(call.request, check=call.check))

    def _stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        call = self._call(messages, kwargs)  # outside the generator: bad input raises at the call
        return self._stream_responses(call)

    async def _astream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseAsyncGen:
        call = self._call(messages, kwargs)
        return self._astream_responses(call)

    def _stream_responses(self, call: _Call) -> ChatResponseGen:
        stream = _ChatStream(call, len(self._ready.tiers))
        for chunk in self._ready.stream(call.request, check=call.check):
            yield from stream.feed(chunk)

    async def _astream_responses(self, call: _Call) -> ChatResponseAsyncGen:
        stream = _ChatStream(call, len(self._ready.tiers))
        async for chunk in self._ready.astream(call.request, check=call.check):
            for response in stream.feed(chunk):
                yield response

    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        return self._chat(messages, **kwargs)

    @llm_chat_callback()
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        return await self._achat(messages, **kwargs)

    @llm_chat_callback()
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        return self._stream_chat(messages, **kwargs)

    @llm_chat_callback()
    async def astream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseAsyncGen:
        return await self._astream_chat(messages, **kwargs)

    # -- completion: a single user message, through LlamaIndex's own chat→completion adapters ------
    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return chat_to_completion_decorator(self._chat)(prompt, **kwargs)

    @llm_completion_callback()
    async def acomplete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return await achat_to_completion_decorator(self._achat)(prompt, **kwargs)

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
        return stream_chat_to_completion_decorator(self._stream_chat)(prompt, **kwargs)

    @llm_completion_callback()
    async def astream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseAsyncGen:
        return await astream_chat_to_completion_decorator(self._astream_chat)(prompt, **kwargs)

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
            raise ToolCallError(f"Expected at least one tool call, but got {len(calls)} tool calls.")
        return [
            ToolSelection(
                tool_id=b.tool_call_id or "",
                tool_name=b.tool_name,
                tool_kwargs=tool_kwargs_dict(b.tool_kwargs),
            )
            for b in calls
        ]
