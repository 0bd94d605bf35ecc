"""The deferral rules compared on BFCL, fitted on the fit split only, replayed on recorded generations.

Every rule here is a pure function of the small tier's recorded ``Generation`` (the exact one the
engine judged, see ``run``), and decoding is greedy, so replaying it is the decision
``ChatCascade(rule=...)`` takes on that question. An answer whose tool call failed the schema check
is deferred by every rule (the engine does that before any rule).

* ``parse_only``: keep every answer whose calls are valid (what peers do);
* ``tool_call_rule``: :class:`~cascade_core.decide.tool_uncertainty.ToolCallRule` with name and
  argument thresholds chosen on the fit split (``tool_call_uncertainty.choose_thresholds``: most wrong
  fit calls deferred with at most ``max_loss`` of the right ones lost);
* ``learned``: :class:`~cascade_core.decide.learned.rule.LearnedDeferral` over paper A's generation
  features plus the tool-call features (least sure call's name margin, argument quantiles at α = 0 and
  0.1, number of calls), the configuration chosen by cross-validated AUC-DF on the fit split.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from benchmarks.studies.tool_call_uncertainty import ARGS, NAME, _candidates, outcome, scores_of
from cascade_core.errors import ConfigurationError

__all__ = ["TOOL_FEATURE_NAMES", "LearnedChoice", "Pair", "feature_matrix", "forced_scores", "select_learned",
           "tool_call_thresholds"]

TOOL_FEATURE_NAMES = ("tool_name_margin", "tool_arguments_q0", "tool_arguments_q0.1", "tool_calls")
FORCED = ("invalid_call", "other_deferral")


@dataclass
class Pair:
    """One question's two recorded answers."""

    id: str
    category: str
    small: dict[str, Any]
    large: dict[str, Any]
    generation: Any  # the small tier's Generation (None if it failed outright)

    @property
    def forced(self) -> bool:
        """Whether the engine defers this answer whatever the rule (invalid call, failed small tier)."""
        return self.small["kind"] in FORCED or self.generation is None

    def row(self) -> dict[str, Any]:
        """The row shape ``tool_call_uncertainty``'s threshold choice reads."""
        scores = scores_of(self.generation) if self.generation is not None else {NAME: None, ARGS: None}
        return {"kind": self.small["kind"], "right": self.small["quality"] >= 0.5, "_generation": self.generation,
                **scores}


def _defer_matrix(name: np.ndarray, args: np.ndarray, name_t: float | None, args_t: float | None) -> np.ndarray:
    """Which valid calls ``ToolCallRule(ThresholdRule("margin", 0), name_t, args_t)`` defers, from their
    scores (NaN: no call found in the text, which that rule keeps)."""
    out = np.zeros(name.shape, dtype=bool)
    if name_t is not None:
        out |= ~np.isnan(name) & (np.nan_to_num(name, nan=np.inf) < name_t)
    if args_t is not None:
        out |= ~np.isnan(args) & (np.nan_to_num(args, nan=np.inf) < args_t)
    return out


def tool_call_thresholds(fit: Sequence[Pair], max_loss: float) -> dict[str, Any]:
    """``ToolCallRule`` thresholds chosen on the fit pairs, by ``tool_call_uncertainty.choose_thresholds``'
    criterion (most wrong valid calls deferred with at most ``max_loss`` of the right ones lost; ties to
    fewer right calls lost, then to fewer checks), evaluated on the recorded scores: the rule is a pure
    function of them, and the study's per-candidate replay is cubic in the number of calls."""
    rows = [p.row() for p in fit if p.small["kind"] == "valid_call"]
    name = np.array([np.nan if r[NAME] is None else r[NAME] for r in rows], dtype=np.float64)
    args = np.array([np.nan if r[ARGS] is None else r[ARGS] for r in rows], dtype=np.float64)
    right = np.array([r["right"] for r in rows], dtype=bool)
    best: tuple[tuple[int, int, int], float | None, float | None] | None = None
    for name_t in _candidates(name[~np.isnan(name)].tolist()):
        for args_t in _candidates(args[~np.isnan(args)].tolist()):
            deferred = _defer_matrix(name, args, name_t, args_t)
            lost = int((deferred & right).sum())
            if lost > max_loss * right.sum():
                continue
            key = (-int((deferred & ~right).sum()), lost, (name_t is not None) + (args_t is not None))
            if best is None or key < best[0]:
                best = (key, name_t, args_t)
    assert best is not None  # (None, None) loses nothing
    return {"name_threshold": best[1], "arguments_threshold": best[2], "calibration": outcome(rows, best[1], best[2])}


def tool_call_rule_defers(pairs: Sequence[Pair], thresholds: dict[str, Any]) -> np.ndarray:
    """Which questions the cascade with the calibrated ``ToolCallRule`` sends to the large tier: forced
    deferrals, and valid calls below a threshold (answers without a call are kept by its base rule)."""
    rows = [p.row() for p in pairs]
    name = np.array([np.nan if r[NAME] is None else r[NAME] for r in rows], dtype=np.float64)
    args = np.array([np.nan if r[ARGS] is None else r[ARGS] for r in rows], dtype=np.float64)
    valid = np.array([p.small["kind"] == "valid_call" for p in pairs], dtype=bool)
    forced = np.array([p.forced for p in pairs], dtype=bool)
    return forced | (valid & _defer_matrix(name, args, thresholds["name_threshold"], thresholds["arguments_threshold"]))


