"""Fake tiers for the LangChain adapter tests: a responder for fake OpenAI-compatible servers on 127.0.0.1.

The responder reads the request like a (very obliging) model would: it calls a tool when tools
are offered and the prompt asks for one (natively for the large tier, as ``<tool_call>`` text for
the small tier, whose tools arrive rendered in its system prompt), answers JSON when a
``response_format`` asks for it, and otherwise answers text naming its tier. Markers in the last
user message steer the small tier: ``[unsure]`` (low first-token confidence → defer),
``[bad-json]`` (not JSON), ``[bad-tool]`` (a call of a tool that is not bound).
"""

from __future__ import annotations

import json
import re
from typing import Any

from cascade_core.backends.openai import OpenAIModel
from cascade_core.testing.embeddings import hashing_vector
from cascade_core.testing.fake_server import FakeOpenAIServer, FakeReply, Responder, tool_call_text
from cascade_core.testing.fake_server import message_text as _content

KEPT_CONFIDENCE = 0.95  # margin 0.95 - 0.04 = 0.91
UNSURE_CONFIDENCE = 0.2  # margin < 0: defers at any threshold >= 0
FAKE_KEY = "sk-fake-test-key"

_TOOLS_BLOCK = re.compile(r"<tools>\n(.*?)\n</tools>", re.DOTALL)


def _offered_tools(body: dict[str, Any]) -> tuple[list[dict[str, Any]], bool]:
    """The tools in the request and whether they came natively (large) or rendered as text (small)."""
    if body.get("tools"):
        return [t["function"] for t in body["tools"]], True
    system = "\n".join(_content(m) for m in body["messages"] if m.get("role") == "system")
    block = _TOOLS_BLOCK.search(system)
    if not block:
        return [], False
    return [json.loads(line) for line in block.group(1).splitlines() if line.strip()], False


def _forced_tool(body: dict[str, Any], tools: list[dict[str, Any]]) -> str | None:
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        return choice["function"]["name"]
    if choice == "required":
        return tools[0]["name"]
    system = "\n".join(_content(m) for m in body["messages"] if m.get("role") == "system")
    if match := re.search(r"You must call the tool '([^']+)'", system):
        return match.group(1)
    if "You must call one of the tools" in system:
        return tools[0]["name"]
    return None


def _value(prop: dict[str, Any], key: str, numbers: list[str], quoted: list[str]) -> Any:
    kind = prop.get("type")
    if kind is None and "anyOf" in prop:
        kind = next((p.get("type") for p in prop["anyOf"] if p.get("type") != "null"), "string")
    if kind in ("integer", "number"):
        return int(numbers.pop(0)) if numbers else 1
    if kind == "boolean":
        return True
    if kind == "array":
        return []
    if kind == "object":
        return {}
    return quoted.pop(0) if quoted else f"a {key.replace('_', ' ')}"


def _arguments(parameters: dict[str, Any], text: str) -> dict[str, Any]:
    numbers = re.findall(r"-?\d+", text)
    quoted = re.findall(r"'([^']+)'", text)
    props = parameters.get("properties") or {}
    return {key: _value(prop, key, numbers, quoted) for key, prop in props.items()}


def _wants_tool(text: str, tool: dict[str, Any]) -> bool:
    lowered = text.lower()
    words = [w for w in re.split(r"[_\W]+", tool["name"].lower()) if len(w) > 3]
    return "tool" in lowered or tool["name"].lower() in lowered or any(w in lowered for w in words)


def _json_answer(body: dict[str, Any], text: str) -> str:
    fmt = body["response_format"]
    schema = (fmt.get("json_schema") or {}).get("schema") or {}
    if schema.get("properties"):
        return json.dumps(_arguments(schema, ""))
    keys = re.findall(r"'([A-Za-z_]+)'", text) or ["answer"]
    return json.dumps({k: f"a {k}" for k in keys})


def smart_responder(tier: str) -> Responder:
    """A responder for the ``tier`` ("small" or "large") server."""

    def respond(body: dict[str, Any]) -> FakeReply:
        messages = body["messages"]
        users = [_content(m) for m in messages if m.get("role") == "user"]
        last_user = users[-1] if users else ""
        last = messages[-1]
        after_tool = last.get("role") == "tool" or _content(last).startswith("<tool_response")
        confidence = UNSURE_CONFIDENCE if "[unsure]" in last_user else KEPT_CONFIDENCE
        tools, native = _offered_tools(body)
        if tools and not after_tool:
            forced = _forced_tool(body, tools)
            tool = next((t for t in tools if t["name"] == forced), None) or next(
                (t for t in tools if _wants_tool(last_user, t)), None
            )
            if tool is not None:
                arguments = _arguments(tool.get("parameters") or {}, last_user)
                name = "no_such_tool" if "[bad-tool]" in last_user and not native else tool["name"]
                if native:
                    return FakeReply("", tool_calls=[{"name": name, "arguments": arguments}])
                return FakeReply(tool_call_text(name, arguments), confidence=confidence)
        if after_tool:
            return FakeReply(f"The {tier} model read the tool result: {_content(last)[:60]}", confidence=confidence)
        if body.get("response_format"):
            if "[bad-json]" in last_user and tier == "small":
                return FakeReply("Sure! Here is a joke about cats.", confidence=confidence)
            return FakeReply(_json_answer(body, last_user), confidence=confidence)
        return FakeReply(f"Hello from the {tier} model. You said: {last_user[:40]}", confidence=confidence)

    return respond


def small_model(server: FakeOpenAIServer) -> OpenAIModel:
    return OpenAIModel("small-fake", base_url=server.base_url, api_key=FAKE_KEY, top_k=5, timeout=10, max_retries=0)


def large_chat_openai(server: FakeOpenAIServer, **kwargs: Any) -> Any:
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(model="large-fake", base_url=server.base_url, api_key=FAKE_KEY, timeout=10, max_retries=0,
                      stream_usage=True, **kwargs)


class WordHashEmbeddings:
    """LangChain's ``Embeddings`` methods over the library's offline hashed bag of words
    (:func:`cascade_core.testing.embeddings.hashing_vector`): similar texts get similar vectors."""

    def __init__(self, size: int = 256) -> None:
        self.size = size

    def _embed(self, text: str) -> list[float]:
        return hashing_vector(text, self.size)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self._embed(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self._embed(text)

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.embed_documents(texts)

    async def aembed_query(self, text: str) -> list[float]:
        return self.embed_query(text)
