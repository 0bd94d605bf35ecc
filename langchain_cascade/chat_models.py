"""``ChatCascade``: a LangChain chat model that answers with a small model when it is confident.

A drop-in ``BaseChatModel``: every call runs :class:`cascade_core.Cascade` (one implementation of
the decision for invoke, stream, async and batch); this module only converts messages, tools and
results and attaches the decision as response metadata.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from os import PathLike
from pathlib import Path
from typing import Any, Literal

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.language_models.base import LangSmithParams
from langchain_core.language_models.model_profile import ModelProfile
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.utils import secret_from_env
from pydantic import ConfigDict, Field, PrivateAttr, SecretStr, SkipValidation

from cascade_core.backends.base import LargeModel, PromptEmbedder, SmallModel
from cascade_core.backends.openai import openai_tier
from cascade_core.cost import Pricing, token_ids
from cascade_core.decide.router import QueryRouter
from cascade_core.decide.rules import DeferralRule
from cascade_core.decide.thresholds import ThresholdPolicy
from cascade_core.engine.cascade import (
    DEFAULT_DEADLINE,
    DEFAULT_LARGE_TIMEOUT,
    DEFAULT_SMALL_TIMEOUT,
    Cascade,
)
from cascade_core.engine.result import CascadeResult
from cascade_core.engine.sticky import StickySessions, session_of
from cascade_core.engine.two_tier import DEFAULT_SIGNAL, TWO_TIER_DEFAULTS, given_cascade, two_tier_cascade
from cascade_core.errors import ConfigurationError
from cascade_core.types import Generation, Request
from langchain_cascade._convert import (
    StreamConverter,
    response_schema_of,
    to_ai_message,
    to_core_messages,
    to_core_tool_choice,
    to_core_tools,
)
from langchain_cascade._run_metadata import attach_decision
from langchain_cascade._structured import structured_output_runnable
from langchain_cascade.large import LangChainLargeModel

__all__ = ["ChatCascade"]

logger = logging.getLogger(__name__)

#: Call kwargs ChatCascade consumes; others (``strict``, ``parallel_tool_calls`` …) do not apply to a cascade.
_CHECK_KWARG = "cascade_answer_check"


class ChatCascade(BaseChatModel):
    """A chat model that answers with a small model when its token-level uncertainty says it is
    confident, and defers to a large model otherwise.

    The small tier is a ``cascade_core`` small model (local ``TransformersModel`` or an
    OpenAI-compatible server with log-probs); the large tier may be any LangChain chat model. Each
    answer carries the decision in ``response_metadata["cascade"]`` (tier, score, threshold, reason,
    cost, saved).

    Setup:
        ``pip install 'llm-cascade[langchain]'``

    Instantiate:
        .. code-block:: python

            from cascade_core.backends.openai import OpenAIModel
            from langchain_cascade import ChatCascade
            from langchain_openai import ChatOpenAI

            llm = ChatCascade(
                small=OpenAIModel("qwen2.5-1.5b-instruct", base_url="http://127.0.0.1:8000/v1"),
                large=ChatOpenAI(model="gpt-4o-mini"),
                signal="margin",
                threshold=0.3,
            )

    Invoke:
        .. code-block:: python

            msg = llm.invoke("What is the capital of France?")
            msg.response_metadata["cascade"]["tier"]  # 0 = small kept, 1 = deferred

    Stream:
        .. code-block:: python

            for chunk in llm.stream("Tell me a joke"):
                print(chunk.text, end="")

    Tool calling / structured output:
        .. code-block:: python

            llm.bind_tools([get_weather]).invoke("Weather in Paris?").tool_calls
            llm.with_structured_output(Person).invoke("Anna is 31.")

    Example:
        >>> from cascade_core.testing import ScriptedModel
        >>> llm = ChatCascade(small=ScriptedModel("Paris", confidence=0.9, name="small"),
        ...                   large=ScriptedModel("Paris, France", name="large"), threshold=0.5)
        >>> msg = llm.invoke("Capital of France?")
        >>> msg.content, msg.response_metadata["cascade"]["tier"]
        ('Paris', 0)
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, populate_by_name=True)

    # Core objects are typed by their protocols but not checked by pydantic (SkipValidation): the
    # core factory checks them, so a wrong value raises the same ConfigurationError as in CascadeLLM.
    cascade: SkipValidation[Cascade | None] = Field(
        default=None, description="A ready cascade_core.Cascade; if given, small/large and the rule options must not be."
    )
    """A ready :class:`cascade_core.Cascade`; if given, ``small``/``large`` and the rule options must not be."""
    small: SkipValidation[SmallModel | str | None] = Field(
        default=None, description="Small tier: a core small model (token log-probs), or a model name served at small_base_url."
    )
    """Small tier: a core small model (token log-probs), or a model name served at ``small_base_url``."""
    large: SkipValidation[BaseChatModel | LargeModel | str | None] = Field(
        default=None, description="Large tier: any LangChain chat model, a core large model, or a model name served at base_url."
    )
    """Large tier: any LangChain chat model, a core large model, or a model name served at ``base_url``."""
    rule: SkipValidation[DeferralRule | None] = Field(
        default=None, description="A core DeferralRule (e.g. a learned rule) instead of signal/threshold."
    )
    """A core ``DeferralRule`` (e.g. a learned rule) instead of ``signal``/``threshold``/``signal_params``."""
    signal: str = Field(default=DEFAULT_SIGNAL, description="Deferral signal: margin, chow_sum, chow_average, chow_quantile, entropy or sample_agreement.")
    """Deferral signal: ``margin``, ``chow_sum``, ``chow_average``, ``chow_quantile``, ``entropy`` or ``sample_agreement``
    (no log-probs needed; ``signal_params={"k": 4, "temperature": 0.7}``, k + 1 small calls per query)."""
    threshold: SkipValidation[float | ThresholdPolicy | None] = Field(
        default=None, description="Defer below this number or ThresholdPolicy; None: 0.3 for margin, required for other signals."
    )
    """Defer when the signal is below this number, or a core ``ThresholdPolicy``; ``None``: 0.3 for
    ``margin`` (other signals have their own scale and need one)."""
    signal_params: dict[str, Any] = Field(
        default_factory=dict, description="Parameters of the signal (alpha for chow_quantile, labels for a margin)."
    )
    """Parameters of the signal (``alpha=0.1`` for ``chow_quantile``, ``labels=[...]`` for a margin)."""
    calibration_file: str | Path | None = Field(
        default=None,
        description="A file `cascade calibrate --out` wrote: its rule and (certified) threshold, instead of signal/threshold.",
    )
    """A file ``cascade calibrate --out`` wrote: its rule and threshold (a certified one under
    ``--risk``), instead of ``rule``/``signal``/``threshold``/``signal_params``."""
    small_pricing: Pricing | None = Field(default=None, description="Small-tier price per million tokens.")
    """Small-tier price per million tokens (for ``cost`` / ``saved`` in the decision metadata)."""
    large_pricing: Pricing | None = Field(default=None, description="Large-tier price per million tokens.")
    """Large-tier price per million tokens."""
    on_small_error: Literal["defer", "raise"] = Field(default="defer", description="What a failing small tier does.")
    """What a failing small tier does: defer to the large tier, or raise."""
    on_large_error: Literal["raise", "small"] = Field(default="raise", description="What a failing large tier does.")
    """What a failing large tier does: raise ``LargeTierError`` (with the decision), or answer from the
    small tier (flagged ``fallback`` in the metadata)."""
    small_timeout: float | None = Field(
        default=DEFAULT_SMALL_TIMEOUT, description="Seconds the small tier may stay silent per step before deferring."
    )
    """Seconds the small tier may stay silent (per step) before the query defers; ``None``: no limit."""
    large_timeout: float | None = Field(
        default=DEFAULT_LARGE_TIMEOUT, description="Seconds the large tier may take for its answer (or between chunks)."
    )
    """Seconds the large tier may take for its answer (or between streamed chunks); ``None``: no limit."""
    deadline: float | None = Field(default=DEFAULT_DEADLINE, description="Seconds one call may take in all.")
    """Seconds one call may take in all (``DeadlineExceededError`` after); ``None``: no limit."""
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
    """Where a dynamic threshold keeps its window (``redis://…?key=name`` shares it across replicas); never in repr."""
    max_tokens: int | None = Field(default=None, description="Cap on generated tokens per call (both tiers).")
    """Cap on generated tokens per call (both tiers)."""
    stop: list[str] | None = Field(default=None, description="Default stop strings.")
    """Default stop strings."""
    streaming: bool = Field(default=False, description="Whether invoke streams internally (so callbacks see tokens).")
    """Whether ``invoke`` streams internally (so callbacks see tokens)."""
    small_base_url: str | None = Field(default=None, description="Server of a small tier given by name.")
    """Server of a small tier given by name (an OpenAI-compatible server with log-probs)."""
    small_api_key: SecretStr | None = Field(default=None, description="Key for small_base_url (default: none needed).")
    """Key for ``small_base_url`` (default: none needed)."""
    base_url: str | None = Field(default=None, description="Server of a large tier given by name (None = api.openai.com).")
    """Server of a large tier given by name (``None`` = api.openai.com)."""
    api_key: SecretStr | None = Field(
        default_factory=secret_from_env("OPENAI_API_KEY", default=None),
        description="Key for a large tier given by name; read from OPENAI_API_KEY.",
    )
    """Key for a large tier given by name; read from ``OPENAI_API_KEY``. Never shown in repr or logs."""
    temperature: float | None = Field(default=None, description="Sampling temperature of a large tier given by name.")
    """Sampling temperature of a large tier given by name (the small tier decodes greedily)."""
    timeout: float | None = Field(default=None, description="Request timeout in seconds of tiers given by name.")
    """Request timeout in seconds of tiers given by name."""
    max_retries: int | None = Field(default=None, description="Retries of tiers given by name.")
    """Retries of tiers given by name."""

    sticky_escalation: bool = Field(
        default=False, description="Once a conversation's step was deferred, send its later steps to the large tier.")
    """Once a conversation's step was deferred, send its later steps straight to the large tier (session
    affinity for agent loops). A conversation is the ``session_id``/``thread_id``/``conversation_id`` of the
    run's metadata (``config={"metadata": {"session_id": ...}}``), else its opening messages."""
    sticky_sessions: int = Field(default=1024, description="Escalated conversations remembered (LRU).")
    """How many escalated conversations ``sticky_escalation`` remembers (least recently used forgotten first)."""

    _cascade: Cascade = PrivateAttr()
    _sticky: StickySessions | None = PrivateAttr(default=None)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # built after pydantic validation, so a bad setting raises the core's ConfigurationError (a
        # ValueError) as it is, the same error CascadeLLM raises for the same mistake
        self._cascade = self._make_cascade()
        self._sticky = StickySessions(self.sticky_sessions) if self.sticky_escalation else None

    def _make_cascade(self) -> Cascade:
        if self.max_tokens is not None and (not isinstance(self.max_tokens, int) or self.max_tokens < 1):
            raise ConfigurationError(f"ChatCascade.max_tokens must be a positive int, got {self.max_tokens!r}")
        settings = {name: getattr(self, name) for name in TWO_TIER_DEFAULTS}
        if self.cascade is not None:
            return given_cascade(self.cascade, owner="ChatCascade", **settings)
        settings.update(small=self._small_model(), large=self._large_model())
        return two_tier_cascade(**settings, max_new_tokens=self.max_tokens, owner="ChatCascade")

    def _small_model(self) -> Any:
        if not isinstance(self.small, str):
            return self.small
        key = self.small_api_key.get_secret_value() if self.small_api_key else "not-needed"
        return openai_tier(self.small, "small", base_url=self.small_base_url, api_key=key,
                           timeout=self.timeout, max_retries=self.max_retries)

    def _large_model(self) -> Any:
        if isinstance(self.large, BaseChatModel):
            return LangChainLargeModel(self.large)
        if not isinstance(self.large, str):
            return self.large
        key = self.api_key.get_secret_value() if self.api_key else None
        return openai_tier(self.large, "large", base_url=self.base_url, api_key=key, temperature=self.temperature,
                           timeout=self.timeout, max_retries=self.max_retries)

    # -- identity --------------------------------------------------------------------------------
    @property
    def _llm_type(self) -> str:
        return "cascade"

    @property
    def tier_names(self) -> list[str]:
        """Names of the tiers, cheapest first."""
        return [t.display_name for t in self._cascade.tiers]

    @property
    def model_name(self) -> str:
        """``cascade(small->large)``: the name traces record for the cascade as a whole."""
        return "cascade(" + "->".join(self.tier_names) + ")"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "tiers": self.tier_names,
            "rules": [repr(r) for r in self._cascade.rules],
            "max_tokens": self.max_tokens,
            "stop": self.stop,
        }

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = LangSmithParams(
            ls_provider="cascade",
            ls_model_name=kwargs.get("model") or self.model_name,
            ls_model_type="chat",
        )
        if self.temperature is not None:
            params["ls_temperature"] = self.temperature
        if (max_tokens := kwargs.get("max_tokens", self.max_tokens)) is not None:
            params["ls_max_tokens"] = max_tokens
        if ls_stop := stop or kwargs.get("stop") or self.stop:
            params["ls_stop"] = list(ls_stop)
        return params

    def _resolve_model_profile(self) -> ModelProfile | None:
        large = self.cascade.tiers[-1].model if isinstance(self.cascade, Cascade) else self.large
        large_profile = getattr(large, "profile", None) or getattr(getattr(large, "chat_model", None), "profile", None) or {}
        profile = ModelProfile(
            text_inputs=True, text_outputs=True,
            image_inputs=False, image_url_inputs=False, pdf_inputs=False, audio_inputs=False, video_inputs=False,
            image_outputs=False, audio_outputs=False, video_outputs=False,
            image_tool_message=False, pdf_tool_message=False,
            tool_calling=bool(large_profile.get("tool_calling", True)),
            tool_choice=bool(large_profile.get("tool_choice", True)),
            tool_call_streaming=True,
            structured_output=True,
        )
        for key in ("max_input_tokens", "max_output_tokens"):
            if key in large_profile:
                profile[key] = large_profile[key]  # type: ignore[literal-required]
        return profile

    # -- token counting (offline) ------------------------------------------------------------------
    def get_token_ids(self, text: str) -> list[int]:
        """Token ids of ``text`` with the small tier's tokenizer, else tiktoken ``cl100k_base`` (offline)."""
        if self.custom_get_token_ids is not None:
            return self.custom_get_token_ids(text)
        encode = getattr(getattr(self._cascade.tiers[0].model, "tokenizer", None), "encode", None)
        if encode is not None:
            return list(encode(text, add_special_tokens=False))
        return token_ids(text)

    def get_num_tokens(self, text: str) -> int:
        """Tokens of ``text`` as the small tier counts them (offline)."""
        if self.custom_get_token_ids is not None:
            return len(self.custom_get_token_ids(text))
        return self._cascade.tiers[0].count_tokens(text)

    # -- the four entry points: convert, run the core, convert back -------------------------------
    def _request(self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]
                 ) -> tuple[Request, Callable[[Generation], str | None] | None]:
        check = kwargs.pop(_CHECK_KWARG, None)
        tools = to_core_tools(kwargs.pop("tools", None))
        tool_choice = to_core_tool_choice(kwargs.pop("tool_choice", None), [t.name for t in tools]) if tools else None
        max_tokens = kwargs.pop("max_tokens", None)
        max_tokens = self.max_tokens if max_tokens is None else max_tokens  # 0 / True are rejected by Request
        schema = response_schema_of(kwargs.pop("response_format", None))
        if kwargs:
            logger.debug("ChatCascade ignores call options that do not apply to a cascade: %s", sorted(kwargs))
        request = Request(
            messages=to_core_messages(messages),
            tools=tools,
            tool_choice=tool_choice,
            max_new_tokens=max_tokens,
            stop=tuple(stop if stop is not None else self.stop or ()),
            response_schema=schema,
        )
        return request, check

    def _routed(self, request: Request, run_manager: Any) -> tuple[Request, str | None]:
        """The request as sticky escalation routes it, and its conversation key (None: option off)."""
        if self._sticky is None:
            return request, None
        return self._sticky.route(request, session_of(getattr(run_manager, "metadata", None)))

    def _finished(self, key: str | None, result: CascadeResult, run_manager: Any) -> None:
        if key is not None and self._sticky is not None:
            self._sticky.record(key, result)
        attach_decision(run_manager, result)

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        request, check = self._request(messages, stop, kwargs)
        request, key = self._routed(request, run_manager)
        result = self._cascade.invoke(request, check=check)
        self._finished(key, result, run_manager)
        return _chat_result(result)

    async def _agenerate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                         run_manager: AsyncCallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        request, check = self._request(messages, stop, kwargs)
        request, key = self._routed(request, run_manager)
        result = await self._cascade.ainvoke(request, check=check)
        self._finished(key, result, run_manager)
        return _chat_result(result)

    # BaseChatModel.stream / astream call ``on_llm_new_token`` for every chunk yielded here.
    def _stream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        request, check = self._request(messages, stop, kwargs)
        request, key = self._routed(request, run_manager)
        converter = StreamConverter(request, len(self._cascade.tiers))
        for piece in self._cascade.stream(request, check=check):
            if piece.result is not None:
                self._finished(key, piece.result, run_manager)
            if (message := converter.feed(piece)) is not None:
                yield ChatGenerationChunk(message=message)

    async def _astream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                       run_manager: AsyncCallbackManagerForLLMRun | None = None, **kwargs: Any
                       ) -> AsyncIterator[ChatGenerationChunk]:
        request, check = self._request(messages, stop, kwargs)
        request, key = self._routed(request, run_manager)
        converter = StreamConverter(request, len(self._cascade.tiers))
        async for piece in self._cascade.astream(request, check=check):
            if piece.result is not None:
                self._finished(key, piece.result, run_manager)
            if (message := converter.feed(piece)) is not None:
                yield ChatGenerationChunk(message=message)

    # -- tools and structured output -------------------------------------------------------------
    def bind_tools(self, tools: Sequence[Any], *, tool_choice: Any = None, **kwargs: Any
                   ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools to both tiers.

        The small tier sees them rendered in its prompt and answers ``<tool_call>{...}</tool_call>``
        (a malformed call, or one naming no bound tool, defers); the large tier gets them natively.

        Args:
            tools: Tools in any form LangChain accepts (``BaseTool``, function, pydantic class, dict).
            tool_choice: ``"auto"``, ``"none"``, ``"any"``/``"required"``/``True`` (must call a tool),
                or a tool name (must call that tool).
            **kwargs: Further call options bound with the tools.
        """
        formatted = [_openai_tool(t) for t in tools]
        names = [t["function"]["name"] for t in formatted]
        core_choice = to_core_tool_choice(tool_choice, names)  # validates now, not at call time
        if core_choice is not None:
            kwargs["tool_choice"] = core_choice
        kwargs.pop("strict", None)
        kwargs.pop("parallel_tool_calls", None)
        return self.bind(tools=formatted, **kwargs)

    def with_structured_output(self, schema: Any = None, *, method: Literal["json_schema", "function_calling", "json_mode"] = "json_schema",
                               include_raw: bool = False, strict: bool | None = None, **kwargs: Any
                               ) -> Runnable[LanguageModelInput, Any]:
        """Answer in a schema; a small answer that fails to parse or validate defers to the large tier.

        Args:
            schema: A pydantic class, TypedDict, or JSON schema dict (optional for ``json_mode``).
            method: ``"json_schema"`` (default; the schema is sent as ``response_format``),
                ``"function_calling"`` (the schema is bound as a forced tool) or ``"json_mode"``
                (any JSON object; describe the keys in the prompt).
            include_raw: Return ``{"raw", "parsed", "parsing_error"}`` instead of the parsed value.
            strict: Accepted for compatibility; validation is always done by the answer check.
            **kwargs: Further call options.
        """
        return structured_output_runnable(self, schema, method=method, include_raw=include_raw,
                                          check_kwarg=_CHECK_KWARG, **kwargs)


def _openai_tool(tool: Any) -> dict[str, Any]:
    from langchain_core.utils.function_calling import convert_to_openai_tool

    return convert_to_openai_tool(tool)


def _chat_result(result: Any) -> ChatResult:
    return ChatResult(generations=[ChatGeneration(message=to_ai_message(result))])

