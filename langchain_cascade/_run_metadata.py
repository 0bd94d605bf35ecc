"""Put the cascade decision on the LangChain run (what LangSmith shows as the run's metadata).

A chat model cannot change the metadata its run started with through the callback API, but the
tracers that record runs (``LangChainTracer`` for LangSmith, and every other ``BaseTracer``) keep
the run object in ``run_map`` until the run ends and send its ``extra["metadata"]`` when it does.
:func:`attach_decision` adds ``metadata["cascade"]`` (the flat decision: tier, deferred, signal,
score, threshold, reason, early_exit, tokens, cost, saved) there before the run ends.
"""

from __future__ import annotations

import logging
from typing import Any

from cascade_core.engine.result import CascadeResult

__all__ = ["attach_decision", "run_metadata"]

logger = logging.getLogger(__name__)


def run_metadata(result: CascadeResult) -> dict[str, Any]:
    """The decision of a call as flat, JSON-ready run metadata."""
    return result.summary()


def attach_decision(run_manager: Any, result: CascadeResult) -> None:
    """Add ``metadata["cascade"]`` to this run in every tracer that records it (no-op without one)."""
    if run_manager is None:
        return
    key = str(run_manager.run_id)
    for handler in getattr(run_manager, "handlers", None) or ():
        run = getattr(handler, "run_map", {}).get(key) if hasattr(handler, "run_map") else None
        if run is None:
            continue
        try:
            run.extra.setdefault("metadata", {})["cascade"] = run_metadata(result)
        except Exception as err:  # tracing must never break a call
            logger.debug("could not attach the cascade decision to run %s: %s", key, err)
