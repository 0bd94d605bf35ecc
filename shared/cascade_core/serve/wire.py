"""OpenAI chat-completions wire format ⇄ the core's ``Request`` / ``CascadeResult`` / ``CascadeChunk``.

Pure translation, no I/O: :func:`parse_chat_request` turns a JSON body into a :class:`ChatCall`
(raising :class:`FieldError` naming the offending field), :func:`completion_body` and
:class:`StreamTranslator` turn results and chunks back into OpenAI JSON, with the cascade's decision
under ``"cascade"``.

Example:
    >>> call = parse_chat_request({"model": "qa", "messages": [{"role": "user", "content": "Hi"}],
    ...                            "max_tokens": 8, "stop": "\\n"}, max_tokens_limit=64)
    >>> call.model, call.request.max_new_tokens, call.request.stop, call.stream
    ('qa', 8, ('\\n',), False)
    >>> parse_chat_request({"model": "qa", "messages": []}, max_tokens_limit=64)
    Traceback (most recent call last):
    ...
    cascade_core.serve.wire.FieldError: messages: must be a non-empty array of messages
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cascade_core.engine import CascadeChunk, CascadeResult
from cascade_core.engine.tool_choice import normalize_tool_choice
from cascade_core.engine.visible import VisibleStream, visible_text
from cascade_core.errors import InvalidRequestError
from cascade_core.types import Generation, Message, Request, ToolCall, ToolSpec

__all__ = ["ChatCall", "FieldError", "StreamTranslator", "completion_body", "json_safe", "parse_chat_request", "schema_check"]

_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant", "tool": "tool"}
_FINISH = ("stop", "length", "tool_calls", "content_filter")


class FieldError(InvalidRequestError):
    """A request field is missing or malformed; ``param`` names it (OpenAI's ``error.param``)."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(f"{param}: {message}")
        self.param = param


@dataclass(frozen=True)
class ChatCall:
    """A parsed chat-completions request: which cascade, the core request, how to answer."""

    model: str
    request: Request
    stream: bool = False
    include_usage: bool = False


def _need(value: Any, kinds: type | tuple[type, ...], param: str, what: str) -> Any:
    if isinstance(value, bool) and bool not in (kinds if isinstance(kinds, tuple) else (kinds,)):
        raise FieldError(param, f"must be {what}, got {json.dumps(value)}")
    if not isinstance(value, kinds):
        raise FieldError(param, f"must be {what}, got {type(value).__name__}")
    return value


def _content(value: Any, param: str) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    parts = _need(value, list, param, "a string or an array of text parts")
    texts = []
    for j, part in enumerate(parts):
        part = _need(part, dict, f"{param}[{j}]", "a content part object")
        if part.get("type") != "text":
            raise FieldError(f"{param}[{j}].type", f"only text parts are supported by the cascade, got {part.get('type')!r}")
        texts.append(_need(part.get("text"), str, f"{param}[{j}].text", "a string"))
    return "".join(texts)


def _tool_calls(value: Any, param: str) -> tuple[ToolCall, ...]:
    calls = []
    for j, raw in enumerate(_need(value, list, param, "an array")):
        where = f"{param}[{j}]"
        raw = _need(raw, dict, where, "a tool call object")
        function = _need(raw.get("function"), dict, f"{where}.function", "an object with name and arguments")
        name = _need(function.get("name"), str, f"{where}.function.name", "a string")
        arguments = function.get("arguments") or "{}"
        try:
            args = json.loads(arguments) if isinstance(arguments, str) else arguments
        except json.JSONDecodeError as err:
            raise FieldError(f"{where}.function.arguments", f"is not valid JSON ({err.msg})") from err
        calls.append(ToolCall(name, _need(args, dict, f"{where}.function.arguments", "a JSON object"), str(raw.get("id") or "")))
    return tuple(calls)


def _messages(value: Any) -> tuple[Message, ...]:
    if not isinstance(value, list) or not value:
        raise FieldError("messages", "must be a non-empty array of messages")
    messages = []
    for i, raw in enumerate(value):
        where = f"messages[{i}]"
        raw = _need(raw, dict, where, "a message object")
        role = raw.get("role")
        if role not in _ROLES:
            raise FieldError(f"{where}.role", f"must be one of {sorted(_ROLES)}, got {role!r}")
        calls = _tool_calls(raw["tool_calls"], f"{where}.tool_calls") if raw.get("tool_calls") else ()
        call_id = raw.get("tool_call_id")
        if role == "tool":
            call_id = _need(call_id, str, f"{where}.tool_call_id", "a string (the id of the call answered)")
        name = raw.get("name")
        messages.append(Message(
            _ROLES[role], _content(raw.get("content"), f"{where}.content"), calls,  # type: ignore[arg-type]
            call_id if role == "tool" else None, name if isinstance(name, str) and role == "tool" else None,
        ))
    return tuple(messages)


def _tools(value: Any) -> tuple[ToolSpec, ...]:
    specs = []
    for i, raw in enumerate(_need(value, list, "tools", "an array of tools")):
        raw = _need(raw, dict, f"tools[{i}]", "a tool object")
        if raw.get("type", "function") != "function":
            raise FieldError(f"tools[{i}].type", f"only 'function' tools are supported, got {raw.get('type')!r}")
        function = _need(raw.get("function"), dict, f"tools[{i}].function", "an object")
        name = _need(function.get("name"), str, f"tools[{i}].function.name", "a string")
        description = _need(function.get("description", ""), str, f"tools[{i}].function.description", "a string")
        params = function.get("parameters") or {"type": "object", "properties": {}}
        specs.append(ToolSpec(name, description, _need(params, dict, f"tools[{i}].function.parameters", "a JSON schema object")))
    return tuple(specs)


def _tool_choice(value: Any, tools: tuple[ToolSpec, ...]) -> str | None:
    try:
        return normalize_tool_choice(value, [t.name for t in tools])
    except InvalidRequestError as err:
        raise FieldError("tool_choice", str(err)) from err


def _response_schema(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    value = _need(value, dict, "response_format", "an object")
    kind = value.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "object"}
    if kind == "json_schema":
        spec = _need(value.get("json_schema"), dict, "response_format.json_schema", "an object with a schema")
        return dict(_need(spec.get("schema", {"type": "object"}), dict, "response_format.json_schema.schema", "a JSON schema object"))
    raise FieldError("response_format.type", f"must be 'text', 'json_object' or 'json_schema', got {kind!r}")


def _max_tokens(body: Mapping[str, Any], limit: int) -> int | None:
    key = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
    value = body.get(key)
    if value is None:
        return None
    _need(value, int, key, "a positive integer")
    if value < 1:
        raise FieldError(key, f"must be a positive integer, got {value}")
    if value > limit:
        raise FieldError(key, f"{value} exceeds this server's limit of {limit}")
    return int(value)


def _stop(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    stops = [value] if isinstance(value, str) else _need(value, list, "stop", "a string or an array of strings")
    if len(stops) > 4 or any(not isinstance(s, str) or not s for s in stops):
        raise FieldError("stop", "must be a non-empty string or an array of at most 4 non-empty strings")
    return tuple(stops)


def parse_chat_request(body: Any, *, max_tokens_limit: int) -> ChatCall:
    """Translate a chat-completions JSON body; raises :class:`FieldError` naming the bad field."""
    if not isinstance(body, dict):
        raise FieldError("body", f"must be a JSON object, got {type(body).__name__}")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise FieldError("model", "is required: the name of a cascade served here (see GET /v1/models)")
    if body.get("n") not in (None, 1):
        raise FieldError("n", f"only n=1 is supported, got {body.get('n')!r}")
    if body.get("logprobs"):
        raise FieldError("logprobs", "is not supported: the cascade's answers carry their decision instead")
    temperature = body.get("temperature")
    if temperature is not None:
        _need(temperature, (int, float), "temperature", "a number")
        if not 0 <= temperature <= 2:
            raise FieldError("temperature", f"must be in [0, 2], got {temperature}")
    stream = _need(body.get("stream", False) or False, bool, "stream", "true or false")
    options = _need(body.get("stream_options") or {}, dict, "stream_options", "an object")
    tools = _tools(body["tools"]) if body.get("tools") else ()
    try:
        request = Request(
            messages=_messages(body.get("messages")), tools=tools,
            tool_choice=_tool_choice(body.get("tool_choice"), tools) if tools else None,
            max_new_tokens=_max_tokens(body, max_tokens_limit), stop=_stop(body.get("stop")),
            response_schema=_response_schema(body.get("response_format")),
            temperature=None if temperature is None else float(temperature),
        )
    except FieldError:
        raise
    except InvalidRequestError as err:
        raise FieldError("messages", str(err)) from err
    return ChatCall(model, request, stream, bool(options.get("include_usage")))


def schema_check(schema: Mapping[str, Any]) -> Any:
    """An answer check rejecting (→ deferring) a small-tier answer that is not JSON following ``schema``."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(dict(schema))

    def check(generation: Generation) -> str | None:
        text = generation.text.strip()
        if text.startswith("```"):
            text = text.strip("`").removeprefix("json").strip()
        try:
            value = json.loads(text)
        except json.JSONDecodeError as err:
            return f"answer is not JSON ({err.msg})"
        error = jsonschema.exceptions.best_match(validator.iter_errors(value))
        return None if error is None else f"answer does not follow the schema: {error.message}"

    return check


# -- results → JSON -------------------------------------------------------------------------------
def json_safe(value: Any) -> Any:
    """``value`` with non-finite floats (an ``-inf`` threshold, a NaN score) as ``None`` (strict JSON)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def _finish_reason(result: CascadeResult) -> str:
    if result.tool_calls:
        return "tool_calls"
    reason = (result.generation.finish_reason if result.generation is not None
              else result.completion.finish_reason if result.completion is not None else None)
    return reason if reason in _FINISH else "stop"


def _wire_calls(calls: tuple[ToolCall, ...], *, indexed: bool = False) -> list[dict[str, Any]]:
    out = []
    for i, call in enumerate(calls):
        item: dict[str, Any] = {"id": call.id or f"call_{i}", "type": "function",
                                "function": {"name": call.name, "arguments": json.dumps(call.arguments, ensure_ascii=False)}}
        out.append({"index": i, **item} if indexed else item)
    return out


def usage_body(result: CascadeResult) -> dict[str, int]:
    """Usage summed over every tier called, in OpenAI's field names."""
    usage = result.usage
    return {"prompt_tokens": usage.input_tokens, "completion_tokens": usage.output_tokens, "total_tokens": usage.total_tokens}


def completion_body(result: CascadeResult, *, model: str, id: str, created: int) -> dict[str, Any]:
    """A ``chat.completion`` object for ``result``; ``cascade`` holds the decision."""
    text = visible_text(result)
    message: dict[str, Any] = {"role": "assistant", "content": text if text or not result.tool_calls else None}
    if result.tool_calls:
        message["tool_calls"] = _wire_calls(result.tool_calls)
    return json_safe({
        "id": id, "object": "chat.completion", "created": created, "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": _finish_reason(result)}],
        "usage": usage_body(result), "cascade": result.as_dict(),
    })


