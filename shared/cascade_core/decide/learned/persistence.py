"""Saving and loading a :class:`~cascade_core.decide.learned.rule.LearnedDeferral` as versioned JSON (never pickle).

:func:`learned_rule_from_dict` is strict: every array shape, the feature count the extractor gives, finite
weights and the format version are checked, and anything else is a :class:`RuleFileError` naming
the problem.

Example:
    >>> import numpy as np
    >>> from cascade_core.decide.learned.rule import LearnedDeferral
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(40, len(BASE_FEATURE_NAMES))); y = (X[:, 0] > 0).astype(int)
    >>> data = learned_rule_to_dict(LearnedDeferral().fit(X, y))
    >>> data["format"], data["format_version"]
    ('llm-cascade/learned-deferral', 2)
    >>> learned_rule_from_dict(LearnedDeferral, data).n_features_in_ == len(BASE_FEATURE_NAMES)
    True
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from cascade_core.decide.learned.features import BASE_FEATURE_NAMES
from cascade_core.errors import RuleFileError

if TYPE_CHECKING:
    from cascade_core.decide.learned.rule import LearnedDeferral

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "READABLE_VERSIONS", "learned_rule_from_dict", "learned_rule_to_dict"]

FORMAT_NAME = "llm-cascade/learned-deferral"
FORMAT_VERSION = 2
#: Format versions :func:`learned_rule_from_dict` reads (1: before gradient-boosted trees).
READABLE_VERSIONS = (1, 2)


def learned_rule_to_dict(rule: LearnedDeferral) -> dict[str, Any]:
    """A fitted rule as a JSON-serialisable dict (floats round-trip exactly)."""
    params = rule.get_params()
    if params["margin_labels"] is not None:
        params["margin_labels"] = list(params["margin_labels"])
    out = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "params": params,
        "feature_names": list(rule.feature_names_),
        "n_features_in": int(rule.n_features_in_),
        "n_samples_fit": int(rule.n_samples_fit_),
        "mean": rule.mean_.tolist(),
        "scale": rule.scale_.tolist(),
        "layers": [{"weight": w.tolist(), "bias": b.tolist()} for w, b in rule.layers_],
    }
    if rule.trees_ is not None:
        out["trees"] = rule.trees_
    if getattr(rule, "selection_", None) is not None:
        out["selection"] = rule.selection_
    return out


def _check_header(data: Any, source: str) -> int:
    if not isinstance(data, dict) or data.get("format") != FORMAT_NAME:
        raise RuleFileError(f"{source} is not a learned deferral rule (expected \"format\": \"{FORMAT_NAME}\")")
    version = data.get("format_version")
    if isinstance(version, bool) or version not in READABLE_VERSIONS:
        raise RuleFileError(
            f"{source} has format_version {version!r}; this llm-cascade reads versions "
            f"{list(READABLE_VERSIONS)} — re-fit the rule with this version (cascade fit)"
        )
    return int(version)


def _check_shapes(rule: LearnedDeferral, d: int, mean: np.ndarray, scale: np.ndarray,
                  layers: list[tuple[np.ndarray, np.ndarray]], trees: Any, source: str) -> None:
    width = d
    for weight, bias in layers:
        if weight.ndim != 2 or weight.shape[0] != width or bias.shape != (weight.shape[1],):
            raise RuleFileError(f"{source}: layer shapes do not chain (expected {width} inputs, got {weight.shape})")
        width = weight.shape[1]
    if mean.shape != (d,) or scale.shape != (d,) or not layers or width != (d if trees else 1):
        raise RuleFileError(f"{source}: inconsistent array shapes for {d} features")
    arrays = [mean, scale, *(a for layer in layers for a in layer)]
    if not all(np.isfinite(a).all() for a in arrays):
        raise RuleFileError(f"{source}: weights contain NaN or inf")
    if (scale <= 0).any():
        raise RuleFileError(f"{source}: 'scale' must be positive (a standard deviation), got {scale.min():g}")
    base = len(BASE_FEATURE_NAMES)
    expected = "> " + str(base) if rule.use_embedding else str(base)
    if (d != base) if not rule.use_embedding else (d <= base):
        raise RuleFileError(
            f"{source}: n_features_in={d} does not match the feature extractor "
            f"({expected} features with use_embedding={rule.use_embedding})"
        )


def learned_rule_from_dict(cls: type[LearnedDeferral], data: Any, *, source: str = "rule data") -> LearnedDeferral:
    """Rebuild a fitted rule from :func:`learned_rule_to_dict` output; raises :class:`RuleFileError` if invalid."""
    version = _check_header(data, source)
    try:
        params = dict(data["params"])
        unknown = set(params) - set(cls._param_names())
        if unknown:
            raise RuleFileError(f"{source} has unknown parameters {sorted(unknown)}")
        rule = cls(**params)
        d = int(data["n_features_in"])
        mean = np.asarray(data["mean"], dtype=np.float64)
        scale = np.asarray(data["scale"], dtype=np.float64)
        layers = [
            (np.asarray(layer["weight"], dtype=np.float64), np.asarray(layer["bias"], dtype=np.float64))
            for layer in data["layers"]
        ]
        trees = None
        if rule.model == "hgb":
            from cascade_core.decide.learned.trees import check_trees

            if version < 2 or layers:
                raise RuleFileError(f"{source}: an 'hgb' rule needs format_version 2, 'trees' and no 'layers'")
            trees = check_trees(data.get("trees"), d, source)
            if np.any(np.asarray(data["mean"]) != 0) or np.any(np.asarray(data["scale"]) != 1):
                raise RuleFileError(f"{source}: an 'hgb' rule is not standardised ('mean' 0, 'scale' 1)")
            layers = [(np.eye(d), np.zeros(d))]  # only to pass the shape checks below
        elif "trees" in data:
            raise RuleFileError(f"{source}: 'trees' given for model {rule.model!r}")
        selection = data.get("selection")
        if selection is not None and not isinstance(selection, dict):
            raise RuleFileError(f"{source}: 'selection' must be an object")
        _check_shapes(rule, d, mean, scale, layers, trees, source)
        names = [str(n) for n in data["feature_names"]]
        n_fit = int(data.get("n_samples_fit", 0))
    except RuleFileError:
        raise
    except (KeyError, TypeError, ValueError, RecursionError) as err:
        raise RuleFileError(f"{source} is corrupt: {type(err).__name__}: {str(err)[:200]}") from err
    rule.mean_, rule.scale_, rule.layers_, rule.trees_ = mean, scale, ([] if trees else layers), trees
    rule.selection_ = selection
    rule.n_features_in_, rule.feature_names_, rule.n_samples_fit_ = d, names, n_fit
    rule.estimator_ = None
    return rule
