"""benchmarks/studies/cost_curve.py on a small collection cache made with scripted tiers (no real model)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks.studies import cost_curve
from cascade_core.backends.defaults import DEFAULT_PRICES
from cascade_core.decide.rule_file import SignalRule
from cascade_core.evaluation.collect import collect_records, load_cache
from cascade_core.testing import ScriptedModel
from cascade_core.types import Usage

RECORDS = [
    {"id": "fr", "prompt": "Capital of France?", "answer": "Paris"},
    {"id": "it", "prompt": "Capital of Italy?", "answer": "Rome"},
    {"id": "es", "prompt": "Capital of Spain?", "answer": "Madrid"},
    {"id": "pt", "prompt": "Capital of Portugal?", "answer": "Lisbon"},
]


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    # the small tier is right on fr and es only, and least sure on it (0.3) and pt (0.4)
    small = ScriptedModel(["Paris", "Milan", "Madrid", "Porto"], confidence=[0.9, 0.3, 0.8, 0.4])
    large = ScriptedModel(["The capital is Paris", "Rome it is", "Madrid", "Lisbon, surely"])
    path = tmp_path / "test.cache.jsonl"
    collect_records(RECORDS, small, large, cache_path=path, progress=False)
    return path


def test_accuracy_and_costs_run_from_small_only_to_beyond_all_large(cache, tmp_path) -> None:
    png, out = tmp_path / "curve.png", tmp_path / "curve.csv"
    rows = cost_curve.main([str(cache), "--png", str(png), "--csv", str(out)])
    assert rows[0]["deferral_rate"] == 0 and rows[0]["accuracy"] == pytest.approx(0.5)
    assert rows[-1]["deferral_rate"] == 1 and rows[-1]["accuracy"] == pytest.approx(1.0)
    assert rows[10]["accuracy"] == pytest.approx(1.0)  # the two least sure answers are the two wrong ones
    for measure in ("price", "flops", "seconds"):
        values = [row[measure] for row in rows]
        assert values == sorted(values) and values[0] > 0
        assert values[-1] > 1  # deferring everything pays the small tier's part on top of all-large
    assert png.stat().st_size > 0
    with out.open() as fh:
        assert len(list(csv.DictReader(fh))) == 21


def test_a_margin_deferral_pays_the_small_prompt_and_one_token(cache) -> None:
    examples = load_cache(cache)
    costs = cost_curve.query_costs(examples, "price", early_exit=True, params=(1.0, 10.0))
    e = examples[1]
    small_exit = DEFAULT_PRICES["small"].cost(Usage(e.small.usage.input_tokens, 1))
    assert costs.deferred[1] == pytest.approx(small_exit + DEFAULT_PRICES["large"].cost(e.large_usage))
    assert costs.kept[1] == pytest.approx(DEFAULT_PRICES["small"].cost(e.small.usage))
    whole = cost_curve.query_costs(examples, "flops", early_exit=False, params=(1.0, 10.0))
    assert whole.deferred[1] == e.small.usage.total_tokens + 10.0 * e.large_usage.total_tokens


def test_the_calibrated_point_applies_the_calibration_threshold(cache, tmp_path) -> None:
    rule = SignalRule("margin").save(tmp_path / "rule.json")
    calibration = tmp_path / "calibration.json"
    calibration.write_text(json.dumps({"signal": "margin", "sample": {"threshold": 0.5}}))
    rows = cost_curve.main([str(cache), "--rule", str(rule), "--calibration", str(calibration)])
    point = rows[-1]
    assert point["rule"] == "calibrated margin"
    assert point["deferral_rate"] == 0.5 and point["accuracy"] == 1.0
    examples = load_cache(cache)
    full = cost_curve.query_costs(examples, "price", early_exit=False, params=(1.0, 1.0))
    expected = (full.kept[[0, 2]].sum() + full.deferred[[1, 3]].sum()) / full.all_large.sum()
    assert point["price"] == pytest.approx(expected)
    assert np.isfinite([point["flops"], point["seconds"]]).all()


def test_a_missing_cache_fails_clearly(tmp_path) -> None:
    with pytest.raises(SystemExit, match="no cache at .*missing.jsonl.*reproduce_tables"):
        cost_curve.main([str(tmp_path / "missing.jsonl")])
