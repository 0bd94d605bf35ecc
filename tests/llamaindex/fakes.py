"""Helpers for the LlamaIndex adapter tests: scripted fake OpenAI-compatible tiers.

The small tier is the core ``OpenAIModel`` (streamed chat completions with log-probs) against one
fake server; the large tier is LlamaIndex's own ``OpenAI`` LLM against another. What each server
answers is scripted per test with :func:`replies`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from llama_index.llms.openai import OpenAI

from cascade_core import Pricing, ThresholdRule
from cascade_core.backends.openai import OpenAIModel
from cascade_core.testing.fake_server import FakeOpenAIServer, FakeReply
from llamaindex_cascade import CascadeLLM

SMALL_KEY = "sk-small-secret-0000"
LARGE_KEY = "sk-large-secret-1111"
CONFIDENT = 0.95  # first-token margin 1.8 * 0.95 - 0.8 = 0.91: kept at threshold 0.3
UNSURE = 0.40  # margin 1.8 * 0.40 - 0.8 < 0: deferred

Responder = Callable[[dict[str, Any]], FakeReply]


def last_text(body: dict[str, Any]) -> str:
    """The text of the last message of a request body (tool results included)."""
    messages = body.get("messages") or [{}]
    content = messages[-1].get("content") or ""
    return content if isinstance(content, str) else json.dumps(content)


def replies(*rules: tuple[str, FakeReply], default: FakeReply | None = None) -> Responder:
    """A responder answering the first rule whose key occurs in the last message."""
    fallback = default or FakeReply("I am not sure.", confidence=UNSURE)

    def respond(body: dict[str, Any]) -> FakeReply:
        text = last_text(body)
        return next((reply for key, reply in rules if key in text), fallback)

    return respond


def tool_call_text(name: str, arguments: dict[str, Any]) -> str:
    """A small tier's text-mode tool call."""
    return "<tool_call>" + json.dumps({"name": name, "arguments": arguments}) + "</tool_call>"


def make_llm(small_server: FakeOpenAIServer, large_server: FakeOpenAIServer, **kwargs: Any) -> CascadeLLM:
    """A CascadeLLM: core OpenAIModel (small, log-probs) + LlamaIndex OpenAI (large)."""
    small = OpenAIModel(
        "small-model", base_url=small_server.base_url, api_key=SMALL_KEY, timeout=10, max_retries=0
    )
    large = OpenAI(
        model="gpt-4o-mini", api_base=large_server.base_url, api_key=LARGE_KEY, timeout=10, max_retries=0
    )
    return CascadeLLM(
        small=small,
        large=large,
        rule=kwargs.pop("rule", ThresholdRule("margin", 0.3)),
        small_pricing=Pricing(0.10, 0.40),
        large_pricing=Pricing(2.50, 10.00),
        **kwargs,
    )
