"""Tool calls scored by BFCL's own AST checker (imported from the wheel, not re-implemented).

A cascade answer's tool calls (LangChain ``{"name", "args"}`` dicts) become BFCL's ``decoded``
form ``[{name: {arg: value}}]`` and go to ``bfcl_eval.eval_checker.ast_eval.ast_checker.ast_checker``
with the question's function docs and possible answers. Irrelevance categories are right iff no
call is made. The checker module imports ``bfcl_eval.constants.model_config``, which imports every
provider SDK: that one module is replaced by a stub whose ``MODEL_CONFIG_MAPPING`` answers
``underscore_to_dot=True`` for any model (our tool names have ``.`` replaced by ``_``, see
:func:`~benchmarks.public.bfcl.tools.tool_name`, and the checker then does the same to the docs).

Example:
    >>> decoded([{"name": "add", "args": {"a": 1}}])
    [{'add': {'a': 1}}]
"""

from __future__ import annotations

import os
import sys
import tempfile
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from benchmarks.public.bfcl.data import Question, ensure_wheel

__all__ = ["Score", "decoded", "score_calls"]

MODEL_NAME = "llm-cascade"


@dataclass(frozen=True)
class Score:
    """BFCL's verdict on one answer: ``valid``, and the checker's error type when not."""

    valid: bool
    error_type: str = ""


class _AnyModel(dict):  # type: ignore[type-arg]
    """``MODEL_CONFIG_MAPPING`` stand-in: every model name has ``underscore_to_dot=True``."""

    def __missing__(self, key: str) -> Any:
        return types.SimpleNamespace(underscore_to_dot=True)


@cache
def _checker(wheel: Path | None = None) -> tuple[Callable[..., dict[str, Any]], Any]:
    """BFCL's ``ast_checker`` and ``Language.PYTHON``, imported from the wheel (zip) on ``sys.path``."""
    path = str(wheel or ensure_wheel())
    if path not in sys.path:
        sys.path.append(path)
    os.environ.setdefault("BFCL_PROJECT_ROOT", tempfile.mkdtemp(prefix="bfcl_root_"))
    stub = types.ModuleType("bfcl_eval.constants.model_config")
    stub.MODEL_CONFIG_MAPPING = _AnyModel()  # type: ignore[attr-defined]
    sys.modules.setdefault("bfcl_eval.constants.model_config", stub)
    from bfcl_eval.constants.enums import Language
    from bfcl_eval.eval_checker.ast_eval.ast_checker import ast_checker

    return ast_checker, Language.PYTHON


def decoded(calls: Sequence[dict[str, Any]]) -> list[dict[str, dict[str, Any]]]:
    """LangChain-style tool calls as BFCL's ``decoded`` list."""
    return [{call["name"]: dict(call.get("args") or {})} for call in calls]


def score_calls(question: Question, calls: Sequence[dict[str, Any]], *, wheel: Path | None = None) -> Score:
    """BFCL's verdict on ``calls`` (the answer's tool calls; empty: the answer made none)."""
    if question.irrelevant:
        return Score(not calls, "" if not calls else "irrelevance:called")
    if not calls:
        return Score(False, "no_call")
    checker, python = _checker(wheel)
    try:
        verdict = checker(list(question.functions), decoded(calls), list(question.ground_truth or ()), python,
                          question.category, MODEL_NAME)
    except Exception as err:  # noqa: BLE001 - the checker's own crash on odd output is a wrong answer
        return Score(False, f"checker_error:{type(err).__name__}")
    return Score(bool(verdict["valid"]), "" if verdict["valid"] else str(verdict.get("error_type", "")))
