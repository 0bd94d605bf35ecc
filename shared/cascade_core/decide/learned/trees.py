"""Gradient-boosted trees of a learned deferral rule, as plain JSON and evaluated with numpy.

scikit-learn's :class:`~sklearn.ensemble.HistGradientBoostingClassifier` (and ``…Regressor``) is
fitted as usual; :func:`export_trees` copies its fitted trees (split feature, threshold, which side
missing values go, leaf values) into lists of numbers, and :func:`predict_raw` evaluates them with
numpy alone — the raw score (log-odds for the classifier) that scikit-learn's ``decision_function``
gives, so a saved rule needs neither scikit-learn nor pickle. :func:`check_trees` validates a
loaded export. Numerical (not categorical) features only.

Example:
    >>> import numpy as np
    >>> from sklearn.ensemble import HistGradientBoostingClassifier
    >>> X = np.random.default_rng(0).normal(size=(200, 2)); y = (X[:, 0] > 0).astype(int)
    >>> est = HistGradientBoostingClassifier(max_iter=10).fit(X, y)
    >>> trees = export_trees(est)
    >>> bool(np.allclose(predict_raw(trees, X), est.decision_function(X)))
    True
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cascade_core.errors import ConfigurationError, RuleFileError

__all__ = ["NODE_FIELDS", "check_trees", "export_trees", "predict_raw"]

#: Per-node arrays of an exported tree.
NODE_FIELDS = ("feature", "threshold", "missing_left", "left", "right", "is_leaf", "value")


def export_trees(estimator: Any) -> dict[str, Any]:
    """The fitted trees of a single-output histogram gradient-boosting model as JSON-ready lists."""
    predictors = getattr(estimator, "_predictors", None)
    baseline = getattr(estimator, "_baseline_prediction", None)
    if predictors is None or baseline is None:
        raise ConfigurationError(f"{type(estimator).__name__} is not a fitted HistGradientBoosting model")
    trees = []
    for per_iteration in predictors:
        if len(per_iteration) != 1:
            raise ConfigurationError("only single-output (binary or regression) boosting models can be exported")
        nodes = per_iteration[0].nodes
        if nodes["is_categorical"].any():
            raise ConfigurationError("categorical splits cannot be exported")
        trees.append(
            {
                "feature": nodes["feature_idx"].astype(int).tolist(),
                "threshold": nodes["num_threshold"].astype(float).tolist(),
                "missing_left": nodes["missing_go_to_left"].astype(bool).tolist(),
                "left": nodes["left"].astype(int).tolist(),
                "right": nodes["right"].astype(int).tolist(),
                "is_leaf": nodes["is_leaf"].astype(bool).tolist(),
                "value": nodes["value"].astype(float).tolist(),
            }
        )
    return {"baseline": float(np.asarray(baseline, dtype=np.float64).reshape(-1)[0]), "trees": trees}


def _tree_arrays(tree: dict[str, Any]) -> tuple[np.ndarray, ...]:
    return (
        np.asarray(tree["feature"], dtype=np.int64),
        np.asarray(tree["threshold"], dtype=np.float64),
        np.asarray(tree["missing_left"], dtype=bool),
        np.asarray(tree["left"], dtype=np.int64),
        np.asarray(tree["right"], dtype=np.int64),
        np.asarray(tree["is_leaf"], dtype=bool),
        np.asarray(tree["value"], dtype=np.float64),
    )


def predict_raw(trees: dict[str, Any], X: np.ndarray) -> np.ndarray:  # noqa: N803 - scikit-learn's name
    """Sum of the baseline and every tree's leaf value for each row of ``X`` (``decision_function``)."""
    X = np.asarray(X, dtype=np.float64)
    out = np.full(X.shape[0], float(trees["baseline"]))
    rows = np.arange(X.shape[0])
    for tree in trees["trees"]:
        feature, threshold, missing_left, left, right, is_leaf, value = _tree_arrays(tree)
        node = np.zeros(X.shape[0], dtype=np.int64)
        for _ in range(len(feature)):  # a path is at most as long as the tree has nodes
            active = ~is_leaf[node]
            if not active.any():
                break
            x = X[rows, feature[node]]
            go_left = np.where(np.isnan(x), missing_left[node], x <= threshold[node])
            node = np.where(active, np.where(go_left, left[node], right[node]), node)
        out += value[node]
    return out


def check_trees(data: Any, n_features: int, source: str) -> dict[str, Any]:
    """Validate an exported model read from a file; raises :class:`RuleFileError` naming the problem."""
    if not isinstance(data, dict) or not isinstance(data.get("trees"), list) or not data["trees"]:
        raise RuleFileError(f"{source}: 'trees' must be a non-empty list of trees")
    baseline = data.get("baseline")
    if isinstance(baseline, bool) or not isinstance(baseline, (int, float)) or not np.isfinite(baseline):
        raise RuleFileError(f"{source}: 'baseline' must be a finite number")
    for i, tree in enumerate(data["trees"]):
        if not isinstance(tree, dict) or set(tree) != set(NODE_FIELDS):
            raise RuleFileError(f"{source}: tree {i} must have exactly the fields {list(NODE_FIELDS)}")
        feature, threshold, _, left, right, is_leaf, value = _tree_arrays(tree)
        n = feature.size
        if n == 0 or any(a.shape != (n,) for a in _tree_arrays(tree)):
            raise RuleFileError(f"{source}: tree {i} has node arrays of different lengths")
        inner = ~is_leaf
        if ((feature[inner] < 0) | (feature[inner] >= n_features)).any():
            raise RuleFileError(f"{source}: tree {i} splits on a feature outside 0..{n_features - 1}")
        children = np.concatenate([left[inner], right[inner]])
        inner_idx = np.flatnonzero(inner)
        if ((children <= np.concatenate([inner_idx, inner_idx])) | (children >= n)).any():
            raise RuleFileError(f"{source}: tree {i} has child links that do not point forward inside the tree")
        if not np.isfinite(value[is_leaf]).all() or np.isnan(threshold[inner]).any():
            raise RuleFileError(f"{source}: tree {i} has NaN thresholds or non-finite leaf values")
    return data
