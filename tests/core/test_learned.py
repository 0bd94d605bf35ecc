"""The learned post-hoc deferral rule: estimator contract, what it learns, persistence, cascade use."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from cascade_core import Cascade, ThresholdRule
from cascade_core.decide.learned.rule import (
    BASE_FEATURE_NAMES,
    FORMAT_VERSION,
    LearnedDeferral,
    deferral_labels,
    generation_features,
)
from cascade_core.decide.scorers import Scorer, make_scorer
from cascade_core.errors import ConfigurationError, NotFittedError, RuleFileError
from cascade_core.evaluation.curves import deferral_curve, random_curve
from cascade_core.testing import ScriptedModel
from cascade_core.types import Generation, TokenAlternative, TokenStep


def _gen(logprobs, embedding=None) -> Generation:
    steps = tuple(
        TokenStep(f"t{i}", float(lp), (TokenAlternative(f"t{i}", float(lp)), TokenAlternative("alt", math.log(0.01))))
        for i, lp in enumerate(logprobs)
    )
    return Generation("x", steps, embedding=embedding)


def length_biased_task(n: int, seed: int) -> tuple[list[Generation], np.ndarray]:
    """Correctness is decided by one very uncertain token; output length is independent of it.

    Every token costs a little log-prob, so Chow-Sum mostly measures length, and is a poor deferral
    signal here, while the minimum token log-prob (a quantile feature) carries the answer.
    """
    rng = np.random.default_rng(seed)
    gens, correct = [], []
    for _ in range(n):
        length = int(rng.integers(2, 60))
        lps = -rng.uniform(0.05, 0.5, size=length)
        ok = rng.random() < 0.6
        if not ok:
            lps[rng.integers(length)] = -rng.uniform(1.5, 3.0)
        if rng.random() < 0.1:  # label noise: the signal is informative, not perfect
            ok = not ok
        gens.append(_gen(lps))
        correct.append(int(ok))
    return gens, np.array(correct)


@pytest.fixture(scope="module")
def task():
    train = length_biased_task(400, seed=1)
    test = length_biased_task(400, seed=2)
    return train, test


def test_learned_rule_beats_length_biased_chow_sum_on_held_out_data(task):
    (train_g, train_y), (test_g, test_y) = task
    rule = LearnedDeferral().fit_generations(train_g, train_y)
    large = np.ones_like(test_y)  # the large model is always right: quality gain = 1 - small
    learned = deferral_curve([rule(g) for g in test_g], test_y, large)
    chow_sum = deferral_curve([make_scorer("chow_sum")(g) for g in test_g], test_y, large)
    rand = random_curve(test_y, large)
    assert learned.auc > chow_sum.auc + 0.03
    assert learned.auc > rand.auc + 0.05
    # the same holds for the MLP variant
    mlp = LearnedDeferral(model="mlp", max_iter=2000).fit_generations(train_g, train_y)
    assert deferral_curve([mlp(g) for g in test_g], test_y, large).auc > chow_sum.auc + 0.03


def test_follows_the_estimator_contract():
    sklearn_base = pytest.importorskip("sklearn.base")
    labels = ["A", "B"]
    rule = LearnedDeferral(model="mlp", C=0.5, margin_labels=labels, hidden_units=8)
    assert rule.margin_labels is labels  # stored unchanged
    params = rule.get_params()
    assert params["model"] == "mlp" and params["C"] == 0.5 and params["hidden_units"] == 8
    clone = sklearn_base.clone(rule)
    assert clone.get_params() == params and clone is not rule
    assert rule.set_params(hidden_units=4) is rule and rule.hidden_units == 4
    with pytest.raises(ConfigurationError, match="unknown parameter"):
        rule.set_params(depth=3)
    assert not hasattr(rule, "layers_")


@pytest.mark.parametrize(
    ("params", "field"),
    [({"model": "forest"}, "model"), ({"target": "x"}, "target"), ({"C": 0}, "C"), ({"hidden_units": 0}, "hidden_units")],
)
def test_invalid_hyper_parameters_name_the_field(params, field):
    with pytest.raises(ConfigurationError, match=f"LearnedDeferral.{field}"):
        LearnedDeferral(**params)


def test_not_fitted_raises_before_fit():
    rule = LearnedDeferral()
    with pytest.raises(NotFittedError, match="not fitted"):
        rule(_gen([-0.1]))
    with pytest.raises(NotFittedError):
        rule.predict_confidence(np.zeros((1, len(BASE_FEATURE_NAMES))))
    with pytest.raises(NotFittedError):
        rule.save("never-written.json")


def test_fit_returns_self_and_sets_fitted_attributes(task):
    (train_g, train_y), _ = task
    rule = LearnedDeferral()
    assert rule.fit_generations(train_g, train_y) is rule
    assert rule.n_features_in_ == len(BASE_FEATURE_NAMES) == len(rule.feature_names_)
    assert rule.n_samples_fit_ == len(train_g)
    proba = rule.predict_proba(rule.features(train_g[:5]))
    assert proba.shape == (5, 2) and np.allclose(proba.sum(1), 1.0)
    assert 0.0 <= rule(train_g[0]) <= 1.0


def test_is_a_scorer_usable_in_threshold_rules_and_cascades(task):
    (train_g, train_y), _ = task
    rule = LearnedDeferral().fit_generations(train_g, train_y)
    assert isinstance(rule, Scorer) and rule.first_step_only is False
    threshold_rule = ThresholdRule(rule, 0.5)
    confident, unsure = _gen([-0.05, -0.1, -0.05]), _gen([-0.05, -5.0, -0.05])
    assert threshold_rule.decide(confident).defer is False
    assert threshold_rule.decide(unsure).defer is True
    assert "learned(logistic)" in threshold_rule.decide(unsure).reason
    def run(token_confidence: float):
        small = ScriptedModel("Paris is the capital city", confidence=0.95, token_confidence=token_confidence)
        return Cascade([small, ScriptedModel("Paris")], rules=ThresholdRule(rule, 0.5)).invoke("Capital of France?")

    kept, deferred = run(0.95), run(0.1)  # later tokens: log-prob -0.05 vs -2.3 (an uncertain answer)
    assert kept.tier == 0 and kept.decision.signal == rule.name
    assert deferred.tier == 1 and deferred.decision.score < 0.5
    with pytest.raises(ConfigurationError, match="outside"):
        ThresholdRule(rule, 1.5)  # a probability threshold must be in [0, 1]


def test_training_labels_must_have_both_classes():
    with pytest.raises(ConfigurationError, match="both good and bad"):
        LearnedDeferral().fit_generations([_gen([-0.1]), _gen([-0.2])], [1, 1])
    with pytest.raises(ConfigurationError, match="binary labels"):
        LearnedDeferral().fit(np.zeros((2, 3)), [0.5, 1.0])


def test_embedding_features_need_an_embedding():
    with pytest.raises(ConfigurationError, match="record_embedding"):
        LearnedDeferral(use_embedding=True).features([_gen([-0.1])])
    emb = np.arange(4.0)
    assert generation_features(_gen([-0.1], emb), use_embedding=True).size == len(BASE_FEATURE_NAMES) + 4


def test_deferral_labels_targets():
    small, large = np.array([1, 0, 0, 1]), np.array([1, 1, 0, 0])
    assert deferral_labels(small, large, "small_correct").tolist() == small.tolist()
    # defer-worthy = small wrong and large right -> label 0 only for the second example
    assert deferral_labels(small, large, "large_better").tolist() == [1, 0, 1, 1]
    assert deferral_labels(small, large, "quality_gap").tolist() == (large - small).tolist()
    with pytest.raises(ConfigurationError, match="large model"):
        deferral_labels(small, None, "large_better")


def test_quality_gap_regression_scores_negated_gap(task):
    (train_g, train_y), _ = task
    gap = deferral_labels(train_y, np.ones_like(train_y), "quality_gap")
    rule = LearnedDeferral(target="quality_gap").fit_generations(train_g, gap)
    assert rule.score_range == (-math.inf, math.inf)
    X = rule.features(train_g[:10])
    assert np.allclose(rule.predict_confidence(X), -rule.predict(X))
    with pytest.raises(ConfigurationError, match="regression"):
        rule.predict_proba(X)


@pytest.mark.parametrize(
    "params",
    [{}, {"model": "mlp", "hidden_units": 6}, {"target": "quality_gap"}, {"use_embedding": True, "C": 0.1}],
)
def test_save_load_round_trip_gives_identical_scores(tmp_path, task, params):
    (train_g, train_y), (test_g, _) = task
    rng = np.random.default_rng(0)
    if params.get("use_embedding"):
        train_g = [_gen(g.logprobs, rng.normal(size=5)) for g in train_g]
        test_g = [_gen(g.logprobs, rng.normal(size=5)) for g in test_g]
    y = deferral_labels(train_y, np.ones_like(train_y), params.get("target", "small_correct"))
    rule = LearnedDeferral(**params).fit_generations(train_g, y)
    path = rule.save(tmp_path / "sub" / "rule.json")
    loaded = LearnedDeferral.load(path)
    assert loaded.get_params() == rule.get_params()
    assert loaded.estimator_ is None and loaded.feature_names_ == rule.feature_names_
    X = rule.features(test_g)
    np.testing.assert_array_equal(loaded.predict_confidence(X), rule.predict_confidence(X))
    assert [loaded(g) for g in test_g[:20]] == [rule(g) for g in test_g[:20]]
    assert json.loads(path.read_text())["format_version"] == FORMAT_VERSION


def test_loads_with_margin_labels_and_keeps_them(tmp_path):
    gens = [_gen([-0.1]), _gen([-3.0])] * 5
    rule = LearnedDeferral(margin_labels=("t0", "alt")).fit_generations(gens, [1, 0] * 5)
    loaded = LearnedDeferral.load(rule.save(tmp_path / "r.json"))
    assert list(loaded.margin_labels) == ["t0", "alt"]
    assert loaded(gens[0]) == rule(gens[0])


@pytest.fixture()
def saved_rule(tmp_path):
    gens = [_gen([-0.1]), _gen([-3.0])] * 5
    return LearnedDeferral().fit_generations(gens, [1, 0] * 5).save(tmp_path / "rule.json")


def test_missing_rule_file_raises_rule_file_error(tmp_path):
    with pytest.raises(RuleFileError, match="does not exist"):
        LearnedDeferral.load(tmp_path / "nope.json")


def test_corrupt_rule_file_raises_rule_file_error(saved_rule):
    saved_rule.write_text(saved_rule.read_text()[:-40])
    with pytest.raises(RuleFileError, match="not valid JSON"):
        LearnedDeferral.load(saved_rule)


def test_wrong_version_raises_rule_file_error(saved_rule):
    data = json.loads(saved_rule.read_text())
    data["format_version"] = FORMAT_VERSION + 1
    saved_rule.write_text(json.dumps(data))
    with pytest.raises(RuleFileError, match="format_version"):
        LearnedDeferral.load(saved_rule)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.pop("layers"), "corrupt"),
        (lambda d: d["mean"].pop(), "shapes"),
        (lambda d: d["layers"][0]["weight"].pop(), "layer shapes"),
        (lambda d: d.update(format="something-else"), "not a rule file"),
        (lambda d: d["params"].update(model="forest"), "model"),
    ],
)
def test_inconsistent_rule_file_raises_rule_file_error(saved_rule, mutate, message):
    data = json.loads(saved_rule.read_text())
    mutate(data)
    saved_rule.write_text(json.dumps(data))
    with pytest.raises((RuleFileError, ConfigurationError), match=message):
        LearnedDeferral.load(saved_rule)
