"""Token-level uncertainty signals: pure functions, arrays in, ``float`` out.

Convention: **higher = more confident**. A cascade defers when a signal is *below* its threshold.

References:
    A. Gupta et al., "Language Model Cascades: Token-level uncertainty and beyond", arXiv 2404.10136
       (Chow-Sum, Chow-Average, Chow-Quantile, learned post-hoc deferral).
    B. Ramírez et al., "Optimising Calls to Large Language Models with Uncertainty-Based Two-Tier
       Selection", arXiv 2405.02134 (first-token margin).
    C. Wang et al., "Self-Consistency Improves Chain of Thought Reasoning in Language Models", ICLR 2023;
       Manakul et al., "SelfCheckGPT", EMNLP 2023 (agreement of sampled answers; no log-probs needed).

Example:
    >>> import numpy as np
    >>> round(chow_sum([-0.1, -0.2, -0.7]), 6)
    -1.0
    >>> round(chow_average([-0.1, -0.2, -0.7]), 6)
    -0.333333
    >>> chow_quantile([-0.1, -0.2, -0.7], 0.0)
    -0.7
    >>> round(margin_from_logprobs([np.log(0.6), np.log(0.3)]), 6)
    0.3
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from cascade_core.decide.answers import answer_key
from cascade_core.errors import ConfigurationError, SignalError
from cascade_core.types import TokenAlternative, TokenStep

__all__ = [
    "MarginKind",
    "chow_average",
    "chow_quantile",
    "chow_sum",
    "first_token_margin",
    "margin_from_logprobs",
    "mean_token_entropy",
    "quantile_features",
    "sample_agreement",
    "step_entropy",
]

MarginKind = Literal["probability", "logit"]
QUANTILE_ALPHAS: tuple[float, ...] = tuple(round(0.1 * i, 1) for i in range(11))


_LOGPROB_TOLERANCE = 1e-6  # rounding of a certain token's log-prob; anything above is not a log-prob


def _as_logprobs(logprobs: ArrayLike) -> np.ndarray:
    """Log-probs as a float array, validated: no NaN, none positive (→ :class:`SignalError`)."""
    try:
        arr = np.asarray(logprobs, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as err:
        raise SignalError(f"log-probs are not numbers: {err}") from err
    if arr.size:
        if np.isnan(arr).any():
            raise SignalError("log-probs contain NaN")
        if (arr > _LOGPROB_TOLERANCE).any():
            raise SignalError(f"log-probs must be <= 0, got {float(arr.max())!r}")
        arr = np.minimum(arr, 0.0)
    return arr


def chow_sum(logprobs: ArrayLike) -> float:
    """Chow-Sum: the sequence log-probability ``s = Σ_t log p_t(y_t)`` (paper A).

    Length-biased: long outputs get low scores and are deferred too often. Empty input → 0.0.

    >>> chow_sum([-0.5, -0.25])
    -0.75
    """
    return float(_as_logprobs(logprobs).sum())


def chow_average(logprobs: ArrayLike) -> float:
    """Chow-Average: the mean token log-probability ``s = (1/T) Σ_t log p_t(y_t)`` (paper A).

    Under-penalises long outputs with a few very uncertain tokens. Empty input → 0.0.

    >>> chow_average([-0.5, -0.25])
    -0.375
    """
    arr = _as_logprobs(logprobs)
    return float(arr.mean()) if arr.size else 0.0


def chow_quantile(logprobs: ArrayLike, alpha: float) -> float:
    """Chow-Quantile(α): the α-quantile of the per-token log-probs (paper A).

    ``α = 0`` is the least confident token (the min), ``α = 1`` the most confident, ``α = 0.5`` the
    median. Uses linear interpolation between order statistics (``numpy.quantile`` default).
    Empty input → 0.0.

    >>> chow_quantile([-3.0, -1.0, -0.1], 0.5)
    -1.0
    """
    if not isinstance(alpha, (int, float)) or math.isnan(alpha) or not 0.0 <= alpha <= 1.0:
        raise ConfigurationError(f"chow_quantile alpha must be a number in [0, 1], got {alpha!r}")
    arr = _as_logprobs(logprobs)
    return float(np.quantile(arr, alpha)) if arr.size else 0.0


def quantile_features(logprobs: ArrayLike, alphas: Sequence[float] = QUANTILE_ALPHAS) -> np.ndarray:
    """The vector ``[Chow-Quantile(α) for α in alphas]`` (features of paper A's post-hoc rule).

    >>> quantile_features([-1.0, 0.0], alphas=(0.0, 0.5, 1.0)).tolist()
    [-1.0, -0.5, 0.0]
    """
    arr = _as_logprobs(logprobs)
    if not arr.size:
        return np.zeros(len(alphas))
    return np.quantile(arr, np.asarray(alphas, dtype=np.float64))


def margin_from_logprobs(top_logprobs: ArrayLike, kind: MarginKind = "probability") -> float:
    """Margin between the two best candidates of one step, from their log-probs (paper B).

    ``probability``: ``p(top1) − p(top2)`` in ``[0, 1]`` (the paper's definition).
    ``logit``: ``z(top1) − z(top2)`` in ``[0, ∞)`` — the raw-logit variant of the official code.
    Because ``log p = z − logsumexp(z)``, the logit difference equals the log-prob difference, so it
    is computed exactly from log-probs. Fewer than two candidates, NaN or positive log-probs →
    :class:`~cascade_core.errors.SignalError` (a runtime fault of the reply: the cascade defers).

    >>> round(margin_from_logprobs([np.log(0.5), np.log(0.2)], kind="logit"), 6)
    0.916291
    """
    arr = np.sort(_as_logprobs(top_logprobs))[::-1]
    if arr.size < 2:
        raise SignalError(f"first-token margin needs at least 2 candidates at the step; the small tier sent {arr.size}")
    if kind == "probability":
        return float(np.exp(arr[0]) - np.exp(arr[1]))
    if kind == "logit":
        return float(arr[0] - arr[1])
    raise ConfigurationError(f"margin kind must be 'probability' or 'logit', got {kind!r}")


def _norm(token: str) -> str:
    return unicodedata.normalize("NFKC", token).strip().casefold()


def _distinct_second(top: Sequence[TokenAlternative]) -> tuple[float, float]:
    """(log p of top-1, log p of the best alternative that is not a prefix/continuation of top-1).

    If every recorded alternative is a variant of top-1, the unseen best token is bounded by
    ``min(p_k, 1 − Σ p_i)``; that bound is used (a conservative, i.e. low, margin).
    """
    first = _norm(top[0].token)
    for alt in top[1:]:
        other = _norm(alt.token)
        if not other or not first:
            # Whitespace-only tokens are distinct answers only if the top-1 is not whitespace too.
            if other == first:
                continue
            return top[0].logprob, alt.logprob
        if first.startswith(other) or other.startswith(first):
            continue
        return top[0].logprob, alt.logprob
    probs = np.exp([a.logprob for a in top])
    bound = max(min(float(probs[-1]), 1.0 - float(probs.sum())), 1e-300)
    return top[0].logprob, math.log(bound)


def first_token_margin(
    step: TokenStep,
    *,
    kind: MarginKind = "probability",
    labels: Sequence[str] | None = None,
    distinct: bool = False,
) -> float:
    """First-token margin of the small model (paper B): top-1 minus top-2 at the first step.

    Args:
        step: The first decoding step (its ``top`` alternatives are used).
        kind: ``"probability"`` (``p1 − p2``, default) or ``"logit"`` (``z1 − z2``).
        labels: For classification, the first tokens of the class labels; top-1 and top-2 are then
            taken among alternatives whose text matches a label (case/whitespace-insensitive). A
            label missing from the recorded alternatives has probability at most the smallest
            recorded one, which is used as its bound; if no label is present the margin is 0.
        distinct: Free-form QA: top-2 is the best alternative that is not a prefix/continuation of
            the top-1 string (``" Paris"`` vs ``"Paris"`` are one answer).

    Returns:
        The margin (higher = more confident).

    >>> s = TokenStep("Paris", np.log(0.6), (TokenAlternative("Paris", np.log(0.6)),
    ...     TokenAlternative(" Paris", np.log(0.3)), TokenAlternative("Lyon", np.log(0.05))))
    >>> round(first_token_margin(s), 6), round(first_token_margin(s, distinct=True), 6)
    (0.3, 0.55)
    """
    top = sorted(step.top, key=lambda a: a.logprob, reverse=True)
    if labels is not None:
        if not labels:
            raise ConfigurationError("labels must be a non-empty sequence of label first-tokens")
        wanted = {_norm(label) for label in labels}
        if len(wanted) < 2:
            raise ConfigurationError(f"a label margin needs at least 2 distinct labels, got {list(labels)}")
        best: dict[str, float] = {}
        for alt in top:
            key = _norm(alt.token)
            if key in wanted and key not in best:
                best[key] = alt.logprob
        if not best:
            return 0.0
        floor = top[-1].logprob if top else -math.inf
        values = sorted(best.values(), reverse=True)
        if len(values) < 2:
            values.append(floor)
        return margin_from_logprobs(values[:2], kind)
    if len(top) < 2:
        return margin_from_logprobs([a.logprob for a in top], kind)
    if distinct:
        return margin_from_logprobs(list(_distinct_second(top)), kind)
    return margin_from_logprobs([top[0].logprob, top[1].logprob], kind)


def step_entropy(top_logprobs: ArrayLike) -> float:
    """Entropy (nats) of one step's distribution estimated from its top-k log-probs.

    The mass outside the top-k, ``r = 1 − Σ p_i``, is counted as one extra outcome, so the value
    is a lower bound of the true entropy that is exact when the top-k covers the distribution.
    A step without alternatives has no entropy estimate → :class:`~cascade_core.errors.SignalError`
    (it must never read as "fully confident").

    >>> round(step_entropy(np.log([0.5, 0.5])), 6)
    0.693147
    """
    arr = _as_logprobs(top_logprobs)
    if not arr.size:
        raise SignalError("entropy needs the step's top-k alternatives; the small tier sent none")
    probs = np.exp(arr)
    rest = max(0.0, 1.0 - float(probs.sum()))
    ent = -float(np.sum(probs * arr))
    if rest > 1e-12:
        ent -= rest * math.log(rest)
    return ent


def mean_token_entropy(top_logprobs: Sequence[ArrayLike]) -> float:
    """Mean over steps of :func:`step_entropy` (nats). Higher = *less* confident.

    The registered signal ``"entropy"`` is its negation, to keep "higher = more confident".

    >>> round(mean_token_entropy([np.log([1.0]), np.log([0.5, 0.5])]), 6)
    0.346574
    """
    if not len(top_logprobs):
        return 0.0
    return float(np.mean([step_entropy(t) for t in top_logprobs]))


def sample_agreement(answer: str, samples: Sequence[str], *, key: Callable[[str], str] = answer_key) -> float:
    """Agreement rate of sampled answers with the greedy one (paper C): ``(1/k) Σ_i 1[key(s_i) = key(a)]``.

    ``answer`` is the greedy (temperature 0) answer, ``samples`` the k answers drawn at a temperature
    T > 0 for the same prompt. Answers are compared by ``key``, by default
    :func:`~cascade_core.decide.answers.answer_key`: the first non-empty line, casefolded, accents
    stripped, punctuation as spaces, whitespace collapsed — the normaliser quality scoring uses — so
    ``"Paris."`` and ``" paris"`` agree, ``"Paris, France"`` does not. The score is in [0, 1], higher
    = more confident; it needs text only, no log-probs. An empty greedy answer agrees with nothing
    (score 0). No samples → :class:`~cascade_core.errors.SignalError` (nothing to measure).

    >>> sample_agreement("Paris", ["Paris.", " paris", "Lyon", "Paris, France"])
    0.5
    >>> sample_agreement("", ["", ""])
    0.0
    """
    if isinstance(samples, str):
        raise SignalError("samples must be a sequence of answer texts, not one string")
    if not len(samples):
        raise SignalError("sample agreement needs at least one sampled answer; the generation has none")
    target = key(answer)
    if not target:
        return 0.0
    return float(sum(key(sample) == target for sample in samples) / len(samples))
