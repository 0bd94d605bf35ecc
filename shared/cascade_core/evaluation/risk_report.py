"""A calibration file on test data: the realised deferral rate and risk beside what was promised.

``cascade eval --calibration-file calib.json`` applies the file's rule and threshold to a test
cache and reports the deferral rate with a Wilson interval and, for a certified file
(``cascade calibrate --risk``), the realised risk with a confidence interval (Wilson for the
kept-answer error rate; a percentile bootstrap for the accuracy loss, whose per-query loss is in
{−1, 0, 1}) next to the promised ε.

Example:
    >>> round(realised_risk([0.9, 0.8, 0.1, 0.7], [1, 0, 0, 1], [1, 1, 1, 1], 0.5, "kept_error"), 4)
    0.3333
    >>> realised_risk([0.9, 0.8, 0.1, 0.7], [1, 0, 0, 1], [1, 1, 1, 1], 0.5, "quality_loss")
    0.25
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from cascade_core.decide.calibration_file import CalibrationFile
from cascade_core.errors import ConfigurationError, require
from cascade_core.evaluation.collect import CachedExample
from cascade_core.evaluation.quality import QualityScorer
from cascade_core.evaluation.report import qualities, scores_for

__all__ = ["CalibrationCheck", "check_calibration", "realised_risk", "wilson_interval"]


def realised_risk(scores: ArrayLike, small_correct: ArrayLike, large_correct: ArrayLike, threshold: float, risk: str) -> float:
    """The risk a threshold has on a sample: kept-answer error rate (0 when nothing is kept), or
    large-only accuracy minus cascade accuracy."""
    s = np.asarray(scores, dtype=np.float64)
    y, z = np.asarray(small_correct, dtype=np.float64), np.asarray(large_correct, dtype=np.float64)
    kept = s >= threshold
    if risk == "kept_error":
        return float(1.0 - y[kept].mean()) if kept.any() else 0.0
    if risk == "quality_loss":
        return float(np.mean((z - y) * kept))
    raise ConfigurationError(f"unknown risk {risk!r}; allowed: kept_error, quality_loss")


@dataclass(frozen=True)
class CalibrationCheck:
    """A calibration file's threshold on test data.

    Attributes:
        signal: The calibrated score.
        threshold: The file's threshold.
        n: Test queries.
        deferral_rate: Realised deferral rate on the test data.
        deferral_interval: Its Wilson interval at ``confidence``.
        sample_deferral_rate: The deferral rate on the calibration sample.
        risk: The certified risk (``None`` for a file without a certificate).
        epsilon: The promised level.
        delta: The allowed failure probability of the promise.
        certified: Whether the file's threshold was certified.
        realised_risk: The risk on the test data.
        risk_interval: Its confidence interval at ``confidence``.
        within_promise: ``realised_risk <= epsilon``.
        confidence: Level of both intervals.
    """

    signal: str
    threshold: float
    n: int
    deferral_rate: float
    deferral_interval: tuple[float, float]
    sample_deferral_rate: float | None
    risk: str | None = None
    epsilon: float | None = None
    delta: float | None = None
    certified: bool | None = None
    realised_risk: float | None = None
    risk_interval: tuple[float, float] | None = None
    within_promise: bool | None = None
    confidence: float = 0.95

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["threshold"] = self.threshold if np.isfinite(self.threshold) else str(self.threshold)
        return data

    def format_lines(self) -> list[str]:
        """What ``cascade eval`` prints."""
        pct = f"{self.confidence:.0%}"
        lo, hi = self.deferral_interval
        sample = f" (calibration sample {self.sample_deferral_rate:.3f})" if self.sample_deferral_rate is not None else ""
        lines = [f"calibration file: {self.signal} >= {self.threshold:.6g} keeps; on {self.n} test queries deferral rate "
                 f"{self.deferral_rate:.3f} [{pct} CI {lo:.3f}, {hi:.3f}]{sample}"]
        if self.risk is not None and self.realised_risk is not None and self.risk_interval is not None:
            name = {"kept_error": "error among kept answers", "quality_loss": "accuracy loss vs all-large"}[self.risk]
            rlo, rhi = self.risk_interval
            promise = (f"promised <= {self.epsilon:g} with probability >= {1 - (self.delta or 0):g}" if self.certified
                       else "NOT certified (defers everything)")
            verdict = "within the promise" if self.within_promise else "ABOVE the promise"
            lines.append(f"  {name}: realised {self.realised_risk:.4f} [{pct} CI {rlo:.4f}, {rhi:.4f}]; {promise} -> {verdict}")
        return lines


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion (scipy's ``binomtest(...).proportion_ci(method="wilson")``);
    ``(0, 1)`` when ``n == 0``.

    >>> [round(v, 3) for v in wilson_interval(30, 100)]
    [0.219, 0.396]
    """
    if n <= 0:
        return (0.0, 1.0)
    stats = require("scipy.stats", "eval", purpose="confidence intervals")
    ci = stats.binomtest(int(successes), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


def _bootstrap_interval(values: np.ndarray, confidence: float, resamples: int, seed: int) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, (resamples, values.size))].mean(axis=1)
    tail = (1.0 - confidence) / 2.0
    return float(np.quantile(means, tail)), float(np.quantile(means, 1.0 - tail))


def check_calibration(
    calibration: CalibrationFile,
    examples: Sequence[CachedExample],
    *,
    rescore: QualityScorer | None = None,
    confidence: float = 0.95,
    resamples: int = 1000,
    seed: int = 0,
) -> CalibrationCheck:
    """Apply a calibration file's rule and threshold to cached test examples and report on it."""
    if not examples:
        raise ConfigurationError("the test cache is empty")
    scorer = calibration.scorer
    scores = scores_for(examples, {scorer.name: scorer})[scorer.name]
    small_q, large_q = qualities(examples, rescore)
    threshold = calibration.build_rule().policy.current_threshold
    defer = scores < threshold
    n = int(defer.size)
    sample_rate = calibration.sample.get("deferral_rate")
    common: dict[str, Any] = {
        "signal": scorer.name, "threshold": float(threshold), "n": n, "deferral_rate": float(defer.mean()),
        "deferral_interval": wilson_interval(int(defer.sum()), n, confidence),
        "sample_deferral_rate": float(sample_rate) if isinstance(sample_rate, (int, float)) else None,
        "confidence": confidence,
    }
    cert = calibration.certificate
    if cert is None:
        return CalibrationCheck(**common)
    value = realised_risk(scores, small_q, large_q, threshold, cert.risk)
    kept = ~defer
    if cert.risk == "kept_error":
        interval = wilson_interval(int((small_q[kept] < 0.5).sum()), int(kept.sum()), confidence) if kept.any() else (0.0, 0.0)
    else:
        interval = _bootstrap_interval((large_q - small_q) * kept, confidence, resamples, seed)
    return CalibrationCheck(
        **common, risk=cert.risk, epsilon=cert.epsilon, delta=cert.delta, certified=cert.certified,
        realised_risk=value, risk_interval=interval, within_promise=bool(value <= cert.epsilon),
    )
