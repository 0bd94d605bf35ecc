"""BIG-bench JSON tasks as deterministic k-shot completion prompts, with fixed splits and the task's own targets.

``load_bigbench("fact_checker/fever", "test", limit=300)`` reads the task from the cached BIG-bench
archive (:mod:`~cascade_core.evaluation.datasets.bigbench_archive`: fetched by name from the
package registry on first use, sha256-checked) and returns :class:`BigBenchExample` objects whose
``to_record()`` is what ``cascade collect`` reads; ``cascade collect --data bigbench:fact_checker/fever``
does the same from the command line.

How a task becomes prompts (every choice seeded, so the same archive gives the same prompts):

- **Kinds.** A task whose examples carry ``target_scores`` is multiple choice. When every option is
  a short label (at most three words) shared by all examples — true/false, sentiment classes,
  intents, Yes/No — the model writes the label (``labels`` are recorded, scored by label accuracy;
  first-token margins can be restricted to the labels' first tokens). Longer options are shown as
  lettered options ``A. …``, shuffled per example, and the model writes the letter. A generative task
  whose targets are single letters of options written in the input (``(A) …``) is scored on the
  letter too. Otherwise the targets (a string or a list of aliases) are accepted answers, matched as
  whole words in the first line of the answer (:func:`~cascade_core.evaluation.quality.alias_match`).
  ``strategyqa``'s ``target`` is an explanation: ``target_scores`` always win over ``target``.
- **Duplicates.** Examples are de-duplicated on their normalised input; an input given conflicting
  answers is dropped altogether.
- **Shots.** ``shots`` examples (default: 3, or one per label for label tasks, at most 8) are drawn
  once per task by seeded ranking, covering different answers where possible, shown before every
  question in the same order (a shared prefix that servers can cache), and never used in a split.
- **Splits.** The rest is ranked by ``sha256(f"{seed}:{id}")``: the first 40 % form the
  ``"calibration"`` (fit) split, the rest ``"test"``; ``limit`` takes the top of the same ranking, so a
  larger limit extends a smaller one (see :mod:`~cascade_core.evaluation.datasets.splits`).

Provenance: BIG-bench 1.0.0 (Apache-2.0 per its ``setup.py``; upstream data sets keep their own
licences). No task text is committed to this repository.

Example:
    >>> task = {"examples": [{"input": "2+2?", "target": "4"}, {"input": "3+3?", "target": ["6", "six"]},
    ...                      {"input": "1+1?", "target": "2"}, {"input": "5+5?", "target": "10"}]}
    >>> examples = examples_from_task("toy", task, "all", shots=1)
    >>> len(examples), examples[0].prompt.count("Q:")
    (3, 2)
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cascade_core.errors import ConfigurationError, DataFormatError
from cascade_core.evaluation.datasets.bigbench_archive import task_dir
from cascade_core.evaluation.datasets.splits import check_limit, check_split, rank_key, split_ranked
from cascade_core.evaluation.quality import normalize_answer, slug

__all__ = [
    "PUBLIC_TASKS",
    "BigBenchExample",
    "bigbench_records",
    "examples_from_task",
    "list_tasks",
    "load_bigbench",
    "read_task",
]

PUBLIC_TASKS: tuple[str, ...] = (
    "fact_checker/fever",
    "multiemo/products_sentence_en",
    "intent_recognition",
    "strategyqa",
    "natural_instructions/subtask047_misc_answering_science_questions",
    "qa_wikidata",
    "object_counting",
    "social_iqa",
)
"""The eight tasks of the public benchmark (docs/benchmarks.md), mirroring seed B's mix."""

_LETTERS = "ABCDEFGHIJ"
_MAX_LABEL_WORDS = 3
_LETTERED_INSTRUCTION = "Answer each question with the letter of the correct option."


@dataclass(frozen=True)
class BigBenchExample:
    """One BIG-bench example as a completion prompt.

    Attributes:
        id: ``"<task slug>:<index in the task file>"``.
        task: the task path (``"fact_checker/fever"``).
        prompt: the k-shot completion prompt, ending where the answer starts.
        answer: the gold answer as the model should write it (a label, a letter, or the first target).
        aliases: every accepted answer.
        labels: the labels (or letters) the model chooses among; ``None`` for free-form tasks.
        kind: ``"labels"``, ``"lettered"`` or ``"generative"``.
        answer_prefix: the words before the answer (``"A:"``); a chat answer that repeats them ("A: false")
            can be scored after removing them.
    """

    id: str
    task: str
    prompt: str
    answer: str
    aliases: tuple[str, ...]
    labels: tuple[str, ...] | None
    kind: str
    answer_prefix: str = ""

    def to_record(self) -> dict[str, Any]:
        """The data line ``cascade collect`` reads (``labels`` only for choice tasks)."""
        record: dict[str, Any] = {"id": self.id, "prompt": self.prompt, "answer": self.answer,
                                  "aliases": list(self.aliases), "task": self.task, "kind": self.kind,
                                  "answer_prefix": self.answer_prefix}
        if self.labels is not None:
            record["labels"] = list(self.labels)
        return record


