"""Benchmark 2: what the LangChain and LlamaIndex adapters add to a cascade call.

``ChatCascade.invoke`` and ``CascadeLLM.chat`` vs ``Cascade.invoke`` on the same request, through
the same core cascade:
1. with the real small tier (answer kept, ``--max-new-tokens`` tokens), interleaved call by call,
   the fastest of ``--repeats`` runs per prompt kept: ratio of the sums. Target <= 1.02x.
2. with scripted tiers (no model work), the absolute per-call time in microseconds, averaged
   over ``--calls`` calls: the adapters' own cost (message conversion, metadata, callbacks).

    python -m benchmarks.speed.bench_adapters [--queries 4] [--repeats 3] [--calls 2000]
"""

from __future__ import annotations

import time

from langchain_core.messages import HumanMessage
from llama_index.core.llms import ChatMessage
from tqdm import tqdm

from benchmarks import harness
from cascade_core import Cascade, Message, ThresholdRule
from cascade_core.testing import ScriptedModel
from langchain_cascade import ChatCascade
from llamaindex_cascade import CascadeLLM


def callers(cascade: Cascade) -> dict:
    chat, llm = ChatCascade(cascade=cascade), CascadeLLM(cascade=cascade)
    return {
        "Cascade.invoke": lambda text: cascade.invoke([Message("user", text)]),
        "ChatCascade.invoke": lambda text: chat.invoke([HumanMessage(text)]),
        "CascadeLLM.chat": lambda text: llm.chat([ChatMessage(role="user", content=text)]),
    }


def main(argv: list[str] | None = None) -> dict[str, float]:
    p = harness.parser(__doc__)
    harness.add_run_size(p, queries=4, max_new_tokens=16)
    p.add_argument("--calls", type=int, default=2000)
    args = harness.parse_and_pin(p, argv)
    print(f"machine: {harness.machine()}")
    out: dict[str, float] = {}

    small = harness.small_model(args.tiny, max_new_tokens=args.max_new_tokens)
    real = callers(Cascade([small, ScriptedModel("stub")], rules=ThresholdRule("margin", 0.0)))  # keeps every answer
    texts = harness.prompts(args.tiny, args.queries)
    for call in real.values():
        call(texts[0])  # warm-up
    best = {name: [float("inf")] * len(texts) for name in real}
    rows = [i for _ in range(args.repeats) for i in range(len(texts))]
    for i in tqdm(rows, desc="real small tier", disable=args.quiet):
        for name, call in real.items():
            best[name][i] = min(best[name][i], harness.seconds(call, texts[i]))
    core = sum(best["Cascade.invoke"])
    print(f"{small.model_name} small tier (kept, {args.max_new_tokens} new tokens), fastest of {args.repeats} per prompt:")
    for name, times in best.items():
        out[f"real/{name}"] = sum(times) / core
        print(f"  {name:>18}: {sum(times) / len(times) * 1000:8.1f} ms/call  {sum(times) / core:.3f}x (target <= 1.02x)")

    scripted = callers(Cascade([ScriptedModel("Paris", confidence=0.9), ScriptedModel("Paris, France")], rules=ThresholdRule("margin", 0.5)))
    text = "What is the capital of France?"
    per_call = {}
    for name, call in scripted.items():
        for _ in range(50):
            call(text)  # warm-up
        started = time.perf_counter()
        for _ in range(args.calls):
            call(text)
        per_call[name] = (time.perf_counter() - started) / args.calls
    print(f"scripted tiers (no model work), mean of {args.calls} calls:")
    for name, seconds in per_call.items():
        out[f"scripted/{name}_us"] = seconds * 1e6
        print(f"  {name:>18}: {seconds * 1e6:8.0f} us/call  (+{(seconds - per_call['Cascade.invoke']) * 1e6:.0f} us over the core)")
    return out


if __name__ == "__main__":
    main()
