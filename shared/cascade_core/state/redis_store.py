"""A state store shared by every process that names the same Redis (or Valkey) server and key.

N replicas of an app (or N ``cascade serve`` processes behind a load balancer) that each build a
cascade with ``threshold_store="redis://host:6379/0?key=my-cascade"`` enforce one budget: every
score goes into one window on the server, and each decision defers below that window's quantile.
The drift monitor's windows are shared the same way.

- **Atomic.** Each write is one Lua script (:mod:`cascade_core.state.lua`): push the score, trim
  to the window's size, refresh the keys' expiry, read the quantile — one round trip, no race
  between processes.
- **Bounded.** A window holds at most ``size`` items and every key expires ``ttl_s`` after its
  last write; nothing grows with traffic.
- **Never in the way.** Each round trip waits at most ``timeout_s`` (50 ms by default; twice that
  when the connection must be opened again). A failed, slow or garbled round trip is answered from
  this process's own copy of the window (every score is recorded locally too), logs one warning
  per outage (no password), counts in :attr:`RedisStore.health`, and the store is tried again
  after ``retry_after_s``: the replica re-joins the shared state on its own when the server answers.
- **At most once.** A write is never retried, so no score is counted twice in the shared window
  (one that timed out may have landed, or not).

Example:
    >>> store = RedisStore("redis://:s3cret@127.0.0.1:6379/0?key=my-cascade&timeout_ms=20")
    >>> store
    RedisStore('redis://:***@127.0.0.1:6379/0', key='my-cascade', timeout_s=0.02)
    >>> store.window_keys("threshold.0")
    ('{my-cascade}:threshold.0:scores', '{my-cascade}:threshold.0:order', '{my-cascade}:threshold.0:meta')
"""

from __future__ import annotations

import logging
import math
import random
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from cascade_core.errors import ConfigurationError, DataFormatError, require
from cascade_core.redact import redact
from cascade_core.state import lua
from cascade_core.state.base import OutcomeTotals, WindowQuantile
from cascade_core.state.memory import InMemoryOutcomeWindow, InMemoryScoreWindow, _check_size

