"""Stop strings for streamed text: emit only text that cannot be the start of a stop string.

Example:
    >>> f = StopFilter(["\\n"])
    >>> f.feed(" Paris"), f.feed("\\nQ:")
    ((' Paris', False), ('', True))
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["StopFilter", "truncate_at_stop"]


def truncate_at_stop(text: str, stops: Sequence[str]) -> str:
    """``text`` cut before the earliest occurrence of any stop string.

    >>> truncate_at_stop("Paris\\nQ: next", ["\\n"])
    'Paris'
    """
    cut = len(text)
    for stop in stops:
        at = text.find(stop)
        if at != -1:
            cut = min(cut, at)
    return text[:cut]


class StopFilter:
    """Incremental stop-string detection for a text stream.

    ``feed`` returns the text that is safe to emit and whether a stop string was reached; text
    that might be the beginning of a stop string is held back until it is decided.
    """

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = tuple(stops)
        self._held = ""
        self.stopped = False

    def feed(self, piece: str) -> tuple[str, bool]:
        if self.stopped:
            return "", True
        if not self.stops:
            return piece, False
        buffer = self._held + piece
        cut = truncate_at_stop(buffer, self.stops)
        if len(cut) < len(buffer):
            self.stopped, self._held = True, ""
            return cut, True
        hold = 0
        for stop in self.stops:
            for size in range(min(len(stop) - 1, len(buffer)), 0, -1):
                if buffer.endswith(stop[:size]):
                    hold = max(hold, size)
                    break
        self._held = buffer[len(buffer) - hold :] if hold else ""
        return buffer[: len(buffer) - hold], False

    def flush(self) -> str:
        """Text still held back when the stream ends without a stop."""
        held, self._held = self._held, ""
        return "" if self.stopped else held
