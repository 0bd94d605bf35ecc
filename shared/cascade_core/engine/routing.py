"""Which tiers a request may go to, before any model is called (pure functions used by the plan).

Multimodal requests: a tier that does not accept the request's non-text content (images, audio,
files) is skipped with a ``"multimodal"`` decision; when the last tier does not accept it either,
the request is refused up front, before any tier is called.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cascade_core.content import request_modalities
from cascade_core.errors import InvalidRequestError
from cascade_core.types import Request

__all__ = ["check_media", "skip_reason"]


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
