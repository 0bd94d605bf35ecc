"""The scripted top-k distribution shared by every fake tier (:class:`ScriptedModel`, the fake server).

One step's alternatives: the emitted token with probability ``p`` first (greedy decoding: it stays the
top-1), a runner-up with ``min(p, 0.8 (1 - p))``, then ``top_k - 2`` fillers sharing half of what is
left. So the first-token margin is ``1.8 p - 0.8`` for ``p > 4/9`` (and 0, a tie, below): a knob the
tests turn with one number.

Example:
    >>> [(t, round(math.exp(lp), 3)) for t, lp in scripted_top_k("Paris", 0.9, 3)]
    [('Paris', 0.9), ('<alt1>', 0.08), ('<alt2>', 0.01)]
"""

from __future__ import annotations

import math

__all__ = ["scripted_top_k"]


def scripted_top_k(token: str, p: float, top_k: int) -> list[tuple[str, float]]:
    """``(token, log-prob)`` pairs of one scripted step, most likely first (at most ``max(top_k, 1)``)."""
    alternatives = [(token, math.log(p))]
    second = min(p, (1.0 - p) * 0.8)  # the emitted token stays the top-1 (greedy decoding)
    rest = 1.0 - p - second
    for i in range(1, top_k):
        share = second if i == 1 else rest * 0.5 / max(1, top_k - 2)
        alternatives.append((f"<alt{i}>", math.log(max(share, 1e-12))))
    return alternatives
