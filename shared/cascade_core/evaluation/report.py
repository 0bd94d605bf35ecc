"""Evaluating a collection cache: every signal and learned rule, AUC-DF with standard errors, budget curves.

What ``cascade eval`` prints; scripts call :func:`evaluate_cache` directly.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cascade_core.decide.scorers import Scorer, make_scorer
from cascade_core.errors import ConfigurationError
from cascade_core.evaluation.collect import CachedExample
from cascade_core.evaluation.curves import (
    BudgetCurve,
    DeferralCurve,
    budget_curve,
    default_signals,
    deferral_curve,
    oracle_curve,
    random_budget_curve,
    random_curve,
    signal_scores,
    summarize_curves,
)
from cascade_core.evaluation.quality import QualityScorer

__all__ = ["EvalReport", "evaluate_cache", "grouped_auc", "measured_costs", "sample_signals", "sampling_params", "scores_for"]


def measured_costs(examples: Sequence[CachedExample]) -> tuple[float, float]:
    """Mean measured seconds per query of the small and the large tier (the default costs)."""
    if not examples:
        raise ConfigurationError("no cached examples")
    return float(np.mean([e.small_seconds for e in examples])), float(np.mean([e.large_seconds for e in examples]))


def qualities(examples: Sequence[CachedExample], rescore: QualityScorer | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Small and large qualities, optionally re-scored from the cached texts with another scorer."""
    if rescore is None:
        return np.array([e.small_quality for e in examples]), np.array([e.large_quality for e in examples])
    small = [float(rescore(e.small.text, e.record)) for e in examples]
    large = [float(rescore(e.large_text, e.record)) for e in examples]
    return np.array(small), np.array(large)


def sampling_params(examples: Sequence[CachedExample]) -> dict[str, Any] | None:
    """The ``sample_agreement`` parameters (k, temperature, seed) the cache's samples were drawn with,
    when every example has samples drawn the same way (``cascade collect --samples``); else None."""
    settings = {None if e.sampling is None or not e.small.samples else tuple(sorted(e.sampling.items())) for e in examples}
    only = settings.pop() if len(settings) == 1 else None
    return None if only is None else dict(only)


def sample_signals(examples: Sequence[CachedExample]) -> dict[str, Scorer]:
    """``{"sample_agreement": SampleAgreement(...)}`` when the cache has samples (:func:`sampling_params`), else {}."""
    params = sampling_params(examples)
    return {} if params is None else {"sample_agreement": make_scorer("sample_agreement", **params)}


def scores_for(examples: Sequence[CachedExample], rules: Mapping[str, Any] | None = None) -> dict[str, np.ndarray]:
    """Confidence scores of every default signal (``sample_agreement`` too when the cache has samples)
    and every learned rule for cached examples."""
    gens = [e.small for e in examples]
    labels = [e.label_tokens for e in examples]
    out = signal_scores(gens, default_signals() | sample_signals(examples), labels_per_example=labels)
    for name, rule in (rules or {}).items():
        if not hasattr(rule, "predict_confidence"):  # a single-signal rule file: score one by one
            out[name] = signal_scores(gens, {name: rule})[name]
            continue
        if any(not g.steps for g in gens):
            values = np.full(len(gens), -math.inf)
            keep = [i for i, g in enumerate(gens) if g.steps]
            values[keep] = rule.predict_confidence(rule.features([gens[i] for i in keep]))
        else:
            values = rule.predict_confidence(rule.features(gens))
        out[name] = values
    return out


def _rule_meta(rule: Any) -> dict[str, Any]:
    if hasattr(rule, "get_params"):  # a learned rule
        return rule.get_params() | {"n_samples_fit": rule.n_samples_fit_}
    return {"signal": rule.signal, "params": rule.params}  # a single-signal rule file


