r"""Tool calling for text-only models: render tools into the prompt, parse calls back leniently.

Small local models and plain OpenAI-compatible servers answer with text, and the cascade needs
the log-probs of *every* token it judges, tool calls included. So for small tiers the tools are
described in a system message and the model is asked to answer with
``<tool_call>{"name": ..., "arguments": {...}}</tool_call>`` (the Hermes/Qwen convention many
small models were trained on). Real local models do not always follow it: Qwen2.5 answers with
the same JSON in a ```` ```json ```` fence or as a bare object, and llama.cpp's server returns that
as message *content*. :func:`parse_tool_calls` accepts all three forms — ``<tool_call>`` tags, fenced
JSON, a bare JSON object (or list of objects) — but only for objects that name a bound tool, and it
validates the arguments against the tool's JSON schema (``jsonschema``). A malformed call, an unknown
tool or invalid arguments raise :class:`ToolCallError`, which the engine turns into a deferral;
:func:`recover_tool_calls` is the forgiving form used on a large tier's text (no call → plain text).

Seen from real models and accepted as well (each has a test built from the recorded output):
Qwen2.5-Coder-1.5B on llama.cpp wraps a call in ``<tool_response>…</tool_response>`` (the tag its
chat template uses for tool *results*; only an object with ``name`` and ``arguments`` counts),
doubles the outer braces (``{{"name": …, "arguments": {…}}}``, Jinja-escape style), and writes
calls after other text (``<tools></tools>\n{{"name": …}}}``). Such calls are found where they
start (``{"name":``); a call cut off by the token limit is still malformed.

Example:
    >>> from cascade_core.types import ToolSpec
    >>> tools = (ToolSpec("add", "Add two ints", {"type": "object", "properties": {"a": {"type": "integer"},
    ...          "b": {"type": "integer"}}, "required": ["a", "b"]}),)
    >>> parse_tool_calls('<tool_call>{"name": "add", "arguments": {"a": 1, "b": 2}}</tool_call>', tools)[0].arguments
    {'a': 1, 'b': 2}
    >>> parse_tool_calls('```json\n{"name": "add", "arguments": {"a": 1, "b": 2}}\n```', tools)[0].name
    'add'
    >>> parse_tool_calls('{"name": "add", "arguments": {"a": "x", "b": 2}}', tools)
    Traceback (most recent call last):
    ...
    cascade_core.engine.tool_calls.ToolCallError: tool 'add': arguments do not match its schema: 'x' is not of type 'integer' (at a)
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from cascade_core.errors import CascadeError
from cascade_core.types import Message, Request, ToolCall, ToolSpec

__all__ = [
    "ToolCallError",
    "format_tool_call",
    "parse_tool_calls",
    "recover_tool_calls",
    "recover_text_tool_calls",
    "render_for_text_model",
    "schema_system_prompt",
    "strip_tool_calls",
    "tools_system_prompt",
]

_BLOCK = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.DOTALL)
_FENCE = re.compile(r"```[ \t]*(?:json|JSON|tool_call)?[ \t]*\n?(.*?)(?:```|$)", re.DOTALL)
_WRAPPED = re.compile(r"<tool_response>\s*(.*?)\s*(?:</tool_response>|$)", re.DOTALL)
_EMPTY_TOOLS = re.compile(r"<tools>\s*</tools>")  # the template's tool list, echoed empty before a call
_CALL_START = re.compile(r'\{+\s*"name"\s*:')
_decoder = json.JSONDecoder()


class ToolCallError(CascadeError, ValueError):
    """A model's tool call is malformed or names a tool that is not bound."""