class StreamTranslator:
    """Core stream chunks → ``chat.completion.chunk`` objects; the last one carries the decision.

    With tools, a small tier's text is held until the decision (it may be ``<tool_call>`` markup
    that must become ``tool_calls``); everything else streams as it comes.

    Example:
        >>> from cascade_core import Cascade, ThresholdRule
        >>> from cascade_core.testing import ScriptedModel
        >>> cascade = Cascade([ScriptedModel("Paris"), ScriptedModel("Paris!")], rules=ThresholdRule("margin", 0.3))
        >>> request = Request.from_prompt("Capital of France?")
        >>> translator = StreamTranslator(request, model="qa", id="chatcmpl-1", created=0, n_tiers=2)
        >>> chunks = list(cascade.stream(request))
        >>> [c["choices"][0]["delta"] for chunk in chunks[:-1] for c in translator.feed(chunk)]
        [{'content': 'Paris'}]
        >>> final = translator.finish(chunks[-1].result, include_usage=False)[-1]
        >>> final["choices"][0]["finish_reason"], final["cascade"]["tier"]
        ('stop', 0)
    """

    def __init__(self, request: Request, *, model: str, id: str, created: int, n_tiers: int) -> None:
        self.visible = VisibleStream(request, n_tiers)
        self.base = {"id": id, "object": "chat.completion.chunk", "created": created, "model": model}

    def _chunk(self, delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
        return {**self.base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}], **extra}

    def start(self) -> dict[str, Any]:
        return self._chunk({"role": "assistant", "content": ""})

    def feed(self, chunk: CascadeChunk) -> list[dict[str, Any]]:
        text = self.visible.feed(chunk) if chunk.result is None else ""
        return [self._chunk({"content": text})] if text else []

    def finish(self, result: CascadeResult, *, include_usage: bool) -> list[dict[str, Any]]:
        out = []
        rest = self.visible.final(result)
        if rest:
            out.append(self._chunk({"content": rest}))
        if result.tool_calls:
            out.append(self._chunk({"tool_calls": _wire_calls(result.tool_calls, indexed=True)}))
        out.append(self._chunk({}, _finish_reason(result), cascade=result.as_dict()))
        if include_usage:
            out.append({**self.base, "choices": [], "usage": usage_body(result)})
        return [json_safe(c) for c in out]
