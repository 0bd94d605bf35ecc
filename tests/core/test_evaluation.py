"""Deferral curves, AUC-DF, budget curves, answer scorers, plots, the world-regions data set."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

from cascade_core.decide.learned.rule import LearnedDeferral
from cascade_core.errors import ConfigurationError
from cascade_core.evaluation.curves import (
    budget_curve,
    deferral_curve,
    oracle_curve,
    random_budget_curve,
    random_curve,
    summarize_curves,
)
from cascade_core.evaluation.quality import alias_match, exact_match, label_accuracy, resolve_quality_scorer


def _constructed(n: int, seed: int):
    """Features whose first column predicts small-model errors (noisily); the large model is usually right."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    small = (X[:, 0] + 0.8 * rng.normal(size=n) > -0.3).astype(float)
    large = np.where(small == 1, (rng.random(n) < 0.9), (rng.random(n) < 0.7)).astype(float)
    return X, small, large


def test_oracle_beats_learned_beats_random_on_a_constructed_case():
    X_fit, small_fit, _ = _constructed(600, seed=0)
    X, small, large = _constructed(600, seed=1)
    rule = LearnedDeferral().fit(X_fit, small_fit)
    learned = deferral_curve(rule.predict_confidence(X), small, large, name="learned")
    rand, orac = random_curve(small, large), oracle_curve(small, large)
    assert orac.auc >= learned.auc >= rand.auc
    assert learned.auc - rand.auc > 0.02  # and not by a hair
    # the oracle is the best curve point by point, too
    assert np.all(orac.quality >= learned.quality - 1e-12)


def test_curve_ends_at_small_only_and_large_only_quality():
    _, small, large = _constructed(50, seed=2)
    curve = deferral_curve(np.random.default_rng(0).random(50), small, large)
    assert curve.quality[0] == pytest.approx(small.mean())
    assert curve.quality[-1] == pytest.approx(large.mean())
    assert curve.rates[0] == 0.0 and curve.rates[-1] == 1.0 and len(curve.rates) == 51


def test_constant_scores_give_the_random_line():
    _, small, large = _constructed(40, seed=3)
    flat = deferral_curve(np.full(40, 0.7), small, large)
    np.testing.assert_allclose(flat.quality, random_curve(small, large).quality)
    assert flat.auc == pytest.approx((small.mean() + large.mean()) / 2)


def test_ties_are_broken_in_expectation():
    # two tied examples, one gains from deferral: deferring one of them gains 0.5 in expectation
    curve = deferral_curve([0.5, 0.5], [0, 1], [1, 1])
    np.testing.assert_allclose(curve.quality, [0.5, 0.75, 1.0])


def test_random_permutations_average_to_the_random_line():
    _, small, large = _constructed(200, seed=4)
    rng = np.random.default_rng(0)
    aucs = [deferral_curve(rng.random(200), small, large).auc for _ in range(200)]
    assert np.mean(aucs) == pytest.approx(random_curve(small, large).auc, abs=0.003)


def test_summary_rows_relate_to_random_and_oracle():
    X, small, large = _constructed(300, seed=5)
    curve = deferral_curve(X[:, 0], small, large, name="feature0")
    rows = {r["signal"]: r for r in summarize_curves([curve], random_curve(small, large), oracle_curve(small, large))}
    assert rows["random"]["oracle_gap_closed"] == 0.0 and rows["oracle"]["oracle_gap_closed"] == 1.0
    assert 0 < rows["feature0"]["oracle_gap_closed"] < 1
    assert rows["feature0"]["vs_random"] == pytest.approx(rows["feature0"]["auc_df"] - rows["random"]["auc_df"], abs=2e-4)


def test_mismatched_lengths_and_nan_scores_raise():
    with pytest.raises(ConfigurationError, match="scores"):
        deferral_curve([0.1], [1, 0], [1, 1])
    with pytest.raises(ConfigurationError, match="NaN"):
        deferral_curve([0.1, float("nan")], [1, 0], [1, 1])


def test_budget_curve_tracks_the_budget_and_informative_scores_beat_random():
    X, small, large = _constructed(400, seed=6)
    X_cal, _, _ = _constructed(200, seed=7)
    kwargs = dict(small_cost=1.0, large_cost=3.0, orders=4, warmup=10)
    informed = budget_curve(X[:, 0], small, large, calibration_scores=X_cal[:, 0], name="x0", **kwargs)
    rand = budget_curve(np.random.default_rng(1).random(400), small, large, name="random", **kwargs)
    assert informed.budgets[0] == 1.0 and informed.budgets[-1] == 3.0
    target = (informed.budgets - 1.0) / 3.0
    assert np.all(np.abs(informed.deferral_rate - target) < 0.05)
    np.testing.assert_allclose(informed.cost, 1.0 + 3.0 * informed.deferral_rate)
    assert informed.area > rand.area
    # area normalised by the cost gap = mean accuracy over the budget range
    assert informed.area == pytest.approx(np.trapezoid(informed.quality, informed.budgets) / 2.0)
    assert small.mean() - 0.05 <= informed.area <= 1.0


