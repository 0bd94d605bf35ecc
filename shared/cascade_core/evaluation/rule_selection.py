"""Choose a deferral rule by cross-validation on the fit split: learned candidates vs every single signal.

:func:`select_rule` splits the fit examples into ``cv`` folds (stratified on whether the small
answer is right; repeated ``repeats`` times with fresh shuffles). Every candidate — each default
single signal (margin, Chow-Sum, Chow-Average, Chow-Quantile at several α, entropy; nothing to
fit) and each learned configuration (:class:`~cascade_core.decide.learned.rule.LearnedDeferral` parameters:
model, target, regularisation) — is fitted on the other folds and scored by the AUC-DF of its
deferral curve on the held-out fold. The candidate with the highest mean held-out AUC-DF wins (a
tie goes to the signal, listed first); the learned winner is re-fitted on all fit examples. The
returned :class:`Selection` holds the whole table (mean, standard error, paired difference to the
best single signal with its standard error), which ``cascade fit`` prints and records in the rule
file. The test split is never seen.

Standard errors are ``std(fold values) / sqrt(cv)`` over all ``cv × repeats`` held-out folds (the
repeats reduce split noise in the mean but are not independent data, so the divisor is ``cv``).

Example:
    >>> from cascade_core.types import Generation, TokenAlternative, TokenStep
    >>> def step(lp):
    ...     return TokenStep("a", lp, (TokenAlternative("a", lp), TokenAlternative("b", lp - 1.5)))
    >>> gens = [Generation("x", (step(-0.1 * (i % 7)),)) for i in range(40)]
    >>> small = [1.0 if i % 7 < 3 else 0.0 for i in range(40)]
    >>> sel = select_rule(gens, small, [1.0] * 40, cv=4, learned=[])
    >>> sel.winner["kind"]
    'signal'
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from cascade_core.decide.learned.rule import BASE_FEATURE_NAMES, LearnedDeferral, deferral_labels
from cascade_core.decide.rule_file import SignalRule
from cascade_core.errors import CascadeError, ConfigurationError, require
from cascade_core.evaluation.curves import default_signals, deferral_curve, signal_scores
from cascade_core.types import Generation

__all__ = ["DEFAULT_LEARNED", "EMBEDDING_C", "EMBEDDING_COMPONENTS", "Selection", "candidate_label", "embedding_grid",
           "learned_grid", "select_rule"]

logger = logging.getLogger(__name__)

#: Learned configurations compared by default (model, regularisation); crossed with the targets.
DEFAULT_LEARNED: tuple[dict[str, Any], ...] = (
    {"model": "logistic", "C": 0.03},
    {"model": "logistic", "C": 0.3},
    {"model": "logistic", "C": 3.0},
    {"model": "hgb", "max_leaf_nodes": 4, "n_trees": 60, "learning_rate": 0.05, "min_samples_leaf": 10},
    {"model": "hgb", "max_leaf_nodes": 8, "n_trees": 120, "learning_rate": 0.05, "min_samples_leaf": 10},
)


def learned_grid(
    models: Sequence[str] | None = None, targets: Sequence[str] = ("small_correct", "large_better", "quality_gap"),
    **fixed: Any,
) -> list[dict[str, Any]]:
    """LearnedDeferral parameter sets: :data:`DEFAULT_LEARNED` (of ``models``) × ``targets``, ``fixed`` overriding.

    A model not in :data:`DEFAULT_LEARNED` (``mlp``) gets one configuration of its defaults.
    """
    base = [dict(c) for c in DEFAULT_LEARNED if models is None or c["model"] in models]
    base += [{"model": m} for m in (models or ()) if not any(c["model"] == m for c in DEFAULT_LEARNED)]
    out = []
    for config in base:
        for target in targets:
            params = {**config, "target": target, **fixed}
            if params not in out:
                out.append(params)
    return out


#: Post-Hoc-Embed candidates (logistic): L2 strengths and embedding widths (None: all of it, k: its
#: first k principal components on the fit rows). Hundreds of dimensions for ~100s of examples need a
#: much stronger penalty than the 15 token features.
EMBEDDING_C: tuple[float, ...] = (0.003, 0.03, 0.3)
EMBEDDING_COMPONENTS: tuple[int | None, ...] = (None, 8, 32)


def embedding_grid(
    targets: Sequence[str] = ("small_correct", "large_better", "quality_gap"),
    components: Sequence[int | None] = EMBEDDING_COMPONENTS,
    Cs: Sequence[float] = EMBEDDING_C,  # noqa: N803 - scikit-learn's name
    **fixed: Any,
) -> list[dict[str, Any]]:
    """Post-Hoc-Embed parameter sets: logistic on the token features + the small model's embedding,
    ``components`` × ``Cs`` × ``targets``, ``fixed`` overriding.

    >>> [candidate_label(p) for p in embedding_grid(["small_correct"], [None, 8], [0.03])]
    ['learned(logistic+embed,small_correct,C=0.03)', 'learned(logistic+embed/pca8,small_correct,C=0.03)']
    """
    out: list[dict[str, Any]] = []
    for k in components:
        for c in Cs:
            for target in targets:
                params: dict[str, Any] = {"model": "logistic", "C": c, "target": target, "use_embedding": True, **fixed}
                if k is not None:
                    params["embedding_components"] = k
                if params not in out:
                    out.append(params)
    return out


def _columns(X: np.ndarray, params: Mapping[str, Any]) -> np.ndarray:  # noqa: N803
    """The features a candidate reads: the embedding columns only when it uses the embedding."""
    return X if params.get("use_embedding") else X[:, : len(BASE_FEATURE_NAMES)]


def candidate_label(params: Mapping[str, Any]) -> str:
    """The name a learned candidate has in the comparison table, e.g. ``learned(logistic,small_correct,C=1)``."""
    keys = ("C",) if params.get("model") == "logistic" else ("max_leaf_nodes", "n_trees") if params.get("model") == "hgb" else ()
    extra = ",".join(f"{k}={params[k]:g}" for k in keys if k in params)
    embed = "+embed" if params.get("use_embedding") else ""
    if params.get("embedding_components"):
        embed += f"/pca{params['embedding_components']}"
    return f"learned({params.get('model', 'logistic')}{embed},{params.get('target', 'small_correct')}{',' if extra else ''}{extra})"


@dataclass
class Selection:
    """Result of :func:`select_rule`: the table, the winner's row, and the fitted winner (a scorer)."""

    rows: list[dict[str, Any]]
    winner: dict[str, Any]
    rule: Any
    cv: int
    repeats: int
    n: int

    def to_dict(self) -> dict[str, Any]:
        """What is recorded in the rule file under ``"selection"``."""
        return {
            "method": "k-fold cross-validation on the fit split; metric: held-out AUC-DF",
            "cv": self.cv, "repeats": self.repeats, "n_fit": self.n,
            "winner": self.winner["candidate"], "table": self.rows,
        }

    def format_table(self) -> str:
        """The comparison as aligned text, best first."""
        head = f"{'candidate':<48} {'kind':<7} {'AUC-DF':>7} {'±SE':>6} {'vs best signal':>15} {'±SE':>6}"
        lines = [head, "-" * len(head)]
        for r in self.rows:
            mark = " *" if r["candidate"] == self.winner["candidate"] else ""
            if r["auc_df"] is None:
                lines.append(f"{r['candidate']:<48} {r['kind']:<7} failed: {r.get('error', '')}")
                continue
            lines.append(
                f"{r['candidate']:<48} {r['kind']:<7} {r['auc_df']:>7.4f} {r['se']:>6.4f} "
                f"{r['vs_best_signal']:>+15.4f} {r['vs_best_signal_se']:>6.4f}{mark}"
            )
        return "\n".join(lines)


