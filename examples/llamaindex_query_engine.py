"""A LlamaIndex query engine whose LLM is a cascade — runs offline, no key needed.

    python examples/llamaindex_query_engine.py                 # SmolLM2-135M small, Qwen2.5-Coder-1.5B large
    python examples/llamaindex_query_engine.py --small-url http://127.0.0.1:8000/v1 --small-model qwen2.5-1.5b-instruct
    python examples/llamaindex_query_engine.py --large-url https://api.openai.com/v1 --large-model gpt-4o-mini

The index is a real ``VectorStoreIndex`` over a deterministic hashed bag-of-words embedding.
Both tiers are real models: SmolLM2-135M-Instruct in-process (small) and, unless ``--large-url`` is
given, LlamaIndex's ``OpenAILike`` talking to Qwen2.5-Coder-1.5B-Instruct on a llama.cpp server the
script starts on 127.0.0.1 (large). ``Settings.llm = CascadeLLM(...)``
is the only change to an ordinary LlamaIndex app. For each LLM call the script prints the tier
that answered, the deciding score, and the cost saved versus sending everything to the large tier.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from llama_index.core import Document, Settings, VectorStoreIndex
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events.llm import LLMChatEndEvent
from llama_index.llms.openai import OpenAI
from llama_index.llms.openai_like import OpenAILike

from cascade_core import Pricing, ThresholdRule
from cascade_core.backends.llamacpp import serve_embedded
from cascade_core.backends.openai import OpenAIModel
from llamaindex_cascade import CascadeLLM, HashingEmbedding

DOCS = [
    "Paris is the capital of France. The Seine flows through Paris.",
    "Rome is the capital of Italy. The Tiber flows through Rome.",
    "Canberra is the capital of Australia.",
    "The Danube flows through Vienna, Budapest and Belgrade.",
]
QUESTIONS = [
    "What is the capital of France?",
    "Which river flows through Rome?",
    "What is the capital of Australia?",
    "Name a city on the Danube.",
]


class PrintDecisions(BaseEventHandler):
    """Prints the cascade decision of every LLM call (LlamaIndex instrumentation)."""

    totals: dict[str, float] = {"calls": 0, "deferred": 0, "cost": 0.0, "all_large": 0.0}

    def handle(self, event: Any, **kwargs: Any) -> None:
        response = event.response if isinstance(event, LLMChatEndEvent) else None
        if response is None or "cascade" not in response.additional_kwargs:
            return
        d = response.additional_kwargs["cascade"]
        self.totals["calls"] += 1
        self.totals["deferred"] += d["deferred"]
        self.totals["cost"] += d["cost"]
        self.totals["all_large"] += d["all_large_cost"]
        score = "n/a" if d["score"] is None else f"{d['score']:.3f}"
        print(
            f"  tier {d['tier']} ({d['model_name']}), {d['signal']}={score} vs {d['threshold']}: {d['reason']}"
        )
        print(f"  cost ${d['cost']:.8f}, saved ${d['saved']:.8f} vs all-large")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threshold", type=float, default=0.3, help="first-token margin threshold")
    parser.add_argument("--small-url", help="OpenAI-compatible server with logprobs for the small tier")
    parser.add_argument("--small-model", default="small")
    parser.add_argument(
        "--large-url", help="OpenAI-compatible server for the large tier (key: $OPENAI_API_KEY)"
    )
    parser.add_argument("--large-model", default="gpt-4o-mini")
    args = parser.parse_args()

    if args.small_url:
        small = OpenAIModel(args.small_model, base_url=args.small_url)
    else:  # the embedded SmolLM2-135M-Instruct, offline (imports torch: loaded only when used)
        from cascade_core.backends.defaults import default_small_model

        small = default_small_model(max_new_tokens=32, threads=1)
    if args.large_url:
        key = os.environ.get("OPENAI_API_KEY", "not-needed")
        large = OpenAI(model=args.large_model, api_base=args.large_url, api_key=key, timeout=60, max_retries=1)
    else:
        server = serve_embedded("large", threads=1)  # Qwen2.5-Coder-1.5B, sha256-verified, stopped at exit
        large = OpenAILike(model=server.alias, api_base=server.base_url, api_key="not-needed", temperature=0.0,
                           max_tokens=48, is_chat_model=True, context_window=4096, timeout=300, max_retries=1)

    # The drop-in swap: every LlamaIndex component now asks the cascade.
    Settings.llm = CascadeLLM(
        small=small,
        large=large,
        rule=ThresholdRule("margin", args.threshold),
        small_pricing=Pricing(0.02, 0.02),  # per million tokens: a local small model
        large_pricing=Pricing(0.15, 0.60),  # priced like a hosted API model
    )
    Settings.embed_model = HashingEmbedding()
    printer = PrintDecisions(totals={"calls": 0, "deferred": 0, "cost": 0.0, "all_large": 0.0})
    get_dispatcher().add_event_handler(printer)

    engine = VectorStoreIndex.from_documents([Document(text=t) for t in DOCS]).as_query_engine(
        similarity_top_k=1
    )
    for question in QUESTIONS:
        print(f"Q: {question}")
        print(f"A: {str(engine.query(question)).strip()}")

    t = printer.totals
    saved = t["all_large"] - t["cost"]
    share = saved / t["all_large"] if t["all_large"] else 0.0
    print(
        f"\n{int(t['calls'])} LLM calls, {int(t['deferred'])} deferred to the large tier; "
        f"cost ${t['cost']:.8f} vs ${t['all_large']:.8f} all-large: saved ${saved:.8f} ({share:.0%})"
    )


if __name__ == "__main__":
    main()
