"""Calibration files: the threshold ``cascade calibrate`` chose, the rule it applies to, and its certificate.

One versioned JSON file (``"format": "llm-cascade/calibration"``) holds everything a deployment
needs to apply a calibrated threshold: the rule (a signal, or a learned rule, embedded as its rule
file JSON), the threshold, what it did on the calibration sample (``sample``: the
:class:`~cascade_core.evaluation.calibration.CalibrationReport` fields), optionally the held-out
report, — for ``cascade calibrate --risk`` — the :class:`~cascade_core.decide.risk.RiskCertificate`,
and — for ``cascade calibrate --router`` — the route-then-cascade hybrid's router threshold
(``router``: ``{"threshold", "file", "route_share"}``; ``cascade serve`` reads it for a ``[router]`` table).
:meth:`CalibrationFile.build_rule` turns it into a :class:`~cascade_core.decide.rules.ThresholdRule`
whose policy is a :class:`~cascade_core.decide.risk.RiskControlledThreshold` when a certificate is
present (so an uncertified file defers everything), a :class:`FixedThreshold` otherwise.
``Cascade(calibration_file=…)``, ``ChatCascade``/``CascadeLLM(calibration_file=…)`` and
``cascade serve`` (``calibration_file = "…"``) read it with :func:`load_calibration` (strict:
size limit, format, version, fields).

Example:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "calib.json"
    >>> _ = CalibrationFile(rule={"format": "llm-cascade/signal-rule", "format_version": 1, "signal": "margin",
    ...                           "params": {}}, threshold=0.42).save(path)
    >>> rule = load_calibration(path).build_rule()
    >>> rule.scorer.name, rule.policy.current_threshold
    ('margin', 0.42)
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cascade_core.decide.risk import RiskCertificate, RiskControlledThreshold
from cascade_core.decide.rule_file import read_rule_json, rule_from_dict, write_json_file
from cascade_core.decide.rules import ThresholdRule
from cascade_core.decide.thresholds import FixedThreshold, ThresholdPolicy
from cascade_core.errors import CascadeError, RuleFileError

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "CalibrationFile", "load_calibration"]

FORMAT_NAME = "llm-cascade/calibration"
FORMAT_VERSION = 1
_FIELDS = {"format", "format_version", "signal", "rule", "threshold", "sample", "holdout", "certificate", "router"}
_ROUTER_FIELDS = {"threshold", "file", "route_share"}


def _encode(value: float) -> float | str:
    return ("inf" if value > 0 else "-inf") if math.isinf(value) else value


@dataclass(frozen=True)
class CalibrationFile:
    """A calibrated threshold for one rule, with what it did on the sample and its certificate.

    Attributes:
        rule: The rule's JSON as ``cascade fit`` writes it (a signal rule or a learned rule).
        threshold: Defer when the score is below it.
        sample: The calibration sample's report (deferral rate, quality, cost, n …).
        holdout: The same on a held-out cache, if one was given.
        certificate: The risk certificate (``cascade calibrate --risk``), if any.
        router: The hybrid's router part (``cascade calibrate --router``), if any: ``threshold`` (route
            a request away when its ``p_good`` is below it, a probability), the router ``file`` it was
            calibrated for and the ``route_share`` it routed on the sample.

    Example:
        >>> from cascade_core.decide.rule_file import SignalRule
        >>> CalibrationFile(SignalRule("chow_sum").to_dict(), threshold=-3.0).signal
        'chow_sum'
    """

    rule: dict[str, Any]
    threshold: float
    sample: dict[str, Any] = field(default_factory=dict)
    holdout: dict[str, Any] | None = None
    certificate: RiskCertificate | None = None
    router: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.certificate is not None and self.certificate.certified and self.certificate.threshold != self.threshold:
            raise RuleFileError(
                f"the calibration threshold {self.threshold} differs from its certificate's {self.certificate.threshold}"
            )

    @property
    def scorer(self) -> Any:
        """The rule as a scorer (a :class:`~cascade_core.decide.rule_file.SignalRule` or a learned rule)."""
        return rule_from_dict(self.rule, source="the calibration file's rule")

    @property
    def signal(self) -> str:
        """Name of the score the threshold applies to."""
        return str(self.scorer.name)

    def policy(self) -> ThresholdPolicy:
        """A :class:`RiskControlledThreshold` when certified data is attached, else a :class:`FixedThreshold`."""
        if self.certificate is not None:
            return RiskControlledThreshold(self.certificate)
        return FixedThreshold(self.threshold)

    def build_rule(self) -> ThresholdRule:
        """The deferral rule: this file's scorer against its threshold policy."""
        return ThresholdRule(self.scorer, self.policy())

    def to_dict(self) -> dict[str, Any]:
        """The file's JSON (strict: infinities as ``"inf"`` / ``"-inf"``)."""
        out: dict[str, Any] = {
            "format": FORMAT_NAME, "format_version": FORMAT_VERSION, "signal": self.signal, "rule": self.rule,
            "threshold": _encode(self.threshold), "sample": self.sample,
        }
        if self.holdout is not None:
            out["holdout"] = self.holdout
        if self.certificate is not None:
            out["certificate"] = self.certificate.to_dict()
        if self.router is not None:
            out["router"] = self.router
        return out

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the file atomically (parent directories created). Returns the path."""
        return write_json_file(path, self.to_dict(), indent=1)

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "calibration data") -> CalibrationFile:
        """Rebuild from :meth:`to_dict` output; raises :class:`RuleFileError` naming what is wrong."""
        if not isinstance(data, dict) or data.get("format") != FORMAT_NAME:
            raise RuleFileError(
                f"{source} is not a calibration file (expected \"format\": \"{FORMAT_NAME}\"); "
                "write one with `cascade calibrate ... --out calib.json`"
            )
        version = data.get("format_version")
        if isinstance(version, bool) or version != FORMAT_VERSION:
            raise RuleFileError(f"{source} has format_version {version!r}; this llm-cascade reads version {FORMAT_VERSION}")
        unknown = sorted(set(data) - _FIELDS)
        if unknown:
            raise RuleFileError(f"{source} has unknown fields {unknown}")
        missing = sorted({"rule", "threshold"} - set(data))
        if missing:
            raise RuleFileError(f"{source} lacks {missing}")
        threshold = data["threshold"]
        if threshold in ("inf", "-inf"):
            threshold = float(threshold)
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or math.isnan(threshold):
            raise RuleFileError(f"{source}: 'threshold' must be a number, got {threshold!r}")
        for name in ("sample", "holdout"):
            if data.get(name) is not None and not isinstance(data[name], dict):
                raise RuleFileError(f"{source}: {name!r} must be an object")
        cert = data.get("certificate")
        certificate = RiskCertificate.from_dict(cert, source=source) if cert is not None else None
        router = _check_router(data.get("router"), source)
        try:
            calibration = cls(
                rule=data["rule"], threshold=float(threshold), sample=data.get("sample") or {}, holdout=data.get("holdout"),
                certificate=certificate, router=router,
            )
            name = calibration.signal  # the embedded rule must load
        except RuleFileError:
            raise
        except CascadeError as err:
            raise RuleFileError(f"{source}: invalid rule: {err}") from err
        if "signal" in data and data["signal"] != name:
            raise RuleFileError(f"{source}: 'signal' says {data['signal']!r} but the rule is {name!r}")
        return calibration


def _check_router(value: Any, source: str) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or "threshold" not in value or set(value) - _ROUTER_FIELDS:
        raise RuleFileError(f"{source}: 'router' must be an object with 'threshold' (and optionally 'file', 'route_share')")
    threshold = value["threshold"]
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 <= threshold <= 1.0:
        raise RuleFileError(f"{source}: router.threshold must be a probability in [0, 1], got {threshold!r}")
    share = value.get("route_share", 0.0)
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0.0 <= share <= 1.0:
        raise RuleFileError(f"{source}: router.route_share must be a share in [0, 1], got {share!r}")
    if not isinstance(value.get("file", ""), str):
        raise RuleFileError(f"{source}: router.file must be a path string")
    return dict(value)


def load_calibration(path: str | os.PathLike[str]) -> CalibrationFile:
    """Read a calibration file written by ``cascade calibrate --out`` (or :meth:`CalibrationFile.save`).

    Raises:
        RuleFileError: missing, too large, not JSON, not a calibration file, another format
            version, unknown fields, or an invalid rule or certificate.
    """
    data, source = read_rule_json(path, kind="calibration file")
    return CalibrationFile.from_dict(data, source=source)
