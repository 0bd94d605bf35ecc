"""Load: 200 concurrent streaming clients (real AsyncOpenAI over real HTTP) against one uvicorn server.

Nothing may be lost: every stream ends with its decision and the right text for the tier that
answered. p50/p99 latency are printed (run with ``-s`` to see them); they are not asserted.
"""

from __future__ import annotations

import asyncio
import time

import httpx
import numpy as np
import openai

from cascade_core.serve import ServerSettings, create_app

from .harness import scripted_cascade, serving

N_CLIENTS = 200


async def test_200_concurrent_streaming_clients_lose_nothing():
    cascades = {"keep": scripted_cascade(confidence=0.9), "defer": scripted_cascade(confidence=0.2)}
    app = create_app(cascades, ServerSettings(max_concurrency=256, request_timeout_s=60))
    with serving(app) as running:
        client = openai.AsyncOpenAI(base_url=running.base_url, api_key="unused", max_retries=0, timeout=60,
                                    http_client=httpx.AsyncClient(limits=httpx.Limits(max_connections=N_CLIENTS)))

        async def one(i: int) -> tuple[str, str, dict, float]:
            model = ("keep", "defer")[i % 2]
            started = time.perf_counter()
            stream = await client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": f"Question {i}: capital of France?"}], stream=True)
            text, decision = "", None
            async for chunk in stream:
                if chunk.choices:
                    text += chunk.choices[0].delta.content or ""
                    decision = (chunk.model_extra or {}).get("cascade", decision)
            return model, text, decision, time.perf_counter() - started

        started = time.perf_counter()
        results = await asyncio.gather(*(one(i) for i in range(N_CLIENTS)))
        wall = time.perf_counter() - started
        await client.close()
        metrics = app.state.metrics

    assert len(results) == N_CLIENTS
    for model, text, decision, _ in results:
        assert decision is not None, "a stream ended without its decision"
        expected_tier = 0 if model == "keep" else 1
        assert decision["tier"] == expected_tier and decision["deferred"] is (expected_tier == 1)
        assert text == ("Paris" if model == "keep" else "Paris, France")
    answered = sum(metrics.value("cascade_requests_total", cascade=c, tier=t) for c in cascades for t in ("small", "large"))
    assert answered == N_CLIENTS
    assert metrics.value("cascade_rejected_total") == 0
    latencies = np.array([r[3] for r in results])
    print(f"\n{N_CLIENTS} concurrent streaming clients: wall {wall:.2f} s, latency p50 {np.percentile(latencies, 50) * 1000:.0f} ms, "
          f"p99 {np.percentile(latencies, 99) * 1000:.0f} ms, max {latencies.max() * 1000:.0f} ms")
