"""One reading of ``tool_choice`` for every entry point (LangChain, LlamaIndex, the HTTP server).

Frameworks spell "must call a tool" and "call this tool" several ways: ``"any"`` (LangChain,
Anthropic), ``"required"`` (OpenAI), ``True``, ``tool_required=True`` (LlamaIndex), a bare tool name,
``{"type": "function", "function": {"name": ...}}`` (OpenAI) or ``{"type": "tool", "name": ...}``
(Anthropic). :func:`normalize_tool_choice` turns each into the core's value — ``None`` (auto),
``"auto"``, ``"none"``, ``"required"`` or a bound tool's name — and refuses anything else with one
:class:`~cascade_core.errors.InvalidRequestError`.

Example:
    >>> normalize_tool_choice("any", ["get_weather"])
    'required'
    >>> normalize_tool_choice({"type": "function", "function": {"name": "get_weather"}}, ["get_weather"])
    'get_weather'
    >>> normalize_tool_choice(None, ["get_weather"], required=True)
    'required'
    >>> normalize_tool_choice("nope", ["get_weather"])
    Traceback (most recent call last):
    ...
    cascade_core.errors.InvalidRequestError: tool_choice 'nope' must be 'auto', 'none', 'any', 'required', True or one of the bound tools ['get_weather']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from cascade_core.errors import InvalidRequestError

__all__ = ["normalize_tool_choice"]

_KINDS = ("auto", "none", "required")


def _from_mapping(choice: Mapping[str, Any]) -> Any:
    function = choice.get("function")
    name = (function.get("name") if isinstance(function, Mapping) else None) or choice.get("name")
    if name:
        return name
    kind = choice.get("type")
    if kind in ("any", *_KINDS):
        return kind
    raise InvalidRequestError(f"tool_choice {dict(choice)!r} names no tool")


def normalize_tool_choice(choice: Any, names: Sequence[str], *, required: bool = False) -> str | None:
    """The core's tool choice for a framework's ``tool_choice`` value.

    Args:
        choice: ``None``/``False`` (auto), ``"auto"``, ``"none"``, ``"any"``/``"required"``/``True``
            (must call a tool; ``True`` with one tool forces that tool), a tool name, or the
            OpenAI / Anthropic dict forms.
        names: Names of the bound tools.
        required: The caller separately asked for some tool call (LlamaIndex's ``tool_required``);
            turns an automatic choice into ``"required"``.

    Raises:
        InvalidRequestError: a value of another form, or one naming no bound tool.
    """
    if isinstance(choice, Mapping):
        choice = _from_mapping(choice)
    if choice is None or choice is False:
        return "required" if required else None
    if choice is True:
        return names[0] if len(names) == 1 else "required"
    if choice == "any":
        return "required"
    if isinstance(choice, str) and (choice in _KINDS or choice in names):
        return "required" if required and choice == "auto" else choice
    raise InvalidRequestError(
        f"tool_choice {choice!r} must be 'auto', 'none', 'any', 'required', True or one of the bound tools {list(names)}"
    )
