"""The :class:`Cascade`: tiers + rules, with sync, async, streaming and batch entry points.

All entry points run :func:`cascade_core.engine.machine.plan`; the two small drivers below only
carry out its effects (one with blocking calls, one with ``await``).
"""

from __future__ import annotations

import asyncio
import copy
import logging
import os
from collections.abc import AsyncIterator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

from cascade_core.backends.base import PromptEmbedder, iterate_in_thread
from cascade_core.decide.calibration_file import load_calibration
from cascade_core.decide.router import QueryRouter
from cascade_core.decide.rules import DeferralRule, ThresholdRule
from cascade_core.engine.answer_check import AnswerCheck
from cascade_core.engine.batching import PrimedSteps, batch_groups, prime_first_tier
from cascade_core.engine.content import input_modalities
from cascade_core.engine.deadlines import AsyncLimits, SyncLimits, check_timeout
from cascade_core.engine.effects import (
    END,
    CloseSteps,
    Complete,
    Emit,
    GenerateTexts,
    NextChunk,
    NextStep,
    OpenChunks,
    OpenSteps,
    Route,
)
from cascade_core.engine.machine import plan
from cascade_core.engine.observers import PlanObserver, observe
from cascade_core.engine.plan_state import TierView
from cascade_core.engine.result import CascadeChunk, CascadeResult
from cascade_core.engine.route_stage import router_stage
from cascade_core.engine.shared_state import share_state
from cascade_core.engine.tier import Tier, check_tiers, record_embeddings
from cascade_core.errors import ConfigurationError, DeadlineExceededError
from cascade_core.state.base import StateStore
from cascade_core.types import Message, Request

__all__ = ["Cascade", "Tier"]

logger = logging.getLogger(__name__)

RequestLike = Request | str | Sequence[Message]

#: Defaults (seconds): a small tier silent this long defers; a large tier this long fails; no call outlives the deadline.
DEFAULT_SMALL_TIMEOUT = 10.0
DEFAULT_LARGE_TIMEOUT = 60.0
DEFAULT_DEADLINE = 120.0


def _as_request(request: RequestLike) -> Request:
    if isinstance(request, Request):
        return request
    if isinstance(request, str):
        return Request.from_prompt(request)
    return Request.from_messages(request)


def _calibrated_router(router: Any, calibrated: dict[str, Any] | None) -> Any:
    """A router without a threshold takes the one a hybrid calibration file (``cascade calibrate --router``) carries."""
    if router is None or calibrated is None:
        return router
    if isinstance(router, (str, os.PathLike)):
        router = QueryRouter.load(router)
    if isinstance(router, QueryRouter) and router.threshold is None:
        router = copy.copy(router)
        router.threshold = float(calibrated["threshold"])
    return router


