"""``with_structured_output`` for ChatCascade: the same bindings and parsers LangChain's own chat
models use, plus an answer check that makes the core defer a small answer the parser rejects."""

from __future__ import annotations

from collections.abc import Sequence
from operator import itemgetter
from typing import Any

from langchain_core.messages import AIMessage
from langchain_core.output_parsers import JsonOutputKeyToolsParser, JsonOutputParser, PydanticOutputParser
from langchain_core.output_parsers.openai_tools import PydanticToolsParser
from langchain_core.runnables import Runnable, RunnableMap, RunnablePassthrough
from langchain_core.utils.function_calling import convert_to_json_schema, convert_to_openai_tool
from langchain_core.utils.pydantic import is_basemodel_subclass
from pydantic.v1 import BaseModel as BaseModelV1

from cascade_core.engine.visible import visible_generation_text
from cascade_core.errors import ConfigurationError
from cascade_core.types import Generation
from langchain_cascade._convert import lc_tool_calls

__all__ = ["AnswerParserCheck", "structured_output_runnable"]

_METHODS = ("json_schema", "function_calling", "json_mode")


class AnswerParserCheck:
    """A core ``check=`` hook: rejects (→ defers) a small answer the output parser cannot parse.

    Args:
        parser: The parser the structured-output chain applies to the model's message.
        name: Short label for logs and traces.
        required: Keys a dict answer must have (JSON-schema ``required``), checked when the parser
            does not validate against a pydantic class itself.
    """

    def __init__(self, parser: Runnable[Any, Any], name: str, required: Sequence[str] = ()) -> None:
        self.parser = parser
        self.name = name
        self.required = tuple(required)

    def __call__(self, generation: Generation) -> str | None:
        message = AIMessage(visible_generation_text(generation), tool_calls=lc_tool_calls(generation.tool_calls))
        try:
            parsed = self.parser.invoke(message)
        except Exception as err:  # any parse/validation failure is a reason to defer, stated plainly
            return f"structured output {self.name} does not parse: {type(err).__name__}: {str(err)[:200]}"
        if parsed is None:
            return f"structured output {self.name}: the answer holds no {self.name}"
        if isinstance(parsed, dict) and (missing := [k for k in self.required if k not in parsed]):
            return f"structured output {self.name} misses required keys {missing}"
        return None

    def __repr__(self) -> str:  # appears in traces' invocation params; keep it short and stable
        return f"AnswerParserCheck({self.name!r})"


def _json_schema(schema: Any) -> dict[str, Any]:
    try:
        return convert_to_json_schema(schema)
    except (ValueError, TypeError):
        if isinstance(schema, dict):
            return dict(schema)
        raise


def structured_output_runnable(llm: Any, schema: Any, *, method: str, include_raw: bool, check_kwarg: str,
                               **kwargs: Any) -> Runnable[Any, Any]:
    """The runnable ``ChatCascade.with_structured_output`` returns."""
    if method not in _METHODS:
        raise ConfigurationError(f"method must be one of {list(_METHODS)}, got {method!r}")
    if schema is None and method != "json_mode":
        raise ConfigurationError(f"schema must be given when method={method!r} (only 'json_mode' works without one)")
    is_pydantic = isinstance(schema, type) and is_basemodel_subclass(schema)
    if method == "json_schema" and is_pydantic and issubclass(schema, BaseModelV1):
        method = "function_calling"  # pydantic v1 classes give no JSON schema LangChain can send natively
    ls_format = {"kwargs": {"method": method}, "schema": schema}
    required = () if is_pydantic or schema is None else tuple(_json_schema(schema).get("required", ()))
    parser: Runnable[Any, Any]
    if method == "function_calling":
        tool_name = convert_to_openai_tool(schema)["function"]["name"]
        parser = (PydanticToolsParser(tools=[schema], first_tool_only=True) if is_pydantic
                  else JsonOutputKeyToolsParser(key_name=tool_name, first_tool_only=True))
        check = AnswerParserCheck(parser, tool_name, required)
        bound = llm.bind_tools([schema], tool_choice=tool_name, ls_structured_output_format=ls_format,
                               **{check_kwarg: check}, **kwargs)
    else:
        if method == "json_schema":
            json_schema = _json_schema(schema)
            name = json_schema.get("title", "response")
            response_format: dict[str, Any] = {"type": "json_schema", "json_schema": {"name": name, "schema": json_schema}}
        else:
            name = "JSON object"
            response_format = {"type": "json_object"}
        parser = PydanticOutputParser(pydantic_object=schema) if is_pydantic else JsonOutputParser()
        check = AnswerParserCheck(parser, name, required)
        bound = llm.bind(response_format=response_format, ls_structured_output_format=ls_format,
                         **{check_kwarg: check}, **kwargs)
    if not include_raw:
        return bound | parser
    parse = RunnablePassthrough.assign(parsed=itemgetter("raw") | parser, parsing_error=lambda _: None)
    fallback = RunnablePassthrough.assign(parsed=lambda _: None)
    return RunnableMap(raw=bound) | parse.with_fallbacks([fallback], exception_key="parsing_error")