@dataclass(frozen=True)
class _Item:
    """An example before prompting: its shown input, gold answer(s) and label set."""

    id: str
    shown: str
    answer: str
    aliases: tuple[str, ...]
    labels: tuple[str, ...] | None


def list_tasks(*, fetch: bool = True) -> list[str]:
    """Every task path with JSON examples in the archive (programmatic ``task.py`` tasks have none)."""
    return list(json.loads((task_dir(fetch=fetch) / "INDEX.json").read_text(encoding="utf-8")))


def read_task(task: str, *, fetch: bool = True) -> dict[str, Any]:
    """The parsed ``task.json`` of ``task`` (e.g. ``"fact_checker/fever"``).

    Raises:
        ConfigurationError: no such task (the message lists close names).
    """
    root = task_dir(fetch=fetch)
    path = root / task / "task.json"
    if ".." in task.split("/") or not path.is_file():
        import difflib

        names = json.loads((root / "INDEX.json").read_text(encoding="utf-8"))
        close = difflib.get_close_matches(task, names, n=5, cutoff=0.5)
        hint = f"; close: {', '.join(close)}" if close else "; see cascade_core.evaluation.datasets.bigbench.list_tasks()"
        raise ConfigurationError(f"unknown BIG-bench task {task!r}{hint}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise DataFormatError(f"{path}: not valid JSON ({err.msg})") from err
    if not isinstance(data, dict) or not isinstance(data.get("examples"), list) or not data["examples"]:
        raise DataFormatError(f"BIG-bench task {task!r} has no JSON examples")
    return data


def _targets(example: Mapping[str, Any]) -> list[str]:
    target = example.get("target")
    if isinstance(target, str):
        return [target]
    if isinstance(target, list):
        return [str(t) for t in target if str(t).strip()]
    return []


def _kind(examples: Sequence[Mapping[str, Any]]) -> str:
    if all(isinstance(e.get("target_scores"), dict) and e["target_scores"] for e in examples):
        option_sets = {tuple(e["target_scores"]) for e in examples}
        short = all(len(o.split()) <= _MAX_LABEL_WORDS for opts in option_sets for o in opts)
        return "labels" if short and len(option_sets) == 1 else "lettered"
    letters = [_targets(e) for e in examples]
    if all(len(t) == 1 and re.fullmatch(r"[A-J]\.?", t[0].strip()) for t in letters):
        return "letters_in_input"
    return "generative"


def _items(task: str, examples: Sequence[Mapping[str, Any]], kind: str, seed: int) -> list[_Item]:
    out: list[_Item] = []
    for index, ex in enumerate(examples):
        shown = str(ex.get("input", "")).strip()
        ex_id = f"{slug(task)}:{index}"
        scores = ex.get("target_scores") or {}
        if kind == "labels":
            labels = tuple(scores)
            gold = [o for o, s in scores.items() if s == max(scores.values())]
            out.append(_Item(ex_id, shown, gold[0], tuple(gold), labels))
        elif kind == "lettered":
            options = list(scores)
            random.Random(rank_key(seed, ex_id)).shuffle(options)
            letters = tuple(_LETTERS[: len(options)])
            best = max(scores.values())
            gold = [letters[i] for i, o in enumerate(options) if scores[o] == best]
            shown = shown + "\n" + "\n".join(f"{letters[i]}. {o}" for i, o in enumerate(options))
            out.append(_Item(ex_id, shown, gold[0], tuple(gold), letters))
        elif kind == "letters_in_input":
            letters = tuple(sorted(set(re.findall(r"\(([A-J])\)", shown)))) or tuple(_LETTERS[:4])
            letter = _targets(ex)[0].strip().rstrip(".")
            out.append(_Item(ex_id, shown, letter, (letter,), letters))
        else:
            targets = _targets(ex)
            if not targets:
                continue
            out.append(_Item(ex_id, shown, targets[0].strip(), tuple(t.strip() for t in targets), None))
    return out


def _dedupe(items: Sequence[_Item]) -> list[_Item]:
    """Items with a unique normalised input; an input given conflicting answers is dropped entirely."""
    groups: dict[str, list[_Item]] = {}
    for item in items:
        groups.setdefault(normalize_answer(item.shown), []).append(item)
    return [g[0] for g in groups.values() if len({frozenset(normalize_answer(a) for a in i.aliases) for i in g}) == 1]


def _pick_shots(items: Sequence[_Item], shots: int, seed: int) -> list[_Item]:
    ranked = sorted(items, key=lambda i: rank_key(seed, "shot:" + i.id))
    picked: list[_Item] = []
    for item in ranked:  # first pass: one per distinct answer
        if len(picked) < shots and all(normalize_answer(p.answer) != normalize_answer(item.answer) for p in picked):
            picked.append(item)
    for item in ranked:
        if len(picked) < shots and item not in picked:
            picked.append(item)
    return picked


def _affixes(task_data: Mapping[str, Any], kind: str) -> tuple[str, str, str]:
    """(instruction, input prefix, output prefix) of the prompt."""
    instruction = str(task_data.get("task_prefix") or "").strip()
    in_prefix = str(task_data.get("example_input_prefix", "Q: ")).strip("\n")
    out_prefix = str(task_data.get("example_output_prefix", "\nA:")).rstrip()
    if kind in ("lettered", "letters_in_input"):  # "A:" would read as an option letter
        instruction = _LETTERED_INSTRUCTION
        in_prefix, out_prefix = "Question: ", "\nAnswer:"
    if in_prefix and not in_prefix.endswith(" "):
        in_prefix += " "
    return instruction, in_prefix, out_prefix


def examples_from_task(
    task: str, task_data: Mapping[str, Any], split: str = "all", *, limit: int | None = None,
    shots: int | None = None, seed: int = 0,
) -> list[BigBenchExample]:
    """The examples of one split of a parsed BIG-bench task (see the module docstring for every rule)."""
    check_split(split)
    check_limit(limit)
    raw = task_data.get("examples")
    if not isinstance(raw, list) or not raw or not all(isinstance(e, dict) for e in raw):
        raise DataFormatError(f"BIG-bench task {task!r}: 'examples' must be a non-empty list of objects")
    kind = _kind(raw)
    items = _dedupe(_items(task, raw, kind, seed))
    labels = items[0].labels if items else None
    if shots is None:
        shots = min(8, max(3, len(labels))) if kind == "labels" and labels else 3
    if isinstance(shots, bool) or not isinstance(shots, int) or shots < 0:
        raise ConfigurationError(f"shots must be a non-negative integer, got {shots!r}")
    if len(items) <= shots:
        raise DataFormatError(f"BIG-bench task {task!r} has {len(items)} usable examples, too few for {shots} shots")
    shot_items = _pick_shots(items, shots, seed)
    instruction, in_prefix, out_prefix = _affixes(task_data, kind)
    def shown(item: _Item) -> str:  # an input that already starts with the prefix word keeps it once
        return item.shown if in_prefix and item.shown.startswith(in_prefix.strip()) else in_prefix + item.shown

    head = (instruction + "\n\n" if instruction else "") + "".join(
        f"{shown(s)}{out_prefix} {s.answer}\n\n" for s in shot_items
    )
    rest = [i for i in items if i not in shot_items]
    chosen = split_ranked(rest, split, seed, id_of=lambda i: i.id)
    if limit is not None:
        chosen = chosen[:limit]
    shown_kind = "labels" if kind == "labels" else ("generative" if kind == "generative" else "lettered")
    return [
        BigBenchExample(i.id, task, f"{head}{shown(i)}{out_prefix}", i.answer, i.aliases, i.labels, shown_kind,
                        out_prefix.strip())
        for i in chosen
    ]


def load_bigbench(
    task: str, split: str = "all", *, limit: int | None = None, shots: int | None = None, seed: int = 0,
    fetch: bool = True,
) -> list[BigBenchExample]:
    """The examples of ``split`` of BIG-bench task ``task``, read from the cached archive (fetched on first use).

    Raises:
        ConfigurationError: unknown task, split, limit or shots.
        DataFormatError: the archive is missing and cannot be fetched (the message names the command), or is corrupt.
    """
    return examples_from_task(task, read_task(task, fetch=fetch), split, limit=limit, shots=shots, seed=seed)


def bigbench_records(task: str, split: str = "all", **kwargs: Any) -> list[dict[str, Any]]:
    """:func:`load_bigbench` as ``cascade collect`` data lines."""
    return [e.to_record() for e in load_bigbench(task, split, **kwargs)]
