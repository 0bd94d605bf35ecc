"""Bundled evaluation data sets, built reproducibly from data that ships in installed packages."""

from __future__ import annotations

from cascade_core.evaluation.datasets.world_facts import (
    ATTRIBUTES,
    DIFFICULTY,
    SHOTS,
    SPLITS,
    QAExample,
    build_world_facts,
    few_shot_prompt,
    is_correct,
    load_world_facts,
    normalize_answer,
    write_jsonl,
)

__all__ = [
    "ATTRIBUTES",
    "DIFFICULTY",
    "SHOTS",
    "SPLITS",
    "QAExample",
    "build_world_facts",
    "few_shot_prompt",
    "is_correct",
    "load_world_facts",
    "normalize_answer",
    "write_jsonl",
]
