"""OpenAI-compatible HTTP backend (OpenAI, vLLM, llama.cpp server, Ollama, LM Studio …).

As a **small tier** it streams chat completions with ``logprobs=True, top_logprobs=top_k`` and turns
each token's log-prob and alternatives into a :class:`~cascade_core.types.TokenStep`; the cascade
closes the HTTP stream after the first token when it defers, so a deferred query costs one token.
For a signal that compares answers (``sample_agreement``) it answers as plain text instead
(:meth:`OpenAIModel.generate_texts`: no log-probs asked for — a server without them serves it): the
greedy answer, then k requests at temperature T with seeds ``seed + i``. They are k separate requests,
not one with ``n=k``: llama.cpp's server and many others reject or ignore ``n > 1``.
As a **large tier** it asks for plain completions (no log-probs), with native tool calling.

Example:
    >>> from cascade_core.backends.openai import OpenAIModel
    >>> small = OpenAIModel("qwen2.5-1.5b-instruct", base_url="http://127.0.0.1:8000/v1", api_key="sk-local")
    >>> "sk-local" in repr(small)
    False
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import weakref
from collections.abc import AsyncIterator, Iterator
from typing import Any

from cascade_core.backends.base import TokenModelBase
from cascade_core.backends.openai_text import PlainTextAnswers
from cascade_core.backends.openai_wire import (
    ToolCallDeltas,
    api_tool_choice,
    read_steps,
    read_usage,
    tool_call_from_wire,
)
from cascade_core.cost import count_tokens
from cascade_core.engine.tool_calls import recover_text_tool_calls
from cascade_core.errors import (
    BackendError,
    ConfigurationError,
    LogprobsUnavailableError,
    ModelNotAvailableError,
)
from cascade_core.redact import redact, redact_exception
from cascade_core.types import (
    Completion,
    CompletionChunk,
    Request,
    StepsEnd,
    TokenStep,
    Usage,
)

__all__ = ["OpenAIModel", "openai_tier"]

logger = logging.getLogger(__name__)


def _import_openai() -> Any:
    try:
        import openai
    except ImportError as err:  # pragma: no cover - exercised only without the extra
        raise ModelNotAvailableError("the OpenAI backend needs the 'openai' package: pip install 'llm-cascade[openai]'") from err
    return openai


class OpenAIModel(PlainTextAnswers, TokenModelBase):
    """A model served over the OpenAI chat-completions API.

    Args:
        model: Model name on the server.
        base_url: Server URL (``http://127.0.0.1:8000/v1`` for vLLM; ``None`` = api.openai.com).
        api_key: API key; defaults to ``$OPENAI_API_KEY`` or ``"not-needed"`` for local servers.
            Never shown in ``repr``, logs or errors.
        top_k: Alternatives requested per token (``top_logprobs``, at most 20) when used as a small tier.
        max_new_tokens: Default cap on generated tokens.
        temperature: Sampling temperature (0 = greedy, the default for a cascade's small tier).
        timeout: Request timeout in seconds.
        max_retries: Retries of the ``openai`` client.
        prompt_format: ``"chat"`` (``/v1/chat/completions``, the server applies the model's chat template)
            or ``"completion"`` (``/v1/completions`` with the message contents joined by blank lines — for
            few-shot prompts; a small tier only, since it carries no tools).

    Example:
        >>> m = OpenAIModel("gpt-4o-mini", api_key="sk-test", top_k=5)
        >>> m.model_name, m.top_k
        ('gpt-4o-mini', 5)
    """

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        top_k: int = 5,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        timeout: float = 60.0,
        max_retries: int = 2,
        prompt_format: str = "chat",
    ) -> None:
        if not isinstance(model, str) or not model:
            raise ConfigurationError("OpenAIModel.model must be a non-empty model name")
        if isinstance(top_k, bool) or not isinstance(top_k, int) or not 0 <= top_k <= 20:
            raise ConfigurationError(f"OpenAIModel.top_k must be an int in [0, 20] (the API's top_logprobs limit), got {top_k!r}")
        if not isinstance(max_new_tokens, int) or max_new_tokens < 1:
            raise ConfigurationError(f"OpenAIModel.max_new_tokens must be a positive int, got {max_new_tokens!r}")
        if prompt_format not in ("chat", "completion"):
            raise ConfigurationError(f"OpenAIModel.prompt_format must be 'chat' or 'completion', got {prompt_format!r}")
        self.prompt_format = prompt_format
        self.model_name = model
        self.base_url = base_url
        self.top_k = top_k
        self.max_new_tokens = max_new_tokens
        self.temperature = float(temperature)
        self.timeout = timeout
        self.max_retries = max_retries
        self.__api_key = api_key or os.environ.get("OPENAI_API_KEY") or "not-needed"
        self._client: Any = None
        # one async client per event loop: an httpx pool is bound to the loop that opened it
        self._aclients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = weakref.WeakKeyDictionary()
        self._aclients_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"OpenAIModel(model={self.model_name!r}, base_url={self.base_url!r}, top_k={self.top_k})"

    @property
    def client(self) -> Any:
        if self._client is None:
            openai = _import_openai()
            self._client = openai.OpenAI(
                base_url=self.base_url, api_key=self.__api_key, timeout=self.timeout, max_retries=self.max_retries
            )
        return self._client

    @property
    def aclient(self) -> Any:
        """The ``AsyncOpenAI`` client of the running event loop (a new loop gets its own client)."""
        loop = asyncio.get_running_loop()
        with self._aclients_lock:
            client = self._aclients.get(loop)
            if client is None:
                openai = _import_openai()
                client = openai.AsyncOpenAI(
                    base_url=self.base_url, api_key=self.__api_key, timeout=self.timeout, max_retries=self.max_retries
                )
                self._aclients[loop] = client
        return client

    def count_tokens(self, text: str) -> int:
        return count_tokens(text)

    # -- request building (shared by sync and async) ------------------------------------------
    def _completion_kwargs(self, request: Request) -> dict[str, Any]:
        """A scored ``/v1/completions`` stream (``prompt_format="completion"``)."""
        kwargs: dict[str, Any] = {
            "model": self.model_name,
            "prompt": "\n\n".join(m.content for m in request.messages),
            "max_tokens": request.max_new_tokens or self.max_new_tokens,
            "temperature": self.temperature,
            # the completion stream is read as scored steps, so even a large tier (top_k=0) asks for one
            "logprobs": max(self.top_k, 1),
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if request.stop:
            kwargs["stop"] = list(request.stop)[:4]
        return kwargs

    def _open_scored(self, client: Any, request: Request) -> Any:
        """Start a scored stream (chat or completion endpoint); awaitable for the async client."""
        if self.prompt_format == "completion":
            return client.completions.create(**self._completion_kwargs(request))
        return client.chat.completions.create(**self._kwargs(request, scored=True, stream=True))

    def _kwargs(self, request: Request, *, scored: bool, stream: bool) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "model": self.model_name,
            "messages": [m.to_openai() for m in request.messages],
            "max_tokens": request.max_new_tokens or self.max_new_tokens,
            "temperature": self.temperature if request.temperature is None else request.temperature,
            "stream": stream,
        }
        if request.stop:
            kwargs["stop"] = list(request.stop)[:4]
        if scored:
            kwargs["logprobs"] = True
            kwargs["top_logprobs"] = self.top_k
        elif request.tools:
            kwargs["tools"] = [t.to_openai() for t in request.tools]
            if request.tool_choice is not None:
                kwargs["tool_choice"] = api_tool_choice(request.tool_choice)
        if request.response_schema is not None and not request.tools:
            kwargs["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "response", "schema": dict(request.response_schema)},
            }
        if stream:
            kwargs["stream_options"] = {"include_usage": True}
        return kwargs

    def _error(self, err: Exception) -> BackendError:
        # an error body is server text: it may echo our Authorization header. Mask the key in the
        # message and in the provider exception kept as __cause__.
        redact_exception(err, (self.__api_key,))
        detail = redact(str(err), (self.__api_key,))[:500]
        return BackendError(f"{self.model_name} at {self.base_url or 'api.openai.com'}: {type(err).__name__}: {detail}")

    def _truncated(self) -> BackendError:
        return BackendError(
            f"{self.model_name} at {self.base_url or 'api.openai.com'}: the stream ended without a finish_reason "
            "(connection cut or not an SSE chat-completions stream); the answer may be truncated"
        )

    def _check_logprobs(self, chunk: Any, steps: list[TokenStep]) -> None:
        if steps or not chunk.choices:
            return
        delta = getattr(chunk.choices[0], "delta", None)
        if getattr(delta, "content", None) or getattr(chunk.choices[0], "text", None):
            raise LogprobsUnavailableError(
                f"small tier {self.model_name} at {self.base_url or 'api.openai.com'} returned text without "
                "logprobs, so no signal can judge its answers (every query would go to the large tier). Options: "
                "serve it where logprobs=True and top_logprobs work (vLLM, `cascade llama-server`, llama.cpp "
                "server, OpenAI chat models), run it in-process (--small embedded / the transformers backend), "
                "or use this endpoint as the large tier only"
            )

    @staticmethod
    def _end(chunk: Any, finish: str | None) -> str | None:
        if not hasattr(chunk, "choices"):
            raise BackendError(f"server sent a stream event that is not a chat-completion chunk: {redact(str(chunk))[:80]!r}")
        if chunk.choices and chunk.choices[0].finish_reason:
            return str(chunk.choices[0].finish_reason)
        return finish

    # -- small-tier step streams -------------------------------------------------------------
    def _read(self, chunk: Any, state: dict[str, Any]) -> list[TokenStep]:
        """Steps of one streamed chunk; records usage and finish reason in ``state``."""
        state["finish"] = self._end(chunk, state.get("finish"))
        steps = read_steps(chunk)
        self._check_logprobs(chunk, steps)
        state["usage"] = read_usage(getattr(chunk, "usage", None)) or state.get("usage")
        return steps

    def stream_steps(self, request: Request) -> Iterator[TokenStep | StepsEnd]:
        state: dict[str, Any] = {}
        try:
            response = self._open_scored(self.client, request)
            try:
                for chunk in response:
                    yield from self._read(chunk, state)
            finally:
                response.close()
        except (BackendError, LogprobsUnavailableError):
            raise
        except Exception as err:
            raise self._error(err) from err
        if state.get("finish") is None:
            raise self._truncated()
        yield StepsEnd(state.get("usage"), state["finish"])

    async def astream_steps(self, request: Request) -> AsyncIterator[TokenStep | StepsEnd]:  # type: ignore[override]
        state: dict[str, Any] = {}
        try:
            response = await self._open_scored(self.aclient, request)
            try:
                async for chunk in response:
                    for step in self._read(chunk, state):
                        yield step
            finally:
                await response.close()
        except (BackendError, LogprobsUnavailableError):
            raise
        except Exception as err:
            raise self._error(err) from err
        if state.get("finish") is None:
            raise self._truncated()
        yield StepsEnd(state.get("usage"), state["finish"])

    # -- large-tier text API -------------------------------------------------------------------
    def _to_completion(self, response: Any, request: Request) -> Completion:
        if not hasattr(response, "choices"):
            raise BackendError(
                f"{self.model_name} at {self.base_url or 'api.openai.com'} sent a reply that is not a chat completion "
                f"(not JSON?): {redact(str(response), (self.__api_key,))[:80]!r}"
            )
        if not response.choices:
            raise BackendError(f"{self.model_name} returned no choices")
        message = response.choices[0].message
        calls = tuple(tool_call_from_wire(c.function.name, c.function.arguments, c.id) for c in (message.tool_calls or []))
        text = message.content or ""
        if not calls:  # a call written as text (llama.cpp)
            calls, text = recover_text_tool_calls(text, request)
        usage = read_usage(response.usage) or Usage(count_tokens(request.prompt_text), count_tokens(text))
        return Completion(text, usage, response.model or self.model_name, calls, response.choices[0].finish_reason, raw=response)

    def complete(self, request: Request) -> Completion:
        if self.prompt_format == "completion":  # the scored completion stream, collected
            return super().complete(request)
        try:
            response = self.client.chat.completions.create(**self._kwargs(request, scored=False, stream=False))
            return self._to_completion(response, request)
        except BackendError:
            raise
        except Exception as err:
            raise self._error(err) from err

    async def acomplete(self, request: Request) -> Completion:
        if self.prompt_format == "completion":
            return await super().acomplete(request)
        try:
            response = await self.aclient.chat.completions.create(**self._kwargs(request, scored=False, stream=False))
            return self._to_completion(response, request)
        except BackendError:
            raise
        except Exception as err:
            raise self._error(err) from err

    @staticmethod
    def _chunk(chunk: Any, deltas: ToolCallDeltas, state: dict[str, Any]) -> CompletionChunk | None:
        state["finish"] = OpenAIModel._end(chunk, state.get("finish"))
        deltas.add(chunk)
        text = (chunk.choices[0].delta.content or "") if chunk.choices else ""
        usage = read_usage(getattr(chunk, "usage", None))
        if deltas.hold:  # the text may be a tool call written as text: it is released whole at the end
            deltas.text.append(text)
            deltas.usage = usage or deltas.usage
            return None
        return CompletionChunk(text, raw=chunk, usage=usage) if text or usage else None

    def stream(self, request: Request) -> Iterator[CompletionChunk]:
        if self.prompt_format == "completion":
            yield from super().stream(request)
            return
        deltas = ToolCallDeltas(request)
        state: dict[str, Any] = {}
        try:
            response = self.client.chat.completions.create(**self._kwargs(request, scored=False, stream=True))
            try:
                for chunk in response:
                    piece = self._chunk(chunk, deltas, state)
                    if piece is not None:
                        yield piece
            finally:  # an abandoned stream stops the server's generation too
                response.close()
        except BackendError:
            raise
        except Exception as err:
            raise self._error(err) from err
        if state.get("finish") is None:
            raise self._truncated()
        yield from deltas.end()

    async def astream(self, request: Request) -> AsyncIterator[CompletionChunk]:
        if self.prompt_format == "completion":
            async for part in super().astream(request):
                yield part
            return
        deltas = ToolCallDeltas(request)
        state: dict[str, Any] = {}
        try:
            response = await self.aclient.chat.completions.create(**self._kwargs(request, scored=False, stream=True))
            try:
                async for chunk in response:
                    piece = self._chunk(chunk, deltas, state)
                    if piece is not None:
                        yield piece
            finally:  # an abandoned stream stops the server's generation too
                await response.close()
        except BackendError:
            raise
        except Exception as err:
            raise self._error(err) from err
        if state.get("finish") is None:
            raise self._truncated()
        for piece in deltas.end():
            yield piece


def openai_tier(
    model: str,
    role: str,
    *,
    base_url: str | None = None,
    api_key: str | None = None,
    top_k: int = 5,
    max_new_tokens: int | None = None,
    temperature: float | None = None,
    timeout: float | None = None,
    max_retries: int | None = None,
    prompt_format: str | None = None,
) -> OpenAIModel:
    """A model served over the OpenAI protocol as the tier ``role`` of a cascade.

    The one place a tier named by a model name is built (the CLI's ``openai:<base_url>#<model>``
    spec and ``ChatCascade(small="name", large="name")`` both call it): a judged tier (any role
    but ``"large"``) asks for ``top_k`` log-prob alternatives, the large tier for none. Options
    left at ``None`` keep :class:`OpenAIModel`'s defaults.

    Args:
        model: Model name on the server.
        role: ``"small"`` (or another judged tier such as ``"medium"``) or ``"large"``.
        base_url: The server (``None`` = api.openai.com).
        api_key: Key for the server (``None``: ``$OPENAI_API_KEY``, else none).
        top_k: Log-prob alternatives per token for a judged tier.
        max_new_tokens / temperature / timeout / max_retries / prompt_format: Client options.

    Example:
        >>> openai_tier("qwen2.5", "large", base_url="http://127.0.0.1:8000/v1").top_k
        0
    """
    options: dict[str, Any] = {
        name: value for name, value in (("max_new_tokens", max_new_tokens), ("temperature", temperature),
                                        ("timeout", timeout), ("max_retries", max_retries),
                                        ("prompt_format", prompt_format)) if value is not None
    }
    return OpenAIModel(model, base_url=base_url, api_key=api_key, top_k=top_k if role != "large" else 0, **options)
