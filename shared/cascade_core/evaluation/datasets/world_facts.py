"""World-facts QA: short factual questions about countries, with checkable answers.

Four attribute types: ``capital`` ("What is the capital of France?"), ``continent`` ("Which
continent is Kenya in?"), ``demonym`` ("What is the demonym for people from Peru?") and
``language`` ("What is the official language of Brazil?").

Provenance
----------
Facts come from the JSON files shipped in the ``countryinfo`` package (PyPI, version 1.0.1 when
this was written; ``countryinfo.CountryInfo.all()``), read at run time: nothing is downloaded and
nothing is committed as data. The package stores languages as ISO 639-1 codes; their English
names are the table ``LANGUAGE_NAMES``. Curation, all in tables in
:mod:`~cascade_core.evaluation.datasets._world_facts_tables`: stale values corrected (``FIXES``: Kazakhstan's capital is Astana again since 2022; Filipino is co-official in
the Philippines), entities left out entirely (``EXCLUDED_ENTITIES``: dissolved states, duplicate
entries, uninhabited territories), and per attribute the countries whose value is missing,
contested or ambiguous skipped (``SKIP``: e.g. transcontinental countries for ``continent``).
Accepted answers (``aliases``) add spelling variants and other seats of government for capitals,
"America" for the Americas, every listed official language, and noun forms of demonyms.

The build is deterministic: the same installed package gives the same examples, sorted by ``id``.
The two few-shot examples of every attribute (``SHOTS``) are excluded from the data set.

Splits
------
``load_world_facts`` splits every attribute separately (stratified by attribute), as
:mod:`~cascade_core.evaluation.datasets.splits` describes: each example is ranked by
``sha256(f"{seed}:{id}")``; the first 40 % (rounded) of an attribute's ranking form the
``"calibration"`` split, the rest the ``"test"`` split. ``limit`` takes, per attribute, the top of that same ranking, spreading the quota evenly over the
attributes (so a small demo still covers every attribute, and a larger limit extends a smaller one).

Measured results
----------------
How well the embedded models answer each attribute, and how well the small model's uncertainty
separates its right answers from its wrong ones, are measured in ``docs/evaluation.md`` (with the
commands that produced the numbers); they are not repeated here, where they would go stale.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cascade_core.errors import ConfigurationError, require
from cascade_core.evaluation.datasets import _world_facts_tables as tables
from cascade_core.evaluation.datasets.splits import (
    CALIBRATION_FRACTION,
    SPLITS,
    check_limit,
    check_split,
    even_quotas,
    split_ranked,
)
from cascade_core.evaluation.quality import is_correct, normalize_answer, slug

__all__ = [
    "ATTRIBUTES",
    "CALIBRATION_FRACTION",
    "DIFFICULTY",
    "LANGUAGE_NAMES",
    "SHOTS",
    "SPLITS",
    "QAExample",
    "build_world_facts",
    "few_shot_prompt",
    "is_correct",
    "load_world_facts",
    "normalize_answer",
    "to_record",
    "write_jsonl",
]


@dataclass(frozen=True)
class QAExample:
    """One question with its gold answer and every accepted answer.

    ``aliases`` always contains ``answer`` itself. ``id`` is ``"<attribute>/<country-slug>"`` and
    stable across builds.
    """

    id: str
    question: str
    answer: str
    aliases: tuple[str, ...]
    attribute: str
    difficulty: str
    country: str

    def to_dict(self) -> dict[str, Any]:
        """The example as a plain dict (``aliases`` as a list)."""
        data = asdict(self)
        data["aliases"] = list(self.aliases)
        return data


# ---------------------------------------------------------------------------------------------
# Attributes, question templates, difficulty, few-shot examples
# ---------------------------------------------------------------------------------------------

ATTRIBUTES: tuple[str, ...] = ("capital", "continent", "demonym", "language")
"""The attribute types in the data set, sorted."""

DIFFICULTY: Mapping[str, str] = {
    "continent": "easy",
    "demonym": "medium",
    "language": "medium",
    "capital": "hard",
}
"""Difficulty for the small model: measured accuracy >= 0.75 easy, >= 0.45 medium, else hard."""

LANGUAGE_NAMES = tables.LANGUAGE_NAMES
"""ISO 639-1 code -> (English name, other accepted names)."""

_TEMPLATES: Mapping[str, str] = {
    "capital": "What is the capital of {country}?",
    "continent": "Which continent is {country} in?",
    "language": "What is the official language of {country}?",
    "demonym": "What is the demonym for people from {country}?",
}
_LANGUAGE_TEMPLATE_MANY = "What is one of the official languages of {country}?"

SHOTS: Mapping[str, tuple[tuple[str, str], ...]] = {
    "capital": (("france", "Paris"), ("japan", "Tokyo")),
    "continent": (("france", "Europe"), ("brazil", "South America")),
    "language": (("germany", "German"), ("brazil", "Portuguese")),
    "demonym": (("netherlands", "Dutch"), ("brazil", "Brazilian")),
}
"""Per attribute, the two fixed few-shot examples as (countryinfo key, answer); excluded from the data."""


# ---------------------------------------------------------------------------------------------
# Building
# ---------------------------------------------------------------------------------------------


def _display_name(key: str, name: str) -> str:
    if key in tables.DISPLAY_NAMES:
        return tables.DISPLAY_NAMES[key]
    low = name.casefold()
    if low in tables.THE_NAMES or low.startswith(tables.THE_PREFIXES) or low.endswith(" islands"):
        return "the " + name
    return name


def _dedupe(items: Iterable[str]) -> tuple[str, ...]:
    seen: set[str] = set()
    out = []
    for item in items:
        norm = normalize_answer(item)
        if item and norm and norm not in seen:
            seen.add(norm)
            out.append(item)
    return tuple(out)


def _answers(attribute: str, key: str, data: Mapping[str, Any]) -> tuple[str, tuple[str, ...]] | None:
    """Gold answer and extra aliases of one attribute of one country, or None to skip it."""
    if attribute == "capital":
        capital = data.get("capital")
        if isinstance(capital, list):
            capital = capital[0] if len(capital) == 1 else None
        if not capital or "/" in capital:
            return None
        return capital, tables.CAPITAL_ALIASES.get(key, ())
    if attribute == "continent":
        region = data.get("region")
        if region not in ("Africa", "Americas", "Asia", "Europe", "Oceania"):
            return None
        return region, tables.CONTINENT_ALIASES.get(region, ())
    if attribute == "language":
        codes = data.get("languages") or []
        if not codes or any(code not in LANGUAGE_NAMES for code in codes):
            return None
        names: list[str] = []
        for code in codes:
            name, extra = LANGUAGE_NAMES[code]
            names += [name, *extra]
        return names[0], tuple(names[1:])
    if attribute == "demonym":
        demonym = data.get("demonym")
        if not demonym:
            return None
        parts = [p.strip() for p in re.split(r"[,/]", demonym) if p.strip()]
        name = str(data.get("name", ""))
        if not parts or any(normalize_answer(p) == normalize_answer(name) for p in parts):
            return None  # the package repeats the country name where it has no demonym
        return parts[0], (*parts[1:], *tables.DEMONYM_ALIASES.get(key, ()))
    raise ConfigurationError(f"unknown attribute {attribute!r}; allowed: {', '.join(ATTRIBUTES)}")


def _question(attribute: str, country: str, data: Mapping[str, Any]) -> str:
    if attribute == "language" and len(data.get("languages") or []) > 1:
        template = _LANGUAGE_TEMPLATE_MANY
    else:
        template = _TEMPLATES[attribute]
    return template.format(country=country)


def _countries() -> dict[str, dict[str, Any]]:
    raw = require("countryinfo", "eval", purpose="the world-facts data set").CountryInfo.all()
    out: dict[str, dict[str, Any]] = {}
    for key in sorted(raw):
        if key in tables.EXCLUDED_ENTITIES or not raw[key].get("name"):
            continue
        data = dict(raw[key])
        for (country, field), value in tables.FIXES.items():
            if country == key:
                data[field] = value
        out[key] = data
    return out


def _shot_ids() -> frozenset[str]:
    return frozenset(f"{attr}/{slug(key)}" for attr, shots in SHOTS.items() for key, _ in shots)


@functools.lru_cache(maxsize=1)
def _build() -> tuple[QAExample, ...]:
    countries = _countries()
    shot_ids = _shot_ids()
    examples: list[QAExample] = []
    for attribute in ATTRIBUTES:
        skip = tables.SKIP.get(attribute, frozenset())
        for key, data in countries.items():
            example_id = f"{attribute}/{slug(key)}"
            if key in skip or example_id in shot_ids:
                continue
            found = _answers(attribute, key, data)
            if found is None:
                continue
            answer, extra = found
            country = _display_name(key, str(data["name"]))
            examples.append(
                QAExample(
                    id=example_id,
                    question=_question(attribute, country, data),
                    answer=answer,
                    aliases=_dedupe((answer, *extra)),
                    attribute=attribute,
                    difficulty=DIFFICULTY[attribute],
                    country=str(data["name"]),
                )
            )
    examples.sort(key=lambda ex: ex.id)
    return tuple(examples)


def build_world_facts() -> list[QAExample]:
    """Every example of every attribute, sorted by ``id`` (deterministic; shots excluded)."""
    return list(_build())


# ---------------------------------------------------------------------------------------------
# Prompts
# ---------------------------------------------------------------------------------------------


@functools.cache
def _shot_block(attribute: str) -> str:
    countries = _countries()
    lines = []
    for key, answer in SHOTS[attribute]:
        data = countries[key]
        question = _question(attribute, _display_name(key, str(data["name"])), data)
        lines.append(f"Q: {question}\nA: {answer}\n\n")
    return "".join(lines)


def few_shot_prompt(example: QAExample) -> str:
    """A 2-shot completion prompt: ``"Q: ...\\nA: ...\\n\\nQ: ...\\nA: ...\\n\\nQ: <question>\\nA:"``.

    The two shots are fixed per attribute (``SHOTS``) and are not in the data set. The model is
    meant to continue after ``"A:"`` and stop at the newline.
    """
    if example.attribute not in SHOTS:
        raise ConfigurationError(
            f"no few-shot examples for attribute {example.attribute!r}; allowed: {', '.join(ATTRIBUTES)}"
        )
    return f"{_shot_block(example.attribute)}Q: {example.question}\nA:"


# ---------------------------------------------------------------------------------------------
# Splits
# ---------------------------------------------------------------------------------------------


def _check_attributes(attributes: str | Iterable[str] | None) -> tuple[str, ...]:
    if attributes is None:
        return ATTRIBUTES
    chosen = (attributes,) if isinstance(attributes, str) else tuple(attributes)
    unknown = [a for a in chosen if a not in ATTRIBUTES]
    if unknown or not chosen:
        raise ConfigurationError(
            f"unknown attribute(s) {unknown!r}; allowed: {', '.join(ATTRIBUTES)}"
            if unknown
            else f"attributes must not be empty; allowed: {', '.join(ATTRIBUTES)}"
        )
    return tuple(sorted(set(chosen)))


def load_world_facts(
    split: str = "test",
    *,
    seed: int = 0,
    attributes: str | Iterable[str] | None = None,
    limit: int | None = None,
) -> list[QAExample]:
    """One split of the world-facts data, sorted by ``id``.

    ``split`` is ``"calibration"`` (40 % of each attribute), ``"test"`` (the other 60 %) or
    ``"all"``; the assignment is a fixed function of ``seed`` and each example's id (see the module
    docstring). ``attributes`` restricts to some attribute types (default: all). ``limit`` keeps a
    deterministic subset of at most ``limit`` examples, spread evenly over the attributes.

    Raises:
        ConfigurationError: unknown split or attribute, or a negative limit.
    """
    check_split(split)
    chosen = _check_attributes(attributes)
    check_limit(limit)

    by_attr: dict[str, list[QAExample]] = {a: [] for a in chosen}
    for example in _build():
        if example.attribute in by_attr:
            by_attr[example.attribute].append(example)

    selected = {attribute: split_ranked(items, split, seed) for attribute, items in by_attr.items()}
    if limit is not None:
        quotas = even_quotas({a: len(v) for a, v in selected.items()}, limit)
        selected = {a: v[: quotas[a]] for a, v in selected.items()}
    return sorted((ex for items in selected.values() for ex in items), key=lambda ex: ex.id)


# ---------------------------------------------------------------------------------------------
# Export
# ---------------------------------------------------------------------------------------------


def to_record(example: QAExample) -> dict[str, Any]:
    """The JSONL record: id, prompt (:func:`few_shot_prompt`), answer, aliases, attribute, difficulty."""
    return {
        "id": example.id,
        "prompt": few_shot_prompt(example),
        "answer": example.answer,
        "aliases": list(example.aliases),
        "attribute": example.attribute,
        "difficulty": example.difficulty,
    }


def write_jsonl(examples: Iterable[QAExample], path: str | os.PathLike[str]) -> Path:
    """Write one :func:`to_record` JSON object per line (UTF-8, parent directories created). Returns the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8", newline="\n") as fh:
        for ex in examples:
            fh.write(json.dumps(to_record(ex), ensure_ascii=False) + "\n")
    return out
