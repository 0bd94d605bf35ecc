"""The state store behind dynamic thresholds and the drift monitor: in memory, and shared through a real
Redis-protocol server (valkey-server, started by the ``redis_server`` fixture)."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from cascade_core import Cascade, ThresholdRule
from cascade_core.decide.thresholds import DynamicBudgetThreshold
from cascade_core.errors import ConfigurationError
from cascade_core.observe.monitor import DriftMonitor
from cascade_core.state import InMemoryStore, resolve_store
from cascade_core.state.memory import InMemoryScoreWindow
from cascade_core.testing import ScriptedModel

ROOT = Path(__file__).resolve().parents[2]


def _store(server, key="t", **kw):
    from cascade_core.state.redis_store import RedisStore

    return RedisStore(f"{server.url}?key={key}", **kw)


def _client(server):
    import redis

    return redis.Redis.from_url(server.url)


# -- the protocol and its defaults ------------------------------------------------------------------
def test_default_store_is_in_memory_and_windows_are_independent():
    a, b = DynamicBudgetThreshold(deferral_rate=0.5, warmup=2), DynamicBudgetThreshold(deferral_rate=0.5, warmup=2)
    assert isinstance(a.store, InMemoryStore)
    for s in (0.1, 0.2, 0.3):
        a.decide(s)
    assert a.n_seen == 3 and b.n_seen == 0


def test_bad_store_is_refused_naming_the_parameter():
    with pytest.raises(ConfigurationError, match="threshold_store must be a redis:// URL or a StateStore"):
        resolve_store(3.5)
    with pytest.raises(ConfigurationError, match="url must start with redis://"):
        resolve_store("http://127.0.0.1:6379")
    with pytest.raises(ConfigurationError, match="key must be"):
        resolve_store("redis://127.0.0.1:6379/0?key=has space")
    with pytest.raises(ConfigurationError, match="timeout_ms='fast' is not a number"):
        resolve_store("redis://127.0.0.1:6379/0?timeout_ms=fast")


def test_cascade_refuses_a_store_with_nothing_to_share():
    with pytest.raises(ConfigurationError, match="nothing to share"):
        Cascade([ScriptedModel("a"), ScriptedModel("b")], rules=ThresholdRule("margin", 0.3),
                threshold_store=InMemoryStore())


def test_password_never_in_repr_or_logs():
    store = resolve_store("redis://:hunter2hunter2@127.0.0.1:1/0?key=k&timeout_ms=5")
    assert "hunter2" not in repr(store) and "***" in repr(store)


# -- the Redis store against a real server ----------------------------------------------------------------
def test_redis_window_gives_the_same_quantile_as_the_in_memory_window(redis_server):
    rng = np.random.default_rng(3)
    scores = np.concatenate([rng.random(300), np.ones(120), [-math.inf, 0.0, 0.0]])
    rng.shuffle(scores)
    for rate in (0.0, 0.3, 0.5, 1.0):
        local = InMemoryScoreWindow(rate=rate, size=97)
        shared = _store(redis_server, key=f"parity-{rate}").score_window("threshold.0", rate=rate, size=97)
        for s in scores:
            want, got = local.record(float(s)), shared.record(float(s))
            assert got.shared and not want.shared
            assert (got.n, got.seen, got.threshold, got.below, got.equal) == (want.n, want.seen, want.threshold,
                                                                               want.below, want.equal)


def test_redis_keys_stay_bounded_and_expire(redis_server):
    store = _store(redis_server, key="bounded", ttl_s=30)
    policy = DynamicBudgetThreshold(deferral_rate=0.2, warmup=5, window=50, store=store)
    monitor = DriftMonitor(0.2, window=40, min_samples=10, store=store)
    for s in np.random.default_rng(0).random(1000):
        policy.decide(float(s))
    client = _client(redis_server)
    scores, order, meta = store.window_keys("threshold")
    assert client.zcard(scores) == client.llen(order) == 50
    assert int(client.hget(meta, "seen")) == 1000 == policy.n_seen
    assert all(0 < client.pttl(k) <= 30_000 for k in (scores, order, meta))
    cascade = Cascade([ScriptedModel("a", confidence=0.2), ScriptedModel("b")],
                      rules=ThresholdRule("margin", 0.5), monitor=monitor)
    for _ in range(100):
        cascade.invoke("q")
    assert client.llen("{bounded}:drift.deferred:outcomes") == 40
    assert monitor.status().n == 40 and monitor.status().deferral_rate == 1.0
    assert set(client.keys()) == {k.encode() for k in (scores, order, meta, "{bounded}:drift.deferred:outcomes")}


def test_two_stores_share_one_window_and_one_warmup(redis_server):
    a = DynamicBudgetThreshold(deferral_rate=0.5, warmup=10, window=100, initial_threshold=0.0, store=_store(redis_server))
    b = DynamicBudgetThreshold(deferral_rate=0.5, warmup=10, window=100, initial_threshold=0.0, store=_store(redis_server))
    for i in range(5):
        a.decide(0.1 * i)
        b.decide(0.1 * i + 0.05)
    assert b.n_seen == 10  # the fleet's warm-up, not each replica's (a's view is as of its last write: 9)
    assert b.current_threshold == pytest.approx(0.25)  # the median of both replicas' scores
    assert a.decide(0.2) == (True, pytest.approx(0.25))  # alone, a (6 scores) would still be warming up: 0.0
    assert a.n_seen == 11


def test_reset_clears_the_shared_window_for_every_replica(redis_server):
    a = DynamicBudgetThreshold(deferral_rate=0.5, warmup=2, window=10, store=_store(redis_server))
    b = DynamicBudgetThreshold(deferral_rate=0.5, warmup=2, window=10, store=_store(redis_server))
    for s in (0.1, 0.2, 0.3):
        a.decide(s)
    a.reset()
    b.decide(0.9)
    assert b.n_seen == 1


def test_concurrent_processes_update_the_window_atomically(redis_server):
    """Another process and this one (4 threads) push at once: every push counted once, the window consistent."""
    child = textwrap.dedent(f"""
        from cascade_core.state.redis_store import RedisStore
        window = RedisStore("{redis_server.url}?key=atomic").score_window("threshold.0", rate=0.3, size=500)
        for i in range(1500):
            assert window.record(i / 1500).shared
    """)
    env = {"PYTHONPATH": f"{ROOT / 'shared'}:{ROOT}:" + ":".join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-c", child], env=env)
    from concurrent.futures import ThreadPoolExecutor

    window = _store(redis_server, key="atomic").score_window("threshold.0", rate=0.3, size=500)
    with ThreadPoolExecutor(4) as pool:
        views = list(pool.map(lambda i: window.record(1.0 + i / 1500), range(1500)))
    assert proc.wait(timeout=60) == 0
    assert all(v.shared for v in views)
    client = _client(redis_server)
    scores, order, meta = window.keys
    assert int(client.hget(meta, "seen")) == 3000
    members = client.lrange(order, 0, -1)
    assert len(members) == len(set(members)) == client.zcard(scores) == 500
    assert sorted(int(m.split(b":")[0]) for m in members) == list(range(2501, 3001))  # the last 500, no gaps


def _skewed_fleet(policies, *, n=4000, rotate=300, seed=0):
    """Two replicas behind sticky per-tenant routing: the hard tenant on one replica, rebalanced every ``rotate``."""
    rng = np.random.default_rng(seed)
    deferred, scores = [], []
    for i in range(n):
        hard = rng.random() < 0.5
        score = rng.uniform(0.0, 0.6) if hard else rng.uniform(0.4, 1.0)
        replica = (0 if hard else 1) ^ ((i // rotate) % 2)
        deferred.append(policies[replica].decide(float(score))[0])
        scores.append(score)
    d, s = np.array(deferred), np.array(scores)
    oracle = s < np.quantile(s, 0.3)  # the fleet's least confident 30 %
    return float(d.mean()), float((d & oracle).sum() / d.sum())


def test_shared_store_meets_the_fleet_budget_under_skewed_routing_and_per_process_stores_do_not(redis_server):
    def policy(store):
        return DynamicBudgetThreshold(deferral_rate=0.3, warmup=20, window=200, store=store)

    shared_rate, shared_precision = _skewed_fleet([policy(_store(redis_server, key="fleet")),
                                                   policy(_store(redis_server, key="fleet"))])
    local_rate, local_precision = _skewed_fleet([policy(None), policy(None)])
    assert shared_rate == pytest.approx(0.3, abs=0.015)
    assert abs(local_rate - 0.3) > 0.025  # each replica's window lags every rebalancing
    assert shared_precision > 0.9 > local_precision + 0.1  # and spends the budget on its own slice
