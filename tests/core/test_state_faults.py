"""Store faults against a real valkey-server: unreachable at start-up, killed mid-run, hung (SIGSTOP), garbage
in the keys. Every request is still answered (local fallback, one warning without secrets, counted in
``store.health``), no score is written twice, and the replica re-joins the shared window when the server is back."""

from __future__ import annotations

import logging
import time

import pytest

from cascade_core import Cascade, ThresholdRule
from cascade_core.decide.thresholds import DynamicBudgetThreshold
from cascade_core.observe.monitor import DriftMonitor
from cascade_core.testing import ScriptedModel
from cascade_core.testing.redis_server import RedisServer, free_port

CONFIDENCES = [0.3 + 0.07 * (i % 10) for i in range(10)]  # ten different margins, cycled


def _cascade(url: str, **store_kw):
    from cascade_core.state.redis_store import RedisStore

    store = RedisStore(url, retry_after_s=0.2, **store_kw)
    policy = DynamicBudgetThreshold(deferral_rate=0.3, warmup=5, window=100)
    cascade = Cascade([ScriptedModel("small", confidence=CONFIDENCES, name="small"), ScriptedModel("large", name="large")],
                      rules=ThresholdRule("margin", policy), monitor=DriftMonitor(0.3, window=50, min_samples=10),
                      threshold_store=store)
    return cascade, policy, store


def _server_seen(server, key="{f}:threshold.0:meta") -> int:
    import redis

    return int(redis.Redis.from_url(server.url).hget(key, "seen") or 0)


def _answer_all(cascade, n):
    results = [cascade.invoke(f"q{i}") for i in range(n)]
    assert [r.text for r in results] == [("small" if r.tier == 0 else "large") for r in results]  # every one answered
    return results


def test_store_unreachable_at_start_up_answers_every_request_with_one_warning(caplog):
    port = free_port()
    url = f"redis://:topsecretpw@127.0.0.1:{port}/0?key=f"
    cascade, policy, store = _cascade(url)
    with caplog.at_level(logging.WARNING, logger="cascade_core.state.redis_store"):
        started = time.perf_counter()
        results = _answer_all(cascade, 40)
        elapsed = time.perf_counter() - started
    assert elapsed < 2.0  # one failed connect (<= 2 x 50 ms), then the store is bypassed, not waited on
    assert store.health.down and store.health.errors >= 1 and store.health.shared == 0
    assert 0 < sum(r.deferred for r in results) < 40  # the local window still enforces the rate
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "failed" in warnings[0]  # one warning per outage, not per request
    assert "topsecretpw" not in caplog.text and "***" in warnings[0]
    assert "topsecretpw" not in repr(cascade.threshold_store)


def test_store_coming_up_after_start_up_is_joined(redis_server):
    port = free_port()
    cascade, policy, store = _cascade(f"redis://127.0.0.1:{port}/0?key=f")
    _answer_all(cascade, 20)
    assert store.health.down
    with RedisServer(redis_server.binary, port=port) as server:
        time.sleep(0.25)  # retry_after_s
        _answer_all(cascade, 30)
        assert not store.health.down and store.health.rejoins == 1
        assert _server_seen(server) == 30 == store.health.shared - 30  # threshold + monitor writes; each once
        assert policy._window.peek().shared


def test_store_killed_mid_run_then_restarted_on_the_same_port(redis_server):
    cascade, policy, store = _cascade(f"{redis_server.url}?key=f")
    _answer_all(cascade, 50)
    assert _server_seen(redis_server) == 50
    redis_server.kill()
    _answer_all(cascade, 50)  # all answered from the local window
    assert store.health.down and store.health.errors >= 1
    redis_server.start()  # same port, empty: the local outage's scores are not replayed (no duplicates)
    time.sleep(0.25)
    _answer_all(cascade, 50)
    assert not store.health.down and store.health.rejoins == 1
    assert _server_seen(redis_server) == 50  # exactly the writes since it came back
    assert store.health.shared + store.health.fallbacks == 2 * 150  # every write either shared or local, once
    assert policy._window._local.peek().seen == 150  # the local copy saw every score


def test_hung_store_costs_at_most_the_timeout(redis_server):
    cascade, policy, store = _cascade(f"{redis_server.url}?key=f", timeout_s=0.05)
    _answer_all(cascade, 20)
    redis_server.pause()  # SIGSTOP: the socket stays open, nothing answers
    try:
        times = []
        for i in range(20):
            started = time.perf_counter()
            cascade.invoke(f"slow{i}")
            times.append(time.perf_counter() - started)
        assert max(times) < 0.5  # the first waits one timeout per write (threshold, monitor), the rest none
        assert sorted(times)[len(times) // 2] < 0.02
        assert store.health.down
    finally:
        redis_server.resume()
    time.sleep(0.25)
    _answer_all(cascade, 20)
    assert not store.health.down and store.health.rejoins == 1


@pytest.mark.parametrize("garbage", ["wrong type", "bad counter", "bad outcome"])
def test_garbage_in_the_keys_falls_back_and_rejoins_once_cleaned(redis_server, garbage, caplog):
    import redis

    client = redis.Redis.from_url(redis_server.url)
    if garbage == "wrong type":
        client.set("{f}:threshold.0:scores", "not a sorted set")
    elif garbage == "bad counter":
        client.hset("{f}:threshold.0:meta", "seen", "many")
    else:
        client.rpush("{f}:drift.deferred:outcomes", "1,zz")
    cascade, policy, store = _cascade(f"{redis_server.url}?key=f")
    with caplog.at_level(logging.WARNING, logger="cascade_core.state.redis_store"):
        _answer_all(cascade, 30)
    assert store.health.errors >= 1 and "failed" in caplog.text
    client.delete(*client.keys("{f}:*"))
    time.sleep(0.25)
    _answer_all(cascade, 10)
    assert not store.health.down and store.health.rejoins >= 1


def test_half_evicted_window_is_rebuilt_not_trusted(redis_server):
    import redis

    cascade, policy, store = _cascade(f"{redis_server.url}?key=f")
    _answer_all(cascade, 30)
    redis.Redis.from_url(redis_server.url).delete("{f}:threshold.0:order")  # one of the three keys lost
    _answer_all(cascade, 5)
    view = policy._window.peek()
    assert view.shared and view.n == 5 and store.health.errors == 0