def _folds(strata: np.ndarray, cv: int, repeats: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    require("sklearn", "eval", purpose="cross-validated rule selection")
    from sklearn.model_selection import KFold, StratifiedKFold

    n = strata.size
    out = []
    for r in range(repeats):
        counts = np.bincount(strata)
        counts = counts[counts > 0]
        if counts.size >= 2 and counts.min() >= cv:
            splitter: Any = StratifiedKFold(n_splits=cv, shuffle=True, random_state=seed + r)
            out += list(splitter.split(np.zeros(n), strata))
        else:
            out += list(KFold(n_splits=cv, shuffle=True, random_state=seed + r).split(np.zeros(n)))
    return out


def select_rule(
    generations: Sequence[Generation],
    small_quality: ArrayLike,
    large_quality: ArrayLike,
    *,
    cv: int = 5,
    repeats: int = 1,
    learned: Sequence[Mapping[str, Any]] | None = None,
    signals: Sequence[str] | None = None,
    margin_labels: Sequence[str] | None = None,
    labels_per_example: Sequence[Sequence[str] | None] | None = None,
    seed: int = 0,
    extra_signals: Mapping[str, Any] | None = None,
) -> Selection:
    """Compare candidates by ``cv``-fold cross-validated AUC-DF and fit the winner on everything.

    Args:
        generations: The small model's generations on the fit split.
        small_quality: Quality of each small answer (1 = right).
        large_quality: Quality of each large answer.
        cv: Folds (>= 2).
        repeats: Repetitions of the k-fold split with different shuffles.
        learned: LearnedDeferral parameter sets to compare (default :func:`learned_grid`); ``[]``: signals only.
        signals: Names of :func:`~cascade_core.evaluation.curves.default_signals` (and ``extra_signals``) to
            compare (default all).
        margin_labels: Class-label first tokens (the margin signal and feature use them).
        labels_per_example: Per-example label tokens for the margin signal (classification caches).
        seed: Seed of the fold shuffles.
        extra_signals: More named signals to compare (``sample_agreement`` for a cache with samples).

    Raises:
        ConfigurationError: too few examples for ``cv`` folds, bad ``cv``/``repeats``, unknown signal.
    """
    small = np.asarray(small_quality, dtype=np.float64).reshape(-1)
    large = np.asarray(large_quality, dtype=np.float64).reshape(-1)
    n = len(generations)
    _check_sizes(n, small, large, cv, repeats)
    all_signals = {**default_signals(list(margin_labels) if margin_labels else None), **dict(extra_signals or {})}
    wanted = list(all_signals) if signals is None else list(signals)
    unknown = [s for s in wanted if s not in all_signals]
    if unknown:
        raise ConfigurationError(f"unknown signals {unknown}; allowed: {sorted(all_signals)}")
    sig_scores = signal_scores(generations, {k: all_signals[k] for k in wanted}, labels_per_example=labels_per_example)
    configs = learned_grid() if learned is None else [dict(c) for c in learned]
    for params in configs:
        params.setdefault("margin_labels", list(margin_labels) if margin_labels else None)
        LearnedDeferral(**params)  # validate before any fitting
    X = LearnedDeferral(use_embedding=any(c.get("use_embedding") for c in configs)).features(generations) if configs else np.zeros((n, 0))
    labels = {candidate_label(c): c for c in configs}
    folds = _folds((small >= 0.5).astype(int) * 2 + (large >= 0.5).astype(int), cv, repeats, seed)
    empty = np.array([not g.steps for g in generations])
    per_fold, errors = _cross_validate(folds, {name: sig_scores[name] for name in wanted}, labels, X, empty, small, large)
    return _finish(per_fold, errors, wanted, labels, all_signals, X, small, large, cv, repeats, n)


def _check_sizes(n: int, small: np.ndarray, large: np.ndarray, cv: int, repeats: int) -> None:
    for name, value in (("cv", cv), ("repeats", repeats)):
        if isinstance(value, bool) or not isinstance(value, int) or value < (2 if name == "cv" else 1):
            raise ConfigurationError(f"{name} must be an int >= {2 if name == 'cv' else 1}, got {value!r}")
    if small.size != n or large.size != n:
        raise ConfigurationError(f"{n} generations but {small.size} small and {large.size} large qualities")
    if n < 2 * cv:
        raise ConfigurationError(f"{n} fit examples are too few for {cv}-fold cross-validation (need >= {2 * cv})")


def _cross_validate(
    folds: Sequence[tuple[np.ndarray, np.ndarray]],
    sig_scores: Mapping[str, np.ndarray],
    learned: Mapping[str, Mapping[str, Any]],
    X: np.ndarray,  # noqa: N803 - scikit-learn's name
    empty: np.ndarray,
    small: np.ndarray,
    large: np.ndarray,
) -> tuple[dict[str, list[float]], dict[str, str]]:
    """Held-out AUC-DF per fold of every signal and every learned configuration (fitted on the rest)."""
    per_fold: dict[str, list[float]] = {name: [] for name in [*sig_scores, *learned]}
    errors: dict[str, str] = {}
    for train, held in folds:
        for name, values in sig_scores.items():
            per_fold[name].append(deferral_curve(values[held], small[held], large[held]).auc)
        for name, params in learned.items():
            if name in errors:
                continue
            try:
                Xc = _columns(X, params)
                rule = LearnedDeferral(**params).fit(Xc[train], deferral_labels(small[train], large[train], params["target"]))
            except CascadeError as err:  # e.g. a fold where the large answer is never better
                errors[name] = str(err)[:160]
                continue
            s = rule.predict_confidence(Xc[held])
            s[empty[held]] = -math.inf
            per_fold[name].append(deferral_curve(s, small[held], large[held]).auc)
    return per_fold, errors


def _finish(
    per_fold: dict[str, list[float]], errors: dict[str, str], wanted: list[str], labels: dict[str, dict[str, Any]],
    all_signals: Mapping[str, Any], X: np.ndarray, small: np.ndarray, large: np.ndarray,  # noqa: N803
    cv: int, repeats: int, n: int,
) -> Selection:
    means = {k: float(np.mean(v)) for k, v in per_fold.items() if k not in errors}
    best_signal = max(wanted, key=lambda k: means[k]) if wanted else None
    rows = []
    for name, values in per_fold.items():
        kind = "signal" if name in wanted else "learned"
        if name in errors:
            rows.append({"candidate": name, "kind": kind, "auc_df": None, "error": errors[name]})
            continue
        v = np.asarray(values)
        row: dict[str, Any] = {"candidate": name, "kind": kind, "auc_df": round(float(v.mean()), 5),
                               "se": round(float(v.std(ddof=1) / math.sqrt(cv)), 5)}
        if best_signal is not None:
            diff = v - np.asarray(per_fold[best_signal])
            row["vs_best_signal"] = round(float(diff.mean()), 5)
            row["vs_best_signal_se"] = round(float(diff.std(ddof=1) / math.sqrt(cv)), 5)
        else:
            row["vs_best_signal"], row["vs_best_signal_se"] = 0.0, 0.0
        if kind == "learned":
            row["params"] = {k: v for k, v in labels[name].items() if v is not None}
        rows.append(row)
    if not means:
        raise ConfigurationError(f"every candidate failed: {errors}")
    winner_name = max(means, key=lambda k: (means[k], k in wanted))  # ties go to the signal
    rows.sort(key=lambda r: -math.inf if r["auc_df"] is None else -float(r["auc_df"]))
    winner = next(r for r in rows if r["candidate"] == winner_name)
    if winner_name in wanted:
        scorer = all_signals[winner_name]
        signal = "chow_quantile" if winner_name.startswith("chow_quantile") else winner_name
        params: dict[str, Any] = {"alpha": scorer.alpha} if signal == "chow_quantile" else {}
        if signal == "sample_agreement":
            params = {"k": scorer.k, "temperature": scorer.temperature, "seed": scorer.seed}
        if signal == "margin" and getattr(scorer, "labels", None):
            params["labels"] = list(scorer.labels)
        rule: Any = SignalRule(signal, params)
    else:
        config = labels[winner_name]
        rule = LearnedDeferral(**config).fit(_columns(X, config), deferral_labels(small, large, config["target"]))
    selection = Selection(rows, winner, rule, cv, repeats, n)
    if isinstance(rule, SignalRule):
        rule.selection = selection.to_dict()
    else:
        rule.selection_ = selection.to_dict()
    logger.info("cross-validation chose %s (AUC-DF %.4f)", winner_name, means[winner_name])
    return selection
