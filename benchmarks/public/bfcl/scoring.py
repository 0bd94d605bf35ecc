"""Tool calls scored by BFCL's own checkers (imported from the wheel, not re-implemented).

A cascade answer's tool calls (LangChain ``{"name", "args"}`` dicts) become BFCL's ``decoded``
form ``[{name: {arg: value}}]`` and go to ``bfcl_eval.eval_checker.ast_eval.ast_checker.ast_checker``
with the question's function docs and possible answers. Irrelevance categories are right iff no
call is made. The checker module imports ``bfcl_eval.constants.model_config``, which imports every
provider SDK: that one module is replaced by a stub whose ``MODEL_CONFIG_MAPPING`` answers
``underscore_to_dot=True`` for any model (our tool names have ``.`` replaced by ``_``, see
:func:`~benchmarks.public.bfcl.tools.tool_name`, and the checker then does the same to the docs).

Multi-turn tasks (``multi_turn_base``) are executable: :class:`Backends` runs the model's calls on
BFCL's own backend classes (``bfcl_eval/eval_checker/multi_turn_eval/func_source_code``: GorillaFileSystem,
TwitterAPI, …) through BFCL's ``execute_multi_turn_func_call``, and :func:`score_multi_turn` hands the
calls of every step to BFCL's ``multi_turn_checker`` (the state of every backend and the execution
results, turn by turn, against the ground truth's execution). BFCL executes a call by ``eval`` of its
Python form (:func:`bfcl_call`); a call whose name is not one of the task's functions, or whose argument
names are not Python identifiers, is not evaluated here (BFCL's ``eval`` would fail on it, or reach a
builtin): it gets BFCL's error text as its result and is left out of the checker's input, which
changes no verdict (a failed call changes no state and the checker only looks for the ground truth's
results among the model's).

Example:
    >>> decoded([{"name": "add", "args": {"a": 1}}])
    [{'add': {'a': 1}}]
    >>> bfcl_call({"name": "cd", "args": {"folder": "docs"}}, {"cd"})
    "cd(folder='docs')"
"""

from __future__ import annotations

import keyword
import os
import sys
import tempfile
import types
import uuid
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from benchmarks.public.bfcl.data import MULTI_TURN, MultiTurnTask, Question, ensure_wheel

__all__ = ["Backends", "Score", "bfcl_call", "decoded", "score_calls", "score_multi_turn"]

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
def _wheel_on_path(wheel: Path | None = None) -> None:
    """Put the wheel (zip) on ``sys.path`` with ``model_config`` stubbed and a temporary project root."""
    path = str(wheel or ensure_wheel())
    if path not in sys.path:
        sys.path.append(path)
    os.environ.setdefault("BFCL_PROJECT_ROOT", tempfile.mkdtemp(prefix="bfcl_root_"))
    stub = types.ModuleType("bfcl_eval.constants.model_config")
    stub.MODEL_CONFIG_MAPPING = _AnyModel()  # type: ignore[attr-defined]
    sys.modules.setdefault("bfcl_eval.constants.model_config", stub)


@cache
def _checker(wheel: Path | None = None) -> tuple[Callable[..., dict[str, Any]], Any]:
    """BFCL's ``ast_checker`` and ``Language.PYTHON``, imported from the wheel."""
    _wheel_on_path(wheel)
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


# -- multi-turn: BFCL's executable backends and its state checker ----------------------------------
def _identifier(name: object) -> bool:
    return isinstance(name, str) and name.isidentifier() and not keyword.iskeyword(name)


def bfcl_call(call: dict[str, Any], names: Collection[str]) -> str | None:
    """A tool call in the Python form BFCL executes (its ``convert_to_function_call``: ``name(k=repr(v),…)``),
    or ``None`` when it must not be evaluated (a name not in ``names``, an argument name that is not an
    identifier)."""
    args = call.get("args") or {}
    if call.get("name") not in names or not _identifier(call["name"]) or not all(map(_identifier, args)):
        return None
    return f"{call['name']}({','.join(f'{k}={v!r}' for k, v in args.items())})"


def _refused(call: dict[str, Any]) -> str:
    """BFCL's result text for a call ``eval`` cannot run (what its ``NameError``/``SyntaxError`` gives)."""
    return f"Error during execution: name {call.get('name')!r} is not a function of this task, or its arguments " \
           f"are not Python names: {sorted(map(str, call.get('args') or {}))}"