def tools_system_prompt(tools: Sequence[ToolSpec], tool_choice: str | None = None) -> str:
    """System text describing the tools and the exact call format."""
    listing = "\n".join(json.dumps(t.to_openai()["function"]) for t in tools)
    must = ""
    if tool_choice in ("required", "any"):
        must = "You must call one of the tools.\n"
    elif tool_choice and tool_choice not in ("auto", "none"):
        must = f"You must call the tool {tool_choice!r}.\n"
    return (
        "You can call these tools:\n<tools>\n" + listing + "\n</tools>\n" + must +
        "To call a tool, answer only with\n"
        '<tool_call>{"name": "<tool name>", "arguments": {<arguments as JSON>}}</tool_call>\n'
        "Otherwise answer the user directly."
    )


def format_tool_call(call: ToolCall) -> str:
    """The text form of a tool call (how an assistant turn with tool calls is shown to a text model)."""
    return "<tool_call>" + json.dumps({"name": call.name, "arguments": call.arguments}) + "</tool_call>"


def schema_system_prompt(schema: Mapping[str, Any]) -> str:
    """System text asking for a JSON answer that follows ``schema`` (structured output)."""
    return (
        "Answer only with a JSON object (no prose, no code fences) that follows this JSON schema:\n"
        + json.dumps(dict(schema))
    )


def _with_system(request: Request, text: str) -> Request:
    """``request`` with ``text`` appended to its system message (one is added if there is none)."""
    first = request.messages[0]
    if first.role == "system":
        merged = Message("system", first.content + "\n\n" + text)
        return request.replace(messages=(merged, *request.messages[1:]))
    return request.replace(messages=(Message("system", text), *request.messages))


def render_for_text_model(request: Request) -> Request:
    """The request with tools, tool calls, tool results and any response schema as plain chat text.

    Small tiers answer in text so that every token they emit can be scored; this is how they are
    told about tools (the ``<tool_call>`` convention) and about a structured-output schema.
    """
    if request.response_schema is not None and not request.tools:
        return _with_system(request, schema_system_prompt(request.response_schema))
    if not request.tools or request.tool_choice == "none":
        return request
    system = tools_system_prompt(request.tools, request.tool_choice)
    messages: list[Message] = []
    for message in request.messages:
        if message.role == "system":
            system = message.content + "\n\n" + system
        elif message.role == "tool":
            body = f"<tool_response name={message.name or ''!r}>\n{message.content}\n</tool_response>"
            messages.append(Message("user", body))
        elif message.tool_calls:
            text = "\n".join([message.content] + [format_tool_call(c) for c in message.tool_calls]).strip()
            messages.append(Message("assistant", text))
        else:
            messages.append(message)
    return request.replace(messages=(Message("system", system), *messages), tools=(), tool_choice=None)


def _names_a_tool(body: str) -> bool:
    """Whether a JSON text looks like a tool call (an object, or list of objects, with a ``name``)."""
    return body.lstrip().startswith(("{", "[")) and '"name"' in body


def _undoubled(body: str) -> list[str]:
    """``body`` and its readings without doubled braces: the outer pair once (``{{…}}}``), then all."""
    out = [body]
    if body.startswith("{{") and body.endswith("}}"):
        out.append(body[1:-1])
    if "{{" in body:
        out.append(body.replace("{{", "{").replace("}}", "}"))
    return out


def _is_call_object(body: str) -> bool:
    """Whether ``body`` decodes (doubled braces allowed) to an object with a ``name`` and its arguments."""
    for variant in _undoubled(body.strip()):
        try:
            obj = json.loads(variant)
        except json.JSONDecodeError:
            continue
        return isinstance(obj, dict) and "name" in obj and ("arguments" in obj or "parameters" in obj)
    return False


