"""The ASGI app (Starlette): ``/v1/chat/completions``, ``/v1/models``, ``/healthz``, ``/metrics``.

Handlers only translate (:mod:`cascade_core.serve.wire`) and call the core's async entry points
(``Cascade.ainvoke`` / ``Cascade.astream``); decisions are the engine's.

Example:
    >>> from cascade_core import Cascade, ThresholdRule
    >>> from cascade_core.testing import ScriptedModel
    >>> from starlette.testclient import TestClient
    >>> cascade = Cascade([ScriptedModel("Paris", confidence=0.9, name="small"),
    ...                    ScriptedModel("Paris, France", name="large")], rules=ThresholdRule("margin", 0.3))
    >>> client = TestClient(create_app({"qa": cascade}))
    >>> response = client.post("/v1/chat/completions",
    ...                        json={"model": "qa", "messages": [{"role": "user", "content": "Capital of France?"}]})
    >>> response.json()["choices"][0]["message"]["content"], response.headers["x-cascade-tier"]
    ('Paris', '0')
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request as HTTPRequest
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from cascade_core.engine import Cascade, CascadeResult
from cascade_core.errors import BackendError, ConfigurationError, InvalidRequestError
from cascade_core.serve.config import ServerSettings
from cascade_core.serve.metrics import CONTENT_TYPE_LATEST, ServeMetrics
from cascade_core.serve.wire import (
    ChatCall,
    FieldError,
    StreamTranslator,
    completion_body,
    parse_chat_request,
    schema_check,
)

__all__ = ["create_app"]

logger = logging.getLogger(__name__)

_DONE = object()


class _ApiError(Exception):
    def __init__(self, status: int, message: str, kind: str, param: str | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.kind, self.param, self.headers = status, message, kind, param, headers

    def response(self) -> JSONResponse:
        body = {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": None}}
        return JSONResponse(body, status_code=self.status, headers=dict(self.headers or {}))


_UNAUTHORIZED = _ApiError(401, "unauthorized", "authentication_error", headers={"WWW-Authenticate": "Bearer"})


class _Slots:
    """Bounded concurrency without a queue: a request either gets a slot now or a 429."""

    def __init__(self, limit: int, metrics: ServeMetrics) -> None:
        self.limit, self.used, self.metrics = limit, 0, metrics

    def acquire(self) -> bool:
        if self.used >= self.limit:
            return False
        self.used += 1
        self.metrics.in_flight.set(self.used)
        return True

    def release(self) -> None:
        self.used -= 1
        self.metrics.in_flight.set(self.used)


class _SlotStreamingResponse(StreamingResponse):
    """A streaming response that gives its concurrency slot back however the stream ends."""

    def __init__(self, content: AsyncIterator[str], slots: _Slots) -> None:
        super().__init__(content, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
        self.slots = slots

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.slots.release()


def _sse(payload: Any) -> str:
    return f"data: {json.dumps(payload, ensure_ascii=False, allow_nan=False)}\n\n"


def _decision_headers(result: CascadeResult) -> dict[str, str]:
    return {"x-cascade-tier": str(result.tier), "x-cascade-deferred": str(result.deferred).lower(),
            "x-cascade-model": result.model_name.encode("ascii", "replace").decode()}


class _Server:
    """State shared by the handlers of one app."""

    def __init__(self, cascades: Mapping[str, Cascade], settings: ServerSettings, metrics: ServeMetrics) -> None:
        self.cascades, self.settings, self.metrics = dict(cascades), settings, metrics
        self.slots = _Slots(settings.max_concurrency, metrics)
        self._keys = [k.encode() for k in settings.api_keys]

    def authorized(self, request: HTTPRequest) -> bool:
        if not self._keys:
            return True
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        given = token.strip().encode() if scheme.lower() == "bearer" else b""
        # compare with every key (constant time each) so timing says nothing about which matched
        return sum(hmac.compare_digest(given, key) for key in self._keys) > 0

    async def body(self, request: HTTPRequest) -> Any:
        limit = self.settings.max_request_bytes
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise _ApiError(413, f"request body of {declared} bytes exceeds the limit of {limit} bytes", "invalid_request_error")
        data = bytearray()
        async for part in request.stream():
            data += part
            if len(data) > limit:
                raise _ApiError(413, f"request body exceeds the limit of {limit} bytes", "invalid_request_error")
        try:
            return json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise _ApiError(400, f"body is not valid JSON: {err}", "invalid_request_error", "body") from err

    def cascade(self, call: ChatCall) -> Cascade:
        cascade = self.cascades.get(call.model)
        if cascade is None:
            raise _ApiError(404, f"model {call.model!r} is not served here; available: {sorted(self.cascades)}",
                            "invalid_request_error", "model")
        return cascade

    # -- handlers ----------------------------------------------------------------------------
    async def chat_completions(self, request: HTTPRequest) -> Response:
        if not self.authorized(request):
            return _UNAUTHORIZED.response()
        if not self.slots.acquire():
            self.metrics.rejected.inc()
            retry = str(self.settings.retry_after_s)
            return _ApiError(429, f"server at capacity ({self.settings.max_concurrency} requests in flight); retry after {retry} s",
                             "rate_limit_exceeded", headers={"Retry-After": retry}).response()
        handed_over = False
        try:
            call = parse_chat_request(await self.body(request), max_tokens_limit=self.settings.max_tokens_limit)
            cascade = self.cascade(call)
            if call.stream:
                response = _SlotStreamingResponse(self._events(call, cascade), self.slots)
                handed_over = True
                return response
            return await self._complete(call, cascade)
        except _ApiError as err:
            return err.response()
        except FieldError as err:
            return _ApiError(400, str(err), "invalid_request_error", err.param).response()
        finally:
            if not handed_over:
                self.slots.release()

    def _check(self, call: ChatCall) -> Any:
        schema = call.request.response_schema
        return schema_check(schema) if schema is not None and not call.request.tools else None

    async def _complete(self, call: ChatCall, cascade: Cascade) -> Response:
        started = time.perf_counter()
        try:
            result = await asyncio.wait_for(cascade.ainvoke(call.request, check=self._check(call)), self.settings.request_timeout_s)
        except Exception as err:
            raise self._failure(call.model, err) from err
        self.metrics.observe_result(call.model, result, latency_s=time.perf_counter() - started, stream=False)
        body = completion_body(result, model=call.model, id=f"chatcmpl-{uuid.uuid4().hex}", created=int(time.time()))
        return JSONResponse(body, headers=_decision_headers(result))

    def _failure(self, cascade: str, err: Exception) -> _ApiError:
        """The API error for a failed call (logged with its traceback; the client gets one line)."""
        if isinstance(err, asyncio.TimeoutError):
            self.metrics.observe_error(cascade, "timeout")
            return _ApiError(504, f"request took longer than {self.settings.request_timeout_s:g} s", "timeout")
        if isinstance(err, InvalidRequestError):
            self.metrics.observe_error(cascade, "invalid")
            return _ApiError(400, str(err), "invalid_request_error", getattr(err, "param", None))
        if isinstance(err, BackendError):
            tiers = self.cascades[cascade]
            # small-tier failures are deferred unless on_small_error="raise": then the tier is unknown
            self.metrics.observe_error(cascade, "backend", len(tiers.tiers) - 1 if tiers.on_small_error == "defer" else None)
            logger.warning("cascade %r: a tier failed: %s", cascade, err)  # tier URLs stay in the server log
            return _ApiError(502, f"a tier of cascade {cascade!r} failed (details in the server log)", "upstream_error")
        self.metrics.observe_error(cascade, "internal")
        logger.exception("cascade %r: internal error", cascade, exc_info=err)
        return _ApiError(500, "internal error (logged on the server)", "server_error")

    async def _events(self, call: ChatCall, cascade: Cascade) -> AsyncIterator[str]:
        """SSE events of one streamed answer; the engine runs in one task feeding a bounded queue."""
        started = time.perf_counter()
        translator = StreamTranslator(call.request, model=call.model, id=f"chatcmpl-{uuid.uuid4().hex}",
                                      created=int(time.time()), n_tiers=len(cascade.tiers))
        queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=64)

        async def produce() -> None:
            try:
                async for chunk in cascade.astream(call.request, check=self._check(call)):
                    await queue.put(chunk)
                await queue.put(_DONE)
            except Exception as err:
                await queue.put(err)

        producer = asyncio.create_task(produce())
        deadline = time.monotonic() + self.settings.request_timeout_s
        try:
            yield _sse(translator.start())
            while True:
                try:
                    item = await asyncio.wait_for(queue.get(), max(0.0, deadline - time.monotonic()))
                except asyncio.TimeoutError as err:
                    item = err
                if item is _DONE:
                    break
                if isinstance(item, Exception):
                    failure = self._failure(call.model, item)
                    yield _sse({"error": {"message": failure.message, "type": failure.kind, "param": failure.param, "code": None}})
                    break
                for payload in translator.feed(item):
                    yield _sse(payload)
                if item.result is not None:
                    self.metrics.observe_result(call.model, item.result, latency_s=time.perf_counter() - started, stream=True)
                    for payload in translator.finish(item.result, include_usage=call.include_usage):
                        yield _sse(payload)
            yield "data: [DONE]\n\n"
        finally:
            if not producer.done():
                producer.cancel()
            await asyncio.gather(producer, return_exceptions=True)

    async def models(self, request: HTTPRequest) -> Response:
        if not self.authorized(request):
            return _UNAUTHORIZED.response()
        data = [{
            "id": name, "object": "model", "created": 0, "owned_by": "llm-cascade",
            "cascade": {
                "tiers": [{"index": i, "name": t.display_name, "input_per_million": t.pricing.input_per_million,
                           "output_per_million": t.pricing.output_per_million} for i, t in enumerate(cascade.tiers)],
                "rules": [repr(rule) for rule in cascade.rules],
            },
        } for name, cascade in self.cascades.items()]
        return JSONResponse({"object": "list", "data": data})

    async def healthz(self, request: HTTPRequest) -> Response:
        return JSONResponse({"status": "ok", "cascades": sorted(self.cascades), "in_flight": self.slots.used})

    async def metrics_text(self, request: HTTPRequest) -> Response:
        return Response(self.metrics.render(), media_type=CONTENT_TYPE_LATEST)


async def _http_error(request: HTTPRequest, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return _ApiError(exc.status_code, exc.detail, "invalid_request_error", headers=exc.headers).response()


def create_app(cascades: Mapping[str, Cascade], settings: ServerSettings | None = None, *,
               metrics: ServeMetrics | None = None) -> Starlette:
    """The server app for named cascades (the request's ``model`` picks one).

    Args:
        cascades: Cascades by the name clients send as ``model``.
        settings: Limits, auth keys and timeouts (defaults: :class:`ServerSettings`).
        metrics: Collectors to record into (default: new ones on a registry of this app's own).
    """
    if not cascades:
        raise ConfigurationError("create_app needs at least one cascade")
    settings = settings or ServerSettings()
    server = _Server(cascades, settings, metrics or ServeMetrics(cascades))

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        from cascade_core.serve.build import warm_up

        for cascade in cascades.values():  # the serving loop's HTTP clients, before the first request
            for tier in cascade.tiers:
                warm_up(tier.model)
        yield

    app = Starlette(
        lifespan=lifespan,
        routes=[
            Route("/v1/chat/completions", server.chat_completions, methods=["POST"]),
            Route("/v1/models", server.models, methods=["GET"]),
            Route("/healthz", server.healthz, methods=["GET"]),
            Route("/metrics", server.metrics_text, methods=["GET"]),
        ],
        exception_handlers={HTTPException: _http_error},
    )
    app.state.server = server
    app.state.metrics = server.metrics
    return app
