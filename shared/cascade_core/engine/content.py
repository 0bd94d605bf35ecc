"""Non-text content (images, audio, files) and which tiers accept it.

The small tier is judged from its token log-probs over a *text* prompt, so a request with an image,
an audio clip or a file (a PDF …) cannot be scored by a text-only small model. Such a request skips
every tier that does not accept its content — recorded as a decision with reason ``"multimodal"``,
without calling the tier — and is answered by the first tier that does.

A model says what it accepts with an ``input_modalities`` attribute (a set of ``"text"``,
``"image"``, ``"audio"``, ``"file"``). A model without one accepts text only — except the
framework adapters' large tiers, which pass content through to a LangChain / LlamaIndex model.

Example:
    >>> from cascade_core.types import Message, Request
    >>> req = Request.from_messages([Message("user", "What is in this picture?",
    ...                                      parts=(MediaPart("image", "image/png"),))])
    >>> sorted(request_modalities(req))
    ['image']
    >>> sorted(input_modalities(object()))
    ['text']
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cascade_core.errors import ConfigurationError, InvalidRequestError

if TYPE_CHECKING:
    from cascade_core.types import Request

__all__ = ["ALL_MODALITIES", "MEDIA_KINDS", "MediaPart", "input_modalities", "request_modalities"]

MEDIA_KINDS: frozenset[str] = frozenset({"image", "audio", "file"})
ALL_MODALITIES: frozenset[str] = MEDIA_KINDS | {"text"}


@dataclass(frozen=True)
class MediaPart:
    """One non-text part of a message.

    Attributes:
        kind: ``"image"``, ``"audio"`` or ``"file"`` (PDFs and other documents).
        mime_type: MIME type when known (``"image/png"``, ``"application/pdf"``).
        raw: The framework's own content block (a LangChain content dict, a LlamaIndex block),
            handed back unchanged to a tier of the same framework.
    """

    kind: str
    mime_type: str = ""
    raw: Any = None

    def __post_init__(self) -> None:
        if self.kind not in MEDIA_KINDS:
            raise InvalidRequestError(f"media part kind must be one of {sorted(MEDIA_KINDS)}, got {self.kind!r}")


def request_modalities(request: Request) -> frozenset[str]:
    """The non-text kinds of content in a request (empty for a text-only request)."""
    return frozenset(part.kind for message in request.messages for part in message.parts)


def check_modalities(value: Iterable[str], owner: str) -> frozenset[str]:
    """Validate a declared ``input_modalities`` set."""
    if isinstance(value, str):
        raise ConfigurationError(f"{owner}.input_modalities must be a set of names, got the string {value!r}")
    kinds = frozenset(value)
    unknown = kinds - ALL_MODALITIES
    if unknown:
        raise ConfigurationError(
            f"{owner}.input_modalities has unknown kinds {sorted(unknown)}; allowed values: {sorted(ALL_MODALITIES)}"
        )
    return kinds | {"text"}


def input_modalities(model: Any) -> frozenset[str]:
    """What a model accepts: its ``input_modalities`` attribute, or text only."""
    declared = getattr(model, "input_modalities", None)
    if declared is None:
        return frozenset({"text"})
    return check_modalities(declared, type(model).__name__)
