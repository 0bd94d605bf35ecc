"""The fleet load test's traffic and its summary (the benchmark itself: benchmarks/speed/fleet_load.py, docs/serve.md)."""

from __future__ import annotations

import numpy as np

from benchmarks.speed.fleet_load import TARGET, _responder, summarize, traffic


def test_routing_is_sticky_per_tenant_and_moves_every_rebalance():
    plan = traffic(3000, replicas=3, rebalance=1000)
    for block in range(3):
        rows = slice(block * 1000, (block + 1) * 1000)
        for tenant in range(3):
            assert set(plan.replica[rows][plan.tenant[rows] == tenant]) == {(tenant + block) % 3}
    assert plan.margin[plan.tenant == 0].max() <= 0.6 and plan.margin[plan.tenant != 0].min() >= 0.4


def test_small_tier_answers_with_the_margin_in_the_prompt():
    reply = _responder({"model": "small", "messages": [{"role": "user", "content": "tenant=hard id=1 margin=0.250000"}]})
    runner_up = min(reply.confidence, (1 - reply.confidence) * 0.8)
    assert abs(reply.confidence - runner_up - 0.25) < 1e-9


def test_summary_counts_lost_requests_and_the_oracle_share():
    plan = traffic(1000, replicas=2, rebalance=500)
    deferred = plan.margin < np.quantile(plan.margin, TARGET)  # a perfect fleet-wide quantile
    status = np.full(1000, 200)
    status[[3, 7]] = [0, -503]
    row = summarize(plan, {"status": status, "deferred": deferred, "latency": np.full(1000, 0.01)}, 2)
    assert row["lost"] == 2 and row["oracle_share"] == 1.0
    assert abs(row["fleet_rate"] - TARGET) < 0.002 and row["p50_ms"] == 10.0
