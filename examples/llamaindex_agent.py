"""A LlamaIndex ``FunctionAgent`` whose LLM is a cascade — runs offline, no key needed.

    python examples/llamaindex_agent.py              # SmolLM2-135M small, Qwen2.5-Coder-1.5B large
    python examples/llamaindex_agent.py --small-url http://127.0.0.1:8000/v1 --small-model qwen2.5-1.5b-instruct
    python examples/llamaindex_agent.py --large-url https://api.openai.com/v1 --large-model gpt-4o-mini

The small tier sees the tools in its prompt and answers ``<tool_call>{...}</tool_call>``; a
confident, well-formed call is kept, a malformed one (or a low first-token margin) defers to the
large tier, which gets the tools natively. Both tiers are real models: SmolLM2-135M-Instruct
in-process (small; it rarely writes a valid call, so most tool steps defer — see docs/workloads.md)
and, unless ``--large-url`` is given, Qwen2.5-Coder-1.5B-Instruct on a llama.cpp server the script
starts on 127.0.0.1 (large, through ``OpenAILike``; its ```json tool calls are recovered). For every
agent step the script prints the tier that answered, why, and the cost saved.
"""

from __future__ import annotations

import argparse
import asyncio
import os

from llama_index.core.agent.workflow import AgentOutput, FunctionAgent, ToolCallResult
from llama_index.core.tools import FunctionTool
from llama_index.llms.openai import OpenAI
from llama_index.llms.openai_like import OpenAILike

from cascade_core import Pricing, ThresholdRule
from cascade_core.backends.llamacpp import serve_embedded
from cascade_core.backends.openai import OpenAIModel
from llamaindex_cascade import CascadeLLM

QUESTIONS = ["What is 12 times 7?", "What is the population of Paris?"]


def multiply(a: float, b: float) -> float:
    """Multiply two numbers."""
    return a * b


def get_population(city: str) -> str:
    """Population of a city, in millions."""
    return {"paris": "2.1", "rome": "2.8"}.get(city.strip().lower(), "unknown")


async def run(llm: CascadeLLM) -> None:
    tools = [FunctionTool.from_defaults(fn=multiply), FunctionTool.from_defaults(fn=get_population)]
    agent = FunctionAgent(tools=tools, llm=llm, system_prompt="Answer with the tools when they help.")
    cost = all_large = 0.0
    for question in QUESTIONS:
        print(f"Q: {question}")
        handler = agent.run(user_msg=question)
        async for event in handler.stream_events():
            if isinstance(event, AgentOutput) and isinstance(event.raw, dict) and "cascade" in event.raw:
                d = event.raw["cascade"]
                cost, all_large = cost + d["cost"], all_large + d["all_large_cost"]
                calls = ", ".join(c.tool_name for c in event.tool_calls) or "none"
                print(f"  step: tier {d['tier']} ({d['model_name']}) answered, tool calls: {calls}")
                print(f"        {d['reason']}; saved ${d['saved']:.8f}")
            elif isinstance(event, ToolCallResult):
                print(f"  tool {event.tool_name}({event.tool_kwargs}) -> {event.tool_output.content}")
        print(f"A: {(await handler).response.content}")
    saved = all_large - cost
    print(f"\ncost ${cost:.8f} vs ${all_large:.8f} all-large: saved ${saved:.8f}")


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

        small = default_small_model(max_new_tokens=64, threads=1)
    if args.large_url:
        key = os.environ.get("OPENAI_API_KEY", "not-needed")
        large = OpenAI(model=args.large_model, api_base=args.large_url, api_key=key, timeout=60, max_retries=1)
    else:
        server = serve_embedded("large", threads=1)  # Qwen2.5-Coder-1.5B, sha256-verified, stopped at exit
        large = OpenAILike(model=server.alias, api_base=server.base_url, api_key="not-needed", temperature=0.0,
                           max_tokens=64, is_chat_model=True, is_function_calling_model=True,
                           context_window=4096, timeout=300, max_retries=1)
    llm = CascadeLLM(
        small=small,
        large=large,
        rule=ThresholdRule("margin", args.threshold),
        small_pricing=Pricing(0.02, 0.02),
        large_pricing=Pricing(0.15, 0.60),
    )
    asyncio.run(run(llm))


if __name__ == "__main__":
    main()
