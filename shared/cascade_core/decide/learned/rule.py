"""Learned post-hoc deferral (paper A, "Post-Hoc-Quantile" / "Post-Hoc-Embed").

A small classifier over token-level features of the small model's generation predicts whether the
small answer is good enough to keep. The features of one :class:`~cascade_core.types.Generation`:

- the α-quantiles of its per-token log-probs for α ∈ {0, 0.1, …, 1} (:func:`~cascade_core.decide.signals.quantile_features`),
- Chow-Sum and Chow-Average, the output length (tokens),
- the first-token margin p(top1) − p(top2) (paper B; among label first-tokens for classification),
- optionally the small model's pooled embedding (``use_embedding=True``; the backend must record it).

:class:`LearnedDeferral` follows the scikit-learn estimator contract (hyper-parameters stored
unchanged by ``__init__``, ``fit(X, y)`` returns ``self``, fitted state in attributes ending in
``_``, :class:`~cascade_core.errors.NotFittedError` before ``fit``, ``get_params``/``set_params``)
and is a :class:`~cascade_core.decide.scorers.Scorer`: its score is the estimated probability that the
small answer is good (higher = more confident), so ``ThresholdRule(learned, threshold)`` plugs it
into any cascade. scikit-learn is needed to *fit* only; a saved rule scores with numpy alone.
Rules are saved as JSON with a format version — never pickle.

Example:
    >>> import numpy as np
    >>> from cascade_core.types import Generation, TokenStep
    >>> def gen(lps):
    ...     return Generation("x", tuple(TokenStep(f"t{i}", lp) for i, lp in enumerate(lps)))
    >>> gens = [gen([-0.05, -0.1]), gen([-2.5, -3.0]), gen([-0.1, -0.02]), gen([-3.0, -1.9])] * 5
    >>> rule = LearnedDeferral().fit_generations(gens, [1, 0, 1, 0] * 5)
    >>> bool(rule(gen([-0.05, -0.05])) > 0.5 > rule(gen([-2.8, -2.2])))
    True
"""

from __future__ import annotations

import inspect
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from cascade_core.decide.learned.features import (
    BASE_FEATURE_NAMES,
    TARGETS,
    deferral_labels,
    generation_features,
)
from cascade_core.decide.learned.fitting import Layers, check_xy, fit_dense, fit_trees
from cascade_core.decide.learned.persistence import (
    FORMAT_NAME,
    FORMAT_VERSION,
    READABLE_VERSIONS,
    learned_rule_from_dict,
    learned_rule_to_dict,
)
from cascade_core.decide.rule_file import MAX_RULE_FILE_BYTES
from cascade_core.errors import ConfigurationError, NotFittedError, require
from cascade_core.types import Generation

__all__ = [
    "BASE_FEATURE_NAMES",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "MAX_RULE_FILE_BYTES",
    "READABLE_VERSIONS",
    "LearnedDeferral",
    "TARGETS",
    "deferral_labels",
    "generation_features",
]

MODELS = ("logistic", "mlp", "hgb")


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return np.where(z >= 0, 1.0 / (1.0 + np.exp(-np.abs(z))), np.exp(-np.abs(z)) / (1.0 + np.exp(-np.abs(z))))


