"""A fake OpenAI-compatible server on 127.0.0.1 for tests and offline examples.

It speaks real HTTP and the real chat-completions wire format (JSON and server-sent-event
streaming, ``logprobs``/``top_logprobs``, tool calls, usage), so the real ``openai`` client,
``ChatOpenAI`` and LlamaIndex's ``OpenAI`` talk to it unchanged. What it answers is scripted.

Example:
    >>> from cascade_core.testing.fake_server import FakeOpenAIServer, FakeReply
    >>> with FakeOpenAIServer(lambda body: FakeReply("Paris", confidence=0.9)) as server:
    ...     import openai
    ...     client = openai.OpenAI(base_url=server.base_url, api_key="sk-fake")
    ...     client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}]
    ...                                    ).choices[0].message.content
    'Paris'
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cascade_core.testing.distribution import scripted_top_k
from cascade_core.testing.embeddings import hashing_vector

__all__ = [
    "FakeOpenAIServer",
    "FakeReply",
    "Responder",
    "echo_responder",
    "keyword_responder",
    "last_text",
    "message_text",
    "tool_call_text",
]


@dataclass
class FakeReply:
    """What the fake server answers.

    Attributes:
        text: Answer text (streamed one whitespace-delimited token at a time).
        confidence: Probability of the first token; the runner-up gets ``min(c, (1 - c) * 0.8)``.
        token_confidence: Probability of every later token.
        tool_calls: ``[{"name": ..., "arguments": {...}}]`` returned as native tool calls.
        status: HTTP status; anything but 200 returns an OpenAI-style error body.
        logprobs: Whether to include log-probs when asked (False simulates a server without them).
        delay_s: Pause before each streamed token (to observe early stream closing).
    """

    text: str = ""
    confidence: float = 0.9
    token_confidence: float = 0.95
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200
    logprobs: bool = True
    delay_s: float = 0.0


Responder = Callable[[dict[str, Any]], FakeReply]


def echo_responder(body: dict[str, Any]) -> FakeReply:
    """Default responder: echoes the last user message."""
    users = [m for m in body.get("messages", []) if m.get("role") == "user"]
    content = users[-1]["content"] if users else ""
    return FakeReply(f"echo: {content}" if isinstance(content, str) else "echo")


def message_text(message: dict[str, Any]) -> str:
    """The text of one wire-format message (the text parts of a multi-part content, joined).

    >>> message_text({"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image_url"}]})
    'hi'
    """
    content = message.get("content") or ""
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return str(content)


def last_text(body: dict[str, Any]) -> str:
    """The text of the last message of a request body (a tool result included)."""
    messages = body.get("messages") or [{}]
    return message_text(messages[-1])


def keyword_responder(*rules: tuple[str, FakeReply], default: FakeReply | None = None) -> Responder:
    """A responder answering the first rule whose key occurs in the last message (else ``default``,
    else :func:`echo_responder`).

    >>> respond = keyword_responder(("France", FakeReply("Paris")), default=FakeReply("?"))
    >>> respond({"messages": [{"role": "user", "content": "Capital of France?"}]}).text
    'Paris'
    """

    def respond(body: dict[str, Any]) -> FakeReply:
        text = last_text(body)
        reply = next((reply for key, reply in rules if key in text), default)
        return reply if reply is not None else echo_responder(body)

    return respond


def tool_call_text(name: str, arguments: dict[str, Any]) -> str:
    """A small tier's text-mode tool call (``<tool_call>{...}</tool_call>``), as chat templates render it.

    >>> tool_call_text("add", {"a": 1})
    '<tool_call>{"name": "add", "arguments": {"a": 1}}</tool_call>'
    """
    return "<tool_call>" + json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False) + "</tool_call>"


def _tokens(text: str) -> list[str]:
    return re.findall(r"\s*\S+|\s+", text)


def _logprob_entry(token: str, p: float, top_k: int) -> dict[str, Any]:
    alts = [{"token": t, "logprob": lp, "bytes": None} for t, lp in scripted_top_k(token, p, top_k)]
    return {"token": token, "logprob": math.log(p), "bytes": None, "top_logprobs": alts[:top_k]}


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # silence the default stderr log
        return

    def _json(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up waiting
            self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path.rstrip("/").endswith("/models"):
            self._json(200, {"object": "list", "data": [{"id": "fake", "object": "model", "owned_by": "fake"}]})
        else:
            self._json(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except json.JSONDecodeError:
            self._json(400, {"error": {"message": "body is not JSON", "type": "invalid_request_error"}})
            return
        if self.path.rstrip("/").endswith("/embeddings"):
            self._embeddings(body)
            return
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self._json(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
            return
        with self.server.lock:
            self.server.requests.append(body)
        reply = self.server.responder(body)
        if reply.status != 200:
            self._json(reply.status, {"error": {"message": "scripted failure", "type": "server_error"}})
            return
        if body.get("stream"):
            self._stream(body, reply)
        else:
            self._json(200, self._completion(body, reply))

    def _embeddings(self, body: dict[str, Any]) -> None:
        """``/v1/embeddings``: :func:`hashing_vector` of each input (a deterministic stand-in for a model)."""
        with self.server.lock:
            self.server.requests.append(body)
        inputs = body.get("input")
        texts = [inputs] if isinstance(inputs, str) else list(inputs or [])
        data = [{"object": "embedding", "index": i, "embedding": hashing_vector(t, self.server.embedding_dim)}
                for i, t in enumerate(texts)]
        tokens = sum(len(t.split()) for t in texts)
        self._json(200, {"object": "list", "data": data, "model": body.get("model", "fake"),
                         "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})

    def _usage(self, body: dict[str, Any], reply: FakeReply) -> dict[str, int]:
        prompt = sum(len(str(m.get("content") or "").split()) for m in body.get("messages", []))
        completion = len(_tokens(reply.text))
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}

    def _tool_calls(self, body: dict[str, Any], reply: FakeReply) -> list[dict[str, Any]]:
        if not body.get("tools"):
            return []
        return [
            {"id": f"call_{i}_{uuid.uuid4().hex[:8]}", "type": "function",
             "function": {"name": c["name"], "arguments": json.dumps(c.get("arguments", {}))}}
            for i, c in enumerate(reply.tool_calls)
        ]

    def _logprobs(self, body: dict[str, Any], reply: FakeReply, tokens: list[str]) -> list[dict[str, Any]] | None:
        if not body.get("logprobs") or not reply.logprobs:
            return None
        top_k = int(body.get("top_logprobs") or 0)
        return [
            _logprob_entry(tok, reply.confidence if i == 0 else reply.token_confidence, max(top_k, 1))
            for i, tok in enumerate(tokens)
        ]

    def _completion(self, body: dict[str, Any], reply: FakeReply) -> dict[str, Any]:
        tokens = _tokens(reply.text)
        calls = self._tool_calls(body, reply)
        message: dict[str, Any] = {"role": "assistant", "content": reply.text if not calls else (reply.text or None)}
        if calls:
            message["tool_calls"] = calls
        logprobs = self._logprobs(body, reply, tokens)
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "fake"),
            "choices": [{
                "index": 0,
                "message": message,
                "logprobs": {"content": logprobs} if logprobs is not None else None,
                "finish_reason": "tool_calls" if calls else "stop",
            }],
            "usage": self._usage(body, reply),
        }

    def _events(self, body: dict[str, Any], reply: FakeReply) -> Iterator[dict[str, Any]]:
        base = {"id": f"chatcmpl-{uuid.uuid4().hex[:12]}", "object": "chat.completion.chunk",
                "created": int(time.time()), "model": body.get("model", "fake")}
        tokens = _tokens(reply.text)
        scored = self._logprobs(body, reply, tokens)
        logprobs: list[dict[str, Any] | None] = list(scored) if scored is not None else [None] * len(tokens)
        yield {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}
        for token, entry in zip(tokens, logprobs):
            if reply.delay_s:
                time.sleep(reply.delay_s)
            choice: dict[str, Any] = {"index": 0, "delta": {"content": token}, "finish_reason": None}
            if entry is not None:
                choice["logprobs"] = {"content": [entry]}
            yield {**base, "choices": [choice]}
        calls = self._tool_calls(body, reply)
        for i, call in enumerate(calls):
            delta = {"tool_calls": [{"index": i, "id": call["id"], "type": "function",
                                     "function": {"name": call["function"]["name"], "arguments": call["function"]["arguments"]}}]}
            yield {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
        yield {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls" if calls else "stop"}]}
        if (body.get("stream_options") or {}).get("include_usage"):
            yield {**base, "choices": [], "usage": self._usage(body, reply)}

    def _stream(self, body: dict[str, Any], reply: FakeReply) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        sent = 0
        try:
            for event in self._events(body, reply):
                self.wfile.write(("data: " + json.dumps(event) + "\n\n").encode())
                self.wfile.flush()
                sent += 1
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client closed the stream early (the cascade does this when it defers)
        finally:
            with self.server.lock:
                self.server.events_sent.append(sent)
        self.close_connection = True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the listen backlog: a load test's burst of connections is queued, not reset
    responder: Responder
    lock: threading.Lock
    requests: list[dict[str, Any]]
    events_sent: list[int]
    embedding_dim: int


class FakeOpenAIServer:
    """Runs the fake server in a background thread on ``127.0.0.1`` and a free port.

    Args:
        responder: ``body -> FakeReply``; gets the parsed JSON request body.
        embedding_dim: Length of the vectors ``/v1/embeddings`` returns (a hashed bag of words of each input).

    Attributes:
        base_url: ``http://127.0.0.1:<port>/v1``.
        requests: Bodies received, in order.
        events_sent: Per streamed response, how many SSE events were written before it ended.
    """

    def __init__(self, responder: Responder = echo_responder, *, embedding_dim: int = 16) -> None:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.embedding_dim = embedding_dim
        self._server.responder = responder
        self._server.lock = threading.Lock()
        self._server.requests = []
        self._server.events_sent = []
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def base_url(self) -> str:
        port = self._server.server_address[1]
        return f"http://127.0.0.1:{port}/v1"

    @property
    def requests(self) -> list[dict[str, Any]]:
        return self._server.requests

    @property
    def events_sent(self) -> list[int]:
        return self._server.events_sent

    def set_responder(self, responder: Responder) -> None:
        self._server.responder = responder

    def start(self) -> FakeOpenAIServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
