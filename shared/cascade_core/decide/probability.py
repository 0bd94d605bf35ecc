"""Calibrated probabilities: turn any confidence score into P(the small answer is correct).

A :class:`ProbabilityMap` is a monotone (isotonic) map fitted with scikit-learn's
:class:`~sklearn.isotonic.IsotonicRegression` from a score (a signal such as the first-token
margin, or a learned rule's confidence) to the observed rate of correct small answers on a
labelled sample. Wrapped around the score's scorer as a :class:`CalibratedScorer`, it plugs into
any :class:`~cascade_core.decide.rules.ThresholdRule`, so ``threshold=0.8`` means "keep the small answer
when it is at least 80 % likely to be right". The map is saved as versioned JSON (no pickle).

:func:`expected_calibration_error` measures how far stated probabilities are from observed rates
(Naeini et al., 2015; Guo et al., 2017).

Example:
    >>> pmap = ProbabilityMap.fit([0.1, 0.2, 0.3, 0.6, 0.7, 0.9], [0, 0, 1, 0, 1, 1], signal="margin")
    >>> pmap([0.0, 0.5, 1.0]).round(3).tolist()
    [0.0, 0.5, 1.0]
    >>> rule = ThresholdRule(CalibratedScorer(make_scorer("margin"), pmap), threshold=0.8)
    >>> rule.scorer.name, rule.first_step_only
    ('p_correct[margin]', True)
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from cascade_core.decide.rules import ThresholdRule
from cascade_core.decide.scorers import (
    Scorer,
    WrappedScorer,
    make_scorer,
)
from cascade_core.errors import ConfigurationError, RuleFileError, require
from cascade_core.types import Generation

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "CalibratedScorer",
    "ProbabilityMap",
    "calibrated_rule",
    "expected_calibration_error",
    "reliability_bins",
    "score_as_probability",
]

FORMAT_NAME = "llm-cascade/probability-map"
FORMAT_VERSION = 1


def _sample(scores: ArrayLike, correct: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    y = np.asarray(correct, dtype=np.float64).reshape(-1)
    if s.size < 2:
        raise ConfigurationError(f"a probability map needs at least 2 labelled examples, got {s.size}")
    if s.size != y.size:
        raise ConfigurationError(f"sample sizes differ: {s.size} scores and {y.size} correctness labels")
    if np.isnan(s).any():
        raise ConfigurationError("scores contain NaN")
    if np.isnan(y).any() or (y < 0).any() or (y > 1).any():
        raise ConfigurationError("correctness labels must be in [0, 1] (1 = the small answer was right)")
    return s, y


@dataclass(frozen=True)
class ProbabilityMap:
    """A fitted monotone map from a confidence score to P(small answer correct).

    Between fitted knots the map is linear; outside them it is constant (the end values), as
    ``IsotonicRegression(out_of_bounds="clip")`` predicts. Infinite scores map to the end values.

    Attributes:
        x: Knot scores, increasing.
        y: Probabilities at the knots, non-decreasing, in [0, 1].
        signal: Name of the score the map was fitted on (checked when it is attached to a scorer).
        n_samples: Size of the fitting sample.

    Example:
        >>> ProbabilityMap.fit([0, 1, 2, 3], [0, 0, 1, 1]).to_dict()["format"]
        'llm-cascade/probability-map'
    """

    x: tuple[float, ...]
    y: tuple[float, ...]
    signal: str = ""
    n_samples: int = 0

    def __post_init__(self) -> None:
        x = np.asarray(self.x, dtype=np.float64)
        y = np.asarray(self.y, dtype=np.float64)
        if x.ndim != 1 or x.size < 1 or x.shape != y.shape:
            raise ConfigurationError(f"probability map needs matching non-empty knots, got {x.size} x and {y.size} y")
        if not (np.isfinite(x).all() and np.isfinite(y).all()):
            raise ConfigurationError("probability map knots must be finite")
        if (np.diff(x) < 0).any() or (np.diff(y) < -1e-12).any():
            raise ConfigurationError("probability map knots must be increasing in x and non-decreasing in y")
        if (y < 0).any() or (y > 1).any():
            raise ConfigurationError("probability map values must be in [0, 1]")

    @classmethod
    def fit(cls, scores: ArrayLike, correct: ArrayLike, *, signal: str = "") -> ProbabilityMap:
        """Fit the isotonic map on a labelled sample (``correct[i]`` = 1 if the small answer was right).

        Infinite scores (e.g. a log-prob of ``-inf``) are clipped to the finite range of the sample.
        """
        IsotonicRegression = require("sklearn.isotonic", "eval", purpose="ProbabilityMap.fit").IsotonicRegression  # noqa: N806

        s, y = _sample(scores, correct)
        finite = s[np.isfinite(s)]
        if not finite.size:
            raise ConfigurationError("every score is infinite: nothing to fit a probability map on")
        s = np.clip(s, finite.min(), finite.max())
        model = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip").fit(s, y)
        return cls(
            tuple(float(v) for v in model.X_thresholds_),
            tuple(float(v) for v in model.y_thresholds_),
            signal=signal,
            n_samples=int(s.size),
        )

    def __call__(self, scores: ArrayLike) -> np.ndarray:
        """P(correct) for each score (NaN stays NaN)."""
        s = np.asarray(scores, dtype=np.float64)
        out = np.interp(np.clip(s, self.x[0], self.x[-1]), self.x, self.y)
        return np.where(np.isnan(s), np.nan, out)

    def probability(self, score: float) -> float:
        """P(correct) for one score."""
        return float(self(np.array([score]))[0])

    def score_for_probability(self, p: float) -> float:
        """The smallest score whose probability is at least ``p`` (``inf`` if none reaches it)."""
        ys = np.asarray(self.y)
        hits = np.nonzero(ys >= p)[0]
        if not hits.size:
            return math.inf
        i = int(hits[0])
        if i == 0:
            return float(self.x[0]) if ys[0] >= p else math.inf
        x0, x1, y0, y1 = self.x[i - 1], self.x[i], ys[i - 1], ys[i]
        return float(x0 + (x1 - x0) * (p - y0) / (y1 - y0)) if y1 > y0 else float(x1)

    # -- persistence (JSON, no pickle) ---------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The map as a JSON-serialisable dict with a format name and version."""
        return {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "signal": self.signal,
            "n_samples": self.n_samples,
            "x": list(self.x),
            "y": list(self.y),
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the map to a JSON file (parent directories created). Returns the path."""
        from cascade_core.decide.rule_file import write_json_file

        return write_json_file(path, self.to_dict(), indent=1)

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "probability map data") -> ProbabilityMap:
        """Rebuild a map from :meth:`to_dict` output; raises :class:`RuleFileError` if invalid."""
        if not isinstance(data, dict) or data.get("format") != FORMAT_NAME:
            raise RuleFileError(f"{source} is not a probability map (expected \"format\": \"{FORMAT_NAME}\")")
        if data.get("format_version") != FORMAT_VERSION:
            raise RuleFileError(
                f"{source} has format_version {data.get('format_version')!r}; this llm-cascade reads version "
                f"{FORMAT_VERSION} — re-fit it with `cascade calibrate --probability`"
            )
        try:
            return cls(
                tuple(float(v) for v in data["x"]),
                tuple(float(v) for v in data["y"]),
                signal=str(data.get("signal", "")),
                n_samples=int(data.get("n_samples", 0)),
            )
        except ConfigurationError as err:
            raise RuleFileError(f"{source} is corrupt: {err}") from err
        except (KeyError, TypeError, ValueError) as err:
            raise RuleFileError(f"{source} is corrupt: {type(err).__name__}: {err}") from err

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ProbabilityMap:
        """Load a map saved by :meth:`save` (missing, non-JSON, other version or corrupt: :class:`RuleFileError`)."""
        from cascade_core.decide.rule_file import read_rule_json

        data, source = read_rule_json(path, kind="probability map file")
        return cls.from_dict(data, source=source)


class CalibratedScorer(WrappedScorer):
    """A scorer whose value is the calibrated probability that the small answer is correct.

    Args:
        scorer: The underlying scorer (a signal or a learned rule), or a signal name.
        probability_map: A fitted :class:`ProbabilityMap` (or the path of its JSON file).
        check_signal: Refuse a map fitted on a different signal (default True).

    Example:
        >>> pmap = ProbabilityMap((0.0, 1.0), (0.2, 0.9), signal="margin")
        >>> CalibratedScorer("margin", pmap).score_range
        (0.0, 1.0)
    """

    def __init__(self, scorer: str | Scorer, probability_map: ProbabilityMap | str | os.PathLike[str], *,
                 check_signal: bool = True) -> None:
        self.scorer: Scorer = make_scorer(scorer)
        pmap = probability_map if isinstance(probability_map, ProbabilityMap) else ProbabilityMap.load(probability_map)
        if check_signal and pmap.signal and pmap.signal != self.scorer.name:
            raise ConfigurationError(
                f"probability map was fitted on signal {pmap.signal!r}, not on {self.scorer.name!r}; "
                "attach it to the scorer it was fitted on (or pass check_signal=False)"
            )
        self.probability_map = pmap

    @property
    def name(self) -> str:
        return f"p_correct[{self.scorer.name}]"

    @property
    def score_range(self) -> tuple[float, float]:
        return (0.0, 1.0)

    @property
    def labels(self) -> Sequence[str] | None:
        """Label first-tokens of the underlying scorer (so the engine records them)."""
        return getattr(self.scorer, "labels", None)

    def __call__(self, generation: Generation) -> float:
        return self.probability_map.probability(float(self.scorer(generation)))

    def __repr__(self) -> str:
        return f"CalibratedScorer({self.scorer.name!r}, knots={len(self.probability_map.x)})"


def calibrated_rule(signal: str | Scorer, path: str | os.PathLike[str], threshold: float, **signal_params: Any) -> ThresholdRule:
    """A :class:`ThresholdRule` that keeps the small answer when P(correct) >= ``threshold``.

    >>> import tempfile, os
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = ProbabilityMap.fit([0.1, 0.9], [0, 1], signal="margin").save(os.path.join(d, "m.json"))
    ...     calibrated_rule("margin", p, 0.8).scorer.name
    'p_correct[margin]'
    """
    return ThresholdRule(CalibratedScorer(make_scorer(signal, **signal_params), path), threshold=threshold)


def score_as_probability(scores: ArrayLike, score_range: tuple[float, float]) -> np.ndarray | None:
    """Read raw scores as probabilities where that has a meaning, else ``None``.

    Scores in [0, 1] (margin, a learned rule's confidence) are taken as they are; log-probability
    scores in (-inf, 0] (Chow-Sum/Average/Quantile) as ``exp(score)``; any other range has no
    probability reading.

    >>> score_as_probability([-0.5, 0.0], (float("-inf"), 0.0)).round(3).tolist()
    [0.607, 1.0]
    """
    s = np.asarray(scores, dtype=np.float64)
    low, high = score_range
    if low >= 0.0 and high <= 1.0:
        return np.clip(s, 0.0, 1.0)
    if high <= 0.0:
        return np.exp(np.minimum(s, 0.0))
    return None


def reliability_bins(probabilities: ArrayLike, correct: ArrayLike, n_bins: int = 10) -> list[tuple[float, float, int]]:
    """Equal-width bins over [0, 1]: (mean stated probability, observed accuracy, count) per non-empty bin."""
    if isinstance(n_bins, bool) or not isinstance(n_bins, int) or n_bins < 1:
        raise ConfigurationError(f"n_bins must be a positive int, got {n_bins!r}")
    p = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    y = np.asarray(correct, dtype=np.float64).reshape(-1)
    if p.size == 0 or p.size != y.size:
        raise ConfigurationError(f"need matching non-empty samples, got {p.size} probabilities and {y.size} labels")
    if np.isnan(p).any() or (p < 0).any() or (p > 1).any():
        raise ConfigurationError("probabilities must be in [0, 1] (no NaN)")
    if np.isnan(y).any() or (y < 0).any() or (y > 1).any():
        raise ConfigurationError("correctness labels must be in [0, 1] (1 = the small answer was right)")
    index = np.minimum((p * n_bins).astype(int), n_bins - 1)
    out = []
    for b in range(n_bins):
        mask = index == b
        if mask.any():
            out.append((float(p[mask].mean()), float(y[mask].mean()), int(mask.sum())))
    return out


def expected_calibration_error(probabilities: ArrayLike, correct: ArrayLike, n_bins: int = 10) -> float:
    """Expected calibration error: Σ_b (n_b / n) · |acc_b − conf_b| over equal-width bins.

    From Naeini, Cooper & Hauskrecht, "Obtaining Well Calibrated Probabilities Using Bayesian
    Binning" (AAAI 2015), as used by Guo et al., "On Calibration of Modern Neural Networks" (2017).

    >>> expected_calibration_error([0.9, 0.9, 0.1, 0.1], [1, 1, 0, 0])
    0.1
    """
    bins = reliability_bins(probabilities, correct, n_bins)
    n = sum(count for _, _, count in bins)
    return round(float(sum(count * abs(acc - conf) for conf, acc, count in bins) / n), 12)