@cache
def _multi_turn(wheel: Path | None = None) -> types.ModuleType:
    """BFCL's ``multi_turn_utils`` module (``execute_multi_turn_func_call``), imported from the wheel."""
    _wheel_on_path(wheel)
    from bfcl_eval.eval_checker.multi_turn_eval import multi_turn_utils

    return multi_turn_utils


def _forget(run: str, wheel: Path | None = None) -> None:
    """Drop the backend instances BFCL keeps in ``multi_turn_utils``' globals for run name ``run``."""
    namespace = vars(_multi_turn(wheel))
    for key in [k for k in namespace if k.startswith(run + "_")]:
        del namespace[key]


def _run_name() -> str:
    # only [a-z0-9_]: BFCL's instance names are ``{model}_{id}_{class}_instance`` with ``-./:`` made ``_``
    return f"llm_cascade_{uuid.uuid4().hex}"


class Backends:
    """BFCL's executable backends of one task, as its inference loop keeps them (state carried over steps
    and turns), run through BFCL's ``execute_multi_turn_func_call``.

    BFCL keeps the instances in a module's globals under the run's model name; each ``Backends`` has a
    name of its own, and :meth:`close` (or leaving the ``with`` block) forgets them.

    Example:
        >>> from benchmarks.public.bfcl.data import load_multi_turn  # doctest: +SKIP
        >>> with Backends(load_multi_turn()[1]) as backends:          # doctest: +SKIP
        ...     backends.execute([{"name": "ls", "args": {"a": True}}])
        ['{"current_directory_content": ["workspace"]}']
    """

    def __init__(self, task: MultiTurnTask, *, wheel: Path | None = None) -> None:
        self.task, self.wheel, self.run = task, wheel, _run_name()
        self.names = frozenset(f["name"] for f in task.functions)
        self._config = task.entry()["initial_config"]
        self.execute([])  # loads every class's scenario now, as BFCL's loop does before the first turn

    def execute(self, calls: Sequence[dict[str, Any]]) -> list[str]:
        """Run ``calls`` (``{"name", "args"}``) in order; one result text per call (errors as BFCL words them)."""
        strings = [bfcl_call(c, self.names) for c in calls]
        runnable = [s for s in strings if s is not None]
        results, _ = _multi_turn(self.wheel).execute_multi_turn_func_call(
            runnable, self._config, list(self.task.involved_classes), self.run, self.task.id)
        done = iter(results)
        return [next(done) if s is not None else _refused(c) for c, s in zip(calls, strings)]

    def close(self) -> None:
        _forget(self.run, self.wheel)

    def __enter__(self) -> Backends:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def score_multi_turn(task: MultiTurnTask, turns: Sequence[Sequence[Sequence[dict[str, Any]]]], *,
                     force_quit: bool = False, wheel: Path | None = None) -> Score:
    """BFCL's verdict on a task: ``turns`` holds, per user turn run, the tool calls of each step.

    As BFCL's ``_evaluate_single_multi_turn_entry``: a task cut off by the step limit fails
    (``multi_turn:force_terminated``), steps without calls are dropped, then ``multi_turn_checker``
    replays the model's calls and the ground truth on fresh backends and compares them turn by turn.
    A run of fewer turns than the task has (a smoke run) is checked on those turns.
    """
    if force_quit:
        return Score(False, "multi_turn:force_terminated")
    names = frozenset(f["name"] for f in task.functions)
    decoded_turns = []
    for steps in turns:
        decoded_steps = [[s for s in (bfcl_call(c, names) for c in step) if s is not None] for step in steps]
        decoded_turns.append([d for d in decoded_steps if d])
    truth = [list(t) for t in task.ground_truth[:len(turns)]]
    _wheel_on_path(wheel)
    from bfcl_eval.eval_checker.multi_turn_eval.multi_turn_checker import multi_turn_checker

    run = _run_name()
    try:
        verdict = multi_turn_checker(decoded_turns, truth, task.entry(), MULTI_TURN, run)
    except Exception as err:  # noqa: BLE001 - the checker's own crash on odd output is a wrong answer
        return Score(False, f"checker_error:{type(err).__name__}")
    finally:
        _forget(run, wheel)
    return Score(bool(verdict["valid"]), "" if verdict["valid"] else str(verdict.get("error_type", "")))
