"""What of an answer a caller sees: the text without a small tier's ``<tool_call>`` markup.

A small tier writes its tool calls as text (``<tool_call>{...}</tool_call>``, so that every token
can be scored). The caller gets those calls as tool calls, so the markup must not also show as
text — neither in the final message (:func:`visible_text`) nor while streaming
(:class:`VisibleStream`). Both framework adapters use these; neither strips markup itself.

Example:
    >>> from cascade_core import Cascade
    >>> from cascade_core.testing import ScriptedModel
    >>> from cascade_core.types import Generation, Request
    >>> cascade = Cascade([ScriptedModel("Paris", confidence=0.9), ScriptedModel("Paris, France")])
    >>> request = Request.from_prompt("Capital of France?")
    >>> stream = VisibleStream(request, len(cascade.tiers))
    >>> shown = [stream.feed(c) if c.result is None else stream.final(c.result) for c in cascade.stream(request)]
    >>> "".join(shown)
    'Paris'
"""

from __future__ import annotations

from cascade_core.engine.result import CascadeChunk, CascadeResult
from cascade_core.engine.tool_calls import strip_tool_calls
from cascade_core.types import Generation, Request

__all__ = ["VisibleStream", "visible_generation_text", "visible_text"]


def visible_generation_text(generation: Generation) -> str:
    """A small tier's text without its tool-call markup (what a parser of the message would see)."""
    return strip_tool_calls(generation.text) if generation.tool_calls else generation.text


def visible_text(result: CascadeResult) -> str:
    """The answer's text as a chat message shows it: tool-call markup removed when the answer has calls.

    A small tier writes its calls as text; so may a large tier whose server returns them as text
    (llama.cpp with Qwen2.5 writes a ```json block). Its backend turns that text into tool calls
    (:func:`cascade_core.engine.tool_calls.recover_text_tool_calls`), but a *streamed* answer's text
    is the chunks as they came, so the markup is removed here for every tier. A conversation that
    kept it would show the model its own call twice (once as text) on the next turn.
    """
    if result.tool_calls:
        return strip_tool_calls(result.text)
    return result.text


class VisibleStream:
    """Which text of a cascade stream to show as it comes, and what is left to show at the end.

    With tools bound, a small tier's text is held back (it may be a ``<tool_call>`` that becomes a
    tool call; the core sends a kept small answer only after judging it anyway) and its visible
    part is given once by :meth:`final`. Large-tier text, and any text when no tools are bound, is
    shown as it comes.

    Args:
        request: The request being streamed.
        n_tiers: Number of tiers of the cascade (the last one's text is never held).
    """

    def __init__(self, request: Request, n_tiers: int) -> None:
        self.hold_small = bool(request.tools)
        self.last_tier = n_tiers - 1
        self.shown = ""

    def holds(self, chunk: CascadeChunk) -> bool:
        """Whether ``chunk`` 's text is held back rather than shown now."""
        return self.hold_small and chunk.tier < self.last_tier

    def feed(self, chunk: CascadeChunk) -> str:
        """The text of a (non-final) chunk to show now; ``""`` when it is held or empty."""
        if self.holds(chunk):
            return ""
        self.shown += chunk.text
        return chunk.text

    def final(self, result: CascadeResult) -> str:
        """The visible text not shown yet (the held small answer without its markup), for the last chunk."""
        full = visible_text(result)
        rest = full[len(self.shown):] if full.startswith(self.shown) else ""
        self.shown += rest
        return rest
