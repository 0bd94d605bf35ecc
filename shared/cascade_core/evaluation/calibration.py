"""Calibrate a deferral threshold on a sample of queries and report what to expect from it.

Given a sample's confidence scores (any signal or a learned rule; higher = keep the small answer),
the small and large answers' qualities and per-query tier costs, :func:`calibrate` picks the
threshold that defers a target fraction of queries — or the fraction a per-query cost budget
allows, ``p = (B − c_s) / c_l`` (paper B) — and reports the deferral rate, quality and cost the
cascade had on the sample at that threshold. :func:`evaluate_threshold` reports the same for a
given threshold, e.g. on held-out data. A query costs ``c_s`` plus ``c_l`` when deferred.

Example:
    >>> report = calibrate([0.1, 0.2, 0.3, 0.4], [0, 0, 1, 1], [1, 1, 1, 0], deferral_rate=0.5,
    ...                    small_cost=1.0, large_cost=4.0)
    >>> report.threshold, report.deferral_rate, report.quality, report.cost_per_query
    (0.3, 0.5, 1.0, 3.0)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from cascade_core.decide.thresholds import budget_deferral_rate, calibrate_threshold, check_threshold
from cascade_core.errors import ConfigurationError

__all__ = ["CalibrationReport", "calibrate", "evaluate_threshold"]


@dataclass(frozen=True)
class CalibrationReport:
    """What a threshold does on a sample.

    Attributes:
        threshold: Defer when the score is below it.
        target_deferral_rate: The rate asked for (directly or through a budget); ``None`` when the
            threshold was given.
        deferral_rate: Fraction of the sample deferred at ``threshold``.
        quality: Mean quality of the cascade's answers on the sample.
        small_quality: Mean quality with no deferral (small model only).
        large_quality: Mean quality when everything is deferred (large model only).
        cost_per_query: Mean cost per query, ``c_s + c_l · deferral_rate``.
        small_cost: Per-query cost of the small tier.
        large_cost: Per-query cost of the large tier.
        budget: The per-query budget asked for, if any.
        n: Sample size.
    """

    threshold: float
    target_deferral_rate: float | None
    deferral_rate: float
    quality: float
    small_quality: float
    large_quality: float
    cost_per_query: float
    small_cost: float
    large_cost: float
    budget: float | None
    n: int

    @property
    def all_large_cost(self) -> float:
        """Per-query cost of sending every query straight to the large tier."""
        return self.large_cost

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict (infinite thresholds as strings ``"inf"`` / ``"-inf"``)."""
        data = asdict(self)
        if np.isinf(self.threshold):
            data["threshold"] = "inf" if self.threshold > 0 else "-inf"
        return data


def _arrays(scores: ArrayLike, small_quality: ArrayLike, large_quality: ArrayLike) -> tuple[np.ndarray, ...]:
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    small = np.asarray(small_quality, dtype=np.float64).reshape(-1)
    large = np.asarray(large_quality, dtype=np.float64).reshape(-1)
    if not s.size:
        raise ConfigurationError("calibration needs a non-empty sample")
    if not s.size == small.size == large.size:
        raise ConfigurationError(f"sample sizes differ: {s.size} scores, {small.size} small and {large.size} large qualities")
    if np.isnan(s).any():
        raise ConfigurationError("calibration scores contain NaN")
    return s, small, large


def _check_costs(small_cost: float, large_cost: float) -> None:
    for name, value in (("small_cost", small_cost), ("large_cost", large_cost)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value) or value < 0:
            raise ConfigurationError(f"{name} must be a non-negative number, got {value!r}")


def evaluate_threshold(
    scores: ArrayLike,
    small_quality: ArrayLike,
    large_quality: ArrayLike,
    threshold: float,
    *,
    small_cost: float = 0.0,
    large_cost: float = 1.0,
    target_deferral_rate: float | None = None,
    budget: float | None = None,
) -> CalibrationReport:
    """Deferral rate, quality and cost of the cascade at ``threshold`` on a sample.

    >>> evaluate_threshold([0.1, 0.9], [0, 1], [1, 1], 0.5).quality
    1.0
    """
    s, small, large = _arrays(scores, small_quality, large_quality)
    _check_costs(small_cost, large_cost)
    threshold = check_threshold(threshold)
    defer = s < threshold
    rate = float(defer.mean())
    return CalibrationReport(
        threshold=threshold,
        target_deferral_rate=target_deferral_rate,
        deferral_rate=rate,
        quality=float(np.where(defer, large, small).mean()),
        small_quality=float(small.mean()),
        large_quality=float(large.mean()),
        cost_per_query=float(small_cost + large_cost * rate),
        small_cost=float(small_cost),
        large_cost=float(large_cost),
        budget=budget,
        n=int(s.size),
    )


def calibrate(
    scores: ArrayLike,
    small_quality: ArrayLike,
    large_quality: ArrayLike,
    *,
    deferral_rate: float | None = None,
    budget: float | None = None,
    small_cost: float = 0.0,
    large_cost: float = 1.0,
) -> CalibrationReport:
    """Pick the threshold for a target deferral rate or per-query cost budget, and report on it.

    Give exactly one of ``deferral_rate`` (in [0, 1]) or ``budget`` (per query, same unit as the
    costs). The threshold is the ``p``-quantile of the sample's scores, so about ``p`` of queries
    like these are deferred; ties can make the realised rate differ from ``p`` by their share.

    Raises:
        ConfigurationError: both or neither target given, a rate outside [0, 1], negative costs,
            a budget with ``large_cost == 0``, or mismatched sample sizes.
    """
    s, small, large = _arrays(scores, small_quality, large_quality)
    _check_costs(small_cost, large_cost)
    if (deferral_rate is None) == (budget is None):
        raise ConfigurationError("give exactly one of deferral_rate or budget")
    if budget is not None:
        if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not np.isfinite(budget):
            raise ConfigurationError(f"budget must be a number, got {budget!r}")
        if budget < small_cost:
            raise ConfigurationError(
                f"budget {budget:g} per query is below the small tier's cost {small_cost:g}: no cascade fits it"
            )
        deferral_rate = budget_deferral_rate(budget, small_cost, large_cost)
    threshold = calibrate_threshold(s, deferral_rate=deferral_rate)
    return evaluate_threshold(
        s, small, large, threshold, small_cost=small_cost, large_cost=large_cost,
        target_deferral_rate=float(deferral_rate), budget=budget,  # type: ignore[arg-type]
    )
