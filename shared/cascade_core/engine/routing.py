"""Which tiers a request may go to, before any model is called (pure functions used by the plan).

Multimodal requests: a tier that does not accept the request's non-text content (images, audio,
files) is skipped with a ``"multimodal"`` decision; when the last tier does not accept it either,
the request is refused up front, before any tier is called. Long conversations: a small tier's
request is cut to its context window (:mod:`cascade_core.engine.context`), or skipped with ``"context"``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cascade_core.engine.content import request_modalities
from cascade_core.engine.context import fit_to_context
from cascade_core.errors import InvalidRequestError
from cascade_core.types import Request

__all__ = ["check_media", "fit_small_request", "skip_reason"]


def _accepts(tier: Any, media: frozenset[str]) -> bool:
    return tier.modalities is None or media <= tier.modalities


def check_media(tiers: Sequence[Any], request: Request) -> frozenset[str]:
    """The request's non-text kinds; raises when no tier that could answer accepts them.

    Raises:
        InvalidRequestError: the last tier (the one every deferral ends at) does not accept them.
    """
    media = request_modalities(request)
    if media and not _accepts(tiers[-1], media):
        accepted = "; ".join(
            f"tier {i} ({t.model_name}): {'anything' if t.modalities is None else sorted(t.modalities)}"
            for i, t in enumerate(tiers)
        )
        raise InvalidRequestError(
            f"the request has {sorted(media)} content but no tier that can answer it accepts that "
            f"({accepted}); give the last tier a model that takes {sorted(media)} input"
        )
    return media


def skip_reason(index: int, tier: Any, media: frozenset[str]) -> str:
    """Why a tier is skipped for a multimodal request."""
    return f"tier {index} ({tier.model_name}) accepts {sorted(tier.modalities or ())}, not {sorted(media)}: skipped"


def fit_small_request(index: int, tier: Any, request: Request) -> tuple[Request | None, str]:
    """The small tier's request cut to its context window, and a note for the decision.

    Returns ``(None, reason)`` when even the system messages and the last turn do not fit (the plan
    then defers with reason ``"context"``); the note is ``""`` when nothing was dropped.
    """
    if tier.context_window is None:
        return request, ""
    reserve = request.max_new_tokens or tier.max_new_tokens or 0
    fitted = fit_to_context(request, tier.count_tokens, tier.context_window, reserve)
    if fitted is None:
        return None, (
            f"tier {index} ({tier.model_name}): the system prompt and the last turn do not fit its context window "
            f"of {tier.context_window} tokens with {reserve} reserved for the answer; deferring"
        )
    if not fitted.dropped:
        return fitted.request, ""
    return fitted.request, f" (context: {fitted.dropped} oldest messages dropped to fit {tier.context_window} tokens)"
