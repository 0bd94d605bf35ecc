"""Fitting a :class:`~cascade_core.decide.learned.rule.LearnedDeferral`: checks of ``X, y`` and the
scikit-learn fits, returned as plain numpy arrays (the rule scores with numpy alone afterwards).

scikit-learn is needed here only (``pip install 'llm-cascade[eval]'``).

Example:
    >>> import numpy as np
    >>> X, y = check_xy([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1], "small_correct")
    >>> _, mean, scale, layers = fit_dense(X, y, model="logistic", regression=False, C=1.0, alpha=1e-3,
    ...                                    hidden_units=4, max_iter=100, random_state=0)
    >>> [w.shape for w, _ in layers]
    [(1, 1)]
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from cascade_core.errors import ConfigurationError, require

__all__ = ["Layers", "check_xy", "embedding_projection", "fit_dense", "fit_trees"]

#: ``(weight, bias)`` per dense layer; ReLU between layers, the last layer's one output is the logit.
Layers = list[tuple[np.ndarray, np.ndarray]]


def check_xy(X: ArrayLike, y: ArrayLike, target: str) -> tuple[np.ndarray, np.ndarray]:  # noqa: N803
    """``X`` as a finite 2-D float matrix and ``y`` as its targets (0/1 ints unless ``quality_gap``)."""
    X_arr = np.asarray(X, dtype=np.float64)
    y_arr = np.asarray(y, dtype=np.float64).reshape(-1)
    if X_arr.ndim != 2:
        raise ConfigurationError(f"X must be a 2-D feature matrix, got shape {X_arr.shape}")
    if X_arr.shape[0] != y_arr.size:
        raise ConfigurationError(f"X has {X_arr.shape[0]} rows but y has {y_arr.size} targets")
    if X_arr.shape[0] < 2:
        raise ConfigurationError("fitting needs at least 2 examples")
    if not np.isfinite(X_arr).all() or not np.isfinite(y_arr).all():
        raise ConfigurationError("X and y must be finite (no NaN or inf)")
    if target == "quality_gap":
        return X_arr, y_arr
    if not np.isin(y_arr, (0.0, 1.0)).all():
        raise ConfigurationError(f"target={target!r} needs binary labels 0/1; build them with deferral_labels()")
    if np.unique(y_arr).size < 2:
        raise ConfigurationError(
            f"all {y_arr.size} training labels are {int(y_arr[0])}: a learned rule needs both good and bad small answers"
        )
    return X_arr, y_arr.astype(int)


def fit_dense(
    X_arr: np.ndarray,  # noqa: N803
    y_arr: np.ndarray,
    *,
    model: str,
    regression: bool,
    C: float,  # noqa: N803 - scikit-learn's name
    alpha: float,
    hidden_units: int,
    max_iter: int,
    random_state: int,
    reduce: tuple[int, int] | None = None,
) -> tuple[Any, np.ndarray, np.ndarray, Layers]:
    """Fit a logistic / ridge (``model="logistic"``) or one-hidden-layer MLP on standardised ``X``.

    ``reduce=(start, k)``: the columns from ``start`` on (the embedding) enter the model as their
    first ``k`` principal components (fitted on these rows, see :func:`embedding_projection`); the
    projection is linear, so it is folded into the first layer and the returned layers act on the
    full standardised ``X`` as usual.
    Returns the scikit-learn estimator, the standardisation ``mean`` and ``scale``, and the layers.
    """
    require("sklearn", "eval", purpose="fitting a learned rule")
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.neural_network import MLPClassifier, MLPRegressor

    mean = X_arr.mean(axis=0)
    scale = X_arr.std(axis=0)
    scale[scale < 1e-12] = 1.0
    Xs = (X_arr - mean) / scale
    projection = None
    if reduce is not None:
        start, k = reduce
        projection = embedding_projection(X_arr[:, start:], scale[start:], k)
        Xs = np.hstack([Xs[:, :start], Xs[:, start:] @ projection])
    if model == "logistic":
        est: Any = Ridge(alpha=1.0 / C) if regression else LogisticRegression(C=C, max_iter=max_iter)
    else:
        kwargs = dict(hidden_layer_sizes=(hidden_units,), alpha=alpha, max_iter=max_iter, random_state=random_state)
        est = MLPRegressor(**kwargs) if regression else MLPClassifier(**kwargs)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(converge|Maximum iterations).*")
        est.fit(Xs, y_arr)
    if model == "logistic":
        weight = np.asarray(est.coef_, dtype=np.float64).reshape(-1, 1)
        bias = np.atleast_1d(np.asarray(est.intercept_, dtype=np.float64)).reshape(-1)
        layers = [(weight, bias)]
    else:
        layers = [
            (np.asarray(w, dtype=np.float64), np.asarray(b, dtype=np.float64).reshape(-1))
            for w, b in zip(est.coefs_, est.intercepts_, strict=True)
        ]
    if projection is not None:
        w0, b0 = layers[0]
        start = w0.shape[0] - projection.shape[1]
        layers[0] = (np.vstack([w0[:start], projection @ w0[start:]]), b0)
    return est, mean, scale, layers


def embedding_projection(E: np.ndarray, scale: np.ndarray, k: int) -> np.ndarray:  # noqa: N803
    """``(d, min(k, rank))`` map from standardised embedding columns (``E`` centred, divided by ``scale``)
    to the first principal components of the raw rows of ``E``, each scaled to unit variance.

    The components are those of the covariance (not the correlation) matrix, so a few high-variance
    directions are kept, and they come out standardised like every other feature.

    >>> E = np.array([[1.0, 1.0], [-1.0, -1.0], [0.5, 0.4]])
    >>> Q = embedding_projection(E, E.std(axis=0), 1)
    >>> z = ((E - E.mean(axis=0)) / E.std(axis=0)) @ Q
    >>> Q.shape, round(float(z.std()), 6)
    ((2, 1), 1.0)
    """
    centred = E - E.mean(axis=0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    rank = int(np.sum(s > 1e-10 * (s[0] if s.size else 0.0)))
    directions = vt[: max(1, min(k, rank))].T
    sd = (centred @ directions).std(axis=0)
    sd[sd < 1e-12] = 1.0
    return np.ascontiguousarray(scale[:, None] * directions / sd)


def fit_trees(
    X_arr: np.ndarray,  # noqa: N803
    y_arr: np.ndarray,
    *,
    regression: bool,
    n_trees: int,
    learning_rate: float,
    max_leaf_nodes: int,
    min_samples_leaf: int,
    monotonic_cst: list[int],
    random_state: int,
) -> tuple[Any, dict[str, Any]]:
    """Fit scikit-learn's histogram gradient-boosted trees; returns the estimator and its JSON export."""
    require("sklearn", "eval", purpose="fitting a learned rule")
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from threadpoolctl import threadpool_limits  # a scikit-learn dependency

    from cascade_core.decide.learned.trees import export_trees

    cls: Any = HistGradientBoostingRegressor if regression else HistGradientBoostingClassifier
    est = cls(
        max_iter=n_trees, learning_rate=learning_rate, max_leaf_nodes=max_leaf_nodes,
        min_samples_leaf=min_samples_leaf, monotonic_cst=monotonic_cst,
        early_stopping=False, random_state=random_state,
    )
    with threadpool_limits(1):  # small data: OpenMP threads only add contention
        est.fit(X_arr, y_arr)
    return est, export_trees(est)