class LearnedDeferral:
    """Post-hoc learned deferral rule: a classifier over token-uncertainty features (paper A).

    Args:
        model: ``"logistic"`` (logistic regression; ridge regression for ``quality_gap``),
            ``"mlp"`` (one hidden ReLU layer of ``hidden_units``) or ``"hgb"`` (scikit-learn's
            histogram gradient-boosted trees, exported to JSON and evaluated with numpy).
        target: What ``y`` means, one of :data:`TARGETS` (see :func:`deferral_labels`).
        use_embedding: Append the small model's pooled embedding to the features ("Post-Hoc-Embed").
        margin_labels: Class-label first tokens for the first-token margin feature (classification).
        C: Inverse L2 regularisation strength of the logistic / ridge model.
        alpha: L2 penalty of the MLP.
        hidden_units: Width of the MLP's hidden layer.
        max_iter: Optimiser iteration cap.
        random_state: Seed of the MLP's initialisation / the trees' subsampling.
        n_trees: Boosting iterations (``hgb``).
        learning_rate: Shrinkage of each tree (``hgb``).
        max_leaf_nodes: Leaves per tree (``hgb``).
        min_samples_leaf: Fewest training examples in a leaf (``hgb``).
        monotone: ``hgb``: the confidence may only rise with every log-prob feature (quantiles,
            Chow-Sum/Average) and the margin — paper A's prior; length and embedding are free.
        embedding_components: With ``use_embedding`` (``logistic`` / ``mlp``): the embedding enters
            as its first k principal components on the fit set (a regulariser for few examples); the
            projection is folded into the first layer, so the saved rule reads the full embedding.

    Fitted attributes: ``feature_names_``, ``n_features_in_``, ``mean_``, ``scale_`` (standardisation),
    ``layers_`` (list of ``(weight, bias)`` arrays; empty for ``hgb``), ``trees_`` (the exported
    trees of ``hgb``, else ``None``), ``n_samples_fit_``, ``estimator_`` (the scikit-learn model;
    ``None`` after :meth:`load`), ``selection_`` (the cross-validated comparison that chose this
    rule, see :mod:`cascade_core.evaluation.rule_selection`; ``None`` when it was fitted directly).

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> X = rng.normal(size=(200, 3)); y = (X[:, 0] > 0).astype(int)
        >>> rule = LearnedDeferral(model="logistic").fit(X, y)
        >>> round(rule.score(X, y), 1)
        1.0
        >>> rule.get_params()["model"]
        'logistic'
    """

    first_step_only: bool = False
    min_top_k: int = 0  # the margin feature falls back to a bound when a step has < 2 alternatives

    def __init__(
        self,
        model: str = "logistic",
        target: str = "small_correct",
        use_embedding: bool = False,
        margin_labels: Sequence[str] | None = None,
        C: float = 1.0,  # noqa: N803 - scikit-learn's name
        alpha: float = 1e-3,
        hidden_units: int = 32,
        max_iter: int = 1000,
        random_state: int = 0,
        n_trees: int = 100,
        learning_rate: float = 0.1,
        max_leaf_nodes: int = 8,
        min_samples_leaf: int = 10,
        monotone: bool = True,
        embedding_components: int | None = None,
    ) -> None:
        self.model = model
        self.target = target
        self.use_embedding = use_embedding
        self.margin_labels = margin_labels
        self.C = C
        self.alpha = alpha
        self.hidden_units = hidden_units
        self.max_iter = max_iter
        self.random_state = random_state
        self.n_trees = n_trees
        self.learning_rate = learning_rate
        self.max_leaf_nodes = max_leaf_nodes
        self.min_samples_leaf = min_samples_leaf
        self.monotone = monotone
        self.embedding_components = embedding_components
        self._validate_params()

    # -- scikit-learn contract -------------------------------------------------------------------
    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p for p in sig.parameters if p != "self"]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Hyper-parameters as a dict (scikit-learn contract)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> LearnedDeferral:
        """Set hyper-parameters (scikit-learn contract); unknown names raise ``ConfigurationError``."""
        valid = self._param_names()
        for name, value in params.items():
            if name not in valid:
                raise ConfigurationError(f"unknown parameter {name!r} for LearnedDeferral; allowed: {valid}")
            setattr(self, name, value)
        self._validate_params()
        return self

    def _validate_params(self) -> None:
        if self.model not in MODELS:
            raise ConfigurationError(f"LearnedDeferral.model must be one of {list(MODELS)}, got {self.model!r}")
        if self.target not in TARGETS:
            raise ConfigurationError(f"LearnedDeferral.target must be one of {list(TARGETS)}, got {self.target!r}")
        for name in ("C", "alpha", "learning_rate"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 or math.isinf(value):
                raise ConfigurationError(f"LearnedDeferral.{name} must be a positive finite number, got {value!r}")
        for name in ("hidden_units", "max_iter", "n_trees", "min_samples_leaf"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigurationError(f"LearnedDeferral.{name} must be a positive int, got {value!r}")
        if isinstance(self.max_leaf_nodes, bool) or not isinstance(self.max_leaf_nodes, int) or self.max_leaf_nodes < 2:
            raise ConfigurationError(f"LearnedDeferral.max_leaf_nodes must be an int >= 2, got {self.max_leaf_nodes!r}")
        if not isinstance(self.monotone, bool):
            raise ConfigurationError(f"LearnedDeferral.monotone must be True or False, got {self.monotone!r}")
        k = self.embedding_components
        if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1 or not self.use_embedding or self.model == "hgb"):
            raise ConfigurationError(
                f"LearnedDeferral.embedding_components must be None or a positive int with use_embedding=True and "
                f"model 'logistic' or 'mlp', got {k!r} (use_embedding={self.use_embedding}, model={self.model!r})"
            )
        if self.margin_labels is not None and len({str(x).strip().casefold() for x in self.margin_labels}) < 2:
            raise ConfigurationError(f"LearnedDeferral.margin_labels needs >= 2 distinct labels, got {self.margin_labels!r}")

    def __repr__(self) -> str:
        defaults = {p.name: p.default for p in inspect.signature(type(self).__init__).parameters.values()}
        changed = [f"{k}={v!r}" for k, v in self.get_params().items() if v != defaults.get(k)]
        return f"LearnedDeferral({', '.join(changed)})"

    # -- Scorer protocol ---------------------------------------------------------------------------
    @property
    def name(self) -> str:
        """Readable name recorded in cascade decisions, e.g. ``learned(logistic)``."""
        suffix = "+embed" if self.use_embedding else ""
        target = "" if self.target == "small_correct" else f", {self.target}"
        return f"learned({self.model}{suffix}{target})"

    @property
    def score_range(self) -> tuple[float, float]:
        """``[0, 1]`` (a probability) for the binary targets, the real line for ``quality_gap``."""
        return (0.0, 1.0) if self.target != "quality_gap" else (-math.inf, math.inf)

    @property
    def needs_embedding(self) -> bool:
        """True when the rule reads the small model's pooled embedding (Post-Hoc-Embed); a cascade
        then has its small tier record it (see :func:`cascade_core.engine.tier.record_embeddings`)."""
        return bool(self.use_embedding)

    @property
    def embedding_dim(self) -> int | None:
        """Width of the embedding the fitted rule reads (None when it reads none, or is not fitted)."""
        if not self.use_embedding or not hasattr(self, "n_features_in_"):
            return None
        return int(self.n_features_in_) - len(BASE_FEATURE_NAMES)

    def __call__(self, generation: Generation) -> float:
        """Score one generation: estimated probability that the small answer is good."""
        return float(self.predict_confidence(self.features([generation]))[0])

    # -- features ----------------------------------------------------------------------------------
    def features(self, generations: Sequence[Generation]) -> np.ndarray:
        """The feature matrix ``(n, d)`` of generations (see :func:`generation_features`)."""
        rows = [
            generation_features(g, use_embedding=self.use_embedding, margin_labels=self.margin_labels)
            for g in generations
        ]
        if not rows:
            return np.zeros((0, len(BASE_FEATURE_NAMES)))
        sizes = {r.size for r in rows}
        if len(sizes) != 1:
            raise ConfigurationError(f"generations give feature vectors of different sizes {sorted(sizes)} (embedding sizes differ?)")
        return np.vstack(rows)

    # -- fitting -----------------------------------------------------------------------------------
    def fit_generations(self, generations: Sequence[Generation], labels: ArrayLike) -> LearnedDeferral:
        """Fit on generations and their targets (build them with :func:`deferral_labels`)."""
        return self.fit(self.features(generations), labels)

    def fit(self, X: ArrayLike, y: ArrayLike) -> LearnedDeferral:  # noqa: N803 - scikit-learn's name
        """Fit the classifier (regressor for ``quality_gap``) on features ``X`` and targets ``y``."""
        self._validate_params()
        X_arr, y_arr = check_xy(X, y, self.target)
        require("sklearn", "eval", purpose="fitting a learned rule")
        regression = self.target == "quality_gap"
        d = X_arr.shape[1]
        self.selection_: dict[str, Any] | None = None
        self.trees_: dict[str, Any] | None = None
        if self.model == "hgb":
            self.estimator_, self.trees_ = fit_trees(
                X_arr, y_arr, regression=regression, n_trees=self.n_trees, learning_rate=self.learning_rate,
                max_leaf_nodes=self.max_leaf_nodes, min_samples_leaf=self.min_samples_leaf,
                monotonic_cst=self.monotonic_constraints(d), random_state=self.random_state,
            )
            self.mean_, self.scale_ = np.zeros(d), np.ones(d)
            self.layers_: Layers = []
        else:
            self.estimator_, self.mean_, self.scale_, self.layers_ = fit_dense(
                X_arr, y_arr, model=self.model, regression=regression, C=self.C, alpha=self.alpha,
                hidden_units=self.hidden_units, max_iter=self.max_iter, random_state=self.random_state,
                reduce=None if self.embedding_components is None else (len(BASE_FEATURE_NAMES), self.embedding_components),
            )
        self.n_features_in_, self.feature_names_, self.n_samples_fit_ = d, self._feature_names(d), X_arr.shape[0]
        return self

    def monotonic_constraints(self, d: int) -> list[int]:
        """Per-feature monotonic constraints of ``hgb`` (+1: confidence rises with the feature)."""
        sign = -1 if self.target == "quality_gap" else 1  # the regressor predicts the gap, not the confidence
        base = [0 if name == "length" else sign for name in BASE_FEATURE_NAMES]
        if not self.monotone or d < len(base):
            return [0] * d
        return base + [0] * (d - len(base))

    def _feature_names(self, d: int) -> list[str]:
        names = list(BASE_FEATURE_NAMES)
        if len(names) == d:
            return names
        if self.use_embedding and d > len(names):
            return names + [f"embedding_{i}" for i in range(d - len(names))]
        return [f"x{i}" for i in range(d)]

    # -- prediction --------------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "layers_"):
            raise NotFittedError("this LearnedDeferral is not fitted yet; call fit()/fit_generations() or load()")

    def _forward(self, X: ArrayLike) -> np.ndarray:  # noqa: N803
        self._check_fitted()
        X_arr = np.asarray(X, dtype=np.float64)
        if X_arr.ndim == 1:
            X_arr = X_arr.reshape(1, -1)
        if X_arr.shape[1] != self.n_features_in_:
            raise ConfigurationError(f"X has {X_arr.shape[1]} features, the rule was fitted on {self.n_features_in_}")
        if self.trees_ is not None:
            from cascade_core.decide.learned.trees import predict_raw

            return predict_raw(self.trees_, X_arr)
        h = (X_arr - self.mean_) / self.scale_
        for i, (weight, bias) in enumerate(self.layers_):
            h = h @ weight + bias
            if i < len(self.layers_) - 1:
                h = np.maximum(h, 0.0)
        return h[:, 0]

    def predict_confidence(self, X: ArrayLike) -> np.ndarray:  # noqa: N803
        """Deferral scores (higher = keep the small answer): ``P(good)``, or ``−gap`` for ``quality_gap``."""
        out = self._forward(X)
        return -out if self.target == "quality_gap" else _sigmoid(out)

    def predict_proba(self, X: ArrayLike) -> np.ndarray:  # noqa: N803
        """``(n, 2)`` class probabilities ``[P(y=0), P(y=1)]`` (binary targets only)."""
        if self.target == "quality_gap":
            raise ConfigurationError("predict_proba is not defined for target='quality_gap' (a regression)")
        p = self.predict_confidence(X)
        return np.column_stack([1.0 - p, p])

    def predict(self, X: ArrayLike) -> np.ndarray:  # noqa: N803
        """Predicted labels (binary targets) or predicted quality gap (``quality_gap``)."""
        if self.target == "quality_gap":
            return self._forward(X)
        return (self.predict_confidence(X) >= 0.5).astype(int)

    def predict_defer(self, X: ArrayLike, threshold: float = 0.5) -> np.ndarray:  # noqa: N803
        """Boolean array: defer where the confidence is below ``threshold``."""
        return self.predict_confidence(X) < threshold

    def score(self, X: ArrayLike, y: ArrayLike) -> float:  # noqa: N803
        """scikit-learn's ``score``: accuracy (binary targets) or R² (``quality_gap``)."""
        y_arr = np.asarray(y, dtype=np.float64).reshape(-1)
        pred = self.predict(X)
        if self.target != "quality_gap":
            return float(np.mean(pred == y_arr))
        ss_res = float(np.sum((y_arr - pred) ** 2))
        ss_tot = float(np.sum((y_arr - y_arr.mean()) ** 2))
        return 1.0 - ss_res / ss_tot if ss_tot > 0 else 0.0

    # -- persistence (JSON, no pickle; see cascade_core.decide.learned.persistence) ----------------
    def to_dict(self) -> dict[str, Any]:
        """The fitted rule as a JSON-serialisable dict (floats round-trip exactly)."""
        self._check_fitted()
        return learned_rule_to_dict(self)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the fitted rule to a JSON file (parent directories created). Returns the path."""
        from cascade_core.decide.rule_file import write_json_file

        return write_json_file(path, self.to_dict())

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "rule data") -> LearnedDeferral:
        """Rebuild a fitted rule from :meth:`to_dict` output; raises :class:`RuleFileError` if invalid."""
        return learned_rule_from_dict(cls, data, source=source)

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, max_bytes: int = MAX_RULE_FILE_BYTES) -> Any:
        """Load a rule file written by ``cascade fit`` or :meth:`save` (see :func:`cascade_core.decide.rule_file.load_rule`).

        Returns a :class:`LearnedDeferral`, or — when cross-validation in ``cascade fit`` chose a
        single signal — a :class:`~cascade_core.decide.rule_file.SignalRule`; both are scorers usable in a
        :class:`~cascade_core.decide.rules.ThresholdRule`.

        Raises:
            RuleFileError: the file is missing, too large, not JSON (or nested too deeply), not a
                rule, of another format version, inconsistent with the feature extractor, or corrupt.
        """
        from cascade_core.decide.rule_file import load_rule

        return load_rule(path, max_bytes=max_bytes)
