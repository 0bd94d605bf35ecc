"""The route stage: a pre-generation :class:`~cascade_core.decide.router.QueryRouter` in front of the small tiers.

:func:`route_first` is the plan's part (pure: it yields one :class:`~cascade_core.engine.effects.Route`
effect and reads the :class:`~cascade_core.engine.effects.RouteScore` sent back); :class:`RouterStage`
is what the drivers call to carry that effect out (``score`` blocking, ``ascore`` awaited), so sync,
async, streaming and batch calls share one decision.

A request with ``p_good < threshold`` is *routed*: no small tier generates, the last tier answers,
and the decision says ``signal="routed"`` with the router's score and threshold. Every request's
``result.metadata["router"]`` holds ``{"p_good", "threshold", "routed"}``. A router that reads the
prompt embedding costs one small-model prefill (charged to tier 0 as input tokens); one on prompt
length / user features costs no model call. If scoring fails, the request is cascaded as if there
were no router (``on_small_error="raise"``: the error propagates).

User features (a router fitted with ``extra=``) come from ``request.metadata["router_features"]``,
a list of numbers.

Example:
    >>> import numpy as np
    >>> from cascade_core import Cascade, ThresholdRule
    >>> from cascade_core.decide.router import QueryRouter
    >>> from cascade_core.testing import ScriptedModel
    >>> tokens = np.array([3, 4, 40, 50] * 10)
    >>> router = QueryRouter(use_embedding=False, threshold=0.5).fit(None, tokens, (tokens < 10).astype(int))
    >>> cascade = Cascade([ScriptedModel("Paris", confidence=0.9), ScriptedModel("Paris, France")],
    ...                   rules=ThresholdRule("margin", 0.3), router=router)
    >>> long = " ".join(["word"] * 60)
    >>> result = cascade.invoke(long)
    >>> result.tier, result.decision.signal, result.metadata["router"]["routed"]
    (1, 'routed', True)
    >>> cascade.invoke("Capital?").tier
    0
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Generator
from typing import Any

import numpy as np

from cascade_core.backends.base import PromptEmbedder, prompt_embedder
from cascade_core.decide.router import QueryRouter
from cascade_core.engine.effects import Effect, Route, RouteScore
from cascade_core.engine.plan_state import PlanState
from cascade_core.engine.result import Decision, TierRun
from cascade_core.errors import ConfigurationError, InvalidRequestError
from cascade_core.types import Request, Usage

__all__ = ["RouterStage", "route_first", "router_stage"]

logger = logging.getLogger(__name__)

ROUTED = "routed"


class RouterStage:
    """A fitted router with what it needs at serving time: its embedder and a token counter.

    Args:
        router: A fitted :class:`QueryRouter` with a ``threshold``.
        embedder: Gives the prompt embedding (needed when ``router.use_embedding``).
        count_tokens: Counts prompt tokens when there is no embedder (the small tier's counter).

    Example:
        >>> import numpy as np
        >>> tokens = np.array([3, 40] * 10)
        >>> router = QueryRouter(use_embedding=False, threshold=0.5).fit(None, tokens, (tokens < 10).astype(int))
        >>> stage = RouterStage(router, None, lambda text: len(text.split()))
        >>> stage.score(Request.from_prompt("a b c")).p_good > 0.5
        True
    """

    def __init__(self, router: QueryRouter, embedder: PromptEmbedder | None, count_tokens: Callable[[str], int]) -> None:
        self.router = router
        self.embedder = embedder
        self.count_tokens = count_tokens

    @property
    def threshold(self) -> float:
        assert self.router.threshold is not None
        return float(self.router.threshold)

    def __repr__(self) -> str:
        return f"RouterStage({self.router!r}, embedder={self.embedder!r})"

    def _extra(self, request: Request) -> np.ndarray | None:
        n = self.router.n_extra_
        if not n:
            return None
        values = request.metadata.get("router_features")
        if not isinstance(values, (list, tuple)) or len(values) != n or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values
        ):
            raise InvalidRequestError(
                f"this cascade's router was fitted with {n} user features: give request metadata "
                f"'router_features' as a list of {n} finite numbers, got {values!r}"
            )
        return np.asarray(values, dtype=np.float64).reshape(1, n)

    def _tokens(self, text: str) -> int:
        counter = self.embedder.count_tokens if self.embedder is not None else self.count_tokens
        return int(counter(text))

    def _verdict(self, request: Request, embedding: np.ndarray | None, started: float) -> RouteScore:
        text = request.prompt_text
        tokens = self._tokens(text)
        emb = None if embedding is None else np.asarray(embedding, dtype=np.float64).reshape(1, -1)
        p = float(self.router.predict_good(emb, [tokens], self._extra(request))[0])
        return RouteScore(p, tokens, embedding is not None, time.perf_counter() - started)

    def score(self, request: Request) -> RouteScore:
        """The router's verdict on ``request`` (blocking)."""
        started = time.perf_counter()
        self._extra(request)  # a request without the router's user features fails before any model call
        embedding = self.embedder.embed(request.prompt_text) if self.router.needs_embedding and self.embedder else None
        return self._verdict(request, embedding, started)

    async def ascore(self, request: Request) -> RouteScore:
        """Async :meth:`score`."""
        started = time.perf_counter()
        self._extra(request)
        embedding = await self.embedder.aembed(request.prompt_text) if self.router.needs_embedding and self.embedder else None
        return self._verdict(request, embedding, started)


def router_stage(router: Any, embedder: Any, small: Any, count_tokens: Callable[[str], int]) -> RouterStage | None:
    """The cascade's :class:`RouterStage` from ``Cascade(router=..., router_embedder=...)`` (None without a router).

    ``router`` is a fitted :class:`QueryRouter` or the path of a router file; an embedding router
    without ``embedder`` uses the small tier's own (a ``TransformersModel``'s prompt embedding).

    Raises:
        ConfigurationError: not a router, not fitted, no threshold, or no way to embed the prompt.
    """
    if router is None:
        if embedder is not None:
            raise ConfigurationError("router_embedder= was given without a router=")
        return None
    if isinstance(router, (str, os.PathLike)):
        router = QueryRouter.load(router)
    if not isinstance(router, QueryRouter):
        raise ConfigurationError(f"router must be a fitted QueryRouter or the path of a router file, got {type(router).__name__}")
    if not hasattr(router, "layers_"):
        raise ConfigurationError("router: this QueryRouter is not fitted; fit it or load a router file (cascade fit --router)")
    if router.threshold is None:
        raise ConfigurationError(
            "router: this QueryRouter has no threshold; set QueryRouter(threshold=...) or use the one "
            "`cascade calibrate --router` writes"
        )
    if embedder is not None and not isinstance(embedder, PromptEmbedder):
        raise ConfigurationError(f"router_embedder must have embed/aembed/count_tokens (a PromptEmbedder), got {type(embedder).__name__}")
    if router.needs_embedding and embedder is None:
        embedder = prompt_embedder(small)
        if embedder is None:
            raise ConfigurationError(
                f"router: this QueryRouter reads the prompt embedding but the small tier ({type(small).__name__}) cannot "
                "give one; pass router_embedder=OpenAIEmbedder(...) (llama.cpp: cascade llama-server --model small --embedding)"
            )
    return RouterStage(router, embedder if router.needs_embedding else None, count_tokens)


def route_first(state: PlanState, threshold: float) -> Generator[Effect, Any, bool]:
    """Score the request before generation; True when it is routed straight to the last tier."""
    try:
        verdict = yield Route(state.request)
    except (ConfigurationError, InvalidRequestError):
        raise
    except Exception as err:
        if state.on_small_error != "defer":
            raise
        logger.warning("router failed, cascading without it: %s: %s", type(err).__name__, err)
        state.route = {"p_good": None, "threshold": threshold, "routed": False, "error": type(err).__name__}
        return False
    assert isinstance(verdict, RouteScore)
    routed = verdict.p_good < threshold
    state.route = {"p_good": verdict.p_good, "threshold": threshold, "routed": routed}
    if verdict.prefill:
        tier = state.tiers[0]
        usage = Usage(verdict.prompt_tokens, 0)
        state.runs.append(TierRun(0, f"{tier.model_name} (router prefill)", usage, verdict.latency_s, tier.cost(usage)))
    if routed:
        reason = f"routed: p_good={verdict.p_good:.3g} < router threshold {threshold:.3g}; no small tier generated"
        state.decisions.append(Decision(0, True, verdict.p_good, threshold, ROUTED, reason))
    return routed
