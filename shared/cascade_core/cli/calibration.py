"""``cascade calibrate`` for a threshold: by deferral rate, cost budget, or a certified risk (``--risk``).

Every threshold mode writes the same versioned calibration file
(:class:`~cascade_core.decide.calibration_file.CalibrationFile`: the rule, the threshold, the
sample report, the held-out report and — with ``--risk`` — the risk certificate) to ``--out``
and/or ``--json``; ``Cascade``/``ChatCascade``/``CascadeLLM(calibration_file=…)`` and
``cascade serve`` read it.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

import numpy as np

from cascade_core.decide.calibration_file import CalibrationFile
from cascade_core.decide.risk import certify_threshold, empirical_threshold
from cascade_core.decide.rule_file import SignalRule, load_rule
from cascade_core.errors import ConfigurationError
from cascade_core.evaluation.calibration import CalibrationReport, calibrate, evaluate_threshold
from cascade_core.evaluation.collect import CachedExample, load_cache
from cascade_core.evaluation.report import measured_costs, qualities, sampling_params, scores_for
from cascade_core.evaluation.risk_report import realised_risk, wilson_interval

__all__ = ["calibration_rule", "run_threshold_calibration"]

logger = logging.getLogger(__name__)


def _shared_labels(cache: list[CachedExample]) -> list[str] | None:
    sets = {c.label_tokens for c in cache if c.label_tokens}
    if len(sets) > 1:
        logger.warning("examples have different label sets; the calibrated margin uses the most common one")
    if not sets:
        return None
    counts: dict[tuple[str, ...], int] = {}
    for c in cache:
        if c.label_tokens:
            counts[c.label_tokens] = counts.get(c.label_tokens, 0) + 1
    return list(max(counts.items(), key=lambda item: item[1])[0])


def calibration_rule(args: argparse.Namespace, cache: list[CachedExample]) -> tuple[Any, np.ndarray]:
    """The rule being calibrated (``--rule`` file, or ``--signal`` with its parameters) and its scores on ``cache``.

    The scores are the rule's own, so the threshold means the same when the file is deployed.
    """
    if args.rule:
        rule = load_rule(args.rule)
    else:
        params: dict[str, Any] = {}
        if args.signal == "chow_quantile":
            params["alpha"] = args.alpha
        if args.signal == "margin" and (labels := _shared_labels(cache)):
            params["labels"] = labels
        if args.signal == "sample_agreement":  # the deployed rule samples as the calibration data was sampled
            drawn = sampling_params(cache)
            if drawn is None:
                raise ConfigurationError("--signal sample_agreement: the cache has no samples (or mixed ones); collect "
                                         "it with `cascade collect --samples K --temperature T`")
            params.update(drawn)
        try:
            rule = SignalRule(args.signal, params)
        except ConfigurationError as err:
            raise ConfigurationError(f"--signal: {err}") from err
    return rule, scores_for(cache, {rule.name: rule})[rule.name]


def _costs(args: argparse.Namespace, cache: list[CachedExample]) -> tuple[float, float]:
    c_s, c_l = measured_costs(cache)
    return (c_s if args.small_cost is None else args.small_cost), (c_l if args.large_cost is None else args.large_cost)


def _certify(args: argparse.Namespace, scores: np.ndarray, small_q: np.ndarray, large_q: np.ndarray) -> Any:
    if args.epsilon is None:
        raise ConfigurationError("--risk needs --epsilon (the promised risk level, e.g. 0.05)")
    large = large_q if args.risk == "quality_loss" else None
    return certify_threshold(scores, small_q, large, risk=args.risk, epsilon=args.epsilon, delta=args.delta)


def _print_report(name: str, report: CalibrationReport, c_l: float) -> None:
    lo, hi = wilson_interval(int(round(report.deferral_rate * report.n)), report.n)
    target = f" (target {report.target_deferral_rate:.3f})" if report.target_deferral_rate is not None else ""
    print(f"{name}: threshold {report.threshold:.6g} (defer when below)")
    print(f"  on {report.n} sample queries: deferral rate {report.deferral_rate:.3f} [95% CI {lo:.3f}, {hi:.3f}]{target}, "
          f"quality {report.quality:.3f} (small only {report.small_quality:.3f}, large only {report.large_quality:.3f}), "
          f"cost/query {report.cost_per_query:.4g} (all-large {c_l:.4g})")


def run_threshold_calibration(args: argparse.Namespace) -> int:
    """``cascade calibrate`` with ``--deferral-rate``, ``--budget`` or ``--risk``; returns the exit status."""
    if args.risk is None and args.deferral_rate is None and args.budget is None:
        raise ConfigurationError("give one of --deferral-rate, --budget, --risk or --probability")
    if args.risk is None and args.epsilon is not None:
        raise ConfigurationError("--epsilon applies to --risk only")
    cache = load_cache(args.cache)
    rule, scores = calibration_rule(args, cache)
    small_q, large_q = qualities(cache)
    c_s, c_l = _costs(args, cache)
    certificate = None
    if args.risk is not None:
        certificate = _certify(args, scores, small_q, large_q)
        report = evaluate_threshold(scores, small_q, large_q, certificate.threshold, small_cost=c_s, large_cost=c_l)
    else:
        report = calibrate(scores, small_q, large_q, deferral_rate=args.deferral_rate, budget=args.budget,
                           small_cost=c_s, large_cost=c_l)
    _print_report(rule.name, report, c_l)
    if certificate is not None:
        print(f"  {certificate.summary()}")
        naive = empirical_threshold(scores, small_q, large_q, risk=args.risk, epsilon=args.epsilon)
        naive_rate = float(np.mean(scores < naive))
        print(f"  (the naive threshold with sample risk <= {args.epsilon:g}, no guarantee: {naive:.6g}, "
              f"deferral rate {naive_rate:.3f}; the guarantee costs {report.deferral_rate - naive_rate:+.3f} deferrals)")
    holdout = None
    if args.holdout:
        held = load_cache(args.holdout)
        h_scores = scores_for(held, {rule.name: rule})[rule.name]
        h_small, h_large = qualities(held)
        h = evaluate_threshold(h_scores, h_small, h_large, report.threshold, small_cost=c_s, large_cost=c_l,
                               target_deferral_rate=report.target_deferral_rate, budget=args.budget)
        holdout = h.to_dict()
        extra = ""
        if certificate is not None:
            risk = realised_risk(h_scores, h_small, h_large, report.threshold, certificate.risk)
            holdout["realised_risk"] = risk
            extra = f", {certificate.risk} {risk:.4f} (promised <= {certificate.epsilon:g})"
        print(f"  on {h.n} held-out queries: deferral rate {h.deferral_rate:.3f}, quality {h.quality:.3f}, "
              f"cost/query {h.cost_per_query:.4g}{extra}")
    calibration = CalibrationFile(rule.to_dict(), threshold=report.threshold, sample=report.to_dict(),
                                  holdout=holdout, certificate=certificate)
    for path in {p for p in (args.out, args.json) if p}:
        calibration.save(path)
        print(f"  -> {path}")
    return 0
