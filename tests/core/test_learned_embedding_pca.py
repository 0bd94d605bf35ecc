"""Post-Hoc-Embed with a PCA-reduced embedding: ``LearnedDeferral(embedding_components=k)``."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cascade_core.decide.learned.features import BASE_FEATURE_NAMES
from cascade_core.decide.learned.fitting import embedding_projection
from cascade_core.decide.learned.rule import LearnedDeferral
from cascade_core.errors import ConfigurationError
from cascade_core.evaluation.rule_selection import select_rule
from cascade_core.types import Generation, TokenAlternative, TokenStep

BASE = len(BASE_FEATURE_NAMES)


def _data(n: int = 120, dim: int = 20, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Base features are noise; the label is carried by the embedding's high-variance first direction."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    emb = rng.normal(0.0, 0.3, (n, dim))
    emb[:, 0] += 3.0 * (y - 0.5)
    return np.hstack([rng.normal(size=(n, BASE)), emb]), y


def _reduced(rule: LearnedDeferral, X: np.ndarray) -> np.ndarray:  # noqa: N803
    """The inputs the scikit-learn estimator saw: standardised base features, embedding PCs of the fit rows."""
    Xs = (X - rule.mean_) / rule.scale_
    Q = embedding_projection(X[:, BASE:], rule.scale_[BASE:], rule.embedding_components)
    return np.hstack([Xs[:, :BASE], Xs[:, BASE:] @ Q])


@pytest.mark.parametrize("model", ["logistic", "mlp"])
def test_pca_is_folded_into_the_first_layer(model, tmp_path):
    X, y = _data()
    rule = LearnedDeferral(model=model, use_embedding=True, embedding_components=3, C=0.5, hidden_units=4).fit(X, y)
    assert rule.layers_[0][0].shape[0] == X.shape[1] == rule.n_features_in_  # reads the full embedding
    expected = rule.estimator_.predict_proba(_reduced(rule, X))[:, 1]
    np.testing.assert_allclose(rule.predict_confidence(X), expected, atol=1e-10)
    assert rule.score(X, y) > 0.9
    loaded = LearnedDeferral.load(rule.save(tmp_path / "rule.json"))
    assert loaded.embedding_components == 3
    np.testing.assert_allclose(loaded.predict_confidence(X), rule.predict_confidence(X), atol=1e-12)


def test_pca_embedding_weights_lie_in_the_component_span():
    X, y = _data()
    rule = LearnedDeferral(use_embedding=True, embedding_components=2).fit(X, y)
    w_emb = rule.layers_[0][0][BASE:, 0]
    Q = embedding_projection(X[:, BASE:], rule.scale_[BASE:], 2)
    basis, _ = np.linalg.qr(Q)
    residual = w_emb - basis @ (basis.T @ w_emb)
    assert np.linalg.norm(residual) < 1e-10 * max(1.0, np.linalg.norm(w_emb))


def test_ridge_target_and_more_components_than_rank():
    X, y = _data(n=12, dim=20)
    gap = y.astype(float) - 0.5
    rule = LearnedDeferral(target="quality_gap", use_embedding=True, embedding_components=50).fit(X, gap)
    assert np.isfinite(rule.predict_confidence(X)).all()
    assert embedding_projection(X[:, BASE:], np.ones(20), 50).shape == (20, 11)  # 12 centred rows have rank 11


@pytest.mark.parametrize(
    "kwargs",
    [
        {"embedding_components": 4},  # no embedding
        {"embedding_components": 4, "use_embedding": True, "model": "hgb"},
        {"embedding_components": 0, "use_embedding": True},
        {"embedding_components": True, "use_embedding": True},
        {"embedding_components": 2.0, "use_embedding": True},
    ],
)
def test_bad_embedding_components_are_rejected(kwargs):
    with pytest.raises(ConfigurationError, match="embedding_components"):
        LearnedDeferral(**kwargs)


def test_select_rule_compares_pca_candidates_by_name():
    rng = np.random.default_rng(1)
    gens, small = [], []
    for i in range(60):
        ok = i % 3 != 0
        lp = math.log(0.6)
        step = TokenStep("a", lp, (TokenAlternative("a", lp), TokenAlternative("b", math.log(0.3))))
        emb = rng.normal(0.0, 0.3, 12)
        emb[0] += 2.0 if ok else -2.0
        gens.append(Generation("a", (step,), embedding=emb))
        small.append(float(ok))
    grid = [{"model": "logistic", "target": "small_correct", "use_embedding": True, "C": 0.3, "embedding_components": k}
            for k in (2, 4)]
    sel = select_rule(gens, small, [1.0] * 60, cv=3, learned=grid, signals=["margin"])
    names = {r["candidate"] for r in sel.rows}
    assert {"learned(logistic+embed/pca2,small_correct,C=0.3)", "learned(logistic+embed/pca4,small_correct,C=0.3)"} <= names
    assert sel.winner["kind"] == "learned"  # every margin is equal; only the embedding separates the answers
    assert sel.rule.embedding_components in (2, 4)


def test_select_rule_fits_quantile_candidates_without_the_embedding():
    """With embedding candidates in the grid, a Post-Hoc-Quantile candidate still reads the 15 base features
    only (it used to be fitted on the embedding columns as well, and its refitted winner could not score)."""
    rng = np.random.default_rng(2)
    gens, small = [], []
    for i in range(60):
        ok = i % 3 != 0
        p1 = float(np.clip((0.75 if ok else 0.6) + rng.normal(0.0, 0.1), 0.3, 0.94))
        step = TokenStep("a", math.log(p1), (TokenAlternative("a", math.log(p1)), TokenAlternative("b", math.log(0.05))))
        gens.append(Generation("a", (step,), embedding=rng.normal(0.0, 1.0, 12)))
        small.append(float(ok))
    grid = [{"model": "logistic", "target": "small_correct", "C": 0.3},
            {"model": "logistic", "target": "small_correct", "C": 0.3, "use_embedding": True}]
    sel = select_rule(gens, small, [1.0] * 60, cv=3, learned=grid, signals=["margin"])
    auc = {r["candidate"]: r["auc_df"] for r in sel.rows}
    assert auc["learned(logistic,small_correct,C=0.3)"] != auc["learned(logistic+embed,small_correct,C=0.3)"]
    for params in grid:
        rule = LearnedDeferral(**params).fit_generations(gens, [int(s) for s in small])
        assert rule.n_features_in_ == BASE + (12 if params.get("use_embedding") else 0)
    if sel.winner["kind"] == "learned":
        assert np.isfinite(sel.rule(gens[0]))