def grouped_auc(
    examples: Sequence[CachedExample],
    scores: Mapping[str, np.ndarray],
    field_name: str,
    rescore: QualityScorer | None = None,
    min_size: int = 10,
) -> list[dict[str, Any]]:
    """AUC-DF of every score within each value of a record field (e.g. ``attribute``); groups
    smaller than ``min_size`` are left out. Columns: group, n, small/large accuracy, one per score,
    random, oracle."""
    small_q, large_q = qualities(examples, rescore)
    groups: dict[str, list[int]] = {}
    for i, e in enumerate(examples):
        groups.setdefault(str(e.record.get(field_name, "")), []).append(i)
    rows = []
    for group, idx in sorted(groups.items()):
        if len(idx) < min_size:
            continue
        s, large = small_q[idx], large_q[idx]
        row: dict[str, Any] = {
            "group": group, "n": len(idx),
            "small_accuracy": round(float(s.mean()), 3), "large_accuracy": round(float(large.mean()), 3),
        }
        for name, values in scores.items():
            row[name] = round(deferral_curve(values[idx], s, large).auc, 4)
        row["random"] = round(random_curve(s, large).auc, 4)
        row["oracle"] = round(oracle_curve(s, large).auc, 4)
        rows.append(row)
    return rows


def _bootstrap(
    scores: Mapping[str, np.ndarray], small_q: np.ndarray, large_q: np.ndarray, resamples: int, seed: int
) -> tuple[dict[str, float], dict[str, tuple[float, float]]]:
    """Over resampled test sets: the bootstrap standard error of AUC-DF(signal) − AUC-DF(random), and
    the 95 % percentile interval of each AUC-DF (signals, random, oracle)."""
    rng = np.random.default_rng(seed)
    names = [*scores, "random", "oracle"]
    gains: dict[str, list[float]] = {name: [] for name in [*scores, "oracle"]}
    aucs: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(resamples):
        idx = rng.integers(0, small_q.size, small_q.size)
        s, large = small_q[idx], large_q[idx]
        base = random_curve(s, large).auc
        aucs["random"].append(base)
        for name, values in scores.items():
            auc = deferral_curve(values[idx], s, large).auc
            aucs[name].append(auc)
            gains[name].append(auc - base)
        oracle = oracle_curve(s, large).auc
        aucs["oracle"].append(oracle)
        gains["oracle"].append(oracle - base)
    se = {"random": 0.0} | {name: round(float(np.std(g)), 4) for name, g in gains.items()}
    ci = {name: (round(float(np.quantile(a, 0.025)), 4), round(float(np.quantile(a, 0.975)), 4)) for name, a in aucs.items()}
    return se, ci