def feature_matrix(pairs: Sequence[Pair]) -> np.ndarray:
    """Paper A's features, then :data:`TOOL_FEATURE_NAMES`, one row per pair (zeros for a failed tier)."""
    from cascade_core.decide.learned.features import BASE_FEATURE_NAMES, generation_features
    from cascade_core.decide.tool_uncertainty import (
        ToolArgumentsQuantile,
        ToolNameMargin,
        tool_call_uncertainty,
    )

    name, q0, q1 = ToolNameMargin(), ToolArgumentsQuantile(0.0), ToolArgumentsQuantile(0.1)
    rows = []
    for pair in pairs:
        g = pair.generation
        if g is None or not g.steps:
            rows.append(np.zeros(len(BASE_FEATURE_NAMES) + len(TOOL_FEATURE_NAMES)))
            continue
        tool = [name(g), q0(g), q1(g), len(tool_call_uncertainty(g))]
        rows.append(np.concatenate([generation_features(g), np.nan_to_num(tool, neginf=-50.0)]))
    return np.asarray(rows, dtype=np.float64)


def forced_scores(scores: np.ndarray, pairs: Sequence[Pair]) -> np.ndarray:
    """``scores`` with every forced deferral ranked first (one tie block below every other score)."""
    out = np.nan_to_num(np.asarray(scores, dtype=np.float64), neginf=-1e6, posinf=1e6)
    forced = np.array([p.forced for p in pairs])
    if forced.any():
        floor = out[~forced].min() if (~forced).any() else 0.0
        out[forced] = floor - 1.0
    return out


@dataclass
class LearnedChoice:
    """The learned rule chosen by cross-validation, fitted on every fit pair, and the comparison table."""

    params: dict[str, Any]
    rule: Any
    table: list[dict[str, Any]]

    def scores(self, pairs: Sequence[Pair]) -> np.ndarray:
        return forced_scores(self.rule.predict_confidence(feature_matrix(pairs)), pairs)


def _folds(labels: np.ndarray, cv: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    folds: list[list[int]] = [[] for _ in range(cv)]
    for value in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == value))
        for i, j in enumerate(idx):
            folds[i % cv].append(int(j))
    return [np.array(sorted(f)) for f in folds]


def select_learned(fit: Sequence[Pair], *, cv: int = 5, seed: int = 0) -> LearnedChoice:
    """Choose among :data:`~cascade_core.evaluation.rule_selection.DEFAULT_LEARNED` × two targets by
    mean held-out AUC-DF over ``cv`` stratified folds of the fit pairs; refit the winner on all of them."""
    from cascade_core.decide.learned.features import deferral_labels
    from cascade_core.decide.learned.rule import LearnedDeferral
    from cascade_core.evaluation.curves import deferral_curve
    from cascade_core.evaluation.rule_selection import DEFAULT_LEARNED

    if len(fit) < 2 * cv:
        raise ConfigurationError(f"{len(fit)} fit questions are too few for {cv}-fold cross-validation of the "
                                 f"learned rule (at least {2 * cv})")
    X = feature_matrix(fit)  # noqa: N806 - scikit-learn's name
    small = np.array([p.small["quality"] for p in fit])
    large = np.array([p.large["quality"] for p in fit])
    folds = _folds((small >= 0.5).astype(int) * 2 + (large >= 0.5).astype(int), cv, seed)
    candidates = [dict(c, target=t) for t in ("small_correct", "large_better") for c in DEFAULT_LEARNED]
    table = []
    for params in candidates:
        aucs = []
        for k, held in enumerate(folds):
            train = np.setdiff1d(np.arange(len(fit)), held)
            y = deferral_labels(small[train], large[train], params["target"])
            if len(np.unique(y)) < 2 or held.size == 0:
                continue
            rule = LearnedDeferral(**params, random_state=k).fit(X[train], y)
            held_pairs = [fit[i] for i in held]
            s = forced_scores(rule.predict_confidence(X[held]), held_pairs)
            aucs.append(deferral_curve(s, small[held], large[held]).auc)
        table.append({"params": params, "auc_df": float(np.mean(aucs)) if aucs else float("nan"), "folds": len(aucs)})
    scored = [t for t in table if t["folds"]]
    if not scored:
        raise ConfigurationError(f"{len(fit)} fit questions are too few for {cv}-fold cross-validation of the "
                                 "learned rule (each training fold needs right and wrong small answers)")
    best = max(scored, key=lambda t: t["auc_df"])
    rule = LearnedDeferral(**best["params"]).fit(X, deferral_labels(small, large, best["params"]["target"]))
    return LearnedChoice(best["params"], rule, table)