def test_random_budget_baseline_averages_fresh_draws_to_the_straight_line():
    _, small, large = _constructed(300, seed=9)
    rand = random_budget_curve(small, large, small_cost=1.0, large_cost=2.0, orders=3, draws=20, warmup=10)
    expected = small.mean() + rand.deferral_rate * (large.mean() - small.mean())
    assert np.max(np.abs(rand.quality - expected)) < 0.015
    assert rand.orders == 60 and rand.name == "random"


def test_budget_curve_needs_large_cost_above_small_cost():
    with pytest.raises(ConfigurationError, match="large_cost > small_cost"):
        budget_curve([0.1, 0.2], [1, 0], [1, 1], small_cost=2.0, large_cost=1.0)


def test_answer_scorers():
    record = {"answer": "Paris", "aliases": ["Paris", "City of Light"]}
    assert exact_match(" paris.", record) == 1.0
    assert exact_match("Paris, France", record) == 0.0
    assert alias_match("It is Paris, France.\nQ: next", record) == 1.0
    assert alias_match("Parisian", record) == 0.0
    labelled = {"answer": "North America", "labels": ["North America", "South America", "Asia"]}
    assert label_accuracy(" North America\n", labelled) == 1.0
    assert label_accuracy(" South America", labelled) == 0.0
    assert label_accuracy(" Antarctica", labelled) == 0.0
    with pytest.raises(ConfigurationError, match="labels"):
        label_accuracy("x", {"answer": "x"})


def test_auto_scorer_picks_label_accuracy_for_labelled_records():
    auto = resolve_quality_scorer("auto")
    assert auto(" Asia", {"answer": "Asia", "labels": ["Asia", "Europe"]}) == 1.0
    assert auto(" Asia and Europe", {"answer": "Europe", "labels": ["Asia", "Europe"]}) == 0.0
    assert auto("Mount Everest is high", {"answer": "Everest"}) == 1.0


def test_user_scorer_hook_is_imported_by_name(monkeypatch):
    module = types.ModuleType("my_scorers")
    module.length_ok = lambda prediction, record: float(len(prediction) <= record["max_len"])  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "my_scorers", module)
    scorer = resolve_quality_scorer("my_scorers:length_ok")
    assert scorer("abc", {"max_len": 5}) == 1.0 and scorer("abcdef", {"max_len": 5}) == 0.0
    with pytest.raises(ConfigurationError, match="cannot import"):
        resolve_quality_scorer("my_scorers:missing")
    with pytest.raises(ConfigurationError, match="unknown quality scorer"):
        resolve_quality_scorer("bleu")


def test_plots_write_png_files(tmp_path):
    from cascade_core.evaluation.plots import plot_budget_curves, plot_deferral_curves

    X, small, large = _constructed(100, seed=8)
    curve = deferral_curve(X[:, 0], small, large, name="x0")
    png = plot_deferral_curves([curve], random_curve(small, large), oracle_curve(small, large), tmp_path / "a" / "c.png")
    bud = budget_curve(X[:, 0], small, large, small_cost=1.0, large_cost=2.0, orders=2, name="x0")
    png2 = plot_budget_curves([bud], tmp_path / "b.png")
    for path in (png, png2):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_world_regions_is_deterministic_with_disjoint_splits(tmp_path):
    from cascade_core.evaluation.datasets import world_regions as wr

    cal, test = wr.load_world_regions("calibration"), wr.load_world_regions("test")
    assert not {e.id for e in cal} & {e.id for e in test}
    assert len(cal) + len(test) == len(wr.build_world_regions())
    assert {e.answer for e in test} == set(wr.LABELS)
    assert wr.load_world_regions("test", limit=12) == wr.load_world_regions("test", limit=12)
    assert {e.id for e in wr.load_world_regions("test", limit=12)} <= {e.id for e in wr.load_world_regions("test", limit=30)}
    shots = {name for name, _ in wr.SHOTS}
    assert not shots & {e.country for e in wr.build_world_regions()}
    path = wr.write_jsonl(wr.load_world_regions("test", limit=3), tmp_path / "r.jsonl")
    import json

    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert all(r["labels"] == list(wr.LABELS) and r["answer"] in wr.LABELS for r in records)
    assert all(r["prompt"].endswith("Continent:") for r in records)
    with pytest.raises(ConfigurationError, match="split"):
        wr.load_world_regions("train")
