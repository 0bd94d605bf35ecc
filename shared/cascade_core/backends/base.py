"""What a tier must provide, as small protocols.

- :class:`SmallModel` (any tier but the last): streams decoding steps with per-token log-probs and
  top-k alternatives, sync and async. Any ``SmallModel`` built on :class:`TokenModelBase` is also
  usable as a :class:`LargeModel`.
- :class:`TextGenerator` (optional, a small tier judged by sampled answers): ``n`` answers as plain
  text at a temperature, without log-probs (the ``sample_agreement`` signal).
- :class:`LargeModel` (the last tier): text in, text + usage out, sync/async, plain or streamed.
  It needs no log-probs, so it can be any API model (the adapters wrap LangChain / LlamaIndex LLMs).
- :class:`PromptEmbedder` (a pre-generation router's features): a prompt's pooled embedding and its
  token count; :func:`prompt_embedder` gives a small tier's own when its backend has one
  (:mod:`cascade_core.backends.embedders` has the ``/v1/embeddings`` client).

The events they send (:class:`~cascade_core.types.StepsEnd`, :class:`~cascade_core.types.CompletionChunk`)
live in :mod:`cascade_core.types`; they are re-exported here for existing imports.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any, Protocol, runtime_checkable

from cascade_core.engine.steps import StepAccumulator
from cascade_core.errors import ConfigurationError
from cascade_core.types import Completion, CompletionChunk, Request, StepsEnd, TextSamples, TokenStep

__all__ = [  # StepsEnd and CompletionChunk live in cascade_core.types
    "BatchPrefillModel",
    "CompletionChunk",
    "LargeModel",
    "ModelPromptEmbedder",
    "PromptEmbedder",
    "SmallModel",
    "StepsEnd",
    "TextGenerator",
    "TokenModelBase",
    "iterate_in_thread",
    "prompt_embedder",
]


@runtime_checkable
class SmallModel(Protocol):
    """A tier that exposes token-level uncertainty.

    Attributes:
        model_name: Name recorded in results.
        top_k: How many alternatives each step records (≥ 2 for margin/entropy signals).
    """

    model_name: str
    top_k: int

    def stream_steps(self, request: Request) -> Iterator[TokenStep | StepsEnd]:
        """Yield one :class:`TokenStep` per generated token, then one :class:`StepsEnd`.

        Closing the iterator early must stop generation (the cascade does so when it defers
        after the first step).
        """
        ...

    def astream_steps(self, request: Request) -> AsyncIterator[TokenStep | StepsEnd]:
        """Async twin of :meth:`stream_steps`."""
        ...

    def count_tokens(self, text: str) -> int:
        """Number of tokens of ``text`` for this model."""
        ...


@runtime_checkable
class BatchPrefillModel(Protocol):
    """A small tier that can prefill many requests in one forward pass (a local model).

    ``Cascade.batch`` / ``abatch`` use it: they open the first tier's step streams for up to
    ``max_batch_size`` requests at once, so a batch of first-token-margin decisions costs about one
    padded forward pass instead of one per request.

    Attributes:
        max_batch_size: Most requests prefilled together (1 turns batching off).
    """

    max_batch_size: int

    def stream_steps_batch(self, requests: Sequence[Request]) -> list[Iterator[TokenStep | StepsEnd]]:
        """One step stream per request, each yielding what ``stream_steps`` would for it."""
        ...


@runtime_checkable
class TextGenerator(Protocol):
    """A small tier that can answer as plain text, greedily or sampled (no log-probs involved).

    What a signal that compares answers (``sample_agreement``) needs: the greedy answer
    (``temperature=0``, ``n=1``) and ``n`` samples at ``temperature > 0``, sample i seeded ``seed + i``
    so that repeated calls draw the same samples (``seed=None``: the backend's own randomness).
    Stop strings and ``max_new_tokens`` of the request apply to every answer.
    """

    def generate_texts(self, request: Request, *, n: int, temperature: float, seed: int | None = None) -> TextSamples:
        """``n`` answers to ``request`` as text, with the usage of all of them."""
        ...

    async def agenerate_texts(self, request: Request, *, n: int, temperature: float, seed: int | None = None) -> TextSamples:
        """Async :meth:`generate_texts`."""
        ...


@runtime_checkable
class LargeModel(Protocol):
    """A tier that only has to answer with text (and report usage)."""

    model_name: str

    def complete(self, request: Request) -> Completion: ...

    async def acomplete(self, request: Request) -> Completion: ...

    def stream(self, request: Request) -> Iterator[CompletionChunk]: ...

    def astream(self, request: Request) -> AsyncIterator[CompletionChunk]: ...

    def count_tokens(self, text: str) -> int: ...


@runtime_checkable
class PromptEmbedder(Protocol):
    """What a router needs to score a prompt before generation: its pooled embedding and its length."""

    def embed(self, text: str) -> Any:
        """The prompt's pooled embedding, a 1-D float array (one prefill, no token generated)."""
        ...

    async def aembed(self, text: str) -> Any:
        """Async :meth:`embed`."""
        ...

    def count_tokens(self, text: str) -> int:
        """The prompt's length in the small model's tokens."""
        ...


class ModelPromptEmbedder:
    """A model's own ``prompt_embedding`` (e.g. a ``TransformersModel``'s) as a :class:`PromptEmbedder`.

    Example:
        >>> from cascade_core.backends.transformers import TransformersModel
        >>> from cascade_core.testing import tiny_model, tiny_tokenizer
        >>> tok = tiny_tokenizer()
        >>> embedder = ModelPromptEmbedder(TransformersModel(tiny_model(tok), tok, prompt_format="completion"))
        >>> embedder.embed("the cat").ndim, embedder.count_tokens("the cat") > 0
        (1, True)
    """

    def __init__(self, model: Any) -> None:
        if not callable(getattr(model, "prompt_embedding", None)) or not callable(getattr(model, "count_tokens", None)):
            raise ConfigurationError(f"ModelPromptEmbedder needs a model with prompt_embedding() and count_tokens(), got {type(model).__name__}")
        self.model = model

    def __repr__(self) -> str:
        return f"ModelPromptEmbedder({self.model!r})"

    def embed(self, text: str) -> Any:
        return self.model.prompt_embedding(text)

    async def aembed(self, text: str) -> Any:
        return await asyncio.to_thread(self.model.prompt_embedding, text)

    def count_tokens(self, text: str) -> int:
        return int(self.model.count_tokens(text))


def prompt_embedder(small: Any) -> PromptEmbedder | None:
    """The small tier's own prompt embedder when its backend can give one (a ``TransformersModel``), else None."""
    if callable(getattr(small, "prompt_embedding", None)) and callable(getattr(small, "count_tokens", None)):
        return ModelPromptEmbedder(small)
    return None


_END = object()


class _SerialIterator:
    """A blocking iterator whose ``next`` and ``close`` never overlap, whichever thread calls them."""

    def __init__(self, iterator: Iterator[Any]) -> None:
        self.iterator = iterator
        self.lock = threading.Lock()
        self.closed = False

    def next(self) -> Any:
        with self.lock:
            return _END if self.closed else next(self.iterator, _END)

    def close(self) -> None:
        with self.lock:  # waits for a step still running in a worker thread
            if self.closed:
                return
            self.closed = True
            close = getattr(self.iterator, "close", None)
            if close is not None:
                close()


async def iterate_in_thread(iterator: Iterator[Any]) -> AsyncIterator[Any]:
    """Drive a blocking iterator from asyncio, one ``next`` per worker-thread call.

    Used to give CPU-bound local models an async interface without a second implementation. The
    iterator is closed (in a worker thread) if the consumer stops early. If the consumer is
    *cancelled* while a step runs, ``CancelledError`` propagates at once and the iterator is
    closed by a background thread as soon as that step returns (closing a generator while
    another thread runs it would raise ``ValueError: generator already executing``).
    """
    serial = _SerialIterator(iterator)
    cancelled = False
    try:
        while True:
            item = await asyncio.to_thread(serial.next)
            if item is _END:
                return
            yield item
    except asyncio.CancelledError:
        cancelled = True
        threading.Thread(target=serial.close, name="cascade-close-cancelled", daemon=True).start()
        raise
    finally:
        if not cancelled:
            await asyncio.to_thread(serial.close)


class TokenModelBase:
    """Mixin: builds the :class:`LargeModel` surface on top of ``stream_steps`` / ``astream_steps``.

    Subclasses implement ``stream_steps`` (and ``astream_steps`` if they have real async I/O;
    the default runs ``stream_steps`` in worker threads) and ``count_tokens``.
    """

    model_name: str = ""

    def stream_steps(self, request: Request) -> Iterator[TokenStep | StepsEnd]:  # pragma: no cover - abstract
        raise NotImplementedError

    def astream_steps(self, request: Request) -> AsyncIterator[TokenStep | StepsEnd]:
        return iterate_in_thread(self.stream_steps(request))

    def count_tokens(self, text: str) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    async def agenerate_texts(self, request: Request, *, n: int, temperature: float, seed: int | None = None) -> TextSamples:
        """Async ``generate_texts`` (a subclass that defines it): the blocking one in a worker thread."""
        generate = getattr(self, "generate_texts", None)
        if generate is None:
            raise NotImplementedError(f"{type(self).__name__} cannot generate plain-text samples (no generate_texts)")
        return await asyncio.to_thread(generate, request, n=n, temperature=temperature, seed=seed)

    def _prompt_tokens(self, request: Request) -> Callable[[], int]:
        return lambda: self.count_tokens(request.prompt_text)

    def _completion(self, steps: StepAccumulator, request: Request) -> Completion:
        steps.finish()
        return Completion(
            text=steps.text,
            usage=steps.usage(self._prompt_tokens(request)),
            model_name=self.model_name,
            finish_reason=steps.end.finish_reason if steps.end is not None else "stop",
        )

    def complete(self, request: Request) -> Completion:
        steps = StepAccumulator(request.stop)
        for event in self.stream_steps(request):
            steps.add(event)
        return self._completion(steps, request)

    async def acomplete(self, request: Request) -> Completion:
        steps = StepAccumulator(request.stop)
        async for event in self.astream_steps(request):
            steps.add(event)
        return self._completion(steps, request)

    def stream(self, request: Request) -> Iterator[CompletionChunk]:
        steps = StepAccumulator(request.stop)
        for event in self.stream_steps(request):
            yield from self._chunks(steps, steps.add(event), request)
            if steps.done or steps.stopped:
                return

    async def astream(self, request: Request) -> AsyncIterator[CompletionChunk]:
        steps = StepAccumulator(request.stop)
        async for event in self.astream_steps(request):
            for chunk in self._chunks(steps, steps.add(event), request):
                yield chunk
            if steps.done or steps.stopped:
                return

    def _chunks(self, steps: StepAccumulator, visible: str, request: Request) -> list[CompletionChunk]:
        """Chunks for the text that just became visible; at the end or a stop string, with the usage."""
        if steps.done:  # the end event: one chunk with the text it released
            return [CompletionChunk(visible, usage=steps.usage(self._prompt_tokens(request)))]
        chunks = [CompletionChunk(visible)] if visible else []
        if steps.stopped:
            chunks.append(CompletionChunk("", usage=steps.usage(self._prompt_tokens(request))))
        return chunks
