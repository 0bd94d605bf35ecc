"""Risk-controlled thresholds: a threshold that comes with a statistical guarantee.

From a labelled calibration sample — per query the confidence score ``s_i`` (higher = keep the
small answer), whether the small answer was correct ``y_i ∈ {0, 1}`` and, for ``quality_loss``,
whether the large answer was ``z_i ∈ {0, 1}`` — :func:`certify_threshold` picks the threshold that
defers least subject to a one-sided upper confidence bound on a risk, at level ``δ``
(Learn-then-Test, Angelopoulos et al. 2021, arXiv 2110.01052). The kept set at threshold ``t``
is ``K(t) = {i : s_i ≥ t}`` (the policy defers when ``score < t``, as :class:`FixedThreshold` does).

**Risks.**

- ``kept_error``: ``R(t) = P(y = 0 | s ≥ t)``, the error rate among the answers the small tier
  keeps. With ``k`` wrong out of ``m = |K(t)|`` kept, the Clopper–Pearson (1934) upper bound is
  ``U(t) = Beta⁻¹(1 − δ; k + 1, m − k)`` (``1`` when ``k = m``): exact for a binomial count, so
  it never under-covers, and it is the tightest exact bound at the small ``k`` a good threshold has.
- ``quality_loss``: ``R(t) = E[(z − y) · 1[s ≥ t]]`` = large-only accuracy − cascade accuracy.
  The per-query loss ``ℓ_i = (z_i − y_i)·1[kept] ∈ {−1, 0, 1}`` is bounded by its positive part
  ``ℓ_i⁺ = 1[kept, z_i = 1, y_i = 0]`` (the small tier kept a wrong answer the large one had
  right), a Bernoulli variable, so ``U(t) = Beta⁻¹(1 − δ; k⁺ + 1, n − k⁺)`` with ``k⁺ = Σ ℓ_i⁺`` is
  a valid upper bound on ``R(t)``. Chosen over Hoeffding on ``[−1, 1]`` (``mean + √(2 ln(1/δ)/n)``,
  ±0.12 at ``n = 300``, ``δ = 0.1`` — wider than any ε worth asking for) because the kept-and-
  worse events are rare, where a binomial bound is far tighter; the price is that queries where
  the small answer beats the large one (``ℓ = −1``) earn no credit, so it is conservative when
  those are common.

**Multiple testing: fixed-sequence testing.** The thresholds are tested in a fixed order from
strict (keeps little) to lenient: null hypothesis ``H_t: R(t) > ε``, rejected when ``U(t) ≤ ε``.
Testing stops at the first threshold not rejected; every threshold passed before it is
certified, and the most lenient of them is returned. Because the order is fixed and each test
has level ``δ``, the family-wise error is at most ``δ`` with no correction (Bauer 1991; the
fixed-sequence procedure of Learn-then-Test): the first false null in the order must be passed
for a violation, and that happens with probability ``≤ δ``. So

    P( R(t̂) > ε ) ≤ δ   over the draw of the calibration sample,

for new queries drawn from the calibration distribution. Bonferroni (``δ / |grid|`` per test) is
the alternative; it pays ``ln |grid|`` in every bound, fixed-sequence pays nothing as long as the
risk rises from strict to lenient, as both risks here do for any useful score.

For ``kept_error`` the strictest thresholds keep so few answers that even zero errors could not
meet ε (``U(0, m) = 1 − δ^{1/m} > ε``); they are skipped as untestable rather than counted as
failures (otherwise the sequence would stop at once). The default grid is the sample's distinct
scores; give a ``grid`` fixed in advance for the guarantee in its textbook form. The benchmark
``benchmarks/studies/risk_guarantee.py`` measures the violation rate on real caches.

If no threshold is certified, the certificate says so (``certified=False``) and its threshold is
``+inf``: everything is deferred. An uncertified threshold is never returned.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> scores = rng.random(2000)
    >>> correct = (rng.random(2000) < 0.5 + 0.5 * scores).astype(int)  # confident -> more often right
    >>> cert = certify_threshold(scores, correct, risk="kept_error", epsilon=0.1, delta=0.1)
    >>> cert.certified, cert.bound <= 0.1, 0.0 < cert.deferral_rate < 1.0
    (True, True, True)
    >>> policy = RiskControlledThreshold(cert)
    >>> policy.decide(0.99)[0], policy.decide(0.01)[0]
    (False, True)
"""