class Cascade:
    """A cascade of models: answer with the first confident tier, defer otherwise.

    Args:
        tiers: Two or more models (or :class:`Tier` objects), cheapest first. Every tier but the
            last must expose token log-probs (:class:`SmallModel`); the last can be any
            :class:`LargeModel`.
        rules: One rule per non-final tier (a single rule is used for every step). Default:
            ``ThresholdRule("margin", 0.3)``.
        calibration_file: Instead of ``rules``: a file ``cascade calibrate --out`` wrote; its rule
            and threshold (certified under ``--risk``) decide after every non-final tier. A hybrid's
            file (``--router``) also gives a ``router`` without a threshold its routing threshold.
        max_concurrency: Default bound on concurrent requests in :meth:`batch` / :meth:`abatch`.
        on_small_error: ``"defer"`` (default): a failing small tier defers to the next tier;
            ``"raise"``: the error propagates.
        max_new_tokens: Default generation cap for requests that set none.
        monitor: A :class:`~cascade_core.observe.monitor.DriftMonitor` told about every call (its status is
            added to ``result.metadata["drift"]``).
        small_timeout: Seconds a non-final tier may go without delivering its next step (the first
            one included) before it counts as failed — then ``on_small_error`` applies. ``None``: no limit.
        large_timeout: Seconds the last tier may take for its answer (or between streamed chunks).
        deadline: Seconds one call may take in all; past it :class:`DeadlineExceededError` is raised
            and no further tier is called.
        on_large_error: ``"raise"`` (default): a failing last tier raises :class:`LargeTierError`
            carrying the decisions taken (the provider's exception as ``__cause__``); ``"small"``:
            answer from the small tier instead, flagged ``result.fallback=True`` with the reason
            (the small answer is generated in full if the rule had stopped it after one token).
        router: A pre-generation :class:`~cascade_core.decide.router.QueryRouter` (fitted, with a
            ``threshold``) or the path of a router file: a request it scores ``p_good < threshold``
            goes straight to the last tier, no small tier generating (decision ``signal="routed"``);
            see :mod:`cascade_core.engine.route_stage`.
        router_embedder: The prompt embedder of an embedding router (a
            :class:`~cascade_core.backends.base.PromptEmbedder`, e.g.
            :class:`~cascade_core.backends.embedders.OpenAIEmbedder`); default: the first tier's own
            (a ``TransformersModel``'s ``prompt_embedding``).
        threshold_store: Where the rules' dynamic thresholds (:class:`DynamicBudgetThreshold`) and the
            monitor keep their windows: ``None`` (this process, the default), a ``redis://…?key=name``
            URL or a :class:`~cascade_core.state.StateStore`. Every process naming the same server
            and key shares one budget, one warm-up and one drift window (see docs/serve.md).

    Example:
        >>> from cascade_core import Cascade, ThresholdRule
        >>> from cascade_core.testing import ScriptedModel
        >>> small = ScriptedModel("Paris", confidence=0.9, name="small")
        >>> large = ScriptedModel("Paris, France", name="large")
        >>> cascade = Cascade([small, large], rules=ThresholdRule("margin", 0.5))
        >>> result = cascade.invoke("What is the capital of France?")
        >>> result.text, result.tier, result.decision.defer
        ('Paris', 0, False)
    """

    def __init__(
        self,
        tiers: Sequence[Any],
        rules: DeferralRule | Sequence[DeferralRule] | None = None,
        *,
        max_concurrency: int = 4,
        on_small_error: Literal["defer", "raise"] = "defer",
        max_new_tokens: int | None = None,
        monitor: PlanObserver | None = None,
        small_timeout: float | None = DEFAULT_SMALL_TIMEOUT,
        large_timeout: float | None = DEFAULT_LARGE_TIMEOUT,
        deadline: float | None = DEFAULT_DEADLINE,
        on_large_error: Literal["raise", "small"] = "raise",
        router: QueryRouter | str | os.PathLike[str] | None = None,
        router_embedder: PromptEmbedder | None = None,
        calibration_file: str | os.PathLike[str] | None = None,
        threshold_store: StateStore | str | None = None,
    ) -> None:
        if isinstance(tiers, (str, bytes)) or len(tiers) < 2:
            raise ConfigurationError("a cascade needs at least 2 tiers, cheapest first")
        self.tiers = [t if isinstance(t, Tier) else Tier(t) for t in tiers]
        if calibration_file is not None:
            if rules is not None:
                raise ConfigurationError("give rules= or calibration_file= (which carries its rule), not both")
            calibration = load_calibration(calibration_file)
            rules = [calibration.build_rule() for _ in self.tiers[1:]]
            router = _calibrated_router(router, calibration.router)
        if rules is None:
            rules = ThresholdRule("margin", 0.3)
        self.rules: list[DeferralRule] = [rules] * (len(self.tiers) - 1) if isinstance(rules, DeferralRule) else list(rules)
        if len(self.rules) != len(self.tiers) - 1:
            raise ConfigurationError(
                f"rules: give one rule per non-final tier ({len(self.tiers) - 1}), got {len(self.rules)}"
            )
        self.tiers = record_embeddings(self.tiers, self.rules)  # a Post-Hoc-Embed rule needs the small embedding
        check_tiers(self.tiers, self.rules)
        if on_small_error not in ("defer", "raise"):
            raise ConfigurationError(f"on_small_error must be 'defer' or 'raise', got {on_small_error!r}")
        if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int) or max_concurrency < 1:
            raise ConfigurationError(f"max_concurrency must be a positive int, got {max_concurrency!r}")
        if max_new_tokens is not None and (isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1):
            raise ConfigurationError(f"max_new_tokens must be a positive int, got {max_new_tokens!r}")
        if on_large_error not in ("raise", "small"):
            raise ConfigurationError(f"on_large_error must be 'raise' or 'small', got {on_large_error!r}")
        self.max_concurrency = max_concurrency
        self.on_small_error = on_small_error
        self.on_large_error = on_large_error
        self.max_new_tokens = max_new_tokens
        self.small_timeout = check_timeout(small_timeout, "small_timeout")
        self.large_timeout = check_timeout(large_timeout, "large_timeout")
        self.deadline = check_timeout(deadline, "deadline")
        if monitor is not None and not callable(getattr(monitor, "on_effect", None)):
            raise ConfigurationError(f"monitor must be a DriftMonitor (or another plan observer), got {monitor!r}")
        self.monitor = monitor
        self.route_stage = router_stage(router, router_embedder, self.tiers[0].model, self.tiers[0].count_tokens)
        self.router: QueryRouter | None = self.route_stage.router if self.route_stage is not None else None
        self.threshold_store = None if threshold_store is None else share_state(threshold_store, self.rules, monitor)
        last = len(self.tiers) - 1  # the last tier's window is its own business: it is never cut
        self._views = [
            TierView(t.display_name, t.pricing.cost, t.count_tokens, input_modalities(t.model),
                     t.effective_context_window if i < last else None, getattr(t.model, "max_new_tokens", None))
            for i, t in enumerate(self.tiers)
        ]

    def __repr__(self) -> str:
        names = ", ".join(t.display_name for t in self.tiers)
        routed = f", router={self.router!r}" if self.router is not None else ""
        return f"Cascade(tiers=[{names}], rules={self.rules!r}{routed})"

    # -- the single plan, two drivers --------------------------------------------------------
    def _request(self, request: RequestLike) -> Request:
        req = _as_request(request)
        if req.max_new_tokens is None and self.max_new_tokens is not None:
            req = req.replace(max_new_tokens=self.max_new_tokens)
        return req

    def _plan(self, request: RequestLike, streaming: bool, check: AnswerCheck | None) -> Any:
        req = self._request(request)
        machine = plan(self._views, self.rules, req, streaming=streaming, check=check,
                       on_small_error=self.on_small_error, on_large_error=self.on_large_error,
                       router_threshold=self.route_stage.threshold if self.route_stage is not None else None)
        return observe(machine, self._observers(streaming))

    def _observers(self, streaming: bool) -> list[PlanObserver]:
        from cascade_core.observe.telemetry import tracing_observer

        tracing = tracing_observer([v.model_name for v in self._views], streaming=streaming)
        observers: list[PlanObserver] = [] if self.monitor is None else [self.monitor]
        return observers + ([tracing] if tracing is not None else [])

    def _limits(self) -> tuple[tuple[float | None, ...], float | None]:
        timeouts = (self.small_timeout,) * (len(self.tiers) - 1) + (self.large_timeout,)
        return timeouts, self.deadline

    def _prime(self, requests: Sequence[RequestLike]) -> list[PrimedSteps | None]:
        """Batched prefill of the first tier for ``requests`` (see :mod:`cascade_core.engine.batching`);
        none with a router, which decides first whether the small tier runs at all."""
        if self.route_stage is not None:
            return [None] * len(requests)
        converted: list[Request | None] = []
        for request in requests:
            try:
                converted.append(self._request(request))
            except Exception:  # the request's own plan raises it, in its slot
                converted.append(None)
        return prime_first_tier(self.tiers[0].model, self.rules[0], converted)

    def _drive(self, machine: Any, primed: PrimedSteps | None = None) -> Iterator[CascadeChunk]:
        open_streams: dict[int, Any] = {}
        limits = SyncLimits(*self._limits())
        value: Any = None
        error: BaseException | None = None
        try:
            while (effect := _advance(machine, value, error)) is not None:
                value, error = None, None
                try:
                    if isinstance(effect, Emit):
                        yield effect.chunk
                    elif isinstance(effect, NextStep | NextChunk):
                        value = limits.call(effect.tier, next, open_streams[effect.tier], END)
                    elif isinstance(effect, OpenSteps):
                        ready = primed.take(effect) if primed is not None else None
                        model = self.tiers[effect.tier].model
                        open_streams[effect.tier] = (
                            ready if ready is not None
                            else limits.call(effect.tier, _open, model.stream_steps, effect.request)
                        )
                    elif isinstance(effect, OpenChunks):
                        model = self.tiers[effect.tier].model
                        open_streams[effect.tier] = limits.call(effect.tier, _open, model.stream, effect.request)
                    elif isinstance(effect, CloseSteps):
                        limits.close(effect.tier, open_streams.pop(effect.tier, None))
                    elif isinstance(effect, Complete):
                        value = limits.call(effect.tier, self.tiers[effect.tier].model.complete, effect.request)
                    elif isinstance(effect, GenerateTexts):
                        value = limits.call(effect.tier, _generate_texts, self.tiers[effect.tier].model, effect)
                    elif isinstance(effect, Route):
                        assert self.route_stage is not None
                        value = limits.call(0, self.route_stage.score, effect.request)
                except DeadlineExceededError:
                    raise  # past the deadline nothing more is called: not thrown into the plan
                except Exception as err:
                    error = err
        finally:
            for tier, stream in open_streams.items():
                limits.close(tier, stream)
            limits.shutdown()
            if primed is not None:
                primed.close()
            machine.close()

    async def _adrive(self, machine: Any, primed: PrimedSteps | None = None) -> AsyncIterator[CascadeChunk]:
        open_streams: dict[int, Any] = {}
        limits = AsyncLimits(*self._limits())
        value: Any = None
        error: BaseException | None = None
        try:
            while (effect := _advance(machine, value, error)) is not None:
                value, error = None, None
                try:
                    if isinstance(effect, Emit):
                        yield effect.chunk
                    elif isinstance(effect, NextStep | NextChunk):
                        value = await limits.call(effect.tier, anext(open_streams[effect.tier], END))
                    elif isinstance(effect, OpenSteps):
                        ready = primed.take(effect) if primed is not None else None
                        model = self.tiers[effect.tier].model
                        open_streams[effect.tier] = (
                            iterate_in_thread(ready) if ready is not None else aiter(model.astream_steps(effect.request))
                        )
                    elif isinstance(effect, OpenChunks):
                        open_streams[effect.tier] = aiter(self.tiers[effect.tier].model.astream(effect.request))
                    elif isinstance(effect, CloseSteps):
                        await _aclose(open_streams.pop(effect.tier, None))
                    elif isinstance(effect, Complete):
                        value = await limits.call(effect.tier, self.tiers[effect.tier].model.acomplete(effect.request))
                    elif isinstance(effect, GenerateTexts):
                        value = await limits.call(effect.tier, self.tiers[effect.tier].model.agenerate_texts(
                            effect.request, n=effect.n, temperature=effect.temperature, seed=effect.seed))
                    elif isinstance(effect, Route):
                        assert self.route_stage is not None
                        value = await limits.call(0, self.route_stage.ascore(effect.request))
                except DeadlineExceededError:
                    raise
                except Exception as err:
                    error = err
        finally:
            for stream in open_streams.values():
                await _aclose(stream)
            if primed is not None:
                primed.close()
            machine.close()

    # -- public entry points -------------------------------------------------------------------
    def invoke(self, request: RequestLike, *, check: AnswerCheck | None = None) -> CascadeResult:
        """Answer one request (a :class:`Request`, a prompt string, or a list of messages).

        ``check`` may reject a small-tier answer (return a reason string) to force a deferral —
        the adapters use it for structured output.
        """
        return self._invoke_primed(request, None, check)

    async def ainvoke(self, request: RequestLike, *, check: AnswerCheck | None = None) -> CascadeResult:
        """Async :meth:`invoke`."""
        return await self._ainvoke_primed(request, None, check)

    def stream(self, request: RequestLike, *, check: AnswerCheck | None = None) -> Iterator[CascadeChunk]:
        """Stream the answer; the last chunk carries the full :class:`CascadeResult` in ``result``."""
        return self._drive(self._plan(request, True, check))

    def astream(self, request: RequestLike, *, check: AnswerCheck | None = None) -> AsyncIterator[CascadeChunk]:
        """Async :meth:`stream`."""
        return self._adrive(self._plan(request, True, check))

    def batch(
        self,
        requests: Sequence[RequestLike],
        *,
        max_concurrency: int | None = None,
        return_exceptions: bool = False,
    ) -> list[CascadeResult | Exception]:
        """Answer many requests with at most ``max_concurrency`` in flight; results keep input order.

        With ``return_exceptions=True`` a failed request yields its exception in its slot; otherwise
        the first failure is raised after every request has finished.
        """
        workers = _check_concurrency(max_concurrency or self.max_concurrency)
        outcomes: list[CascadeResult | Exception] = []
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for group in batch_groups(self.tiers[0].model, len(requests)):
                chunk = [requests[i] for i in group]
                primed = self._prime(chunk) if len(chunk) > 1 else [None]
                futures = [pool.submit(self._invoke_primed, r, p) for r, p in zip(chunk, primed)]
                for future in futures:
                    error = future.exception()
                    outcomes.append(error if isinstance(error, Exception) else future.result())
        return _settle(outcomes, return_exceptions)

    async def abatch(
        self,
        requests: Sequence[RequestLike],
        *,
        max_concurrency: int | None = None,
        return_exceptions: bool = False,
    ) -> list[CascadeResult | Exception]:
        """Async :meth:`batch` (a semaphore bounds concurrency)."""
        gate = asyncio.Semaphore(_check_concurrency(max_concurrency or self.max_concurrency))

        async def one(request: RequestLike, primed: PrimedSteps | None) -> CascadeResult:
            async with gate:
                return await self._ainvoke_primed(request, primed)

        outcomes: list[Any] = []
        for group in batch_groups(self.tiers[0].model, len(requests)):
            chunk = [requests[i] for i in group]
            primed = await asyncio.to_thread(self._prime, chunk) if len(chunk) > 1 else [None]
            outcomes += await asyncio.gather(*(one(r, p) for r, p in zip(chunk, primed)), return_exceptions=True)
        return _settle(outcomes, return_exceptions)

    def _invoke_primed(
        self, request: RequestLike, primed: PrimedSteps | None, check: AnswerCheck | None = None
    ) -> CascadeResult:
        return _final(self._drive(self._plan(request, False, check), primed))

    async def _ainvoke_primed(
        self, request: RequestLike, primed: PrimedSteps | None, check: AnswerCheck | None = None
    ) -> CascadeResult:
        result = None
        async for chunk in self._adrive(self._plan(request, False, check), primed):
            result = chunk.result or result
        assert result is not None
        return result


def _advance(machine: Any, value: Any, error: BaseException | None) -> Any:
    """Resume the plan with a result (or an error); the next effect, or None when it has finished."""
    try:
        return machine.throw(error) if error is not None else machine.send(value)
    except StopIteration:
        return None


def _check_concurrency(value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"max_concurrency must be a positive int, got {value!r}")
    return value


def _settle(outcomes: list[Any], return_exceptions: bool) -> list[Any]:
    if not return_exceptions:
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
    return outcomes


def _final(chunks: Iterator[CascadeChunk]) -> CascadeResult:
    result = None
    for chunk in chunks:
        result = chunk.result or result
    assert result is not None
    return result


def _generate_texts(model: Any, effect: GenerateTexts) -> Any:
    return model.generate_texts(effect.request, n=effect.n, temperature=effect.temperature, seed=effect.seed)


def _open(open_stream: Any, request: Request) -> Any:
    return iter(open_stream(request))


async def _aclose(stream: Any) -> None:
    close = getattr(stream, "aclose", None)
    if close is not None:
        await close()
