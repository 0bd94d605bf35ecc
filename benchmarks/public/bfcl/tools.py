"""BFCL function docs as the JSON-schema tools LangChain's ``bind_tools`` and LlamaIndex take.

BFCL writes its function docs in the Gorilla dialect of JSON schema: ``"dict"`` for an object,
``"float"`` for a number, ``"tuple"`` for an array, ``"any"`` for anything, nested ``properties``
and ``items``, ``enum`` and ``default``. :func:`to_json_schema` maps each type through BFCL's own
table (``GORILLA_TO_OPENAPI``, copied here so the core of the harness imports nothing from the wheel)
and keeps everything else. :func:`tool_name` replaces ``.`` (not allowed in OpenAI tool names) with
``_``, as BFCL's function-calling handlers do; the scorer is told so (``underscore_to_dot``).

Example:
    >>> doc = {"name": "math.hypot", "description": "Hypotenuse.", "parameters": {"type": "dict",
    ...        "properties": {"x": {"type": "float"}, "point": {"type": "tuple", "items": {"type": "integer"}}},
    ...        "required": ["x"]}}
    >>> tool = to_openai_tool(doc)
    >>> tool["function"]["name"], tool["function"]["parameters"]["properties"]["x"]
    ('math_hypot', {'type': 'number'})
    >>> tool["function"]["parameters"]["properties"]["point"]
    {'type': 'array', 'items': {'type': 'integer'}}
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from cascade_core.errors import ConfigurationError

__all__ = ["GORILLA_TO_JSON_SCHEMA", "to_json_schema", "to_openai_tool", "tool_name"]

#: BFCL's ``GORILLA_TO_OPENAPI`` (``bfcl_eval/constants/type_mappings.py``) for the Python categories.
GORILLA_TO_JSON_SCHEMA: dict[str, str] = {
    "integer": "integer", "number": "number", "float": "number", "string": "string", "boolean": "boolean",
    "bool": "boolean", "array": "array", "list": "array", "dict": "object", "object": "object", "tuple": "array",
    "any": "string", "byte": "integer", "short": "integer", "long": "integer", "double": "number", "char": "string",
}


def tool_name(name: str) -> str:
    """The OpenAI-legal tool name of a BFCL function (``.`` becomes ``_``)."""
    return name.replace(".", "_")


def to_json_schema(schema: Mapping[str, Any], where: str = "parameters") -> dict[str, Any]:
    """One Gorilla schema (and everything nested in it) as JSON schema.

    ``"any"`` loses its type (any JSON value is allowed, as BFCL's Python checker allows). Raises
    :class:`ConfigurationError` naming the path of a type it does not know.
    """
    if not isinstance(schema, Mapping):
        raise ConfigurationError(f"BFCL schema at {where} must be an object, got {type(schema).__name__}")
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "type":
            if value == "any":
                continue
            if value not in GORILLA_TO_JSON_SCHEMA:
                raise ConfigurationError(f"BFCL schema at {where}: unknown type {value!r}; "
                                         f"known: {sorted(GORILLA_TO_JSON_SCHEMA)}")
            out["type"] = GORILLA_TO_JSON_SCHEMA[value]
        elif key == "properties" and isinstance(value, Mapping):
            out["properties"] = {name: to_json_schema(sub, f"{where}.{name}") for name, sub in value.items()}
        elif key == "items" and isinstance(value, Mapping):
            out["items"] = to_json_schema(value, f"{where}[]")
        elif key == "additionalProperties" and isinstance(value, Mapping):
            out["additionalProperties"] = to_json_schema(value, f"{where}{{}}")
        else:
            out[key] = copy.deepcopy(value)
    if out.get("type") == "object":
        out.setdefault("properties", {})
        if "required" in out:  # BFCL sometimes lists a required name it never describes
            out["required"] = [r for r in out["required"] if r in out["properties"]]
    return out


def to_openai_tool(function: Mapping[str, Any]) -> dict[str, Any]:
    """A BFCL function doc as an OpenAI tool (``{"type": "function", "function": {...}}``)."""
    if not isinstance(function.get("name"), str):
        raise ConfigurationError(f"BFCL function doc needs a string 'name', got {function.get('name')!r}")
    parameters = to_json_schema(function.get("parameters") or {"type": "dict", "properties": {}},
                                f"{function['name']}.parameters")
    parameters.setdefault("type", "object")
    return {"type": "function", "function": {"name": tool_name(function["name"]),
                                             "description": str(function.get("description", "")),
                                             "parameters": parameters}}
