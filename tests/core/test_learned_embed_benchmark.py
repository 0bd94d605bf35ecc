"""Smoke test of benchmarks/studies/learned_embed.py's analysis on generated data (the real run is in docs/learned.md)."""

from __future__ import annotations

import dataclasses
import json

import pytest

from benchmarks.studies import learned_embed
from cascade_core.errors import DataFormatError


def test_analysis_on_synthetic_embeddings(tmp_path, capsys):
    out = tmp_path / "embed.json"
    assert learned_embed.main(["--synthetic", "--out", str(out), "--cv", "4", "--cv-repeats", "1", "--resamples", "20"]) == 0
    report = json.loads(out.read_text())
    assert "NOT the Q4 llama.cpp model" in report["note"] and report["embedding_dim"] == 24
    rows = {r["rule"]: r for r in report["test"]["rows"]}
    assert {"random", "cv-selected", "margin", "learned(logistic+embed/pca8,small_correct,C=0.03)",
            "learned(logistic,quality_gap,C=3)"} <= set(rows)
    assert len(report["selection"]["table"]) == len(rows) - 2  # every candidate but cv-selected and random
    # the generated embedding carries the correctness: the CV choice uses it and beats every single signal on test
    assert "+embed" in report["cv_winner"]
    assert rows["cv-selected"]["vs_best_test_signal"] > 2 * rows["cv-selected"]["vs_best_test_signal_se"] > 0
    assert rows["cv-selected"]["vs_random"] > 0
    assert "CV winner on the fit split" in capsys.readouterr().out


def test_large_answers_are_joined_by_id_and_a_missing_id_fails():
    fit, _ = learned_embed.synthetic_caches(6, 0)
    large = [dataclasses.replace(e, large_text=f"L{e.id}", large_quality=0.25) for e in fit]
    joined = learned_embed.join_large(fit, large[::-1])
    assert [e.large_text for e in joined] == [f"L{e.id}" for e in fit] and {e.large_quality for e in joined} == {0.25}
    assert [e.small for e in joined] == [e.small for e in fit]
    with pytest.raises(DataFormatError, match="no large answer"):
        learned_embed.join_large(fit, large[1:])
