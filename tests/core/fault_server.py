"""A raw-socket HTTP server on 127.0.0.1 that misbehaves on purpose (test harness only).

The library's ``FakeOpenAIServer`` speaks correct HTTP; this one produces the faults it cannot:
connection resets, SSE streams cut before ``finish_reason``/``[DONE]`` (plain EOF or a chunked
body without its last chunk), non-JSON 200 bodies, hangs, 429 with and without ``Retry-After``,
5xx, error bodies echoing the ``Authorization`` header, garbage log-probs. Each request consumes
the next scripted action (the last one repeats); ``requests`` records what the server saw.
"""

from __future__ import annotations

import json
import socket
import socketserver
import struct
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Action:
    """What to do with one request.

    kind: ``ok`` (a complete JSON or SSE answer), ``truncated`` (SSE events, then EOF: no
    finish_reason, no [DONE]), ``truncated_chunked`` (chunked SSE without the last chunk),
    ``non_json`` (200 with an HTML body), ``reset`` (TCP RST), ``hang`` (never answer),
    ``status`` (an error status with an OpenAI error body), ``echo_auth`` (401 whose body echoes
    the Authorization header), ``logprobs`` (SSE answer whose first token has ``logprob``/``top``).
    """

    kind: str = "ok"
    text: str = "Paris is in France"
    status: int = 500
    headers: dict[str, str] = field(default_factory=dict)
    logprob: Any = -0.01
    top: Any = None  # list of (token, logprob) for the first token, None = a confident default


def _event(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


def _chunk(content: str | None, logprobs: Any = None, finish: str | None = None) -> dict[str, Any]:
    choice: dict[str, Any] = {"index": 0, "delta": {"content": content} if content is not None else {}, "finish_reason": finish}
    if logprobs is not None:
        choice["logprobs"] = {"content": [logprobs]}
    return {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "fault", "choices": [choice]}


def _entry(token: str, logprob: Any, top: Sequence[tuple[str, Any]]) -> dict[str, Any]:
    return {"token": token, "logprob": logprob, "bytes": None,
            "top_logprobs": [{"token": t, "logprob": lp, "bytes": None} for t, lp in top]}


def _tokens(text: str) -> list[str]:
    words = text.split(" ")
    return [w if i == 0 else " " + w for i, w in enumerate(words)]


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def _read_request(self) -> dict[str, Any] | None:
        data = b""
        while b"\r\n\r\n" not in data:
            part = self.request.recv(65536)
            if not part:
                return None
            data += part
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        length = int(headers.get("content-length", "0"))
        while len(body) < length:
            part = self.request.recv(65536)
            if not part:
                break
            body += part
        try:
            parsed = json.loads(body or b"{}")
        except json.JSONDecodeError:
            parsed = {}
        return {"line": lines[0], "headers": headers, "body": parsed}

    def handle(self) -> None:
        request = self._read_request()
        if request is None:
            return
        with self.server.lock:
            self.server.requests.append(request)
            actions = self.server.actions
            action = actions[min(len(self.server.requests) - 1, len(actions) - 1)]
        getattr(self, "_" + action.kind)(action, request)

    # -- responses --------------------------------------------------------------------------
    def _send(self, status: int, body: bytes, content_type: str = "application/json", headers: dict[str, str] | None = None) -> None:
        reason = {200: "OK", 401: "Unauthorized", 429: "Too Many Requests", 500: "Internal Server Error",
                  503: "Service Unavailable"}.get(status, "Error")
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        head = (f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
                f"{extra}Connection: close\r\n\r\n")
        self.request.sendall(head.encode() + body)

    def _stream_head(self, chunked: bool = False) -> None:
        framing = "Transfer-Encoding: chunked\r\n" if chunked else ""
        self.request.sendall(
            f"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n{framing}Connection: close\r\n\r\n".encode()
        )

    def _ok(self, action: Action, request: dict[str, Any]) -> None:
        body = request["body"]
        if body.get("stream"):
            self._stream_head()
            for i, token in enumerate(_tokens(action.text)):
                lp = _entry(token, -0.01, [(token, -0.01), ("<alt>", -5.0)]) if body.get("logprobs") else None
                self.request.sendall(_event(_chunk(token, lp)))
                del i
            self.request.sendall(_event(_chunk(None, finish="stop")) + b"data: [DONE]\n\n")
            return
        reply = {"id": "c1", "object": "chat.completion", "created": 1, "model": "fault",
                 "choices": [{"index": 0, "message": {"role": "assistant", "content": action.text}, "finish_reason": "stop"}],
                 "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}}
        self._send(200, json.dumps(reply).encode())

    def _logprobs(self, action: Action, request: dict[str, Any]) -> None:
        self._stream_head()
        tokens = _tokens(action.text)
        top = action.top if action.top is not None else [(tokens[0], -0.01), ("<alt>", -5.0)]
        self.request.sendall(_event(_chunk(tokens[0], _entry(tokens[0], action.logprob, top))))
        for token in tokens[1:]:
            self.request.sendall(_event(_chunk(token, _entry(token, -0.01, [(token, -0.01), ("<alt>", -5.0)]))))
        self.request.sendall(_event(_chunk(None, finish="stop")) + b"data: [DONE]\n\n")

    def _truncated(self, action: Action, request: dict[str, Any]) -> None:
        self._stream_head()
        scored = request["body"].get("logprobs")
        for token in _tokens(action.text)[:2]:
            lp = _entry(token, -0.01, [(token, -0.01), ("<alt>", -5.0)]) if scored else None
            self.request.sendall(_event(_chunk(token, lp)))
        # EOF: no finish_reason, no [DONE]

    def _truncated_chunked(self, action: Action, request: dict[str, Any]) -> None:
        self._stream_head(chunked=True)
        scored = request["body"].get("logprobs")
        for token in _tokens(action.text)[:2]:
            lp = _entry(token, -0.01, [(token, -0.01), ("<alt>", -5.0)]) if scored else None
            data = _event(_chunk(token, lp))
            self.request.sendall(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        # no terminating 0-length chunk

    def _non_json(self, action: Action, request: dict[str, Any]) -> None:
        self._send(200, b"<html><body>502 Bad Gateway (proxy)</body></html>", content_type="text/html")

    def _reset(self, action: Action, request: dict[str, Any]) -> None:
        self.request.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    def _hang(self, action: Action, request: dict[str, Any]) -> None:
        self.server.release.wait(30)

    def _status(self, action: Action, request: dict[str, Any]) -> None:
        body = json.dumps({"error": {"message": f"scripted {action.status}", "type": "server_error"}}).encode()
        self._send(action.status, body, headers=action.headers)

    def _echo_auth(self, action: Action, request: dict[str, Any]) -> None:
        auth = request["headers"].get("authorization", "")
        body = json.dumps({"error": {"message": f"invalid credentials: {auth}", "type": "auth_error"}}).encode()
        self._send(401, body)


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    lock: threading.Lock
    requests: list[dict[str, Any]]
    actions: list[Action]
    release: threading.Event


class FaultServer:
    """Context manager: a faulty OpenAI-compatible server on 127.0.0.1 running ``actions`` in turn."""

    def __init__(self, *actions: Action) -> None:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.lock = threading.Lock()
        self._server.requests = []
        self._server.actions = list(actions) or [Action()]
        self._server.release = threading.Event()
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    @property
    def requests(self) -> list[dict[str, Any]]:
        with self._server.lock:
            return list(self._server.requests)

    def __enter__(self) -> FaultServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
