"""World regions: a 6-way classification task — "which continent is this country in?".

Provenance
----------
Built deterministically from the world-facts data (:mod:`cascade_core.evaluation.datasets.world_facts`,
itself read from the ``countryinfo`` package at run time; nothing is downloaded): every country
with a ``continent`` example gets one item. The Americas are split into ``North America``
(countryinfo subregions Northern America, Central America, Caribbean, read from the package) and
``South America``, so
the labels are :data:`LABELS`. Transcontinental countries are already left out by world-facts.
Countries used as few-shot examples (:data:`SHOTS`, one per label) are excluded.

Unlike the free-form world-facts questions, the answer is one of a closed set of labels, so
correctness is label accuracy and the first-token margin can be restricted to the labels' first
tokens (paper B's classification variant): each record carries ``labels``.

Splits
------
Per label, examples are ranked by ``sha256(f"{seed}:{id}")``; the first 40 % form the
``"calibration"`` split (fit and calibrate rules there), the rest ``"test"``
(:mod:`~cascade_core.evaluation.datasets.splits`, as for world facts).

Example:
    >>> from cascade_core.evaluation.datasets.world_regions import load_world_regions, few_shot_prompt
    >>> examples = load_world_regions("test")
    >>> sorted({ex.answer for ex in examples}) == sorted(LABELS)
    True
    >>> few_shot_prompt(examples[0]).endswith("Continent:")
    True
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cascade_core.errors import require
from cascade_core.evaluation.datasets.splits import check_limit, check_split, round_robin, split_ranked
from cascade_core.evaluation.datasets.world_facts import build_world_facts

__all__ = ["LABELS", "SHOTS", "RegionExample", "build_world_regions", "few_shot_prompt", "load_world_regions", "write_jsonl"]

LABELS: tuple[str, ...] = ("Africa", "Asia", "Europe", "North America", "South America", "Oceania")
"""The class labels."""

SHOTS: tuple[tuple[str, str], ...] = (
    ("Kenya", "Africa"),
    ("Japan", "Asia"),
    ("France", "Europe"),
    ("Canada", "North America"),
    ("Brazil", "South America"),
    ("Australia", "Oceania"),
)
"""The few-shot examples (country, label), one per label; excluded from the data."""

_NORTH = frozenset({"Northern America", "Central America", "Caribbean"})
_QUESTION = re.compile(r"^Which continent is (?P<name>.+) in\?$")


@dataclass(frozen=True)
class RegionExample:
    """One country and its label. ``id`` is ``"region/<country-slug>"``."""

    id: str
    country: str
    answer: str


def _subregions() -> dict[str, str]:
    """countryinfo's (intermediate) subregion of every country, by the country's ``name``."""
    countryinfo = require("countryinfo", "eval", purpose="the world-regions data set")
    out: dict[str, str] = {}
    for data in countryinfo.CountryInfo.all().values():
        name, sub = data.get("name"), data.get("intermediateregion") or data.get("subregion")
        if name and sub:
            out[str(name)] = str(sub)
    return out


@functools.lru_cache(maxsize=1)
def _build() -> tuple[RegionExample, ...]:
    facts = build_world_facts()
    subregion = _subregions()
    shot_names = {name.casefold() for name, _ in SHOTS}
    out: list[RegionExample] = []
    for ex in facts:
        if ex.attribute != "continent":
            continue
        slug = ex.id.split("/", 1)[1]
        match = _QUESTION.match(ex.question)
        name = match.group("name") if match else ex.country
        if ex.country.casefold() in shot_names or name.casefold() in shot_names:
            continue
        label = ex.answer
        if label == "Americas":
            sub = subregion.get(ex.country)
            if sub is None:
                continue
            label = "South America" if sub == "South America" else "North America" if sub in _NORTH else ""
            if not label:
                continue
        if label not in LABELS:
            continue
        out.append(RegionExample(f"region/{slug}", name, label))
    return tuple(sorted(out, key=lambda e: e.id))


def build_world_regions() -> list[RegionExample]:
    """Every example, sorted by id (deterministic)."""
    return list(_build())


def load_world_regions(split: str = "test", *, seed: int = 0, limit: int | None = None) -> list[RegionExample]:
    """One split (``"calibration"``, ``"test"`` or ``"all"``), sorted by id.

    ``limit`` keeps at most that many examples, taken evenly over the labels in ranking order.
    """
    check_split(split)
    check_limit(limit)
    chosen = {label: split_ranked((e for e in _build() if e.answer == label), split, seed) for label in LABELS}
    if limit is not None:  # round-robin over labels in ranking order
        return sorted(round_robin(chosen, limit, LABELS), key=lambda e: e.id)
    return sorted((e for v in chosen.values() for e in v), key=lambda e: e.id)


def few_shot_prompt(example: RegionExample) -> str:
    """A 6-shot completion prompt listing the labels; the model continues after ``"Continent:"``."""
    head = f"Name the continent each country is in. Answer with one of: {', '.join(LABELS)}.\n\n"
    shots = "".join(f"Country: {name}\nContinent: {label}\n\n" for name, label in SHOTS)
    return f"{head}{shots}Country: {example.country}\nContinent:"


def to_record(example: RegionExample) -> dict[str, Any]:
    """The JSONL record: id, prompt, answer, aliases, labels, attribute, difficulty."""
    return {
        "id": example.id,
        "prompt": few_shot_prompt(example),
        "answer": example.answer,
        "aliases": [example.answer],
        "labels": list(LABELS),
        "attribute": "continent6",
        "difficulty": "easy",
    }


def write_jsonl(examples: Iterable[RegionExample], path: str | os.PathLike[str]) -> Path:
    """Write one :func:`to_record` JSON object per line (UTF-8, parents created). Returns the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8", newline="\n") as fh:
        for ex in examples:
            fh.write(json.dumps(to_record(ex), ensure_ascii=False) + "\n")
    return out
