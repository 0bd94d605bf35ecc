"""A LlamaIndex ``FunctionAgent`` whose LLM is a cascade — runs offline, no key needed.

    python examples/llamaindex_agent.py
    python examples/llamaindex_agent.py --small-url http://127.0.0.1:8000/v1 --small-model qwen2.5-1.5b-instruct
    python examples/llamaindex_agent.py --large-url https://api.openai.com/v1 --large-model gpt-4o-mini

The small tier sees the tools in its prompt and answers ``<tool_call>{...}</tool_call>``; a
confident, well-formed call is kept, a malformed one (or a low first-token margin) defers to the
large tier, which gets the tools natively. Unless URLs are given, both tiers are local fake
OpenAI-compatible servers with scripted answers (the embedded 135M model is too small to call
tools reliably; point ``--small-url`` at e.g. a vLLM server with logprobs for a real run). For every
agent step the script prints the tier that answered, why, and the cost saved.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from contextlib import ExitStack
from typing import Any

from llama_index.core.agent.workflow import AgentOutput, FunctionAgent, ToolCallResult
from llama_index.core.tools import FunctionTool
from llama_index.llms.openai import OpenAI

from cascade_core import Pricing, ThresholdRule
from cascade_core.backends.openai import OpenAIModel
from cascade_core.fake_server import FakeOpenAIServer, FakeReply
from llamaindex_cascade import CascadeLLM

QUESTIONS = ["What is 12 times 7?", "What is the population of Paris?"]


def multiply(a: float, b: float) -> float:
    """Multiply two numbers."""
    return a * b


def get_population(city: str) -> str:
    """Population of a city, in millions."""
    return {"paris": "2.1", "rome": "2.8"}.get(city.lower(), "unknown")


def _call(name: str, arguments: dict[str, Any]) -> str:
    return "<tool_call>" + json.dumps({"name": name, "arguments": arguments}) + "</tool_call>"


def stand_in_small(body: dict[str, Any]) -> FakeReply:
    """Plays a small local model: sure about arithmetic, gets the population tool's argument wrong."""
    last = body["messages"][-1]["content"]
    if "<tool_response" in last:  # a tool result came back: sure about 84, unsure otherwise
        return (
            FakeReply("12 times 7 is 84.", confidence=0.95)
            if "84" in last
            else FakeReply("About 2?", confidence=0.4)
        )
    if "12 times 7" in last:
        return FakeReply(_call("multiply", {"a": 12, "b": 7}), confidence=0.95)
    if "population" in last:
        return FakeReply(_call("get_population", {"town": "Paris"}), confidence=0.9)  # no 'city': defers
    return FakeReply("Let me think about that.", confidence=0.4)


def stand_in_large(body: dict[str, Any]) -> FakeReply:
    """Plays the hosted large model: calls tools natively, then answers from their results."""
    last = body["messages"][-1]
    if last["role"] == "tool":
        return FakeReply(f"Paris has about {last['content']} million inhabitants.")
    return FakeReply("", tool_calls=[{"name": "get_population", "arguments": {"city": "Paris"}}])


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

    with ExitStack() as stack:
        small_url = args.small_url or stack.enter_context(FakeOpenAIServer(stand_in_small)).base_url
        if args.large_url:
            large_url, key = args.large_url, os.environ.get("OPENAI_API_KEY", "not-needed")
        else:
            large_url, key = stack.enter_context(FakeOpenAIServer(stand_in_large)).base_url, "sk-fake"
        llm = CascadeLLM(
            small=OpenAIModel(args.small_model, base_url=small_url),
            large=OpenAI(model=args.large_model, api_base=large_url, api_key=key, timeout=60, max_retries=1),
            rules=ThresholdRule("margin", args.threshold),
            small_pricing=Pricing(0.02, 0.02),
            large_pricing=Pricing(0.15, 0.60),
        )
        asyncio.run(run(llm))


if __name__ == "__main__":
    main()
