"""Cost accounting: per-tier prices per million tokens, token counting, "saved vs all-large".

Token counts come from the backend's reported usage; when a backend reports none, text is counted
with tiktoken (``cl100k_base``). Offline, tiktoken needs a local cache: if ``TIKTOKEN_CACHE_DIR``
is not set and llama-index-core is installed, its bundled cache is used.

Example:
    >>> price = Pricing(input_per_million=0.15, output_per_million=0.60)
    >>> round(price.cost(Usage(1000, 500)), 6)
    0.00045
"""

from __future__ import annotations

import functools
import importlib.metadata
import logging
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cascade_core.errors import ConfigurationError
from cascade_core.types import Usage

__all__ = ["CostSummary", "Pricing", "count_tokens", "summarize_costs", "token_ids", "use_bundled_tiktoken_cache"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Pricing:
    """Prices of one tier in currency units per million input / output tokens.

    Example:
        >>> Pricing(input_per_million=1.0, output_per_million=2.0).cost(Usage(1_000_000, 500_000))
        2.0
    """

    input_per_million: float = 0.0
    output_per_million: float = 0.0

    def __post_init__(self) -> None:
        for name in ("input_per_million", "output_per_million"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value) or value < 0:
                raise ConfigurationError(f"Pricing.{name} must be a non-negative number, got {value!r}")

    def cost(self, usage: Usage) -> float:
        """Cost of one call with this usage."""
        return (usage.input_tokens * self.input_per_million + usage.output_tokens * self.output_per_million) / 1e6


def use_bundled_tiktoken_cache() -> str | None:
    """Point tiktoken at llama-index-core's bundled encodings, so it works offline.

    Sets ``TIKTOKEN_CACHE_DIR`` unless it is already set (then that is kept) and returns the
    directory in use; ``None`` when neither is available (tiktoken would then download).
    Called before the first token count; call it yourself before other code imports tiktoken.
    """
    current = os.environ.get("TIKTOKEN_CACHE_DIR")
    if current:
        return current
    try:
        dist = importlib.metadata.distribution("llama-index-core")
    except importlib.metadata.PackageNotFoundError:
        return None
    path = str(dist.locate_file("llama_index/core/_static/tiktoken_cache"))
    if not os.path.isdir(path):
        return None
    os.environ["TIKTOKEN_CACHE_DIR"] = path
    return path


@functools.lru_cache(maxsize=4)
def _encoding(name: str) -> Any:
    use_bundled_tiktoken_cache()
    import tiktoken

    try:
        return tiktoken.get_encoding(name)
    except Exception as err:  # offline without a cache: fall back to an estimate, say so once
        logger.warning("tiktoken encoding %r unavailable (%s); estimating tokens as characters/4", name, err)
        return None


def count_tokens(text: str, encoding: str = "cl100k_base") -> int:
    """Tokens of ``text`` with a tiktoken encoding (``cl100k_base`` or ``o200k_base`` offline).

    >>> count_tokens("hello world")
    2
    """
    enc = _encoding(encoding)
    if enc is None:
        return max(1, math.ceil(len(text) / 4)) if text else 0
    return len(enc.encode(text, disallowed_special=()))


def token_ids(text: str, encoding: str = "cl100k_base") -> list[int]:
    """Token ids of ``text`` with a tiktoken encoding, offline (for adapters' ``get_token_ids``).

    >>> len(token_ids("hello world"))
    2

    Raises:
        ModelNotAvailableError: the encoding is not available offline.
    """
    enc = _encoding(encoding)
    if enc is None:
        from cascade_core.errors import ModelNotAvailableError

        raise ModelNotAvailableError(f"tiktoken encoding {encoding!r} is not available offline")
    return list(enc.encode(text, disallowed_special=()))


@dataclass(frozen=True)
class CostSummary:
    """Totals over many cascade results."""

    n: int
    deferred: int
    cost: float
    all_large_cost: float

    @property
    def deferral_rate(self) -> float:
        return self.deferred / self.n if self.n else 0.0

    @property
    def saved(self) -> float:
        """Cost saved relative to sending every query to the large tier."""
        return self.all_large_cost - self.cost

    @property
    def saved_fraction(self) -> float:
        return self.saved / self.all_large_cost if self.all_large_cost > 0 else 0.0


def summarize_costs(results: Iterable[Any]) -> CostSummary:
    """Sum the cost figures of :class:`~cascade_core.engine.result.CascadeResult` objects."""
    items = list(results)
    return CostSummary(
        n=len(items),
        deferred=sum(1 for r in items if r.deferred),
        cost=sum(r.cost for r in items),
        all_large_cost=sum(r.all_large_cost for r in items),
    )
