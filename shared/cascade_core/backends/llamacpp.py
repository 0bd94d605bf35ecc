"""Serve a GGUF model with llama.cpp's own OpenAI-compatible server, on 127.0.0.1.

:class:`LlamaCppServer` runs llama.cpp's C++ HTTP server (the one people run in production as
``llama-server``) through the prebuilt ``xllamacpp`` wheel, in a **child process**: the parent waits for
``/health`` with a bound, captures the server's log in a file, and always stops the child (on
:meth:`~LlamaCppServer.stop`, on leaving the ``with`` block, at interpreter exit, and — from the child's
side — when the parent process dies). Clients talk to it over the wire protocol like to any other
server: :meth:`~LlamaCppServer.openai_model` gives an :class:`~cascade_core.backends.openai.OpenAIModel`
(a small tier: ``logprobs``/``top_logprobs`` per token; or a large tier), and ``base_url`` is what
``ChatOpenAI(base_url=...)`` or LlamaIndex's ``OpenAILike(api_base=...)`` take.

Example:
    >>> from cascade_core.backends.llamacpp import LlamaCppServer
    >>> with LlamaCppServer("model.gguf", threads=2) as server:  # doctest: +SKIP
    ...     large = server.openai_model(top_k=0)
    ...     print(server.base_url, large.complete(Request.from_prompt("Hi")).text)

``python -m cascade_core.backends.llamacpp --model large`` (or ``cascade llama-server``) serves an
embedded model (``small``, ``medium``, ``large``) or any GGUF path in the foreground.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cascade_core.errors import BackendError, ConfigurationError, require

__all__ = ["LlamaCppServer", "free_port", "serve_embedded"]

logger = logging.getLogger(__name__)

_LIVE: weakref.WeakSet[LlamaCppServer] = weakref.WeakSet()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free on ``host`` a moment ago (the server retries if it is taken meanwhile)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"LlamaCppServer.{name} must be a positive int, got {value!r}")
    return value


class LlamaCppServer:
    """llama.cpp's OpenAI-compatible server for one GGUF file, as a child process on 127.0.0.1.

    Args:
        model: Path of a ``.gguf`` file.
        alias: Model name the server answers to (default: the file's stem).
        n_ctx: Context window in tokens (shared by the parallel slots).
        threads: CPU threads for generation and prompt processing. Set it explicitly: two servers
            (or a server and a torch model) each using every core run several times slower.
        parallel: Parallel slots (concurrent requests decoded in one batch).
        embedding: Serve ``/v1/embeddings`` only (llama.cpp's embedding mode, mean-pooled over the
            input's tokens, not normalised): one prefill per input, no token generated. This is how a
            pre-generation router reads a llama.cpp small tier's prompt embedding; the same GGUF serves
            completions from a second server.
        port: TCP port (default: a free one).
        startup_timeout: Seconds to wait for the model to load and ``/health`` to answer.
        log_path: File for the server's log (default: a temporary file, kept after the server stops).

    Example:
        >>> server = LlamaCppServer("qwen.gguf", threads=2, n_ctx=2048)  # doctest: +SKIP
        >>> server.start().base_url  # doctest: +SKIP
        'http://127.0.0.1:40123/v1'
        >>> server.stop()  # doctest: +SKIP
    """

    def __init__(
        self,
        model: str | os.PathLike[str],
        *,
        alias: str | None = None,
        n_ctx: int = 4096,
        threads: int = 2,
        parallel: int = 1,
        embedding: bool = False,
        port: int | None = None,
        startup_timeout: float = 180.0,
        log_path: str | os.PathLike[str] | None = None,
    ) -> None:
        self.model_path = Path(model)
        if not self.model_path.is_file():
            raise ConfigurationError(f"LlamaCppServer.model: no GGUF file at {self.model_path}")
        self.alias = alias or self.model_path.stem
        self.n_ctx = _positive_int("n_ctx", n_ctx)
        self.threads = _positive_int("threads", threads)
        self.parallel = _positive_int("parallel", parallel)
        if not isinstance(embedding, bool):
            raise ConfigurationError(f"LlamaCppServer.embedding must be True or False, got {embedding!r}")
        self.embedding = embedding
        if port is not None:
            _positive_int("port", port)
        self.port = port
        if not startup_timeout > 0:
            raise ConfigurationError(f"LlamaCppServer.startup_timeout must be > 0, got {startup_timeout!r}")
        self.startup_timeout = float(startup_timeout)
        self.log_path = Path(log_path) if log_path is not None else None
        self._process: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        state = f"running at {self.base_url}" if self.running else "stopped"
        mode = ", embedding" if self.embedding else ""
        return f"LlamaCppServer({self.model_path.name!r}, alias={self.alias!r}, threads={self.threads}{mode}, {state})"

    # -- state ---------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>`` (without ``/v1``)."""
        if self.port is None:
            raise BackendError("LlamaCppServer has not been started")
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible base URL, ``http://127.0.0.1:<port>/v1``."""
        return self.url + "/v1"

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the server's log (for error messages)."""
        if self.log_path is None or not self.log_path.is_file():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    # -- lifecycle -----------------------------------------------------------------------------
    def _config(self, port: int) -> dict[str, Any]:
        return {"model": str(self.model_path), "alias": self.alias, "n_ctx": self.n_ctx, "threads": self.threads,
                "parallel": self.parallel, "port": port, "parent": os.getpid(),
                "embedding": self.embedding}

    def _spawn(self, port: int) -> subprocess.Popen[bytes]:
        assert self.log_path is not None
        env = {**os.environ, "OMP_NUM_THREADS": str(self.threads)}
        with self.log_path.open("ab") as log:
            return subprocess.Popen(
                [sys.executable, "-m", "cascade_core.backends.llamacpp", "--child", json.dumps(self._config(port))],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
            )

    def _wait_ready(self, process: subprocess.Popen[bytes], port: int) -> bool:
        """True once ``/health`` answers 200; False if the child exited; raises on timeout."""
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                return False
            with contextlib.suppress(OSError, urllib.error.URLError), urllib.request.urlopen(
                f"http://127.0.0.1:{port}/health", timeout=2
            ) as reply:
                if reply.status == 200:
                    return True
            time.sleep(0.1)
        self._terminate(process)
        raise BackendError(
            f"llama.cpp server for {self.model_path.name} was not ready within {self.startup_timeout:.0f} s; "
            f"log {self.log_path}:\n{self.log_tail()}"
        )

    def start(self) -> LlamaCppServer:
        """Start the server (no-op if running) and wait until it answers; returns ``self``.

        Raises:
            ModelNotAvailableError: ``xllamacpp`` is not installed.
            BackendError: The server exited or did not become ready in time (with the log's tail).
        """
        with self._lock:
            if self.running:
                return self
            require("xllamacpp", "llamacpp", purpose="serving GGUF files")  # checked here, used in the child
            if self.log_path is None:
                fd, name = tempfile.mkstemp(prefix=f"llamacpp-{self.alias}-", suffix=".log")
                os.close(fd)
                self.log_path = Path(name)
            fixed = self.port is not None
            for _attempt in range(1 if fixed else 3):
                port = self.port if fixed else free_port()
                assert port is not None
                started = time.perf_counter()
                process = self._spawn(port)
                if self._wait_ready(process, port):
                    self._process, self.port = process, port
                    _LIVE.add(self)
                    logger.info("llama.cpp server for %s ready at %s in %.1f s (log %s)", self.model_path.name,
                                self.base_url, time.perf_counter() - started, self.log_path)
                    return self
                logger.warning("llama.cpp server exited during start-up (port %s); log:\n%s", port, self.log_tail())
            raise BackendError(
                f"llama.cpp server for {self.model_path.name} exited during start-up; log {self.log_path}:\n"
                f"{self.log_tail()}"
            )

    @staticmethod
    def _terminate(process: subprocess.Popen[bytes], grace: float = 10.0) -> None:
        if process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=grace)

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 10 s); safe to call twice."""
        with self._lock:
            if self._process is not None:
                self._terminate(self._process)
                self._process = None
                _LIVE.discard(self)

    def __enter__(self) -> LlamaCppServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- clients -------------------------------------------------------------------------------
    def openai_model(self, **kwargs: Any) -> Any:
        """An :class:`~cascade_core.backends.openai.OpenAIModel` for this server (starts it if needed).

        Keyword arguments go to ``OpenAIModel`` (``top_k=5`` for a small tier, ``top_k=0`` for a large one).
        """
        from cascade_core.backends.openai import OpenAIModel

        self.start()
        kwargs.setdefault("api_key", "not-needed")
        return OpenAIModel(self.alias, base_url=self.base_url, **kwargs)


_EMBEDDED_SERVERS: dict[tuple[str, int, int, bool], LlamaCppServer] = {}
_EMBEDDED_LOCK = threading.Lock()


def serve_embedded(
    tier: str, *, threads: int = 2, n_ctx: int = 4096, parallel: int = 1, embedding: bool = False,
) -> LlamaCppServer:
    """A running server for an embedded model (``small``, ``medium``, ``large``), started once per process
    (per thread count, slot count and mode; ``embedding=True`` serves ``/v1/embeddings``).

    The GGUF is verified (sha256) before the server sees it; the server stops at interpreter exit.
    """
    from cascade_core.backends.embedded import EMBEDDED_MODELS, locate_gguf

    key = (tier, threads, parallel, embedding)
    with _EMBEDDED_LOCK:
        server = _EMBEDDED_SERVERS.get(key)
        if server is None or not server.running:
            path = locate_gguf(tier)
            alias = EMBEDDED_MODELS[tier].short_name
            server = LlamaCppServer(path, alias=alias, threads=threads, n_ctx=n_ctx, parallel=parallel,
                                    embedding=embedding)
            _EMBEDDED_SERVERS[key] = server
        return server.start()


@atexit.register
def _stop_all() -> None:
    for server in list(_LIVE):
        with contextlib.suppress(Exception):
            server.stop()


# -- the child process ---------------------------------------------------------------------------
def _run_child(config: dict[str, Any]) -> None:  # pragma: no cover - runs in the child process
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = config["model"]
    params.model_alias = {config["alias"]}
    params.n_ctx = config["n_ctx"]
    params.n_parallel = config["parallel"]
    params.port = config["port"]
    params.hostnames = ["127.0.0.1"]
    params.cpuparams.n_threads = config["threads"]
    params.cpuparams_batch.n_threads = config["threads"]
    params.use_jinja = True  # the model's own chat template (tools included)
    params.endpoint_metrics = True  # Prometheus /metrics (tokens predicted, requests processing …)
    if config.get("embedding"):
        params.embedding = True
        params.pooling_type = xllamacpp.llama_pooling_type.LLAMA_POOLING_TYPE_MEAN
        params.embd_normalize = -1  # raw mean of the last hidden states, as TransformersModel pools them
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    server = xllamacpp.Server(params)  # noqa: F841  (serves until the process exits)
    print(f"cascade: llama.cpp server for {config['alias']} ready on 127.0.0.1:{config['port']}", flush=True)
    parent = config["parent"]
    while not stop.wait(1.0):
        if os.getppid() != parent:  # the parent died without stopping us
            break
    os._exit(0)  # the server's threads hold no state worth a clean shutdown


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m cascade_core.backends.llamacpp --model large`` / ``cascade llama-server``: serve in the foreground."""
    parser = argparse.ArgumentParser(prog="cascade llama-server", description="Serve a GGUF model with llama.cpp "
                                     "on 127.0.0.1 (OpenAI-compatible, with logprobs).")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--model", default="large", help="embedded model (small, medium, large) or a .gguf path")
    parser.add_argument("--port", type=int, default=None, help="TCP port (default: a free one)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (default 2)")
    parser.add_argument("--ctx", type=int, default=4096, help="context window in tokens")
    parser.add_argument("--parallel", type=int, default=1, help="parallel slots")
    parser.add_argument("--embedding", action="store_true",
                        help="serve /v1/embeddings only (mean-pooled prompt embeddings for a pre-generation router)")
    args = parser.parse_args(argv)
    if args.child:
        _run_child(json.loads(args.child))
        return 0
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.model in ("small", "medium", "large"):
        from cascade_core.backends.embedded import EMBEDDED_MODELS, locate_gguf

        path, alias = locate_gguf(args.model), EMBEDDED_MODELS[args.model].short_name
    else:
        path, alias = Path(args.model), None
    server = LlamaCppServer(path, alias=alias, port=args.port, threads=args.threads, n_ctx=args.ctx,
                            parallel=args.parallel, embedding=args.embedding)
    # Ctrl-C only sets a flag: a KeyboardInterrupt could land inside the server's stop (or a lock it
    # holds) and leave the child running or the process hung; the loop below notices the flag instead.
    interrupted = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: interrupted.set())
    with server:
        print(f"serving {server.alias} at {server.base_url} (log {server.log_path}); Ctrl-C stops it", flush=True)
        while server.running and not interrupted.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
