"""Harness of the server tests: a real uvicorn server on 127.0.0.1 in a background thread, scripted cascades."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn

from cascade_core import Cascade, Pricing, ThresholdRule, Tier
from cascade_core.testing import ScriptedModel


@dataclass
class Running:
    """A server started by :func:`serving`."""

    server: uvicorn.Server
    thread: threading.Thread
    url: str
    app: Any

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    def in_flight(self) -> int:
        return int(httpx.get(self.url + "/healthz", timeout=5).json()["in_flight"])

    def wait_in_flight(self, n: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while self.in_flight() < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"never saw {n} requests in flight")
            time.sleep(0.02)


@contextmanager
def serving(app: Any, *, graceful_s: int = 10) -> Iterator[Running]:
    """Run ``app`` under uvicorn on a free 127.0.0.1 port; always shut down (bounded waits)."""
    config = uvicorn.Config(app, log_level="warning", lifespan="off", timeout_graceful_shutdown=graceful_s)
    server = uvicorn.Server(config)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError("uvicorn did not start within 10 s")
        time.sleep(0.01)
    try:
        yield Running(server, thread, f"http://127.0.0.1:{port}", app)
    finally:
        server.should_exit = True
        thread.join(timeout=graceful_s + 5)
        sock.close()


def scripted_cascade(small_answer: str = "Paris", *, confidence: float = 0.9, large_answer: str = "Paris, France",
                     threshold: Any = 0.3, large: Any = None) -> Cascade:
    """Small scripted tier (free) + large tier (priced), first-token-margin rule."""
    small = ScriptedModel(small_answer, confidence=confidence, name="small-model")
    large = large if large is not None else ScriptedModel(large_answer, name="large-model")
    return Cascade(
        [Tier(small, Pricing(0.0, 0.0), name="small"), Tier(large, Pricing(1.0, 4.0), name="large")],
        rules=ThresholdRule("margin", threshold),
    )
