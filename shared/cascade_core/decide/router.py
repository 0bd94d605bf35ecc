"""A pre-generation router: predicts, before the small model writes a token, whether its answer will be good.

:class:`QueryRouter` is a logistic regression over features known *before* generation — the small
model's pooled prompt embedding (one prefill, no token generated), the prompt length in tokens and
optional user features — fitted on collection caches with the label "the small answer was good".
Its score ``p_good`` is that probability; with a ``threshold`` a request whose ``p_good < threshold``
is routed straight to the large tier (the small model never generates). It is the query-only
baseline of RouteLLM / HybridLLM, and the first stage of the route-then-cascade hybrid
(:mod:`cascade_core.evaluation.routing`).

It follows the same scikit-learn contract and the same dense fit as
:class:`~cascade_core.decide.learned.rule.LearnedDeferral` (:func:`~cascade_core.decide.learned.fitting.fit_dense`,
with the optional PCA of the embedding folded into the weights), and is saved as strict, versioned JSON
(``"format": "llm-cascade/query-router"``), never pickle. scikit-learn is needed to *fit* only.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> emb = rng.normal(size=(200, 4)); tokens = rng.integers(5, 50, size=200)
    >>> good = (emb[:, 0] > 0).astype(int)
    >>> router = QueryRouter(threshold=0.5).fit(emb, tokens, good)
    >>> p = router.predict_good(emb, tokens)
    >>> bool(np.mean((p >= 0.5) == good) > 0.9), router.route_away(p).dtype.name
    (True, 'bool')
"""

from __future__ import annotations

import inspect
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from cascade_core.decide.learned.fitting import check_xy, fit_dense
from cascade_core.decide.rule_file import MAX_RULE_FILE_BYTES, read_rule_json, write_json_file
from cascade_core.errors import ConfigurationError, NotFittedError, RuleFileError, require

__all__ = ["ROUTER_FORMAT_NAME", "ROUTER_FORMAT_VERSION", "QueryRouter", "load_router"]

ROUTER_FORMAT_NAME = "llm-cascade/query-router"
ROUTER_FORMAT_VERSION = 1
_FIELDS = {"format", "format_version", "params", "feature_names", "n_features_in", "n_extra", "embedding_dim",
           "n_samples_fit", "mean", "scale", "layers", "selection"}


def _sigmoid(z: np.ndarray) -> np.ndarray:
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