from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike

from cascade_core.decide.thresholds import FixedThreshold
from cascade_core.errors import ConfigurationError, RuleFileError, require

__all__ = [
    "RISKS",
    "RiskCertificate",
    "RiskControlledThreshold",
    "calibration_data_hash",
    "certify_threshold",
    "clopper_pearson_upper",
    "empirical_threshold",
]

logger = logging.getLogger(__name__)

Risk = Literal["kept_error", "quality_loss"]
#: The risks :func:`certify_threshold` controls.
RISKS: tuple[str, ...] = ("kept_error", "quality_loss")
_METHODS = {
    "kept_error": "clopper_pearson+fixed_sequence",
    "quality_loss": "clopper_pearson_positive_part+fixed_sequence",
}


def clopper_pearson_upper(k: ArrayLike, m: ArrayLike, delta: float) -> np.ndarray:
    """One-sided ``1 − δ`` Clopper–Pearson upper bound on a binomial rate, ``Beta⁻¹(1 − δ; k + 1, m − k)``.

    ``1`` where ``k ≥ m`` (including ``m = 0``: nothing observed, nothing bounded).

    >>> round(float(clopper_pearson_upper(0, 45, 0.1)), 4)
    0.0499
    """
    stats = require("scipy.stats", "eval", purpose="certifying a risk-controlled threshold")
    k_arr = np.asarray(k, dtype=np.float64)
    m_arr = np.asarray(m, dtype=np.float64)
    out = np.ones(np.broadcast(k_arr, m_arr).shape)
    ok = np.broadcast_to(k_arr < m_arr, out.shape)
    kb, mb = np.broadcast_to(k_arr, out.shape), np.broadcast_to(m_arr, out.shape)
    out[ok] = stats.beta.ppf(1.0 - delta, kb[ok] + 1.0, mb[ok] - kb[ok])
    return out


