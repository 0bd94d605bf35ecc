"""BIG-bench tasks as k-shot prompts: archive checks, kinds, shots, splits, scoring — on a small synthetic
tarball laid out like the real ``bigbench-1.0.0.tar.gz``; one slow test reads the real archive."""

from __future__ import annotations

import pytest
from conftest import BIGBENCH_CLAIMS as CLAIMS
from conftest import BIGBENCH_TASKS as TASKS

from cascade_core.errors import ConfigurationError, DataFormatError
from cascade_core.evaluation.datasets import bigbench_archive as archive_module
from cascade_core.evaluation.datasets.bigbench import PUBLIC_TASKS, list_tasks, load_bigbench
from cascade_core.evaluation.quality import resolve_quality_scorer


def test_lists_only_tasks_with_json_examples(bigbench_archive):
    assert sorted(list_tasks()) == sorted(TASKS)


def test_label_task_prompts_end_at_the_answer_and_score_by_label(bigbench_archive):
    examples = load_bigbench("toy/claims", "all")
    assert {e.kind for e in examples} == {"labels"}
    assert examples[0].labels == ("true", "false")
    first = examples[0]
    assert first.prompt.endswith(f"Q: {next(c for c, _ in CLAIMS if c in first.prompt.splitlines()[-2])}\nA:")
    score = resolve_quality_scorer("auto")
    record = first.to_record()
    assert score(f" {first.answer}\nQ: next", record) == 1.0
    assert score(" maybe", record) == 0.0


def test_duplicates_are_kept_once_and_conflicting_inputs_dropped(bigbench_archive):
    examples = load_bigbench("toy/claims", "all", shots=3)
    inputs = [e.prompt.rsplit("\n\n", 1)[-1] for e in examples]
    assert len(inputs) == len(set(inputs))
    assert not any(CLAIMS[2][0] in e.prompt.rsplit("\n\n", 1)[-1] for e in examples)  # conflicting labels
    assert sum(CLAIMS[1][0] in p for p in inputs) == 1
    assert len(examples) == 30 - 1 - 3  # 29 unique non-conflicting, minus the shots


def test_shots_cover_different_answers_and_never_enter_a_split(bigbench_archive):
    examples = load_bigbench("toy/claims", "all", shots=2)
    head = examples[0].prompt.rsplit("\n\n", 1)[0]
    assert head.count("\nA: true") == 1 and head.count("\nA: false") == 1
    assert all(e.prompt.startswith(head) for e in examples)  # one shared prefix
    shown = [line for line in head.splitlines() if line.startswith("Q: ")]
    assert not any(any(s in e.prompt.rsplit("\n\n", 1)[-1] for s in shown) for e in examples)


def test_splits_are_fixed_disjoint_and_limits_extend(bigbench_archive):
    cal, test = load_bigbench("toy/claims", "calibration"), load_bigbench("toy/claims", "test")
    every = load_bigbench("toy/claims", "all")
    assert {e.id for e in cal}.isdisjoint({e.id for e in test})
    assert {e.id for e in cal} | {e.id for e in test} == {e.id for e in every}
    assert len(cal) == round(0.4 * len(every))
    assert [e.id for e in load_bigbench("toy/claims", "test", limit=5)] == [e.id for e in test[:5]]
    assert load_bigbench("toy/claims", "test") == test  # deterministic
    assert [e.id for e in load_bigbench("toy/claims", "test", seed=1)] != [e.id for e in test]


def test_long_options_are_lettered_and_scored_on_the_letter(bigbench_archive):
    examples = load_bigbench("toy_mc", "all")
    assert {e.kind for e in examples} == {"lettered"}
    letters_used = set()
    for e in examples:
        question = e.prompt.rsplit("\n\n", 1)[-1]
        assert question.endswith("\nAnswer:") and e.labels == ("A", "B", "C")
        right = next(line for line in question.splitlines() if "the right outcome" in line)
        assert right.startswith(f"{e.answer}. ")
        letters_used.add(e.answer)
    assert len(letters_used) > 1  # options are shuffled, so the right one is not always first
    score = resolve_quality_scorer("auto")
    e = examples[0]
    assert score(f" {e.answer}", e.to_record()) == 1.0
    assert score(" " + next(x for x in "ABC" if x != e.answer), e.to_record()) == 0.0


def test_letter_targets_in_the_input_drop_the_misleading_prefix(bigbench_archive):
    examples = load_bigbench("toy_letters", "all")
    e = examples[0]
    assert e.labels == ("A", "B", "C", "D") and e.answer in "ABCD" and "." not in e.answer
    assert "I don't know" not in e.prompt
    assert "Question: Question:" not in e.prompt


def test_generative_targets_are_aliases(bigbench_archive):
    examples = load_bigbench("toy_gen", "test")
    e = examples[0]
    assert e.labels is None and e.kind == "generative"
    number = int(e.prompt.rsplit("\n\n", 1)[-1].split()[-2])
    assert e.aliases == (str(number + 1), f"n{number + 1}")
    assert e.prompt.endswith(f"The number after {number} is")
    score = resolve_quality_scorer("auto")
    assert score(f" n{number + 1}\n", e.to_record()) == 1.0
    assert score(f" {number + 11}", e.to_record()) == 0.0


def test_unknown_task_names_close_ones(bigbench_archive):
    with pytest.raises(ConfigurationError, match="toy/claims"):
        load_bigbench("toy/claim")
    with pytest.raises(ConfigurationError, match="split"):
        load_bigbench("toy/claims", "train")


def test_missing_archive_names_the_command_that_fetches_it(tmp_path, monkeypatch):
    monkeypatch.setenv("CASCADE_BIGBENCH_ARCHIVE", str(tmp_path / "nowhere" / "bigbench-1.0.0.tar.gz"))
    monkeypatch.setenv("CASCADE_BIGBENCH_FETCH", "0")
    with pytest.raises(DataFormatError, match="pip download --no-deps bigbench==1.0.0"):
        load_bigbench("toy/claims")


def test_an_archive_with_another_hash_is_never_read(bigbench_archive, monkeypatch):
    monkeypatch.setenv("CASCADE_BIGBENCH_SHA256", "0" * 64)
    with pytest.raises(DataFormatError, match="sha256"):
        load_bigbench("toy/claims")


def test_the_real_archive_is_pinned():
    assert archive_module.ARCHIVE_SHA256 == "1bb398a5512c6d798cdebe0dfa0ac03f67f6033fa6b39c6ef71df978c7cbc5c2"


@pytest.mark.slow
def test_the_real_archive_gives_the_eight_public_tasks(monkeypatch):
    """Reads (and on a new machine first fetches, by name from the package registry) the real archive."""
    for var in ("CASCADE_BIGBENCH_ARCHIVE", "CASCADE_BIGBENCH_SHA256", "CASCADE_BIGBENCH_FETCH"):
        monkeypatch.delenv(var, raising=False)
    kinds = {}
    for task in PUBLIC_TASKS:
        test = load_bigbench(task, "test", limit=300)
        assert len(test) == (149 if task.startswith("natural_instructions") else 300), task
        kinds[task] = test[0].kind
    assert kinds["fact_checker/fever"] == "labels" and kinds["social_iqa"] == "lettered"
    assert kinds["qa_wikidata"] == "generative" and kinds["strategyqa"] == "labels"
    strategy = load_bigbench("strategyqa", "test", limit=3)
    assert all(e.answer in ("Yes", "No") for e in strategy)  # target_scores, not the explanation
