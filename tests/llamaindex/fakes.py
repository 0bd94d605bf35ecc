"""Helpers for the LlamaIndex adapter tests: scripted fake OpenAI-compatible tiers.

The small tier is the core ``OpenAIModel`` (streamed chat completions with log-probs) against one
fake server; the large tier is LlamaIndex's own ``OpenAI`` LLM against another. What each server
answers is scripted per test with :func:`replies` (the library's ``keyword_responder`` with this
suite's unsure default); the message/tool-call helpers are the library's
(:mod:`cascade_core.testing.fake_server`), shared with the LangChain tests.
"""

from __future__ import annotations

from typing import Any

from llama_index.llms.openai import OpenAI

from cascade_core import Pricing, ThresholdRule
from cascade_core.backends.openai import OpenAIModel
from cascade_core.testing.fake_server import (
    FakeOpenAIServer,
    FakeReply,
    Responder,
    keyword_responder,
    tool_call_text,
)
from llamaindex_cascade import CascadeLLM

SMALL_KEY = "sk-small-secret-0000"
LARGE_KEY = "sk-large-secret-1111"
CONFIDENT = 0.95  # first-token margin 1.8 * 0.95 - 0.8 = 0.91: kept at threshold 0.3
UNSURE = 0.40  # margin 1.8 * 0.40 - 0.8 < 0: deferred

__all__ = ["CONFIDENT", "LARGE_KEY", "SMALL_KEY", "UNSURE", "make_llm", "replies", "tool_call_text"]


def replies(*rules: tuple[str, FakeReply], default: FakeReply | None = None) -> Responder:
    """A responder answering the first rule whose key occurs in the last message (else an unsure reply)."""
    return keyword_responder(*rules, default=default or FakeReply("I am not sure.", confidence=UNSURE))


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
