"""Batched prefill for :meth:`Cascade.batch` / :meth:`Cascade.abatch`.

When the first tier is a :class:`~cascade_core.backends.base.BatchPrefillModel` (a local
transformers model), the batch entry points cut the requests into groups of its
``max_batch_size``, open the first tier's step streams for a whole group with one padded forward
pass, and give each request's plan its ready stream. The plan is unchanged: it still pulls steps
one at a time, so a first-token-margin deferral closes its stream after the shared prefill, and a
kept answer goes on decoding from its own slice of the KV cache. Decisions are those of the
unbatched path (the first step's log-probs agree up to float rounding).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from cascade_core.backends.base import BatchPrefillModel
from cascade_core.decide.rules import DeferralRule
from cascade_core.engine.effects import OpenSteps
from cascade_core.engine.small_tier import small_request
from cascade_core.types import Request

__all__ = ["PrimedSteps", "batch_groups", "prime_first_tier"]

logger = logging.getLogger(__name__)


@dataclass
class PrimedSteps:
    """A step stream opened ahead of the plan, handed over when the plan opens that tier and request."""

    tier: int
    request: Request
    stream: Iterator[Any] | None

    def take(self, effect: OpenSteps) -> Iterator[Any] | None:
        """The stream if ``effect`` opens what was primed (once), else None."""
        if self.stream is None or effect.tier != self.tier or effect.request != self.request:
            return None
        stream, self.stream = self.stream, None
        return stream

    def close(self) -> None:
        """Release a stream the plan never took (e.g. the request failed before opening it)."""
        close = getattr(self.stream, "close", None)
        self.stream = None
        if close is not None:
            close()


def batch_groups(model: Any, count: int) -> list[range]:
    """Index ranges of the groups to prefill together (one group of all when ``model`` cannot batch)."""
    size = model.max_batch_size if isinstance(model, BatchPrefillModel) else count
    size = max(1, min(size, count)) if count else 1
    return [range(start, min(start + size, count)) for start in range(0, count, size)]


def prime_first_tier(model: Any, rule: DeferralRule, requests: Sequence[Request | None]) -> list[PrimedSteps | None]:
    """Open the first tier's step streams for ``requests`` in one batched prefill.

    ``None`` entries (requests that failed conversion) and requests the rule's text rendering
    rejects get no primed stream: their plans run as usual and raise their own error.
    """
    if not isinstance(model, BatchPrefillModel) or model.max_batch_size < 2:
        return [None] * len(requests)
    small: list[Request | None] = []
    for request in requests:
        try:
            small.append(small_request(request, rule) if request is not None else None)
        except Exception:  # the plan raises it again, in its own slot
            small.append(None)
    ready = [r for r in small if r is not None]
    if len(ready) < 2:
        return [None] * len(requests)
    try:
        streams = iter(model.stream_steps_batch(ready))
    except Exception as err:  # never lose a batch to the optimisation: the plans open their own streams
        logger.warning("batched prefill of %d requests failed (%s); running them one by one", len(ready), err)
        return [None] * len(requests)
    return [PrimedSteps(0, r, next(streams)) if r is not None else None for r in small]