class QueryRouter:
    """Logistic-regression router over pre-generation features; its score is ``P(small answer good)``.

    Features, in this order: ``log_prompt_tokens`` = log(1 + prompt tokens), the user's ``extra``
    columns, then (``use_embedding``) the small model's pooled prompt embedding. They are
    standardised on the fit set; with ``embedding_components=k`` the embedding enters as its first
    ``k`` principal components (fitted on the fit set, folded into the weights, so the saved router
    still reads the full embedding).

    Args:
        C: Inverse L2 regularisation strength of the logistic regression.
        embedding_components: Project the embedding on its first k principal components (None: all).
        use_embedding: Use the prompt embedding; ``False`` routes on prompt length (and ``extra``)
            alone, which costs no model call at serving time.
        threshold: Route to the large tier when ``p_good < threshold`` (None: the router only scores;
            a route-then-cascade deployment gets it from ``cascade calibrate --router``).
        max_iter: Iteration cap of the optimiser.

    Fitted attributes: ``n_features_in_``, ``n_extra_``, ``embedding_dim_`` (0 without embedding),
    ``feature_names_``, ``mean_``, ``scale_``, ``layers_`` (one ``(weight, bias)``), ``n_samples_fit_``,
    ``selection_`` (the cross-validation that chose ``C`` / components, or ``None``).

    Example:
        >>> import numpy as np, tempfile, pathlib
        >>> tokens = np.array([5, 60, 7, 80, 6, 70] * 5)
        >>> router = QueryRouter(use_embedding=False, threshold=0.5).fit(None, tokens, (tokens < 30).astype(int))
        >>> path = router.save(pathlib.Path(tempfile.mkdtemp()) / "router.json")
        >>> loaded = QueryRouter.load(path)
        >>> loaded.route_away(loaded.predict_good(None, [6, 75])).tolist()
        [False, True]
    """

    def __init__(
        self,
        C: float = 1.0,  # noqa: N803 - scikit-learn's name
        embedding_components: int | None = None,
        use_embedding: bool = True,
        threshold: float | None = None,
        max_iter: int = 1000,
    ) -> None:
        self.C = C
        self.embedding_components = embedding_components
        self.use_embedding = use_embedding
        self.threshold = threshold
        self.max_iter = max_iter
        self._validate_params()

    # -- scikit-learn contract -----------------------------------------------------------------------
    @classmethod
    def _param_names(cls) -> list[str]:
        return [p for p in inspect.signature(cls.__init__).parameters if p != "self"]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Hyper-parameters as a dict (scikit-learn contract)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> QueryRouter:
        """Set hyper-parameters; unknown names raise :class:`ConfigurationError`."""
        valid = self._param_names()
        for name, value in params.items():
            if name not in valid:
                raise ConfigurationError(f"unknown parameter {name!r} for QueryRouter; allowed: {valid}")
            setattr(self, name, value)
        self._validate_params()
        return self

    def _validate_params(self) -> None:
        if isinstance(self.C, bool) or not isinstance(self.C, (int, float)) or not (math.isfinite(self.C) and self.C > 0):
            raise ConfigurationError(f"QueryRouter.C must be a positive finite number, got {self.C!r}")
        k = self.embedding_components
        if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
            raise ConfigurationError(f"QueryRouter.embedding_components must be None or a positive int, got {k!r}")
        if not isinstance(self.use_embedding, bool):
            raise ConfigurationError(f"QueryRouter.use_embedding must be True or False, got {self.use_embedding!r}")
        if k is not None and not self.use_embedding:
            raise ConfigurationError("QueryRouter.embedding_components needs use_embedding=True")
        t = self.threshold
        if t is not None and (isinstance(t, bool) or not isinstance(t, (int, float)) or not 0.0 <= t <= 1.0):
            raise ConfigurationError(f"QueryRouter.threshold must be None or a probability in [0, 1], got {t!r}")
        if isinstance(self.max_iter, bool) or not isinstance(self.max_iter, int) or self.max_iter < 1:
            raise ConfigurationError(f"QueryRouter.max_iter must be a positive int, got {self.max_iter!r}")

    @property
    def needs_embedding(self) -> bool:
        """True when scoring needs the prompt embedding (one small-model prefill per request)."""
        return self.use_embedding

    # -- features --------------------------------------------------------------------------------------
    def features(self, embeddings: ArrayLike | None, prompt_tokens: ArrayLike, extra: ArrayLike | None = None) -> np.ndarray:
        """The ``(n, d)`` feature matrix: ``log1p(prompt_tokens)``, ``extra`` columns, embedding."""
        tokens = np.asarray(prompt_tokens, dtype=np.float64).reshape(-1)
        n = tokens.size
        if not np.isfinite(tokens).all() or (tokens < 0).any():
            raise ConfigurationError("prompt_tokens must be finite, non-negative token counts")
        columns = [np.log1p(tokens)[:, None]]
        if extra is not None:
            x = np.asarray(extra, dtype=np.float64)
            x = x.reshape(-1, 1) if x.ndim == 1 else x
            if x.ndim != 2 or x.shape[0] != n:
                raise ConfigurationError(f"extra must be an (n, k) matrix with n={n} rows, got shape {x.shape}")
            columns.append(x)
        if self.use_embedding:
            if embeddings is None:
                raise ConfigurationError("this QueryRouter uses the prompt embedding (use_embedding=True); pass embeddings")
            e = np.asarray(embeddings, dtype=np.float64)
            e = e.reshape(1, -1) if e.ndim == 1 and n == 1 else e
            if e.ndim != 2 or e.shape[0] != n or e.shape[1] < 1:
                raise ConfigurationError(f"embeddings must be an (n, d) matrix with n={n} rows, got shape {e.shape}")
            columns.append(e)
        X = np.hstack(columns)  # noqa: N806
        if not np.isfinite(X).all():
            raise ConfigurationError("router features must be finite (no NaN or inf in embeddings / extra)")
        return X

    # -- fitting -----------------------------------------------------------------------------------------
    def fit(self, embeddings: ArrayLike | None, prompt_tokens: ArrayLike, y: ArrayLike,
            extra: ArrayLike | None = None) -> QueryRouter:
        """Fit on prompt features and ``y`` (1 = the small tier's answer was good enough, 0 = not)."""
        self._validate_params()
        X, y_arr = check_xy(self.features(embeddings, prompt_tokens, extra), y, "small_correct")  # noqa: N806
        require("sklearn", "eval", purpose="fitting a QueryRouter")
        n_extra = 0 if extra is None else (1 if np.ndim(extra) == 1 else int(np.shape(extra)[1]))
        start = 1 + n_extra
        reduce = None if self.embedding_components is None else (start, self.embedding_components)
        _, self.mean_, self.scale_, self.layers_ = fit_dense(
            X, y_arr, model="logistic", regression=False, C=float(self.C), alpha=0.0, hidden_units=1,
            max_iter=self.max_iter, random_state=0, reduce=reduce,
        )
        self.n_features_in_, self.n_extra_ = X.shape[1], n_extra
        self.embedding_dim_ = X.shape[1] - start
        self.feature_names_ = (["log_prompt_tokens"] + [f"extra_{i}" for i in range(n_extra)]
                               + [f"embedding_{i}" for i in range(self.embedding_dim_)])
        self.n_samples_fit_ = X.shape[0]
        self.selection_: dict[str, Any] | None = None
        return self

    # -- prediction ----------------------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "layers_"):
            raise NotFittedError("this QueryRouter is not fitted yet; call fit() or QueryRouter.load()")

    def predict_good(self, embeddings: ArrayLike | None, prompt_tokens: ArrayLike, extra: ArrayLike | None = None) -> np.ndarray:
        """``P(small answer good)`` per query (higher = keep the query on the small tier)."""
        self._check_fitted()
        if extra is None and self.n_extra_:
            raise ConfigurationError(f"this QueryRouter was fitted with {self.n_extra_} extra feature columns; pass extra")
        X = self.features(embeddings, prompt_tokens, extra)  # noqa: N806
        if X.shape[1] != self.n_features_in_:
            raise ConfigurationError(
                f"router features have {X.shape[1]} columns, the router was fitted on {self.n_features_in_} "
                f"(1 length + {self.n_extra_} extra + {self.embedding_dim_} embedding)"
            )
        weight, bias = self.layers_[0]
        return _sigmoid(((X - self.mean_) / self.scale_) @ weight[:, 0] + bias[0])

    def route_away(self, p_good: ArrayLike) -> np.ndarray:
        """Boolean array: route to the large tier where ``p_good < threshold``."""
        if self.threshold is None:
            raise ConfigurationError("this QueryRouter has no threshold; set threshold= or calibrate one (cascade calibrate --router)")
        return np.asarray(p_good, dtype=np.float64) < self.threshold

    def __repr__(self) -> str:
        fitted = f", fitted on {self.n_samples_fit_}" if hasattr(self, "layers_") else ""
        return f"QueryRouter(C={self.C}, use_embedding={self.use_embedding}, threshold={self.threshold}{fitted})"

    # -- persistence (strict, versioned JSON) ----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The fitted router as a JSON-serialisable dict (floats round-trip exactly)."""
        self._check_fitted()
        weight, bias = self.layers_[0]
        out: dict[str, Any] = {
            "format": ROUTER_FORMAT_NAME, "format_version": ROUTER_FORMAT_VERSION, "params": self.get_params(),
            "feature_names": list(self.feature_names_), "n_features_in": int(self.n_features_in_),
            "n_extra": int(self.n_extra_), "embedding_dim": int(self.embedding_dim_),
            "n_samples_fit": int(self.n_samples_fit_), "mean": self.mean_.tolist(), "scale": self.scale_.tolist(),
            "layers": [{"weight": weight.tolist(), "bias": bias.tolist()}],
        }
        if self.selection_ is not None:
            out["selection"] = self.selection_
        return out

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the fitted router to a JSON file (parent directories created). Returns the path."""
        return write_json_file(path, self.to_dict())

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "router data") -> QueryRouter:
        """Rebuild a fitted router from :meth:`to_dict` output; raises :class:`RuleFileError` naming the problem."""
        if not isinstance(data, dict) or data.get("format") != ROUTER_FORMAT_NAME:
            raise RuleFileError(f"{source} is not a query router (expected \"format\": \"{ROUTER_FORMAT_NAME}\")")
        version = data.get("format_version")
        if isinstance(version, bool) or version != ROUTER_FORMAT_VERSION:
            raise RuleFileError(f"{source} has format_version {version!r}; this llm-cascade reads version {ROUTER_FORMAT_VERSION}")
        unknown = set(data) - _FIELDS
        if unknown:
            raise RuleFileError(f"{source} has unknown fields {sorted(unknown)}")
        try:
            params = dict(data["params"])
            bad = set(params) - set(cls._param_names())
            if bad:
                raise RuleFileError(f"{source} has unknown parameters {sorted(bad)}")
            router = cls(**params)
            d, n_extra, dim = (_count(data[k], k, source) for k in ("n_features_in", "n_extra", "embedding_dim"))
            mean = np.asarray(data["mean"], dtype=np.float64)
            scale = np.asarray(data["scale"], dtype=np.float64)
            layers = data["layers"]
            if not isinstance(layers, list) or len(layers) != 1:
                raise RuleFileError(f"{source}: 'layers' must hold exactly one (logistic) layer")
            weight = np.asarray(layers[0]["weight"], dtype=np.float64)
            bias = np.asarray(layers[0]["bias"], dtype=np.float64)
            names = [str(n) for n in data["feature_names"]]
            n_fit = _count(data["n_samples_fit"], "n_samples_fit", source)
            selection = data.get("selection")
        except RuleFileError:
            raise
        except (ConfigurationError, KeyError, TypeError, ValueError) as err:
            raise RuleFileError(f"{source} is corrupt: {type(err).__name__}: {str(err)[:200]}") from err
        if d != 1 + n_extra + dim or (dim > 0) != router.use_embedding:
            raise RuleFileError(f"{source}: n_features_in={d} is not 1 + n_extra={n_extra} + embedding_dim={dim} "
                                f"(with use_embedding={router.use_embedding})")
        if mean.shape != (d,) or scale.shape != (d,) or weight.shape != (d, 1) or bias.shape != (1,) or len(names) != d:
            raise RuleFileError(f"{source}: inconsistent array shapes for {d} features")
        if not all(np.isfinite(a).all() for a in (mean, scale, weight, bias)):
            raise RuleFileError(f"{source}: weights contain NaN or inf")
        if (scale <= 0).any():
            raise RuleFileError(f"{source}: 'scale' must be positive (a standard deviation)")
        if selection is not None and not isinstance(selection, dict):
            raise RuleFileError(f"{source}: 'selection' must be an object")
        router.mean_, router.scale_, router.layers_ = mean, scale, [(weight, bias)]
        router.n_features_in_, router.n_extra_, router.embedding_dim_ = d, n_extra, dim
        router.feature_names_, router.n_samples_fit_, router.selection_ = names, n_fit, selection
        return router

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, max_bytes: int = MAX_RULE_FILE_BYTES) -> QueryRouter:
        """Load a router file written by :meth:`save` or ``cascade fit --router`` (strict; see :meth:`from_dict`)."""
        return load_router(path, max_bytes=max_bytes)


def _count(value: Any, key: str, source: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise RuleFileError(f"{source}: {key!r} must be a non-negative int, got {value!r}")
    return value


def load_router(path: str | os.PathLike[str], *, max_bytes: int = MAX_RULE_FILE_BYTES) -> QueryRouter:
    """Read a :class:`QueryRouter` file (size limit, JSON, format, version, fields, shapes all checked).

    Raises:
        RuleFileError: missing, too large, not JSON, not a router, another version, or corrupt.
    """
    data, source = read_rule_json(path, max_bytes=max_bytes, kind="router file")
    return QueryRouter.from_dict(data, source=source)