__all__ = ["RedisOutcomeWindow", "RedisScoreWindow", "RedisStore", "StoreHealth"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

_KEY = re.compile(r"^[A-Za-z0-9._:/-]{1,128}$")
#: Query parameters of a ``redis://`` URL read by the store itself (the rest go to redis-py).
_OWN_PARAMS = ("key", "timeout_ms", "ttl_s", "retry_after_s")


@dataclass
class StoreHealth:
    """Counters of one store (read them for a health check or a metric).

    Attributes:
        shared: Round trips the server answered.
        fallbacks: Writes answered from local state instead (the store failed, or was resting after a failure).
        errors: Round trips that failed (unreachable, timed out, or a reply that was not a window).
        rejoins: Times the store answered again after failing.
        down: True while the store is being bypassed.
    """

    shared: int = 0
    fallbacks: int = 0
    errors: int = 0
    rejoins: int = 0
    down: bool = False


def _positive(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value) or value <= 0:
        raise ConfigurationError(f"RedisStore: {name} must be a positive number, got {value!r}")
    return float(value)


def _query_number(params: dict[str, str], name: str, scale: float = 1.0) -> float | None:
    if name not in params:
        return None
    try:
        return float(params[name]) * scale
    except ValueError:
        raise ConfigurationError(f"RedisStore: URL parameter {name}={params[name]!r} is not a number") from None


class RedisStore:
    """Windows kept on a Redis-protocol server, shared by every process using the same URL and key.

    Args:
        url: ``redis://[:password@]host:port/db`` (``rediss://`` for TLS; ``unix://`` too). Query
            parameters ``key``, ``timeout_ms``, ``ttl_s`` and ``retry_after_s`` set the fields below.
        key: Prefix of every key (one per cascade or per fleet); default ``"cascade"``.
        timeout_s: Longest wait for one round trip (connect, then reply) before the decision uses
            local state. Default 0.05.
        ttl_s: Keys expire this long after their last write. Default one week.
        retry_after_s: After a failure the store is bypassed this long, then tried again. Default 1.
        client: A ready ``redis.Redis`` client instead of ``url`` (its own timeouts apply).

    Raises:
        ConfigurationError: a URL that is not ``redis://``/``rediss://``/``unix://``, a bad key or number.
        MissingDependencyError: the ``redis`` package is not installed (``pip install 'llm-cascade[redis]'``).

    The client connects lazily: a server down at start-up costs one failed round trip, not an error.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        key: str | None = None,
        timeout_s: float | None = None,
        ttl_s: float | None = None,
        retry_after_s: float | None = None,
        client: Any = None,
    ) -> None:
        if (url is None) == (client is None):
            raise ConfigurationError("RedisStore: give a redis:// url or a client, not both or neither")
        params: dict[str, str] = {}
        self._password: str | None = None
        self._url = ""
        if url is not None:
            if not isinstance(url, str) or not url.startswith(("redis://", "rediss://", "unix://")):
                raise ConfigurationError(f"RedisStore: url must start with redis://, rediss:// or unix://, got {_hide(url)!r}")
            parts = urlsplit(url)
            query = parse_qsl(parts.query, keep_blank_values=True)
            params = {k: v for k, v in query if k in _OWN_PARAMS}
            self._password = parts.password
            self._url = urlunsplit(parts._replace(query=urlencode([(k, v) for k, v in query if k not in _OWN_PARAMS])))
        self.key = key if key is not None else params.get("key", "cascade")
        if not isinstance(self.key, str) or not _KEY.match(self.key):
            raise ConfigurationError(f"RedisStore: key must be 1-128 letters, digits or ._:/-, got {self.key!r}")
        self.timeout_s = _positive(timeout_s if timeout_s is not None else _query_number(params, "timeout_ms", 1e-3) or 0.05,
                                   "timeout_s")
        self.ttl_s = _positive(ttl_s if ttl_s is not None else _query_number(params, "ttl_s") or 7 * 86400.0, "ttl_s")
        self.retry_after_s = _positive(
            retry_after_s if retry_after_s is not None else _query_number(params, "retry_after_s") or 1.0, "retry_after_s")
        self.health = StoreHealth()
        self._lock = threading.Lock()
        self._down_until = 0.0
        self._client = client if client is not None else self._connect()
        self._scripts: dict[str, Any] = {}

    def _connect(self) -> Any:
        redis = require("redis", "redis", purpose="RedisStore")
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        try:
            return redis.Redis.from_url(
                self._url, socket_timeout=self.timeout_s, socket_connect_timeout=self.timeout_s,
                retry=Retry(NoBackoff(), 0), retry_on_timeout=False, health_check_interval=0,
            )
        except ValueError as err:
            raise ConfigurationError(f"RedisStore: bad url {self.safe_url!r}: {self._redact(str(err))}") from None

    @property
    def safe_url(self) -> str:
        """The URL with its password masked (what logs and ``repr`` show)."""
        return _hide(self._url) if self._url else "<client>"

    def __repr__(self) -> str:
        return f"RedisStore({self.safe_url!r}, key={self.key!r}, timeout_s={self.timeout_s:g})"

    # -- windows ------------------------------------------------------------------------------
    def window_keys(self, name: str) -> tuple[str, str, str]:
        """The three keys of score window ``name``: sorted scores, arrival order, counters."""
        base = f"{{{self.key}}}:{name}"
        return f"{base}:scores", f"{base}:order", f"{base}:meta"

    def score_window(
        self, name: str, *, rate: float, size: int, reservoir: bool = False, rng: random.Random | None = None
    ) -> RedisScoreWindow:
        """A shared sliding window of the last ``size`` scores (the fleet's, not this process's).

        A shared window always slides: ``reservoir=True`` applies to the local fallback only.
        """
        return RedisScoreWindow(self, name, rate=rate, size=size, reservoir=reservoir, rng=rng)

    def outcome_window(self, name: str, *, size: int, width: int) -> RedisOutcomeWindow:
        return RedisOutcomeWindow(self, name, size=size, width=width)

    # -- one bounded round trip -----------------------------------------------------------------
    def run(self, script: str, keys: Sequence[str], args: Sequence[Any], parse: Callable[[Any], T]) -> T | None:
        """Run ``script`` and ``parse`` its reply; None (and a fallback counted) when the store fails.

        Never raises for a store fault; the caller answers from its local state on None.
        """
        with self._lock:
            if time.monotonic() < self._down_until:
                self.health.fallbacks += 1
                return None
        try:
            reply = parse(self._script(script)(keys=list(keys), args=list(args)))
        except Exception as err:  # noqa: BLE001 - any store fault (connection, timeout, error reply, garbage) falls back
            self._failed(err)
            return None
        with self._lock:
            self.health.shared += 1
            rejoined, self.health.down = self.health.down, False
            if rejoined:
                self.health.rejoins += 1
        if rejoined:
            logger.warning("state store %s answers again: key %r shared again", self.safe_url, self.key)
        return reply

    def _script(self, source: str) -> Any:
        script = self._scripts.get(source)
        if script is None:
            script = self._scripts[source] = self._client.register_script(source)
        return script

    def _failed(self, err: BaseException) -> None:
        with self._lock:
            self.health.errors += 1
            self.health.fallbacks += 1
            first, self.health.down = not self.health.down, True
            self._down_until = time.monotonic() + self.retry_after_s
        if first:
            logger.warning(
                "state store %s failed (%s: %s): deciding from this process's own state, retrying every %gs",
                self.safe_url, type(err).__name__, self._redact(str(err))[:200], self.retry_after_s,
            )

    def _redact(self, text: str) -> str:
        return redact(text, secrets=(self._password,))

    def ping(self) -> bool:
        """True when the server answers a PING within the timeout (for a readiness check)."""
        try:
            return bool(self._client.ping())
        except Exception:  # noqa: BLE001 - a health check reports, it does not raise
            return False


def _hide(url: Any) -> str:
    """``url`` with any password replaced by ``***``."""
    text = str(url)
    return re.sub(r"(//[^/@:]*:)[^@/]*@", r"\1***@", text)


def _parse_quantile(reply: Any) -> WindowQuantile:
    n, seen, threshold, below, equal = reply
    view = WindowQuantile(int(n), int(seen), float(threshold), int(below), int(equal), shared=True)
    if not 0 <= view.below <= view.below + view.equal <= view.n <= max(view.seen, 0) or math.isnan(view.threshold):
        raise DataFormatError(f"not a window state: {reply!r}"[:200])
    return view


class RedisScoreWindow:
    """One shared score window (see :class:`RedisStore`), with a local copy to decide from when the store fails.

    Example:
        >>> store = RedisStore("redis://127.0.0.1:1/0?key=doc", timeout_s=0.01)  # nothing listens on port 1
        >>> window = store.score_window("threshold.0", rate=0.5, size=10)
        >>> view = window.record(0.4)
        >>> view.shared, view.n, store.health.fallbacks
        (False, 1, 1)
    """

    def __init__(self, store: RedisStore, name: str, *, rate: float, size: int, reservoir: bool = False,
                 rng: random.Random | None = None) -> None:
        self.store, self.name = store, name
        self.rate, self.size = float(rate), _check_size(size)
        self.keys = store.window_keys(name)
        self._local = InMemoryScoreWindow(rate=rate, size=size, reservoir=reservoir, rng=rng)
        self._last = WindowQuantile.empty()

    def __repr__(self) -> str:
        return f"RedisScoreWindow({self.store!r}, {self.name!r}, rate={self.rate:g}, size={self.size})"

    def record(self, score: float) -> WindowQuantile:
        score = float(score)
        local = self._local.record(score)
        ttl_ms = int(self.store.ttl_s * 1000)
        shared = self.store.run(lua.SCORE_RECORD, self.keys, [repr(score), self.size, repr(self.rate), ttl_ms],
                                _parse_quantile)
        self._last = shared if shared is not None else local
        return self._last

    def peek(self) -> WindowQuantile:
        """The state after the last write (no round trip: a metrics scrape never waits on the store)."""
        return self._last if self._last.seen else self._local.peek()

    def clear(self) -> None:
        """Forget every score, here and (when it answers) on the server."""
        self._local.clear()
        self._last = WindowQuantile.empty()
        self.store.run(lua.CLEAR, self.keys, [], int)


class RedisOutcomeWindow:
    """One shared outcome window (see :class:`RedisStore`), with a local copy for when the store fails.

    Example:
        >>> store = RedisStore("redis://127.0.0.1:1/0?key=doc", timeout_s=0.01)
        >>> store.outcome_window("drift.deferred", size=5, width=1).append((1,))
        OutcomeTotals(n=1, sums=(1.0,), shared=False)
    """

    def __init__(self, store: RedisStore, name: str, *, size: int, width: int) -> None:
        self.store, self.name = store, name
        self._local = InMemoryOutcomeWindow(size=size, width=width)
        self.size, self.width = self._local.size, self._local.width
        self.key = f"{{{store.key}}}:{name}:outcomes"

    def __repr__(self) -> str:
        return f"RedisOutcomeWindow({self.store!r}, {self.name!r}, size={self.size}, width={self.width})"

    def _parse(self, reply: Any) -> OutcomeTotals:
        n, *sums = reply
        totals = OutcomeTotals(int(n), tuple(float(s) for s in sums), shared=True)
        if len(totals.sums) != self.width or not 0 <= totals.n <= self.size or not all(map(math.isfinite, totals.sums)):
            raise DataFormatError(f"not an outcome window: {reply!r}"[:200])
        return totals

    def _run(self, encoded: str, write: bool) -> OutcomeTotals | None:
        args = [encoded, self.size, self.width, int(self.store.ttl_s * 1000), "1" if write else "0"]
        return self.store.run(lua.OUTCOME_APPEND, [self.key], args, self._parse)

    def append(self, values: tuple[float, ...]) -> OutcomeTotals:
        local = self._local.append(values)
        shared = self._run(",".join(repr(float(v)) for v in values), write=True)
        return shared if shared is not None else local

    def totals(self) -> OutcomeTotals:
        """The shared window's totals (one read round trip), or the local copy's when the store fails."""
        shared = self._run("", write=False)
        return shared if shared is not None else self._local.totals()

    def clear(self) -> None:
        self._local.clear()
        self.store.run(lua.CLEAR, [self.key], [], int)
