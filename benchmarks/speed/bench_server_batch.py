"""Benchmark 5(b): throughput of ``batch`` / ``abatch`` with the small tier on a llama.cpp server.

The embedded SmolLM2-135M (GGUF) runs on llama.cpp's OpenAI-compatible server (``serve_embedded``),
once with 1 parallel slot and once with 4 (both servers are started up front, with 2 threads each,
and used one at a time, so the slot counts are compared within one run). The small tier is an
``OpenAIModel`` on ``/v1/completions`` with 2-shot world_facts prompts; the large tier is a scripted
stub, so only the small tier's work is timed. For N = 1, 4, 16 (and 64 with ``--full``) queries,
queries/s of
- ``loop``: ``Cascade.invoke`` one query after another (the baseline every ratio is against),
- ``batch``: ``Cascade.batch`` with N requests in flight (a thread pool; the server batches the
  requests its slots hold into one decode),
- ``abatch``: the same through ``Cascade.abatch`` (asyncio, one async client),
for kept answers (every answer kept; answers end at the newline) and first-token-margin deferrals
(every query defers after its first step and closes its stream). Before every run the servers'
slots are filled with unrelated prompts, so no run finds the previous one's prompts cached (within
a run, requests share the few-shot prefix through the cache, as real traffic would). Every cell is the fastest of
``--repeats`` runs, interleaved run by run across modes and servers (the one least disturbed by
other jobs); every run's decisions and texts are checked against the loop's. The client side is I/O only; the server does the compute.

    python -m benchmarks.speed.bench_server_batch [--sizes 1 4 16] [--full] [--slots 1 4] [--threads 2]

``--tiny`` runs against the fake OpenAI server of ``cascade_core.testing`` instead (no model, one
"server" per slot count; a smoke test of the script, its numbers mean nothing).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

from tqdm import tqdm

from benchmarks import harness
from cascade_core import Cascade, Request, ThresholdRule
from cascade_core.testing import ScriptedModel

#: case -> margin threshold: 0 never defers (kept answers), 1 always does (after the first step)
CASES = {"kept": 0.0, "margin": 1.0}
MODES = ("loop", "batch", "abatch")


def run(mode: str, cascade: Cascade, requests: list[Request], runner: asyncio.Runner) -> list[Any]:
    """Answer ``requests`` one by one (``loop``) or all in flight at once (``batch``, ``abatch``).

    ``abatch`` runs on one long-lived event loop (``runner``), as in a server: its async HTTP
    client is made once, not per call.
    """
    if mode == "loop":
        return [cascade.invoke(r) for r in requests]
    if mode == "abatch":
        return runner.run(cascade.abatch(requests, max_concurrency=len(requests)))
    return cascade.batch(requests, max_concurrency=len(requests))


def _nothing() -> None:
    return None


class SmallTier(NamedTuple):
    """A small tier on its own server, and how to clear that server's prompt cache."""

    model: Any
    reset: Callable[[], None] = _nothing


