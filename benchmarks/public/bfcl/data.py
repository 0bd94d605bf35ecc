"""BFCL v4 questions, function docs and possible answers, read straight from the ``bfcl-eval`` wheel.

The wheel (``bfcl-eval==2026.3.23``, 1.9 MB, Apache-2.0) is fetched once by name from the package
registry with ``pip download --no-deps`` into ``cache_dir()/bfcl/2026.3.23/`` and sha256-checked, as
the BIG-bench archive is (:mod:`cascade_core.evaluation.datasets.bigbench_archive`). It is never
installed: its requirements pin numpy and pull every provider SDK. The data files are JSON lines
inside the zip: ``bfcl_eval/data/BFCL_v4_<category>.json`` (``id``, ``question`` — a list of turns,
each a list of ``{role, content}`` — and ``function``, the function docs) and
``bfcl_eval/data/possible_answer/BFCL_v4_<category>.json`` (``ground_truth``; irrelevance categories
have none: the right answer is no call). The executable ``multi_turn_base`` tasks (:func:`load_multi_turn`)
add ``initial_config`` and ``involved_classes``; their function docs are the involved classes' files in
``bfcl_eval/data/multi_turn_func_doc/`` and their ground truth is, per turn, BFCL's Python call strings.

Example:
    >>> WHEEL_NAME
    'bfcl_eval-2026.3.23-py3-none-any.whl'
    >>> sample_ids(["a", "b", "c", "d"], n_fit=1, n_test=2, seed=0)["test"]
    ['a', 'b']
"""

from __future__ import annotations

import copy
import json
import logging
import random
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cascade_core.errors import DataFormatError
from cascade_core.evaluation.datasets.registry_file import RegistryFile

__all__ = ["CATEGORIES", "FETCH_COMMAND", "MULTI_TURN", "MULTI_TURN_FUNC_DOCS", "WHEEL_NAME", "WHEEL_SHA256",
           "MultiTurnTask", "Question", "ensure_wheel", "load_category", "load_multi_turn", "sample_ids", "wheel_path"]

logger = logging.getLogger(__name__)

VERSION = "2026.3.23"
WHEEL_NAME = f"bfcl_eval-{VERSION}-py3-none-any.whl"
WHEEL_SHA256 = "3bb6dfa5f0c68ad403c9ec50b00db2bb3b4cc9b38ab1ff33f48fe30d853d3a0a"
"""sha256 of the wheel as the registry serves it (checked 2026-12-03)."""
FETCH_COMMAND = f"pip download --no-deps bfcl-eval=={VERSION} -d {{dir}}"
#: The single-turn AST categories this harness runs (irrelevance ones: right iff no call is made).
CATEGORIES = ("simple_python", "multiple", "parallel", "live_simple", "irrelevance", "live_irrelevance")
IRRELEVANCE = frozenset({"irrelevance", "live_irrelevance"})
#: The executable multi-turn category (state-checked against the ground truth's execution).
MULTI_TURN = "multi_turn_base"
#: BFCL's ``MULTI_TURN_FUNC_DOC_FILE_MAPPING`` (``bfcl_eval/constants/executable_backend_config.py``) for the
#: classes ``multi_turn_base`` involves: class → its function docs under ``bfcl_eval/data/multi_turn_func_doc/``.
MULTI_TURN_FUNC_DOCS: dict[str, str] = {
    "GorillaFileSystem": "gorilla_file_system.json", "MathAPI": "math_api.json", "MessageAPI": "message_api.json",
    "TwitterAPI": "posting_api.json", "TicketAPI": "ticket_api.json", "TradingBot": "trading_bot.json",
    "TravelAPI": "travel_booking.json", "VehicleControlAPI": "vehicle_control.json",
}
#: What BFCL appends to every Python function description (``_get_language_specific_hint``).
PYTHON_HINT = " Note that the provided function is in Python 3 syntax."


@dataclass(frozen=True)
class Question:
    """One BFCL question.

    Attributes:
        id: BFCL's id (``simple_python_0``).
        category: The category (``simple_python``).
        messages: The conversation's messages (the first turn: every category here is single-turn).
        functions: BFCL's function docs (Gorilla format: ``parameters.type == "dict"``).
        ground_truth: The possible answers (``[{name: {param: [allowed values]}}]``); ``None`` for
            irrelevance categories, where the right answer is no call.
    """

    id: str
    category: str
    messages: tuple[dict[str, str], ...]
    functions: tuple[dict[str, Any], ...]
    ground_truth: tuple[dict[str, Any], ...] | None

    @property
    def irrelevant(self) -> bool:
        """Whether the right answer is to call nothing."""
        return self.category in IRRELEVANCE


@dataclass(frozen=True)
class MultiTurnTask:
    """One BFCL ``multi_turn_base`` task: user turns, executable backends and the ground truth per turn.

    Attributes:
        id: BFCL's id (``multi_turn_base_0``).
        turns: The user turns, each a list of ``{role, content}`` messages.
        functions: The function docs of every involved class (BFCL's order: class by class), each
            description with BFCL's Python hint appended, as BFCL's loader does.
        initial_config: Each backend class's scenario (``_load_scenario`` input).
        involved_classes: The backend classes (``GorillaFileSystem``, ``TwitterAPI``, …).
        ground_truth: Per turn, the calls that solve it as BFCL's Python strings (``cd(folder='x')``).
    """

    id: str
    turns: tuple[tuple[dict[str, str], ...], ...]
    functions: tuple[dict[str, Any], ...]
    initial_config: dict[str, Any] = field(hash=False)
    involved_classes: tuple[str, ...]
    ground_truth: tuple[tuple[str, ...], ...]

    def entry(self) -> dict[str, Any]:
        """The test-entry fields BFCL's ``multi_turn_checker`` reads (a fresh copy)."""
        return {"id": self.id, "initial_config": copy.deepcopy(self.initial_config),
                "involved_classes": list(self.involved_classes)}


