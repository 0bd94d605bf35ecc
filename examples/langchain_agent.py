"""A LangChain tool-calling agent (``create_agent``) whose model is a cascade — offline, no key needed.

    python examples/langchain_agent.py               # SmolLM2-135M small tier, Qwen2.5-Coder-1.5B large tier
    python examples/langchain_agent.py --small-url http://127.0.0.1:8000/v1 --small-model qwen2.5-1.5b-instruct
    python examples/langchain_agent.py --large-url https://api.openai.com/v1 --large-model gpt-4o-mini

The small tier sees the tools in its prompt and may answer ``<tool_call>{...}</tool_call>``; a
malformed call, a call of an unknown tool, or a low first-token margin defers to the large tier,
which gets the tools natively. Both tiers are real models: SmolLM2-135M-Instruct in-process (small)
and, unless ``--large-url`` is given, ``ChatOpenAI`` talking to Qwen2.5-Coder-1.5B-Instruct on a
llama.cpp server started on 127.0.0.1 (large; its tool calls written as a ```json block are recovered). Every model call of the agent is
printed with the tier that answered it and the cost saved.
"""

from __future__ import annotations

import argparse
import json
import os

from langchain.agents import create_agent
from langchain_core.messages import AIMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI

from cascade_core.backends.defaults import DEFAULT_PRICES, default_small_model
from cascade_core.backends.llamacpp import serve_embedded
from cascade_core.backends.openai import OpenAIModel
from langchain_cascade import ChatCascade

QUESTIONS = ["What is 17 + 25?", "What is the weather in Paris?", "Say hello in French."]


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@tool
def get_weather(city: str) -> str:
    """Get the current weather in a city."""
    return f"Sunny and 21°C in {city}."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threshold", type=float, default=0.3, help="first-token margin threshold")
    parser.add_argument("--small-url", help="OpenAI-compatible server with logprobs for the small tier")
    parser.add_argument("--small-model", default="small")
    parser.add_argument("--large-url", help="OpenAI-compatible server for the large tier (key: $OPENAI_API_KEY)")
    parser.add_argument("--large-model", default="gpt-4o-mini")
    args = parser.parse_args()

    if args.small_url:
        small = OpenAIModel(args.small_model, base_url=args.small_url)
    else:
        small = default_small_model(max_new_tokens=48, threads=1)
    if args.large_url:
        large = ChatOpenAI(model=args.large_model, base_url=args.large_url,
                           api_key=os.environ.get("OPENAI_API_KEY", "not-needed"), max_retries=0)
    else:
        server = serve_embedded("large", threads=1)  # Qwen2.5-Coder-1.5B, sha256-verified, stopped at exit
        large = ChatOpenAI(model=server.alias, base_url=server.base_url, api_key="not-needed", temperature=0,
                           max_tokens=64, max_retries=0)
    llm = ChatCascade(small=small, large=large, threshold=args.threshold,
                      small_pricing=DEFAULT_PRICES["small"], large_pricing=DEFAULT_PRICES["large"])
    agent = create_agent(llm, tools=[add, get_weather], system_prompt="Use the tools when they help.")

    cost = all_large = 0.0
    for question in QUESTIONS:
        print(f"Q: {question}")
        result = agent.invoke({"messages": [{"role": "user", "content": question}]})
        for message in result["messages"]:
            if not isinstance(message, AIMessage):
                continue
            meta = message.response_metadata["cascade"]
            cost, all_large = cost + meta["cost"], all_large + meta["all_large_cost"]
            tier = "small (kept)" if meta["tier"] == 0 else "large (deferred)"
            said = (f"calls {message.tool_calls[0]['name']}({json.dumps(message.tool_calls[0]['args'])})"
                    if message.tool_calls else repr(message.text.strip()[:80]))
            print(f"   model call -> {tier:17} {said}\n      why: {meta['reason'][:110]}")
    saved = all_large - cost
    share = saved / all_large if all_large else 0.0
    print(f"\ncost ${cost:.7f} vs ${all_large:.7f} all-large: saved ${saved:.7f} ({share:.0%})")


if __name__ == "__main__":
    main()