def calibration_data_hash(scores: ArrayLike, small_correct: ArrayLike, large_correct: ArrayLike | None = None) -> str:
    """SHA-256 of the calibration data (scores and labels as little-endian float64, in order).

    >>> len(calibration_data_hash([0.5], [1])), calibration_data_hash([0.5], [1]) == calibration_data_hash([0.5], [0])
    (64, False)
    """
    digest = hashlib.sha256()
    parts = [scores, small_correct] + ([] if large_correct is None else [large_correct])
    for name, part in zip(("scores", "small_correct", "large_correct"), parts, strict=False):
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(np.asarray(part, dtype="<f8").reshape(-1)).tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class RiskCertificate:
    """What :func:`certify_threshold` promises, and on which data.

    Attributes:
        risk: ``"kept_error"`` or ``"quality_loss"``.
        epsilon: The promised risk level ε.
        delta: The allowed probability δ that the promise fails.
        n: Calibration sample size.
        threshold: Defer when the score is below it (``+inf`` when nothing was certified).
        bound: The ``1 − δ`` upper confidence bound on the risk at ``threshold`` (when nothing was
            certified: the bound of the strictest testable threshold, the best the data could show).
        empirical_risk: The risk measured on the sample at ``threshold``.
        deferral_rate: Fraction of the sample deferred at ``threshold``.
        certified: Whether ``bound ≤ epsilon``; if not, everything is deferred.
        data_hash: SHA-256 of the calibration data (:func:`calibration_data_hash`).
        method: The bound and the multiple-testing procedure.

    Example:
        >>> cert = certify_threshold([0.9] * 50 + [0.1] * 50, [1] * 50 + [0] * 50, epsilon=0.1, delta=0.1)
        >>> cert.threshold, cert.deferral_rate, RiskCertificate.from_dict(cert.to_dict()) == cert
        (0.9, 0.5, True)
    """

    risk: str
    epsilon: float
    delta: float
    n: int
    threshold: float
    bound: float
    empirical_risk: float
    deferral_rate: float
    certified: bool
    data_hash: str
    method: str

    def to_dict(self) -> dict[str, Any]:
        """A strict-JSON dict (an infinite threshold as the string ``"inf"`` / ``"-inf"``)."""
        data = asdict(self)
        if math.isinf(self.threshold):
            data["threshold"] = "inf" if self.threshold > 0 else "-inf"
        return data

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "certificate") -> RiskCertificate:
        """Rebuild from :meth:`to_dict`; raises :class:`RuleFileError` naming a missing, unknown or bad field."""
        if not isinstance(data, dict):
            raise RuleFileError(f"{source}: the certificate must be an object, got {type(data).__name__}")
        fields = set(cls.__dataclass_fields__)
        missing, unknown = sorted(fields - set(data)), sorted(set(data) - fields)
        if missing or unknown:
            raise RuleFileError(f"{source}: certificate fields missing {missing}, unknown {unknown}")
        values = dict(data)
        if values["threshold"] in ("inf", "-inf"):
            values["threshold"] = float(values["threshold"])
        numbers = ("epsilon", "delta", "threshold", "bound", "empirical_risk", "deferral_rate")
        for name in numbers:
            if isinstance(values[name], bool) or not isinstance(values[name], (int, float)):
                raise RuleFileError(f"{source}: certificate field {name!r} must be a number, got {values[name]!r}")
            values[name] = float(values[name])
        if isinstance(values["n"], bool) or not isinstance(values["n"], int) or values["n"] < 0:
            raise RuleFileError(f"{source}: certificate field 'n' must be a non-negative int, got {values['n']!r}")
        if not isinstance(values["certified"], bool):
            raise RuleFileError(f"{source}: certificate field 'certified' must be true or false")
        if values["risk"] not in RISKS:
            raise RuleFileError(f"{source}: certificate risk must be one of {list(RISKS)}, got {values['risk']!r}")
        for name in ("data_hash", "method"):
            if not isinstance(values[name], str):
                raise RuleFileError(f"{source}: certificate field {name!r} must be a string")
        if values["certified"] and values["bound"] > values["epsilon"] + 1e-9:
            raise RuleFileError(f"{source}: certificate claims certified with bound {values['bound']} > epsilon {values['epsilon']}")
        if not values["certified"] and values["threshold"] != math.inf:
            raise RuleFileError(f"{source}: an uncertified certificate must defer everything (threshold inf)")
        return cls(**values)

    def summary(self) -> str:
        """One line for a terminal: the promise, or why there is none."""
        name = {"kept_error": "error among kept answers", "quality_loss": "accuracy loss vs all-large"}[self.risk]
        if not self.certified:
            return (f"NOT certified: no threshold keeps {name} <= {self.epsilon:g} at confidence {1 - self.delta:g} "
                    f"on n={self.n} (best bound {self.bound:.4f}); everything is deferred")
        return (f"certified: {name} <= {self.epsilon:g} with probability >= {1 - self.delta:g} "
                f"(bound {self.bound:.4f}, empirical {self.empirical_risk:.4f}, n={self.n}); "
                f"threshold {self.threshold:.6g}, deferral rate {self.deferral_rate:.3f}")