def _embedded_calls(text: str) -> list[tuple[int, int]]:
    """Spans of the call objects written after other text (``<tools></tools>\n{{"name": …}}}``).

    A call starts at ``{"name":`` (braces may be doubled); it ends where its JSON ends, reading a
    doubled outer brace as one. One that does not decode runs to the next start (or the end), so
    that the caller sees it as malformed rather than as text.
    """
    starts = [m.start() for m in _CALL_START.finditer(text)]
    spans: list[tuple[int, int]] = []
    for i, start in enumerate(starts):
        if spans and start < spans[-1][1]:
            continue  # inside the call before (a nested "name")
        braces = len(text[start:]) - len(text[start:].lstrip("{"))
        end = None
        for skip in (0, braces - 1) if braces > 1 else (0,):
            try:
                _, end = _decoder.raw_decode(text, start + skip)
            except json.JSONDecodeError:
                continue
            end += min(skip, len(text) - end - len(text[end:].lstrip("}")))  # the doubled closing braces
            break
        nexts = [s for s in starts[i + 1:] if s > start]
        spans.append((start, end if end is not None else (nexts[0] if nexts else len(text))))
    return spans


def _candidates(text: str) -> list[str]:
    """JSON bodies of the tool calls in ``text``: ``<tool_call>`` blocks, else ``<tool_response>``-wrapped
    calls, else fenced JSON, else a bare JSON text, else calls written after other text."""
    blocks = [b for b in _BLOCK.findall(text) if b.strip()]
    if blocks:
        return blocks
    wrapped = [b.strip() for b in _WRAPPED.findall(text) if _is_call_object(b)]
    if wrapped:
        return wrapped
    fenced = [b.strip() for b in _FENCE.findall(text) if _names_a_tool(b)]
    if fenced:
        return fenced
    stripped = text.strip()
    if _names_a_tool(stripped):
        return [stripped]
    return [text[a:b].strip() for a, b in _embedded_calls(text)]


def _check_arguments(spec: ToolSpec, arguments: Any) -> dict[str, Any]:
    if not isinstance(arguments, dict):
        raise ToolCallError(f"tool {spec.name!r}: arguments must be a JSON object, got {type(arguments).__name__}")
    schema = spec.parameters if isinstance(spec.parameters, Mapping) else {}
    if not schema:
        return arguments
    import jsonschema

    try:
        validator = jsonschema.validators.validator_for(schema)(schema)
        error = jsonschema.exceptions.best_match(validator.iter_errors(arguments))
    except jsonschema.exceptions.SchemaError as err:  # the tool's own schema is broken: check the basics only
        error = None
        missing = [n for n in schema.get("required", []) if n not in arguments]
        if missing:
            raise ToolCallError(f"tool {spec.name!r}: missing required arguments {missing}") from err
    if error is not None and error.validator == "required":
        missing = [n for n in schema.get("required", []) if n not in arguments]
        raise ToolCallError(f"tool {spec.name!r}: missing required arguments {missing}")
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path)
        raise ToolCallError(
            f"tool {spec.name!r}: arguments do not match its schema: {error.message}" + (f" (at {where})" if where else "")
        )
    return arguments


def _payloads(body: str) -> list[Any]:
    first: json.JSONDecodeError | None = None
    for variant in _undoubled(body):
        try:
            payload = json.loads(variant)
        except json.JSONDecodeError as err:
            first = first or err
            continue
        return payload if isinstance(payload, list) else [payload]
    assert first is not None
    raise ToolCallError(f"tool call is not valid JSON ({first.msg} at char {first.pos}): {body[:80]!r}") from first


def parse_tool_calls(text: str, tools: Sequence[ToolSpec]) -> tuple[ToolCall, ...]:
    """Tool calls in a text answer; ``()`` if the answer is plain text.

    Accepts ``<tool_call>`` blocks, ```` ```json ```` fences and a bare JSON object or list (see the
    module docstring); arguments may be given as ``arguments`` or ``parameters``, as an object or a
    JSON string, and are validated against the tool's schema.

    Raises:
        ToolCallError: a call is not valid JSON, lacks a name, names no bound tool, or its
            arguments do not satisfy the tool's schema.
    """
    by_name = {t.name: t for t in tools}
    calls: list[ToolCall] = []
    for body in _candidates(text):
        for payload in _payloads(body):
            if not isinstance(payload, dict) or not isinstance(payload.get("name"), str):
                raise ToolCallError(f"tool call must be an object with a string 'name', got {body[:80]!r}")
            name = payload["name"]
            if name not in by_name:
                raise ToolCallError(f"tool call names no bound tool {name!r} (bound: {sorted(by_name)})")
            arguments = payload.get("arguments", payload.get("parameters", {}))
            if isinstance(arguments, str):
                try:
                    arguments = json.loads(arguments) if arguments.strip() else {}
                except json.JSONDecodeError as err:
                    raise ToolCallError(f"tool {name!r}: arguments string is not valid JSON") from err
            calls.append(ToolCall(name, _check_arguments(by_name[name], arguments), f"call_{uuid.uuid4().hex[:16]}"))
    return tuple(calls)


