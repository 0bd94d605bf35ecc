"""Deterministic scripted models for tests and docs (like ``langchain_core``'s fake chat models).

:class:`ScriptedModel` "generates" a fixed answer with chosen token confidences, so engine
decisions can be tested without a real model. It implements both tier protocols.

Example:
    >>> model = ScriptedModel("Paris", confidence=0.8)
    >>> steps = [e for e in model.stream_steps(None) if hasattr(e, "logprob")]
    >>> round(float(__import__("math").exp(steps[0].logprob)), 2)
    0.8
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from cascade_core.backends.base import StepsEnd, TokenModelBase
from cascade_core.errors import BackendError
from cascade_core.types import Request, TokenAlternative, TokenStep, Usage

__all__ = ["ScriptedModel"]


class ScriptedModel(TokenModelBase):
    """A model that answers from a script.

    Args:
        answers: One answer for every call, or a list used in turn (cycled).
        confidence: Probability of each answer's first token; the runner-up gets ``(1-c)*0.8``.
        token_confidence: Probability of every later token.
        name: Model name.
        top_k: Alternatives recorded per step.
        fail: Raise :class:`BackendError` instead of answering (to test error handling).

    Attributes:
        calls: Requests received, in order. ``steps_served`` counts steps actually produced.
    """

    def __init__(
        self,
        answers: str | Sequence[str],
        *,
        confidence: float | Sequence[float] = 0.9,
        token_confidence: float = 0.95,
        name: str = "scripted",
        top_k: int = 5,
        fail: bool = False,
    ) -> None:
        self.answers = [answers] if isinstance(answers, str) else list(answers)
        self.confidences = [confidence] if isinstance(confidence, (int, float)) else list(confidence)
        self.token_confidence = token_confidence
        self.model_name = name
        self.top_k = top_k
        self.fail = fail
        self.calls: list[Any] = []
        self.steps_served = 0
        self._lock = threading.Lock()

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def _step(self, token: str, p: float) -> TokenStep:
        alts = [TokenAlternative(token, math.log(p))]
        rest = 1.0 - p
        for i in range(1, self.top_k):
            share = rest * (0.8 if i == 1 else 0.1 / (self.top_k - 2))
            alts.append(TokenAlternative(f"<alt{i}>", math.log(max(share, 1e-12))))
        return TokenStep(token, math.log(p), tuple(alts[: self.top_k]))

    def stream_steps(self, request: Request | None) -> Iterator[TokenStep | StepsEnd]:
        with self._lock:
            n = len(self.calls)
            self.calls.append(request)
        if self.fail:
            raise BackendError(f"{self.model_name}: scripted failure")
        answer = self.answers[n % len(self.answers)]
        confidence = self.confidences[n % len(self.confidences)]
        tokens = re.findall(r"\s*\S+|\s+", answer)
        limit = request.max_new_tokens if request is not None and request.max_new_tokens else None
        for i, token in enumerate(tokens[:limit]):
            with self._lock:
                self.steps_served += 1
            yield self._step(token, confidence if i == 0 else self.token_confidence)
        prompt = request.prompt_text if request is not None else ""
        yield StepsEnd(Usage(self.count_tokens(prompt), len(tokens[:limit])), "stop")