def flush_slots(base_url: str, alias: str, slots: int) -> None:
    """Fill every slot of a llama.cpp server with an unrelated one-token request, so the next run's
    prompts find nothing of theirs cached (``/slots`` erase needs a server started with a slot save path)."""

    def one(i: int) -> None:
        body = json.dumps({"model": alias, "prompt": f"Filler text number {i}.", "max_tokens": 1}).encode()
        request = urllib.request.Request(f"{base_url}/completions", data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as reply:
            reply.read()

    with ThreadPoolExecutor(slots) as pool:
        list(pool.map(one, range(slots)))


@contextlib.contextmanager
def small_tiers(tiny: bool, slots: list[int], threads: int, max_new_tokens: int) -> Iterator[dict[int, SmallTier]]:
    """slots -> a small tier (``OpenAIModel``) on its own server; servers stop on exit."""
    if tiny:
        from cascade_core.backends.openai import OpenAIModel
        from cascade_core.testing.fake_server import FakeOpenAIServer, FakeReply

        def responder(body: dict[str, Any]) -> FakeReply:
            return FakeReply(" Paris\n", confidence=0.6)

        with contextlib.ExitStack() as stack:
            servers = {n: stack.enter_context(FakeOpenAIServer(responder)) for n in slots}
            yield {n: SmallTier(OpenAIModel("fake", base_url=s.base_url, api_key="sk-fake", top_k=5,
                                            max_new_tokens=max_new_tokens)) for n, s in servers.items()}
        return
    from cascade_core.backends.llamacpp import serve_embedded

    live = {n: serve_embedded("small", threads=threads, parallel=n) for n in slots}
    try:
        yield {n: SmallTier(s.openai_model(top_k=5, max_new_tokens=max_new_tokens, prompt_format="completion",
                                           timeout=600), functools.partial(flush_slots, s.base_url, s.alias, n))
               for n, s in live.items()}
    finally:
        for server in live.values():
            server.stop()


def measure(
    cascades: dict[int, Cascade], tiers: dict[int, SmallTier], requests: list[Request], repeats: int,
    runner: asyncio.Runner,
) -> dict[tuple[int, str], float]:
    """Best queries/s of ``repeats`` runs of every (slots, mode), interleaved run by run; the
    decisions and texts of every run must equal those of the first server's loop.

    Every run starts with the slots holding unrelated prompts: otherwise a 4-slot server would still
    hold the previous run's prompts whole (N <= 4) and answer them from its cache.
    """
    rates: dict[tuple[int, str], float] = {}
    answers: dict[tuple[int, str, int], list[tuple[int, str]]] = {}
    for repeat in range(repeats):
        for mode in MODES:
            for slots, cascade in cascades.items():
                tiers[slots].reset()
                started = time.perf_counter()
                results = run(mode, cascade, requests, runner)
                rate = len(requests) / (time.perf_counter() - started)
                rates[slots, mode] = max(rate, rates.get((slots, mode), 0.0))
                answers[slots, mode, repeat] = [(r.tier, r.text) for r in results]
    reference = answers[min(cascades), "loop", 0]
    for key, got in answers.items():
        differ = [i for i, (a, b) in enumerate(zip(got, reference, strict=True)) if a != b]
        assert not differ, f"{key}: decisions/texts differ from the sequential loop at {differ}: " + "; ".join(
            f"{got[i]!r} vs {reference[i]!r}" for i in differ[:3])
    return rates


def main(argv: list[str] | None = None) -> dict[str, float]:
    p = harness.parser(__doc__, threads=2)
    p.add_argument("--sizes", type=int, nargs="+", default=[1, 4, 16])
    p.add_argument("--full", action="store_true", help="also N = 64")
    p.add_argument("--slots", type=int, nargs="+", default=[1, 4], help="parallel slots, one server each")
    p.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    p.add_argument("--max-new-tokens", type=int, default=8)
    p.add_argument("--repeats", type=int, default=3, help="runs per cell; the fastest is kept (default %(default)s)")
    args = p.parse_args(argv)
    sizes = sorted(set(args.sizes + ([64] if args.full else [])))
    print(f"machine: {harness.machine()}")
    print(f"server: llama.cpp (xllamacpp), {args.threads} thread(s) per server, slots {args.slots}; "
          f"small tier SmolLM2-135M-Instruct GGUF over /v1/completions{' [tiny: fake server]' if args.tiny else ''}; "
          f"max_new_tokens={args.max_new_tokens}")
    ratios: dict[str, float] = {}
    with small_tiers(args.tiny, args.slots, args.threads, args.max_new_tokens) as tiers, asyncio.Runner() as runner:
        for case in args.cases:
            rule = ThresholdRule("margin", CASES[case])
            # no first-step timeout: with N requests queued for a few slots, the last ones wait longer
            # than the default 10 s for their first token and would fail over to the large tier
            cascades = {n: Cascade([tier.model, ScriptedModel("stub")], rules=rule, small_timeout=None)
                        for n, tier in tiers.items()}
            requests = [Request.from_prompt(t, stop=("\n",)) for t in harness.prompts(args.tiny, max(sizes))]
            for cascade in cascades.values():  # warm-up: connections, the async client, the prompt cache
                for mode in MODES:
                    run(mode, cascade, requests[:2], runner)
            what = "every answer kept" if case == "kept" else "every query defers after its first step"
            print(f"\n{case} ({what}); queries/s, and ratios to the loop on the same server:")
            cols = [(n, m) for n in tiers for m in MODES]
            print(f"{'N':>4}  " + "  ".join(f"{f'{m}@{n} q/s':>13}" for n, m in cols) + "  "
                  + "  ".join(f"{f'{m}@{n}/loop':>13}" for n, m in cols if m != "loop")
                  + (f"  {'batch@' + str(max(tiers)) + '/loop@1':>16}" if len(tiers) > 1 else ""))
            for n in tqdm(sizes, desc=case, disable=args.quiet, leave=False):
                rates = measure(cascades, tiers, requests[:n], args.repeats, runner)
                line = f"{n:>4}  " + "  ".join(f"{rates[c]:>13.2f}" for c in cols) + "  "
                line += "  ".join(f"{rates[s, m] / rates[s, 'loop']:>12.2f}x" for s, m in cols if m != "loop")
                for s, m in cols:
                    if m != "loop":
                        ratios[f"{case}:{m}@{s}/{n}"] = rates[s, m] / rates[s, "loop"]
                if len(tiers) > 1:
                    best = rates[max(tiers), "batch"] / rates[min(tiers), "loop"]
                    ratios[f"{case}:batch@{max(tiers)}/loop@{min(tiers)}/{n}"] = best
                    line += f"  {best:>15.2f}x"
                tqdm.write(line)
    return ratios


if __name__ == "__main__":
    main()
