"""Cross-validated rule choice (learned vs every single signal), tree export, and rule files."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from cascade_core import Cascade, ThresholdRule
from cascade_core.decide.learned.rule import LearnedDeferral, deferral_labels
from cascade_core.decide.rule_file import SignalRule, load_rule
from cascade_core.decide.scorers import Scorer
from cascade_core.errors import ConfigurationError, RuleFileError
from cascade_core.evaluation.curves import deferral_curve
from cascade_core.evaluation.rule_selection import learned_grid, select_rule
from cascade_core.testing import ScriptedModel
from cascade_core.types import Generation, TokenAlternative, TokenStep

LOGISTIC = [{"model": "logistic", "C": 1.0, "target": "small_correct"}]


def _step(token: str, p: float, alts: list[float]) -> TokenStep:
    top = (TokenAlternative(token, math.log(p)), *(TokenAlternative(f"zz{i}", math.log(q)) for i, q in enumerate(alts)))
    return TokenStep(token, math.log(p), top)


def entropy_task(n: int, seed: int) -> tuple[list[Generation], np.ndarray]:
    """Right iff the first step's alternatives are concentrated (low entropy). The chosen token's
    probability (so every log-prob feature) and the top-2 margin are noise, so only the entropy
    signal — which the learned features do not contain — carries the answer."""
    rng = np.random.default_rng(seed)
    gens, ok = [], []
    for _ in range(n):
        p = float(rng.uniform(0.3, 0.5))
        right = rng.random() < 0.5
        alts = [0.12, 0.005, 0.005, 0.005] if right else [0.12, 0.11, 0.11, 0.11]
        gens.append(Generation("x", (_step("a", p, alts), _step("b", float(rng.uniform(0.3, 0.9)), [0.05]))))
        ok.append(float(right if rng.random() > 0.05 else not right))
    return gens, np.array(ok)


def combined_task(n: int, seed: int) -> tuple[list[Generation], np.ndarray]:
    """Right iff (first-token margin) + (least-confident later token) is high: two independent
    features, so every single signal sees only half of the evidence and a linear rule sees both."""
    rng = np.random.default_rng(seed)
    gens, ok = [], []
    for _ in range(n):
        p2 = float(rng.uniform(0.01, 0.39))  # margin 0.6 - p2 in [0.21, 0.59]
        later = -rng.uniform(0.05, 0.3, size=int(rng.integers(3, 8)))
        low = float(rng.uniform(-3.0, -0.5))
        later[rng.integers(later.size)] = low
        score = (0.2 - p2) / 0.19 + (low + 1.75) / 1.25 + rng.normal(0, 0.15)
        steps = (_step("a", 0.6, [p2]), *(_step(f"t{i}", math.exp(lp), [0.001]) for i, lp in enumerate(later)))
        gens.append(Generation("x", steps))
        ok.append(float(score > 0))
    return gens, np.array(ok)


def test_picks_the_single_signal_when_it_is_best():
    gens, ok = entropy_task(160, seed=0)
    sel = select_rule(gens, ok, np.ones_like(ok), cv=4, learned=LOGISTIC)
    assert sel.winner["candidate"] == "entropy" and sel.winner["kind"] == "signal"
    assert isinstance(sel.rule, SignalRule) and sel.rule.name == "entropy"
    learned = next(r for r in sel.rows if r["kind"] == "learned")
    assert learned["vs_best_signal"] < -2 * learned["vs_best_signal_se"]  # clearly worse, not a coin flip
    # and on fresh data the chosen signal is indeed better than the learned rule fitted on all of it
    test_g, test_ok = entropy_task(400, seed=1)
    rule = LearnedDeferral().fit_generations(gens, ok)
    ones = np.ones_like(test_ok)
    chosen = deferral_curve([sel.rule(g) for g in test_g], test_ok, ones).auc
    assert chosen > deferral_curve(rule.predict_confidence(rule.features(test_g)), test_ok, ones).auc + 0.02


def test_picks_the_learned_rule_when_it_is_best():
    gens, ok = combined_task(200, seed=0)
    sel = select_rule(gens, ok, np.ones_like(ok), cv=4, learned=LOGISTIC)
    assert sel.winner["kind"] == "learned" and isinstance(sel.rule, LearnedDeferral)
    assert sel.winner["vs_best_signal"] > 2 * sel.winner["vs_best_signal_se"]
    assert sel.rule.n_samples_fit_ == 200  # re-fitted on the whole fit split
    assert sel.rule.selection_["winner"] == sel.winner["candidate"]
    signals = {r["candidate"] for r in sel.rows if r["kind"] == "signal"}
    assert {"margin", "chow_sum", "chow_average", "entropy", "chow_quantile(alpha=0)", "chow_quantile(alpha=0.5)"} <= signals


def test_selection_errors_are_clear():
    gens, ok = combined_task(20, seed=0)
    with pytest.raises(ConfigurationError, match="too few"):
        select_rule(gens[:6], ok[:6], np.ones(6), cv=5)
    with pytest.raises(ConfigurationError, match="cv must be"):
        select_rule(gens, ok, np.ones_like(ok), cv=1)
    with pytest.raises(ConfigurationError, match="unknown signals"):
        select_rule(gens, ok, np.ones_like(ok), cv=2, signals=["vibes"])
    with pytest.raises(ConfigurationError, match="model"):
        select_rule(gens, ok, np.ones_like(ok), cv=2, learned=[{"model": "forest"}])


def test_a_candidate_that_cannot_be_fitted_is_reported_not_fatal():
    gens, ok = combined_task(60, seed=0)
    # large never better: the large_better target is all 1s, so that candidate fails in every fold
    sel = select_rule(gens, ok, np.zeros_like(ok), cv=3, learned=[{"model": "logistic", "target": "large_better"}])
    failed = [r for r in sel.rows if r["auc_df"] is None]
    assert len(failed) == 1 and "training labels" in failed[0]["error"] and sel.winner["kind"] == "signal"


def test_learned_grid_crosses_models_and_targets():
    grid = learned_grid(["hgb"], ("small_correct", "quality_gap"), monotone=False)
    assert {g["model"] for g in grid} == {"hgb"} and {g["target"] for g in grid} == {"small_correct", "quality_gap"}
    assert all(g["monotone"] is False for g in grid) and len(grid) == 4


@pytest.mark.parametrize("target", ["small_correct", "quality_gap"])
def test_saved_trees_score_exactly_like_the_fitted_sklearn_model(tmp_path, target):
    gens, ok = combined_task(150, seed=3)
    large = np.ones_like(ok)
    rule = LearnedDeferral(model="hgb", target=target, n_trees=30).fit_generations(gens, deferral_labels(ok, large, target))
    X = rule.features(gens)
    expected = rule.estimator_.predict_proba(X)[:, 1] if target != "quality_gap" else -rule.estimator_.predict(X)
    loaded = load_rule(rule.save(tmp_path / "hgb.json"))
    assert loaded.estimator_ is None and loaded.trees_ is not None
    np.testing.assert_allclose(loaded.predict_confidence(X), expected, rtol=1e-12, atol=1e-12)
    assert loaded(gens[0]) == pytest.approx(float(expected[0]), abs=1e-12)


def test_monotone_trees_never_lower_confidence_when_a_token_gets_more_likely():
    gens, ok = combined_task(200, seed=4)
    rule = LearnedDeferral(model="hgb", n_trees=40).fit_generations(gens, ok)
    X = rule.features(gens)
    lifted = X.copy()
    logprob_cols = [i for i, n in enumerate(rule.feature_names_) if n.startswith(("quantile", "chow"))]
    lifted[:, logprob_cols] += 0.3
    assert (rule.predict_confidence(lifted) >= rule.predict_confidence(X) - 1e-12).all()


def test_signal_rule_file_round_trips_and_works_as_a_scorer_in_a_cascade(tmp_path):
    gens, ok = entropy_task(80, seed=0)
    sel = select_rule(gens, ok, np.ones_like(ok), cv=4, learned=LOGISTIC)
    path = sel.rule.save(tmp_path / "rule.json")
    loaded = LearnedDeferral.load(path)  # the loader every rule_file user calls
    assert isinstance(loaded, SignalRule) and isinstance(loaded, Scorer)
    assert loaded.name == "entropy" and loaded.selection["table"] == json.loads(json.dumps(sel.rows))
    assert [loaded(g) for g in gens[:5]] == [sel.rule(g) for g in gens[:5]]
    rule = ThresholdRule(loaded, -0.5)

    def run(confidence: float):
        return Cascade([ScriptedModel("Paris", confidence=confidence, top_k=4), ScriptedModel("Paris")], rules=rule).invoke("Q")

    assert run(0.99).tier == 0 and run(0.3).tier == 1


def test_signal_rule_keeps_quantile_alpha_and_margin_labels(tmp_path):
    rule = load_rule(SignalRule("chow_quantile", {"alpha": 0.1}).save(tmp_path / "q.json"))
    assert rule.name == "chow_quantile(alpha=0.1)" and rule.score_range == (-math.inf, 0.0)
    margin = load_rule(SignalRule("margin", {"labels": ["yes", "no"]}).save(tmp_path / "m.json"))
    assert margin.first_step_only and margin.labels == ("yes", "no") and ThresholdRule(margin, 0.2).first_step_tokens == ("yes", "no")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"format": "llm-cascade/signal-rule", "format_version": 1, "signal": "vibes"}, "'signal' must be one of"),
        ({"format": "llm-cascade/signal-rule", "format_version": 2, "signal": "margin"}, "format_version 2"),
        ({"format": "llm-cascade/signal-rule", "format_version": True, "signal": "margin"}, "format_version True"),
        ({"format": "llm-cascade/signal-rule", "format_version": 1, "signal": "chow_quantile", "params": {"alpha": 3}},
         "invalid signal parameters"),
        ({"format": "llm-cascade/signal-rule", "format_version": 1, "signal": "margin", "extra": 1}, "unknown fields"),
        ({"format": "llm-cascade/signal-rule", "format_version": 1, "signal": "margin", "params": []}, "must be objects"),
        ([1, 2], "not a rule file"),
    ],
)
def test_bad_signal_rule_files_raise_rule_file_error(tmp_path, data, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(RuleFileError, match=message):
        load_rule(path)


@pytest.fixture(scope="module")
def tree_rule_dict():
    gens, ok = combined_task(120, seed=5)
    return LearnedDeferral(model="hgb", n_trees=5).fit_generations(gens, ok).to_dict()


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.pop("trees"), "'trees' must be a non-empty list"),
        (lambda d: d["trees"]["trees"][0]["feature"].__setitem__(0, 99), "feature outside"),
        (lambda d: d["trees"]["trees"][0]["left"].__setitem__(0, 0), "child links"),
        (lambda d: d["trees"]["trees"][0].pop("value"), "exactly the fields"),
        (lambda d: d["trees"].__setitem__("baseline", "x"), "'baseline'"),
        (lambda d: d.__setitem__("format_version", 1), "format_version 2"),
        (lambda d: d["layers"].append({"weight": [[1.0]], "bias": [0.0]}), "no 'layers'"),
    ],
)
def test_bad_tree_rule_files_raise_rule_file_error(tmp_path, tree_rule_dict, mutate, message):
    data = json.loads(json.dumps(tree_rule_dict))
    mutate(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(RuleFileError, match=message):
        load_rule(path)


def test_version_1_learned_rule_files_still_load(tmp_path):
    gens, ok = combined_task(60, seed=6)
    rule = LearnedDeferral().fit_generations(gens, ok)
    data = rule.to_dict()
    data["format_version"] = 1
    for new in ("n_trees", "learning_rate", "max_leaf_nodes", "min_samples_leaf", "monotone"):
        del data["params"][new]
    path = tmp_path / "v1.json"
    path.write_text(json.dumps(data))
    assert load_rule(path)(gens[0]) == rule(gens[0])


def test_cascade_serve_rule_file_accepts_a_signal_rule_file(tmp_path):
    from cascade_core.serve.build import build_rule
    from cascade_core.serve.config import RuleConfig

    path = SignalRule("chow_quantile", {"alpha": 0.0}).save(tmp_path / "rule.json")
    rule = build_rule(RuleConfig(signal=None, rule_file=str(path), threshold=-1.0))
    assert rule.scorer.name == "chow_quantile(alpha=0)"
    sure = Generation("x", (_step("a", 0.9, [0.05]),))
    unsure = Generation("x", (_step("a", 0.2, [0.05]),))
    assert rule.decide(sure).defer is False and rule.decide(unsure).defer is True


def test_tree_rule_files_must_not_carry_a_standardisation(tmp_path, tree_rule_dict):
    data = json.loads(json.dumps(tree_rule_dict))
    data["scale"][0] = 2.0
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(RuleFileError, match="not standardised"):
        load_rule(path)
