"""benchmarks/studies/length_bias.py's analysis on synthetic answers whose correctness does not depend on length."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from benchmarks.studies import length_bias
from cascade_core.types import Generation, TokenAlternative, TokenStep

pytest.importorskip("sklearn")


def _answer(rng: np.random.Generator, length: int, right: bool) -> SimpleNamespace:
    base = 0.9 if right else 0.6  # right answers are written more confidently, whatever their length
    steps = []
    for _ in range(length):
        p = float(np.clip(base + rng.normal(0, 0.05), 0.05, 0.99))
        steps.append(TokenStep("w", math.log(p), (TokenAlternative("w", math.log(p)), TokenAlternative("v", math.log((1 - p) / 2)))))
    return SimpleNamespace(small=Generation("w" * length, tuple(steps)), small_quality=float(right))


def test_chow_sum_defers_long_answers_and_per_token_signals_do_not(tmp_path):
    rng = np.random.default_rng(0)
    examples = [_answer(rng, int(rng.integers(3, 40)), bool(rng.random() < 0.6)) for _ in range(400)]
    result = length_bias.analyse(examples, fit_share=0.4, deferral_rate=0.4)

    assert result["n_test"] == 240 and len(result["length_quartiles"]) == 4
    chow_sum, average = result["signals"]["chow_sum"], result["signals"]["chow_average"]
    assert chow_sum["spearman_vs_length"] < -0.5  # the sum falls with every token
    assert chow_sum["deferral_per_quartile"][3] > chow_sum["deferral_per_quartile"][0] + 0.3
    assert abs(average["spearman_vs_length"]) < 0.3  # the average does not scale with length
    assert average["auroc_correct"] > chow_sum["auroc_correct"]
    assert result["signals"]["learned"]["auroc_correct"] > 0.9
    assert "deferred by chow_sum" in length_bias.table(result)

    length_bias.plot(result, tmp_path / "bias.png")
    assert (tmp_path / "bias.png").stat().st_size > 10_000