def _check_level(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not 0.0 < float(value) < 1.0:
        raise ConfigurationError(f"{name} must be a number in (0, 1), got {value!r}")
    return float(value)


def _binary(values: ArrayLike, name: str, n: int) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if arr.size != n:
        raise ConfigurationError(f"{name} has {arr.size} values for {n} scores")
    if not np.isin(arr, (0.0, 1.0)).all():
        raise ConfigurationError(
            f"{name} must be 0/1 correctness labels (risk control bounds a rate of wrong answers); "
            f"got values such as {sorted(set(arr[~np.isin(arr, (0.0, 1.0))].tolist()))[:3]}"
        )
    return arr.astype(np.int64)


def _grid(scores: np.ndarray, grid: ArrayLike | None) -> np.ndarray:
    """Thresholds from strict to lenient (descending)."""
    if grid is None:
        return np.unique(scores)[::-1]
    arr = np.asarray(grid, dtype=np.float64).reshape(-1)
    if not arr.size or np.isnan(arr).any():
        raise ConfigurationError("grid must be a non-empty sequence of thresholds without NaN")
    return np.unique(arr)[::-1]


def certify_threshold(
    scores: ArrayLike,
    small_correct: ArrayLike,
    large_correct: ArrayLike | None = None,
    *,
    risk: Risk = "kept_error",
    epsilon: float,
    delta: float,
    grid: ArrayLike | None = None,
) -> RiskCertificate:
    """The most lenient threshold whose risk is certified ``≤ epsilon`` at confidence ``1 − delta``.

    See the module docstring for the bounds and the fixed-sequence test.

    Args:
        scores: Calibration confidence scores (higher = keep the small answer).
        small_correct: 1 where the small answer was correct, 0 where not.
        large_correct: 1 where the large answer was correct (needed for ``quality_loss``).
        risk: ``"kept_error"`` (error rate among kept answers) or ``"quality_loss"`` (large-only
            accuracy minus cascade accuracy).
        epsilon: The risk level to guarantee, in (0, 1).
        delta: The allowed failure probability of the guarantee, in (0, 1).
        grid: Candidate thresholds (default: the sample's distinct scores).

    Returns:
        A :class:`RiskCertificate`; ``certified=False`` with threshold ``+inf`` (defer everything)
        when no threshold passes.

    Raises:
        ConfigurationError: an unknown risk, ε or δ outside (0, 1), NaN scores, labels other than
            0/1, mismatched sizes, or ``quality_loss`` without ``large_correct``.
    """
    if risk not in RISKS:
        raise ConfigurationError(f"risk must be one of {list(RISKS)}, got {risk!r}")
    epsilon, delta = _check_level(epsilon, "epsilon"), _check_level(delta, "delta")
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if not s.size:
        raise ConfigurationError("risk control needs a non-empty calibration sample")
    if np.isnan(s).any():
        raise ConfigurationError("calibration scores contain NaN")
    y = _binary(small_correct, "small_correct", s.size)
    if risk == "quality_loss" and large_correct is None:
        raise ConfigurationError("risk='quality_loss' needs large_correct (was the large answer right?) for every query")
    z = _binary(large_correct, "large_correct", s.size) if large_correct is not None else None
    thresholds = _grid(s, grid)
    n = s.size
    order = np.argsort(-s, kind="stable")  # descending scores
    s_desc = s[order]
    kept = np.searchsorted(-s_desc, -thresholds, side="right")  # m(t) = #{s_i >= t}
    if risk == "kept_error":
        bad = np.concatenate([[0], np.cumsum(1 - y[order])])
        counts, trials = bad[kept], kept
        with np.errstate(divide="ignore"):
            testable = 1.0 - delta ** (1.0 / trials) <= epsilon  # U(0, m) = 1 - delta^(1/m): zero errors could pass
    else:
        assert z is not None
        worse = np.concatenate([[0], np.cumsum(((z == 1) & (y == 0))[order])])
        counts, trials = worse[kept], np.full(kept.shape, n)
        testable = np.ones(kept.shape, dtype=bool)
    # U(k, m) <= eps  <=>  P(Bin(m, eps) <= k) <= delta (Clopper-Pearson duality): one CDF per threshold,
    # the bound itself (an inverse) only where it is reported
    stats = require("scipy.stats", "eval", purpose="certifying a risk-controlled threshold")
    passes = (counts < trials) & (stats.binom.cdf(counts, trials, epsilon) <= delta)
    start = int(np.argmax(testable)) if testable.any() else thresholds.size
    failures = np.flatnonzero(~passes[start:])
    passed = start + (int(failures[0]) if failures.size else thresholds.size - start) - 1
    if passed < start:
        passed = -1
    data_hash = calibration_data_hash(s, y, z)
    common: dict[str, Any] = {
        "risk": risk, "epsilon": epsilon, "delta": delta, "n": int(n), "data_hash": data_hash, "method": _METHODS[risk],
    }
    if passed < 0:
        best = (float(clopper_pearson_upper(counts[start], trials[start], delta)) if start < thresholds.size
                else float(clopper_pearson_upper(0, n, delta)))
        return RiskCertificate(threshold=math.inf, bound=best, empirical_risk=0.0, deferral_rate=1.0, certified=False, **common)
    m = int(kept[passed])
    if risk == "kept_error":
        empirical = float(counts[passed] / m) if m else 0.0
    else:
        assert z is not None
        keep = s >= thresholds[passed]
        empirical = float(np.mean((z - y) * keep))
    return RiskCertificate(
        threshold=float(thresholds[passed]), bound=float(clopper_pearson_upper(counts[passed], trials[passed], delta)),
        empirical_risk=empirical,
        deferral_rate=float(1.0 - m / n), certified=True, **common,
    )


def empirical_threshold(
    scores: ArrayLike,
    small_correct: ArrayLike,
    large_correct: ArrayLike | None = None,
    *,
    risk: Risk = "kept_error",
    epsilon: float,
) -> float:
    """The naive baseline with no guarantee: the most lenient threshold whose risk *on the sample* is ``≤ epsilon``.

    What tuning on the calibration sample alone gives; it over-fits the sample, so on new traffic
    its risk exceeds ε about half of the time. ``+inf`` (defer all) when no threshold qualifies.

    >>> empirical_threshold([0.9, 0.8, 0.7, 0.2], [1, 1, 0, 0], epsilon=0.34)
    0.7
    """
    if risk not in RISKS:
        raise ConfigurationError(f"risk must be one of {list(RISKS)}, got {risk!r}")
    epsilon = _check_level(epsilon, "epsilon")
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if not s.size or np.isnan(s).any():
        raise ConfigurationError("calibration scores must be a non-empty sequence without NaN")
    y = _binary(small_correct, "small_correct", s.size)
    if risk == "quality_loss" and large_correct is None:
        raise ConfigurationError("risk='quality_loss' needs large_correct (was the large answer right?) for every query")
    order = np.argsort(-s, kind="stable")
    thresholds = np.unique(s)[::-1]
    kept = np.searchsorted(-s[order], -thresholds, side="right")
    if risk == "kept_error":
        risks = np.concatenate([[0], np.cumsum(1 - y[order])])[kept] / kept
    else:
        assert large_correct is not None
        z = _binary(large_correct, "large_correct", s.size)
        risks = np.concatenate([[0], np.cumsum((z - y)[order])])[kept] / s.size
    ok = np.flatnonzero(risks <= epsilon)
    return float(thresholds[ok[-1]]) if ok.size else math.inf


class RiskControlledThreshold(FixedThreshold):
    """A fixed threshold that carries its :class:`RiskCertificate`; defer when ``score < threshold``.

    Usable wherever a threshold is (``ThresholdRule(signal, RiskControlledThreshold(cert))``, the
    adapters' ``threshold=``). An uncertified certificate defers every query (threshold ``+inf``)
    and logs a warning when the policy is built.

    Args:
        certificate: What :func:`certify_threshold` returned (or a calibration file recorded).

    Example:
        >>> policy = RiskControlledThreshold.certify([0.9] * 60 + [0.2] * 40, [1] * 60 + [0] * 40,
        ...                                          epsilon=0.05, delta=0.1)
        >>> policy.threshold, policy.decide(0.5)
        (0.9, (True, 0.9))
    """

    def __init__(self, certificate: RiskCertificate) -> None:
        if not isinstance(certificate, RiskCertificate):
            raise ConfigurationError(f"RiskControlledThreshold needs a RiskCertificate, got {type(certificate).__name__}")
        if not certificate.certified:
            logger.warning("risk-controlled threshold: %s", certificate.summary())
        self.certificate = certificate
        super().__init__(math.inf if not certificate.certified else float(certificate.threshold))

    @classmethod
    def certify(
        cls, scores: ArrayLike, small_correct: ArrayLike, large_correct: ArrayLike | None = None, **options: Any
    ) -> RiskControlledThreshold:
        """Certify on a calibration sample (see :func:`certify_threshold`) and wrap the result."""
        return cls(certify_threshold(scores, small_correct, large_correct, **options))

    def __repr__(self) -> str:
        c = self.certificate
        state = "certified" if c.certified else "NOT certified, defers all"
        return f"RiskControlledThreshold({self.threshold!r}, {c.risk}<={c.epsilon:g} at delta={c.delta:g}, {state})"
