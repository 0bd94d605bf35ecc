"""LlamaIndex image, audio and document blocks as core media parts (kept whole for the tier that takes them)."""

from __future__ import annotations

from typing import Any

from llama_index.core.base.llms.types import AudioBlock, DocumentBlock, ImageBlock

from cascade_core.engine.content import MediaPart

__all__ = ["media_part"]

#: Non-text blocks the cascade routes to a tier that accepts them.
_MEDIA_BLOCKS = {ImageBlock: "image", AudioBlock: "audio", DocumentBlock: "file"}


def media_part(block: Any) -> MediaPart | None:
    """The block as a :class:`~cascade_core.engine.content.MediaPart`, or None if it is not media."""
    kind = _MEDIA_BLOCKS.get(type(block))
    if kind is None:
        return None
    mime = (getattr(block, "image_mimetype", None) or getattr(block, "format", None)
            or getattr(block, "document_mimetype", None))
    return MediaPart(kind, str(mime or ""), raw=block)
