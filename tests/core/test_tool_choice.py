"""One reading of ``tool_choice`` for LangChain, LlamaIndex and the HTTP server."""

from __future__ import annotations

import pytest

from cascade_core.engine.tool_choice import normalize_tool_choice
from cascade_core.errors import InvalidRequestError

NAMES = ["get_weather", "add"]


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        (None, None), (False, None), ("auto", "auto"), ("none", "none"), ("required", "required"),
        ("any", "required"), (True, "required"), ("add", "add"),
        ({"type": "function", "function": {"name": "add"}}, "add"),  # OpenAI
        ({"type": "tool", "name": "add"}, "add"),  # Anthropic
        ({"type": "any"}, "required"), ({"type": "auto"}, "auto"),
    ],
)
def test_every_spelling_maps_to_the_core_value(choice, expected):
    assert normalize_tool_choice(choice, NAMES) == expected


def test_true_with_one_tool_forces_that_tool():
    assert normalize_tool_choice(True, ["add"]) == "add"


def test_required_flag_turns_auto_into_required():
    assert normalize_tool_choice(None, NAMES, required=True) == "required"
    assert normalize_tool_choice("auto", NAMES, required=True) == "required"
    assert normalize_tool_choice("add", NAMES, required=True) == "add"


@pytest.mark.parametrize("choice", ["nope", {"type": "function", "function": {"name": "nope"}}, {"type": "x"}, 3])
def test_other_values_raise_invalid_request_error(choice):
    with pytest.raises(InvalidRequestError, match="tool_choice"):
        normalize_tool_choice(choice, NAMES)


def test_a_core_request_reads_any_as_required_once():
    from cascade_core.types import Request, ToolSpec

    tool = ToolSpec("f", "", {"type": "object", "properties": {}})
    assert Request.from_prompt("q", tools=(tool,), tool_choice="any").tool_choice == "required"
