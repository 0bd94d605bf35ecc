"""One small tier's step stream, accumulated: visible text, steps, usage and finish reason.

Every reader of a step stream (the cascade's plan, :class:`~cascade_core.backends.base.TokenModelBase`'s
``complete``/``stream``, the evaluation collector, the demo) feeds its events to a
:class:`StepAccumulator`, so stop strings, usage and finish reasons are handled the same way everywhere.

Example:
    >>> from cascade_core.types import StepsEnd, TokenStep, Usage
    >>> acc = StepAccumulator(stop=["\\n"])
    >>> acc.add(TokenStep(" Paris", -0.1)), acc.add(TokenStep("\\n", -0.2)), acc.stopped
    (' Paris', '', True)
    >>> acc.add(StepsEnd(Usage(5, 2), "stop")), acc.text, acc.usage(lambda: 0)
    ('', ' Paris', Usage(input_tokens=5, output_tokens=2))
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from cascade_core.engine.stops import StopFilter
from cascade_core.types import Generation, StepsEnd, TokenStep, Usage

__all__ = ["StepAccumulator", "read_steps"]


class StepAccumulator:
    """Accumulates one step stream (:class:`TokenStep` events, then one :class:`StepsEnd`).

    Stop strings are applied as the text grows: :meth:`add` returns only text that can no longer
    turn out to be the start of a stop string. Steps after the one that completes a stop string are
    ignored (a backend that does not stop by itself may still send them); the end event is kept.

    Args:
        stop: Stop strings; the text ends before the first one.

    Example:
        >>> from cascade_core.types import TokenStep
        >>> acc = StepAccumulator(stop=["END"])
        >>> [acc.add(TokenStep(t, -0.5)) for t in ("a", "E", "N", "b")]
        ['a', '', '', 'ENb']
        >>> acc.finish(), acc.text, acc.finish_reason, len(acc.steps)
        ('', 'aENb', 'length', 4)
    """

    def __init__(self, stop: Sequence[str] = ()) -> None:
        self._stops = StopFilter(tuple(stop))
        self._steps: list[TokenStep] = []
        self._pieces: list[str] = []
        self.end: StepsEnd | None = None
        """The stream's end event, once read (usage, finish reason, embedding)."""
        self.done = False
        """True once the end event was read or :meth:`finish` was called."""

    def add(self, event: TokenStep | StepsEnd) -> str:
        """Take the next event of the stream; returns the text that became visible with it.

        The end event releases text held back as a possible stop-string start.
        """
        if isinstance(event, StepsEnd):
            self.end = event
            return self.finish()
        if self.stopped or self.done:
            return ""
        self._steps.append(event)
        piece, _ = self._stops.feed(event.output_text)
        self._pieces.append(piece)
        return piece

    def finish(self) -> str:
        """The stream ended (with or without its end event): release held-back text."""
        if self.done:
            return ""
        self.done = True
        held = self._stops.flush()
        self._pieces.append(held)
        return held

    @property
    def stopped(self) -> bool:
        """A stop string was reached (the text ends before it)."""
        return self._stops.stopped

    @property
    def steps(self) -> tuple[TokenStep, ...]:
        """The steps read, up to and including the one that completed a stop string."""
        return tuple(self._steps)

    @property
    def pieces(self) -> tuple[str, ...]:
        """The visible text in the pieces :meth:`add` and :meth:`finish` returned (empty ones left out)."""
        return tuple(piece for piece in self._pieces if piece)

    @property
    def text(self) -> str:
        """The visible text so far (stop strings cut, held-back text excluded until the end)."""
        return "".join(self._pieces)

    @property
    def finish_reason(self) -> str:
        """``"stop"`` at a stop string, else the end event's reason, else ``"length"`` (no end event)."""
        if self.stopped:
            return "stop"
        return self.end.finish_reason if self.end is not None else "length"

    def usage(self, prompt_tokens: Callable[[], int]) -> Usage:
        """The end event's usage, else ``prompt_tokens()`` in and one token per step out."""
        if self.end is not None and self.end.usage:
            return self.end.usage
        return Usage(prompt_tokens(), len(self._steps))

    def generation(self, model_name: str, prompt_tokens: Callable[[], int], *, early: bool = False) -> Generation:
        """The steps as a :class:`Generation` (``early``: the cascade stopped it after the first step)."""
        return Generation(
            text=self.text,
            steps=self.steps,
            usage=self.usage(prompt_tokens),
            finish_reason="early_exit" if early else self.finish_reason,
            model_name=model_name,
            embedding=self.end.embedding if self.end is not None else None,
        )


def read_steps(stream: Iterable[TokenStep | StepsEnd], stop: Sequence[str] = ()) -> StepAccumulator:
    """Read a blocking step stream to its end (or one event past a stop string), then close it.

    The event after a stop string is read because a backend that stops there itself sends its end
    event (usage, embedding) next; one that would go on generating is closed instead.

    Example:
        >>> from cascade_core.testing import ScriptedModel
        >>> from cascade_core.types import Request
        >>> acc = read_steps(ScriptedModel("Paris is").stream_steps(Request.from_prompt("Q")))
        >>> acc.text, acc.finish_reason
        ('Paris is', 'stop')
    """
    acc = StepAccumulator(stop)
    iterator = iter(stream)
    try:
        for event in iterator:
            acc.add(event)
            if acc.done:
                break
            if acc.stopped:
                after = next(iterator, None)
                if isinstance(after, StepsEnd):
                    acc.add(after)
                break
        acc.finish()
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            close()
    return acc