@dataclass
class EvalReport:
    """Everything ``cascade eval`` writes."""

    rows: list[dict[str, Any]]
    curves: list[DeferralCurve]
    random: DeferralCurve
    oracle: DeferralCurve
    budget_curves: list[BudgetCurve] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    groups: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        def curve(c: DeferralCurve) -> dict[str, Any]:
            return {"name": c.name, "auc_df": c.auc, "rates": c.rates.round(6).tolist(), "quality": c.quality.round(6).tolist()}

        return {
            "meta": self.meta,
            "table": self.rows,
            "groups": self.groups,
            "deferral_curves": [curve(c) for c in [*self.curves, self.random, self.oracle]],
            "budget_curves": [
                {
                    "name": b.name,
                    "area": b.area,
                    "budgets": b.budgets.round(6).tolist(),
                    "accuracy": b.quality.round(6).tolist(),
                    "accuracy_std": b.quality_std.round(6).tolist(),
                    "deferral_rate": b.deferral_rate.round(6).tolist(),
                    "orders": b.orders,
                }
                for b in self.budget_curves
            ],
        }

    def write_json(self, path: str | os.PathLike[str]) -> Path:
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(self.to_dict(), indent=1, allow_nan=False, default=_json_default), encoding="utf-8")
        return out

    def write_csv(self, path: str | os.PathLike[str]) -> Path:
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(self.rows[0]))
            writer.writeheader()
            writer.writerows(self.rows)
        return out

    def write_groups_csv(self, path: str | os.PathLike[str]) -> Path:
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(self.groups[0]) if self.groups else ["group"])
            writer.writeheader()
            writer.writerows(self.groups)
        return out

    def format_table(self, rows: Sequence[Mapping[str, Any]] | None = None) -> str:
        """A fixed-width text table for the terminal (default: the main table)."""
        rows = self.rows if rows is None else rows
        cols = list(rows[0])
        cells = [[str(r[c]) for c in cols] for r in rows]
        widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
        line = "  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True))
        body = ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
        return "\n".join([line, "-" * len(line), *body])


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def evaluate_cache(
    test: Sequence[CachedExample],
    rules: Mapping[str, Any] | None = None,
    *,
    calibration: Sequence[CachedExample] | None = None,
    small_cost: float | None = None,
    large_cost: float | None = None,
    orders: int = 5,
    warmup: int = 16,
    seed: int = 0,
    rescore: QualityScorer | None = None,
    budget: bool = True,
    group_by: str | None = None,
    bootstrap: int = 200,
) -> EvalReport:
    """Deferral curves + AUC-DF for every signal and rule, and paper B's budget curves.

    ``calibration`` (e.g. the fit split) only provides warm-up thresholds for the budget curves;
    nothing is tuned on ``test``. Costs default to the measured mean seconds per tier on ``test``.
    ``bootstrap`` resamples of the test set give the standard error of each signal's AUC-DF gain
    over random (column ``vs_random_se``) and the 95 % percentile interval of each AUC-DF
    (``auc_df_ci95``); 0 turns both off.
    """
    if not test:
        raise ConfigurationError("the test cache is empty")
    small_q, large_q = qualities(test, rescore)
    scores = scores_for(test, rules)
    curves = [deferral_curve(v, small_q, large_q, name=name) for name, v in scores.items()]
    rand, orac = random_curve(small_q, large_q), oracle_curve(small_q, large_q)
    rows = summarize_curves(curves, rand, orac)
    if bootstrap:
        se, ci = _bootstrap(scores, small_q, large_q, bootstrap, seed)
        for row in rows:
            row["vs_random_se"] = se.get(row["signal"], "")
            row["auc_df_ci95"] = "[{:.4f}, {:.4f}]".format(*ci[row["signal"]]) if row["signal"] in ci else ""
    m_small, m_large = measured_costs(test)
    c_s = m_small if small_cost is None else small_cost
    c_l = m_large if large_cost is None else large_cost
    budgets: list[BudgetCurve] = []
    if budget and c_l > c_s:
        cal_scores = scores_for(calibration, rules) if calibration else {}
        for name, values in scores.items():
            budgets.append(
                budget_curve(
                    values, small_q, large_q, small_cost=c_s, large_cost=c_l, orders=orders, warmup=warmup,
                    calibration_scores=cal_scores.get(name), seed=seed, name=name,
                )
            )
        budgets.append(
            random_budget_curve(small_q, large_q, small_cost=c_s, large_cost=c_l, orders=orders, warmup=warmup, seed=seed)
        )
        areas = {b.name: round(b.area, 4) for b in budgets}
        for row in rows:
            row["budget_area"] = areas.get(row["signal"], "")
    meta = {
        "n": len(test),
        "small_accuracy": round(float(small_q.mean()), 4),
        "large_accuracy": round(float(large_q.mean()), 4),
        "small_cost": c_s,
        "large_cost": c_l,
        "cost_unit": "seconds per query (measured)" if small_cost is None and large_cost is None else "user-given",
        "budget_orders": orders,
        "budget_warmup": warmup,
        "calibration_n": len(calibration or ()),
        "rules": {name: _rule_meta(rule) for name, rule in (rules or {}).items()},
    }
    groups = grouped_auc(test, scores, group_by, rescore) if group_by else []
    return EvalReport(rows, curves, rand, orac, budgets, meta, groups)