WHEEL = RegistryFile("the BFCL wheel", "bfcl-eval", VERSION, WHEEL_NAME, WHEEL_SHA256, env="CASCADE_BFCL",
                     path_env="WHEEL", size="1.9 MB", cache_name="bfcl", timeout=600)


def wheel_path() -> Path:
    """Where the wheel is looked for: ``$CASCADE_BFCL_WHEEL``, else ``cache_dir()/bfcl/2026.3.23/``."""
    return WHEEL.path()


def ensure_wheel(*, fetch: bool = True) -> Path:
    """The checked wheel, fetched first when missing and ``fetch`` is true (``$CASCADE_BFCL_FETCH=0``
    turns fetching off; ``$CASCADE_BFCL_SHA256`` overrides the hash, for the tests' synthetic wheels).

    Raises:
        DataFormatError: the wheel is missing (the message names the command that fetches it) or its
            sha256 is not the pinned one.
    """
    return WHEEL.ensure(fetch=fetch)


def _json_lines(archive: zipfile.ZipFile, member: str) -> list[dict[str, Any]]:
    try:
        text = archive.read(member).decode("utf-8")
    except KeyError as err:
        raise DataFormatError(f"{archive.filename} has no {member}") from err
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise DataFormatError(f"{member} line {number} is not JSON: {err.msg}") from err
    return rows


def load_category(category: str, *, wheel: Path | None = None) -> list[Question]:
    """Every question of ``category`` with its possible answers, in BFCL's order.

    Raises:
        DataFormatError: unknown category, or a question without possible answers.
    """
    if category not in CATEGORIES:
        raise DataFormatError(f"unknown BFCL category {category!r}; this harness runs {list(CATEGORIES)}")
    with zipfile.ZipFile(wheel or ensure_wheel()) as archive:
        rows = _json_lines(archive, f"bfcl_eval/data/BFCL_v4_{category}.json")
        answers = {} if category in IRRELEVANCE else {
            a["id"]: a["ground_truth"] for a in _json_lines(archive, f"bfcl_eval/data/possible_answer/BFCL_v4_{category}.json")}
    out = []
    for row in rows:
        if category not in IRRELEVANCE and row["id"] not in answers:
            raise DataFormatError(f"BFCL question {row['id']} has no possible answer")
        truth = answers.get(row["id"])
        out.append(Question(row["id"], category, tuple(row["question"][0]), tuple(row["function"]),
                            None if truth is None else tuple(truth)))
    return out


def _func_docs(archive: zipfile.ZipFile, classes: Sequence[str], cache: dict[str, list[dict[str, Any]]]
               ) -> list[dict[str, Any]]:
    out = []
    for name in classes:
        if name not in MULTI_TURN_FUNC_DOCS:
            raise DataFormatError(f"BFCL class {name!r} has no function docs here; known: {sorted(MULTI_TURN_FUNC_DOCS)}")
        if name not in cache:
            cache[name] = _json_lines(archive, f"bfcl_eval/data/multi_turn_func_doc/{MULTI_TURN_FUNC_DOCS[name]}")
        for doc in copy.deepcopy(cache[name]):
            doc["description"] = str(doc.get("description", "")) + PYTHON_HINT
            out.append(doc)
    return out


def load_multi_turn(*, wheel: Path | None = None) -> list[MultiTurnTask]:
    """Every ``multi_turn_base`` task with its function docs and per-turn ground truth, in BFCL's order.

    Raises:
        DataFormatError: a task without ground truth, or with as many ground-truth turns as user turns.
    """
    with zipfile.ZipFile(wheel or ensure_wheel()) as archive:
        rows = _json_lines(archive, f"bfcl_eval/data/BFCL_v4_{MULTI_TURN}.json")
        answers = {a["id"]: a["ground_truth"]
                   for a in _json_lines(archive, f"bfcl_eval/data/possible_answer/BFCL_v4_{MULTI_TURN}.json")}
        docs: dict[str, list[dict[str, Any]]] = {}
        out = []
        for row in rows:
            truth = answers.get(row["id"])
            if truth is None or len(truth) != len(row["question"]):
                raise DataFormatError(f"BFCL task {row['id']} has no ground truth for each of its "
                                      f"{len(row['question'])} turns")
            out.append(MultiTurnTask(
                row["id"], tuple(tuple(turn) for turn in row["question"]),
                tuple(_func_docs(archive, row["involved_classes"], docs)), row.get("initial_config") or {},
                tuple(row["involved_classes"]), tuple(tuple(turn) for turn in truth)))
    return out


def sample_ids(ids: Sequence[str], *, n_fit: int, n_test: int, seed: int) -> dict[str, list[str]]:
    """A seeded, disjoint fit/test sample of ``ids`` (each split keeps BFCL's order)."""
    order = list(ids)
    random.Random(seed).shuffle(order)
    fit, test = set(order[:n_fit]), set(order[n_fit:n_fit + n_test])
    return {"fit": [i for i in ids if i in fit], "test": [i for i in ids if i in test]}
