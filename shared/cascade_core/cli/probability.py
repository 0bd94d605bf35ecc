"""``cascade calibrate --probability``: fit a score → P(small answer correct) map and report its ECE.

The map is fitted on the sample (``--cache``) and judged on held-out data: ``--holdout`` (another
cache) or, without it, a random ``--holdout-fraction`` of the sample kept out of the fit. The
expected calibration error is reported before (the raw score read as a probability, where it has
one) and after calibration; ``--plot`` draws the reliability diagram of both.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from cascade_core.decide.probability import (
    ProbabilityMap,
    expected_calibration_error,
    reliability_bins,
    score_as_probability,
)
from cascade_core.decide.scorers import make_scorer
from cascade_core.errors import ConfigurationError
from cascade_core.evaluation.collect import load_cache
from cascade_core.evaluation.report import qualities

__all__ = ["run_probability"]

ScoresFn = Callable[[argparse.Namespace, list], "tuple[np.ndarray, str]"]


def _score_range(args: argparse.Namespace) -> tuple[float, float]:
    if args.rule:
        from cascade_core.decide.learned.rule import LearnedDeferral

        return LearnedDeferral.load(args.rule).score_range
    params = {"alpha": args.alpha} if args.signal == "chow_quantile" else {}
    return make_scorer(args.signal, **params).score_range


def _split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    if not 0.0 < fraction < 1.0:
        raise ConfigurationError(f"--holdout-fraction must be in (0, 1), got {fraction!r}")
    held = int(round(n * fraction))
    if held < 1 or n - held < 2:
        raise ConfigurationError(
            f"a sample of {n} is too small to hold out {fraction:g} of it and still fit a map; pass --holdout"
        )
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[held:]), np.sort(order[:held])


def run_probability(args: argparse.Namespace, scores_fn: ScoresFn) -> int:
    """Fit, save, report and plot; returns the exit status."""
    if args.bins < 1:
        raise ConfigurationError(f"--bins must be a positive int, got {args.bins}")
    if args.out is None:
        raise ConfigurationError("--probability needs --out PATH for the fitted map (JSON)")
    cache = load_cache(args.cache)
    scores, name = scores_fn(args, cache)
    correct, _ = qualities(cache)
    if args.holdout:
        held = load_cache(args.holdout)
        fit_s, fit_y = scores, correct
        test_s, _ = scores_fn(args, held)
        test_y, _ = qualities(held)
        held_name = f"{args.holdout} ({len(held)} queries)"
    else:
        fit_i, test_i = _split(len(cache), args.holdout_fraction, args.seed)
        fit_s, fit_y, test_s, test_y = scores[fit_i], correct[fit_i], scores[test_i], correct[test_i]
        held_name = f"{len(test_i)} held-out queries of {args.cache} (seed {args.seed})"
    pmap = ProbabilityMap.fit(fit_s, fit_y, signal=name)
    pmap.save(args.out)
    after = pmap(test_s)
    ece_after = expected_calibration_error(after, test_y, args.bins)
    raw = score_as_probability(test_s, _score_range(args))
    ece_before = expected_calibration_error(raw, test_y, args.bins) if raw is not None else None
    report: dict[str, Any] = {
        "signal": name, "map": str(args.out), "fit_n": int(fit_s.size), "holdout_n": int(test_s.size),
        "ece_before": ece_before, "ece_after": ece_after, "bins": args.bins,
        "holdout_accuracy": float(np.mean(test_y)), "mean_probability_after": float(np.mean(after)),
    }
    print(f"{name}: probability map with {len(pmap.x)} knots fitted on {fit_s.size} queries -> {args.out}")
    before_text = f"{ece_before:.4f}" if ece_before is not None else "n/a (the raw score is not a probability)"
    print(f"  on {held_name}: ECE before {before_text}, after {ece_after:.4f} ({args.bins} bins)")
    for p in (0.5, 0.8, 0.9):
        print(f"  keep when P(correct) >= {p:.1f}  <=>  {name} >= {pmap.score_for_probability(p):.6g}")
    if args.plot:
        from cascade_core.evaluation.plots import plot_reliability_diagram

        series = [(f"{name}, calibrated", reliability_bins(after, test_y, args.bins), ece_after)]
        if raw is not None and ece_before is not None:
            series.insert(0, (f"{name}, raw", reliability_bins(raw, test_y, args.bins), ece_before))
        plot_reliability_diagram(series, args.plot, title=f"Reliability on held-out data: {name}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=1), encoding="utf-8")
    return 0