def recover_tool_calls(text: str, tools: Sequence[ToolSpec]) -> tuple[ToolCall, ...]:
    r"""The valid tool calls written as text in a (large-tier) answer; ``()`` when there are none.

    For models whose server returns calls as content (llama.cpp with Qwen2.5 writes a ```` ```json ````
    block). Unlike :func:`parse_tool_calls` it never raises: an answer that is not a valid call to a
    bound tool stays a text answer.

    >>> from cascade_core.types import ToolSpec
    >>> recover_tool_calls('```json\n{"name": "f", "arguments": {}}\n```', (ToolSpec("f", "", {}),))[0].name
    'f'
    >>> recover_tool_calls('The answer is 4.', (ToolSpec("f", "", {}),))
    ()
    """
    if not tools:
        return ()
    try:
        return parse_tool_calls(text, tools)
    except ToolCallError:
        return ()


def recover_text_tool_calls(text: str, request: Request) -> tuple[tuple[ToolCall, ...], str]:
    r"""A large tier's text answer as ``(tool calls, visible text)`` when it wrote its calls as text.

    The one place every large-tier adapter (LangChain, LlamaIndex, OpenAI-compatible) turns a call
    written as content into a tool call: only when ``request`` bound tools (and did not say
    ``tool_choice="none"``); the markup is then removed from the text. Otherwise ``((), text)``.

    >>> from cascade_core.types import ToolSpec
    >>> request = Request.from_prompt("q", tools=(ToolSpec("f", "", {}),))
    >>> calls, text = recover_text_tool_calls('Sure.```json\n{"name": "f", "arguments": {}}\n```', request)
    >>> calls[0].name, text
    ('f', 'Sure.')
    >>> recover_text_tool_calls("It is 4.", request)
    ((), 'It is 4.')
    """
    if not request.tools or request.tool_choice == "none":
        return (), text
    calls = recover_tool_calls(text, request.tools)
    return (calls, strip_tool_calls(text)) if calls else ((), text)


def strip_tool_calls(text: str) -> str:
    r"""The text of an answer without its tool calls (what a chat message should show as content).

    >>> strip_tool_calls('Let me check.<tool_call>{"name": "f", "arguments": {}}</tool_call>')
    'Let me check.'
    >>> strip_tool_calls('{"name": "f", "arguments": {}}')
    ''
    >>> strip_tool_calls('Calling it.\n```json\n{"name": "f", "arguments": {}}\n```')
    'Calling it.'
    """
    if _BLOCK.search(text):
        return _BLOCK.sub("", text).strip()
    if any(_is_call_object(b) for b in _WRAPPED.findall(text)):
        return _WRAPPED.sub(lambda m: "" if _is_call_object(m.group(1)) else m.group(0), text).strip()
    if any(_names_a_tool(b) for b in _FENCE.findall(text)):
        return _FENCE.sub(lambda m: "" if _names_a_tool(m.group(1)) else m.group(0), text).strip()
    if _names_a_tool(text.strip()):
        return ""
    spans = [(a, b) for a, b in _embedded_calls(text) if _is_call_object(text[a:b])]
    for start, end in reversed(spans):
        text = text[:start] + text[end:]
    return _EMPTY_TOOLS.sub("", text).strip() if spans else text
