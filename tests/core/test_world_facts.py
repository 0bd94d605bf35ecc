"""World-facts QA data set: deterministic build, splits, prompts, scoring, JSONL export (no models)."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter

import pytest

from cascade_core.errors import ConfigurationError
from cascade_core.evaluation.datasets.world_facts import (
    ATTRIBUTES,
    SHOTS,
    QAExample,
    build_world_facts,
    few_shot_prompt,
    is_correct,
    load_world_facts,
    normalize_answer,
    write_jsonl,
)


def _example(answer: str, *aliases: str, attribute: str = "capital") -> QAExample:
    return QAExample(
        id=f"{attribute}/test",
        question="?",
        answer=answer,
        aliases=(answer, *aliases),
        attribute=attribute,
        difficulty="easy",
        country="Testland",
    )


# --- build -------------------------------------------------------------------------------------


def test_build_is_deterministic_sorted_and_unique() -> None:
    first, second = build_world_facts(), build_world_facts()
    assert first == second
    ids = [ex.id for ex in first]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


def test_build_covers_every_attribute_with_many_examples() -> None:
    counts = Counter(ex.attribute for ex in build_world_facts())
    assert set(counts) == set(ATTRIBUTES)
    assert all(n >= 100 for n in counts.values()), counts


def test_examples_are_well_formed() -> None:
    for ex in build_world_facts():
        assert ex.id.startswith(ex.attribute + "/")
        assert ex.answer and ex.answer == ex.aliases[0]
        assert ex.question.endswith("?")
        assert ex.difficulty in {"easy", "medium", "hard"}
        assert ex.country
        assert is_correct(ex.answer, ex), ex


def test_example_is_frozen() -> None:
    ex = build_world_facts()[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        ex.answer = "x"  # type: ignore[misc]


def test_known_facts() -> None:
    by_id = {ex.id: ex for ex in build_world_facts()}
    assert by_id["capital/germany"].question == "What is the capital of Germany?"
    assert by_id["capital/germany"].answer == "Berlin"
    assert by_id["capital/united_states"].question == "What is the capital of the United States?"
    assert by_id["capital/kazakhstan"].answer == "Astana"
    assert by_id["continent/kenya"].answer == "Africa"
    assert by_id["language/france"].answer == "French"
    assert by_id["demonym/france"].answer == "French"
    assert by_id["language/canada"].question == "What is one of the official languages of Canada?"
    assert set(by_id["language/canada"].aliases) == {"English", "French"}
    assert "capital/palestine" not in by_id  # contested
    assert "continent/russia" not in by_id  # transcontinental


def test_shots_excluded_from_data() -> None:
    ids = {ex.id for ex in build_world_facts()}
    for attribute, shots in SHOTS.items():
        assert len(shots) == 2
        for key, _ in shots:
            assert f"{attribute}/{key}" not in ids


# --- prompts -----------------------------------------------------------------------------------


def test_few_shot_prompt_format() -> None:
    ex = next(e for e in build_world_facts() if e.id == "capital/germany")
    prompt = few_shot_prompt(ex)
    assert prompt == (
        "Q: What is the capital of France?\nA: Paris\n\n"
        "Q: What is the capital of Japan?\nA: Tokyo\n\n"
        "Q: What is the capital of Germany?\nA:"
    )


def test_every_attribute_has_a_two_shot_prompt() -> None:
    seen: set[str] = set()
    for ex in build_world_facts():
        if ex.attribute in seen:
            continue
        seen.add(ex.attribute)
        prompt = few_shot_prompt(ex)
        assert prompt.count("Q: ") == 3 and prompt.count("\nA:") == 3
        assert prompt.endswith(f"Q: {ex.question}\nA:")
    assert seen == set(ATTRIBUTES)


# --- splits ------------------------------------------------------------------------------------


def test_splits_disjoint_complete_and_stable() -> None:
    cal, test = load_world_facts("calibration"), load_world_facts("test")
    cal_ids, test_ids = {e.id for e in cal}, {e.id for e in test}
    assert not cal_ids & test_ids
    assert cal_ids | test_ids == {e.id for e in build_world_facts()}
    assert load_world_facts("calibration") == cal
    assert load_world_facts("test") == test
    assert [e.id for e in test] == sorted(test_ids)
    assert load_world_facts() == test  # default split


def test_splits_are_stratified_40_60() -> None:
    cal = Counter(e.attribute for e in load_world_facts("calibration"))
    total = Counter(e.attribute for e in build_world_facts())
    for attribute in ATTRIBUTES:
        assert cal[attribute] == round(0.4 * total[attribute])


def test_seed_changes_split() -> None:
    a = {e.id for e in load_world_facts("calibration", seed=0)}
    b = {e.id for e in load_world_facts("calibration", seed=1)}
    assert a != b and len(a) == len(b)


def test_limit_is_stratified_deterministic_and_within_split() -> None:
    subset = load_world_facts("test", limit=60)
    assert len(subset) == 60
    counts = Counter(e.attribute for e in subset)
    assert set(counts) == set(ATTRIBUTES)
    assert max(counts.values()) - min(counts.values()) <= 1
    assert subset == load_world_facts("test", limit=60)
    assert {e.id for e in subset} <= {e.id for e in load_world_facts("test")}
    # a larger limit extends a smaller one per attribute
    bigger = {e.id for e in load_world_facts("test", limit=120)}
    assert {e.id for e in subset} <= bigger


def test_limit_edge_cases() -> None:
    assert load_world_facts("test", limit=0) == []
    assert load_world_facts("test", limit=10**6) == load_world_facts("test")
    with pytest.raises(ConfigurationError):
        load_world_facts("test", limit=-1)


def test_attribute_filter() -> None:
    caps = load_world_facts("test", attributes=["capital"])
    assert caps and {e.attribute for e in caps} == {"capital"}
    assert load_world_facts("test", attributes="capital") == caps
    two = load_world_facts("calibration", attributes=("capital", "language"), limit=10)
    assert Counter(e.attribute for e in two) == {"capital": 5, "language": 5}


def test_unknown_split_or_attribute_raises_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="calibration"):
        load_world_facts("train")
    with pytest.raises(ConfigurationError, match="capital"):
        load_world_facts("test", attributes=["population"])
    with pytest.raises(ValueError):  # ConfigurationError is also a ValueError
        load_world_facts("validation")


# --- scoring -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prediction", "gold", "aliases", "expected"),
    [
        ("Paris", "Paris", (), True),
        (" paris.", "Paris", (), True),
        ("PARIS, France", "Paris", (), True),
        ("The capital is Paris!", "Paris", (), True),
        ("Parish", "Paris", (), False),
        ("Lyon", "Paris", (), False),
        ("", "Paris", (), False),
        ("Bogota", "Bogotá", (), True),
        ("BOGOTÁ", "Bogota", (), True),
        ("Reykjavík", "Reykjavik", (), True),
        ("Ndjamena", "N'Djamena", (), True),
        ("N’Djamena", "N'Djamena", (), True),
        ("Port au Prince", "Port-au-Prince", (), True),
        ("Saint George's", "St. George's", (), True),
        ("Washington", "Washington D.C.", ("Washington",), True),
        ("Washington, DC", "Washington D.C.", (), True),
        ("La Paz", "Sucre", ("La Paz",), True),
        ("Santiago", "Sucre", ("La Paz",), False),
        ("Polish zloty", "Polish złoty", (), True),
        ("Vietnamese dong", "Vietnamese đồng", (), True),
        ("+33", "+33", (), True),
        ("33", "+33", (), True),
        ("+331", "+33", (), False),
        ("  \nParis", "Paris", (), True),  # first non-empty line
        ("Lyon\nParis", "Paris", (), False),  # only the first line counts
        ("Japanese   yen", "Japanese yen", ("yen",), True),
    ],
)
def test_is_correct(prediction: str, gold: str, aliases: tuple[str, ...], expected: bool) -> None:
    assert is_correct(prediction, _example(gold, *aliases)) is expected


def test_is_correct_with_built_aliases() -> None:
    by_id = {ex.id: ex for ex in build_world_facts()}
    assert is_correct("Frenchman", by_id["demonym/france"])
    assert is_correct("Slovenian", by_id["demonym/slovenia"])
    assert is_correct("Slovakia", by_id["demonym/slovakia"]) is False
    assert is_correct("Mandarin", by_id["language/china"])
    assert is_correct("French", by_id["language/canada"])
    assert is_correct("Spanish", by_id["language/canada"]) is False
    assert is_correct("North America", by_id["continent/canada"])
    assert is_correct("Europe", by_id["continent/canada"]) is False
    assert is_correct("Kiev", by_id["capital/ukraine"])


def test_normalize_answer() -> None:
    assert normalize_answer("  Bogotá,\tD.C. ") == "bogota d c"
    assert normalize_answer("St. John's") == "saint john s"
    assert normalize_answer("+1-684") == "1 684"


# --- export ------------------------------------------------------------------------------------


def test_write_jsonl_round_trip(tmp_path) -> None:
    examples = load_world_facts("calibration", limit=16)
    path = write_jsonl(examples, tmp_path / "sub" / "wf.jsonl")
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(examples)
    for line, ex in zip(lines, examples):
        record = json.loads(line)
        assert set(record) == {"id", "prompt", "answer", "aliases", "attribute", "difficulty"}
        assert record["id"] == ex.id
        assert record["prompt"] == few_shot_prompt(ex)
        assert record["answer"] == ex.answer
        assert tuple(record["aliases"]) == ex.aliases
        assert record["attribute"] == ex.attribute
        assert record["difficulty"] == ex.difficulty
