"""Plain-text answers over the OpenAI protocol: what the ``sample_agreement`` signal reads.

:class:`PlainTextAnswers` gives :class:`~cascade_core.backends.openai.OpenAIModel` its
``generate_texts`` / ``agenerate_texts`` (the :class:`~cascade_core.backends.base.TextGenerator`
protocol): ``n`` non-streamed requests to the chat or completion endpoint **without** ``logprobs``,
so a server that has none serves them, at the temperature asked for, request i seeded ``seed + i``.
They are ``n`` separate requests rather than one with ``n=k``: llama.cpp's server (its
OpenAI-compatible endpoints accept one choice per request) and many hosted APIs reject or ignore
``n > 1``; the async twin sends them concurrently.
"""

from __future__ import annotations

import asyncio
from typing import Any

from cascade_core.backends.openai_wire import read_usage
from cascade_core.cost import count_tokens
from cascade_core.errors import BackendError, ConfigurationError
from cascade_core.types import Request, TextSamples, Usage

__all__ = ["PlainTextAnswers"]


class PlainTextAnswers:
    """Mixin for an OpenAI-protocol model: ``n`` plain-text answers per request (greedy or sampled).

    The host class provides ``model_name``, ``base_url``, ``prompt_format``, ``max_new_tokens``,
    ``client``, ``aclient`` and ``_error``.
    """

    model_name: str
    base_url: str | None
    prompt_format: str
    max_new_tokens: int
    client: Any
    aclient: Any

    def _error(self, err: Exception) -> BackendError:  # pragma: no cover - provided by the host class
        raise NotImplementedError

    def _text_kwargs(self, request: Request, temperature: float, seed: int | None) -> dict[str, Any]:
        """One unscored, non-streamed request (chat or completion endpoint): no log-probs asked for."""
        kwargs: dict[str, Any] = {
            "model": self.model_name,
            "max_tokens": request.max_new_tokens or self.max_new_tokens,
            "temperature": temperature,
            "stream": False,
        }
        if self.prompt_format == "completion":
            kwargs["prompt"] = "\n\n".join(m.content for m in request.messages)
        else:
            kwargs["messages"] = [m.to_openai() for m in request.messages]
        if request.stop:
            kwargs["stop"] = list(request.stop)[:4]
        if seed is not None:
            kwargs["seed"] = seed
        return kwargs

    def _text_requests(self, request: Request, n: int, temperature: float, seed: int | None) -> list[dict[str, Any]]:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigurationError(f"generate_texts: n must be a positive int, got {n!r}")
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not 0 <= temperature <= 2:
            raise ConfigurationError(f"generate_texts: temperature must be a number in [0, 2], got {temperature!r}")
        return [self._text_kwargs(request, float(temperature), None if seed is None else seed + i) for i in range(n)]

    def _text_of(self, response: Any, request: Request) -> tuple[str, Usage]:
        choices = getattr(response, "choices", None)
        if not choices:
            raise BackendError(f"{self.model_name} at {self.base_url or 'api.openai.com'} sent no choices for a text answer")
        choice = choices[0]
        text = (choice.text if self.prompt_format == "completion" else choice.message.content) or ""
        usage = read_usage(getattr(response, "usage", None)) or Usage(count_tokens(request.prompt_text), count_tokens(text))
        return str(text), usage

    def _samples(self, replies: list[tuple[str, Usage]]) -> TextSamples:
        usage = Usage()
        for _, part in replies:
            usage = usage + part
        return TextSamples(tuple(text for text, _ in replies), usage, calls=len(replies))

    def _endpoint(self, client: Any) -> Any:
        return client.completions if self.prompt_format == "completion" else client.chat.completions

    def generate_texts(self, request: Request, *, n: int, temperature: float, seed: int | None = None) -> TextSamples:
        """``n`` plain-text answers, one request each (sample i seeded ``seed + i``); no log-probs asked for."""
        calls = self._text_requests(request, n, temperature, seed)
        try:
            return self._samples([self._text_of(self._endpoint(self.client).create(**kw), request) for kw in calls])
        except BackendError:
            raise
        except Exception as err:
            raise self._error(err) from err

    async def agenerate_texts(self, request: Request, *, n: int, temperature: float, seed: int | None = None) -> TextSamples:
        """Async :meth:`generate_texts`; the ``n`` requests run concurrently."""
        calls = self._text_requests(request, n, temperature, seed)
        endpoint = self._endpoint(self.aclient)
        try:
            responses = await asyncio.gather(*(endpoint.create(**kw) for kw in calls))
            return self._samples([self._text_of(r, request) for r in responses])
        except BackendError:
            raise
        except Exception as err:
            raise self._error(err) from err
