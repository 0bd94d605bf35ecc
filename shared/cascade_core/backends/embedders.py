"""Prompt embedders: the small model's pooled prompt embedding a :class:`~cascade_core.decide.router.QueryRouter` reads.

A :class:`PromptEmbedder` turns a prompt into one vector with a single prefill (no token generated)
and counts its tokens (the router's length feature). Two ship:

- :class:`~cascade_core.backends.base.ModelPromptEmbedder` — a :class:`~cascade_core.backends.transformers.TransformersModel`'s
  :meth:`~cascade_core.backends.transformers.TransformersModel.prompt_embedding` (mean of the last-layer
  hidden states over the prompt tokens); :func:`~cascade_core.backends.base.prompt_embedder` builds it
  from a small tier that has one (the protocols live in :mod:`cascade_core.backends.base`, with the tiers').
- :class:`OpenAIEmbedder` — ``/v1/embeddings`` of an OpenAI-compatible server through the ``openai``
  client; llama.cpp serves it with the small tier's own GGUF (``LlamaCppServer(..., embedding=True)``:
  mean-pooled, not normalised), so the router reads the same vector the fit did.

Example:
    >>> from cascade_core.testing.fake_server import FakeOpenAIServer
    >>> with FakeOpenAIServer(embedding_dim=8) as server:
    ...     embedder = OpenAIEmbedder(server.base_url, "small", api_key="sk-local")
    ...     vector = embedder.embed("Capital of France?")
    ...     tokens = embedder.count_tokens("Capital of France?")
    >>> vector.shape, tokens, "sk-local" in repr(embedder)
    ((8,), 3, False)
"""

from __future__ import annotations

import asyncio
import os
import threading
import weakref
from collections import OrderedDict
from typing import Any

import numpy as np

from cascade_core.backends.base import ModelPromptEmbedder, PromptEmbedder, prompt_embedder
from cascade_core.errors import BackendError, ConfigurationError, ModelNotAvailableError
from cascade_core.redact import redact

__all__ = ["ModelPromptEmbedder", "OpenAIEmbedder", "PromptEmbedder", "prompt_embedder"]

_REMEMBERED = 256  # token counts kept from recent embedding calls (the router asks for both)


class OpenAIEmbedder:
    """``/v1/embeddings`` of an OpenAI-compatible server (llama.cpp in embedding mode, vLLM, OpenAI).

    The token count comes from the same response's ``usage.prompt_tokens`` (remembered for the last
    few prompts, so the router's length feature costs no second call).

    Args:
        base_url: Server URL, e.g. ``http://127.0.0.1:8081/v1``.
        model: Model name on the server.
        api_key: API key; defaults to ``$OPENAI_API_KEY`` or ``"not-needed"``. Never shown in
            ``repr``, logs or errors.
        timeout: Request timeout in seconds.
        max_retries: Retries of the ``openai`` client.

    Example:
        >>> OpenAIEmbedder("http://127.0.0.1:8081/v1", "small", api_key="sk-x")
        OpenAIEmbedder(model='small', base_url='http://127.0.0.1:8081/v1')
    """

    def __init__(self, base_url: str, model: str, *, api_key: str | None = None, timeout: float = 30.0,
                 max_retries: int = 2) -> None:
        if not isinstance(base_url, str) or not base_url:
            raise ConfigurationError("OpenAIEmbedder.base_url must be a server URL such as http://127.0.0.1:8081/v1")
        if not isinstance(model, str) or not model:
            raise ConfigurationError("OpenAIEmbedder.model must be a non-empty model name")
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
            raise ConfigurationError(f"OpenAIEmbedder.timeout must be a positive number of seconds, got {timeout!r}")
        self.base_url, self.model_name, self.timeout, self.max_retries = base_url, model, float(timeout), max_retries
        self.__api_key = api_key or os.environ.get("OPENAI_API_KEY") or "not-needed"
        self._client: Any = None
        self._aclients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()
        self._tokens: OrderedDict[str, int] = OrderedDict()

    def __repr__(self) -> str:
        return f"OpenAIEmbedder(model={self.model_name!r}, base_url={self.base_url!r})"

    def _openai(self) -> Any:
        try:
            import openai
        except ImportError as err:  # pragma: no cover - exercised only without the extra
            raise ModelNotAvailableError("OpenAIEmbedder needs the 'openai' package: pip install 'llm-cascade[openai]'") from err
        return openai

    def _sync_client(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = self._openai().OpenAI(base_url=self.base_url, api_key=self.__api_key,
                                                     timeout=self.timeout, max_retries=self.max_retries)
            return self._client

    def _async_client(self) -> Any:
        loop = asyncio.get_running_loop()  # an httpx pool is bound to the loop that opened it
        with self._lock:
            if loop not in self._aclients:
                self._aclients[loop] = self._openai().AsyncOpenAI(base_url=self.base_url, api_key=self.__api_key,
                                                                  timeout=self.timeout, max_retries=self.max_retries)
            return self._aclients[loop]

    def _read(self, text: str, response: Any) -> np.ndarray:
        try:
            vector = np.asarray(response.data[0].embedding, dtype=np.float64).reshape(-1)
        except (AttributeError, IndexError, TypeError, ValueError) as err:
            raise BackendError(f"{self.model_name}: /v1/embeddings reply has no embedding: {type(err).__name__}") from err
        if not vector.size or not np.isfinite(vector).all():
            raise BackendError(f"{self.model_name}: /v1/embeddings returned an empty or non-finite vector")
        usage = getattr(response, "usage", None)
        tokens = getattr(usage, "prompt_tokens", None)
        if isinstance(tokens, int):
            with self._lock:
                self._tokens[text] = tokens
                self._tokens.move_to_end(text)
                while len(self._tokens) > _REMEMBERED:
                    self._tokens.popitem(last=False)
        return vector

    def _failed(self, err: Exception) -> BackendError:
        return BackendError(f"{self.model_name}: /v1/embeddings failed: {type(err).__name__}: {redact(str(err))}")

    def embed(self, text: str) -> np.ndarray:
        try:
            response = self._sync_client().embeddings.create(model=self.model_name, input=text, encoding_format="float")
        except Exception as err:
            raise self._failed(err) from err
        return self._read(text, response)

    async def aembed(self, text: str) -> np.ndarray:
        try:
            response = await self._async_client().embeddings.create(model=self.model_name, input=text, encoding_format="float")
        except Exception as err:
            raise self._failed(err) from err
        return self._read(text, response)

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` as the server counted them when it embedded it (one embedding call if not seen)."""
        with self._lock:
            known = self._tokens.get(text)
        if known is None:
            self.embed(text)
            with self._lock:
                known = self._tokens.get(text)
        if known is None:
            raise BackendError(f"{self.model_name}: /v1/embeddings reply carries no usage.prompt_tokens to count the prompt")
        return known
