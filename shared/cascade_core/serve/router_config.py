"""The ``[cascades.<name>.router]`` table of ``cascade serve``: a pre-generation router in front of the small tier.

.. code-block:: toml

    [cascades.qa.router]
    file = "router.json"                 # written by `cascade fit --router`
    calibration_file = "hybrid.json"     # `cascade calibrate --router ... --out` (or: threshold = 0.4)

    [cascades.qa.router.embedder]        # omit to use the small tier's own prompt embedding
    base_url = "http://127.0.0.1:8081/v1"  # llama.cpp in embedding mode, same GGUF as the small tier
    model = "small"

Example:
    >>> import tempfile, pathlib, numpy as np
    >>> from cascade_core.decide.router import QueryRouter
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> tokens = np.array([3, 40] * 10)
    >>> _ = QueryRouter(use_embedding=False).fit(None, tokens, (tokens < 10).astype(int)).save(folder / "r.json")
    >>> parse_router({"file": "r.json", "threshold": 0.4}, "cascades.qa.router", "config", folder).threshold
    0.4
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cascade_core.decide.router import QueryRouter
from cascade_core.errors import CascadeError

__all__ = ["EmbedderConfig", "RouterConfig", "build_router", "parse_router"]


@dataclass(frozen=True)
class EmbedderConfig:
    """An OpenAI-compatible ``/v1/embeddings`` server giving the router its prompt embedding."""

    base_url: str
    model: str
    api_key_env: str | None = None
    timeout_s: float = 30.0


@dataclass(frozen=True)
class RouterConfig:
    """A router file, its threshold, and (optionally) the server that embeds prompts for it."""

    file: str
    threshold: float
    embedder: EmbedderConfig | None = None


def _router_threshold(path: Path, table: Any) -> float:
    from cascade_core.decide.calibration_file import load_calibration
    from cascade_core.errors import RuleFileError

    try:
        router = load_calibration(path).router
    except RuleFileError as err:
        return table.fail(str(err), "calibration_file")  # type: ignore[no-any-return]
    if router is None:
        return table.fail(  # type: ignore[no-any-return]
            f"{str(path)!r} has no router threshold; write it with `cascade calibrate --router ... --out`", "calibration_file"
        )
    return float(router["threshold"])


def parse_router(raw: Any, path: str, source: str, base_dir: Path) -> RouterConfig:
    """Validate a ``router`` table (the file is loaded once here, strictly, so a bad one fails at start-up)."""
    from cascade_core.serve.config import _Table

    table = _Table(raw, path, source)
    file = str(base_dir / table.get("file", str, required=True))
    threshold = table.number("threshold", None)
    calibration = table.get("calibration_file", str)
    if (threshold is None) == (calibration is None):
        table.fail("give exactly one of threshold (a probability) or calibration_file (from `cascade calibrate --router --out`)")
    if calibration is not None:
        threshold = _router_threshold(base_dir / calibration, table)
    if not 0.0 <= threshold <= 1.0:
        table.fail(f"must be a probability in [0, 1], got {threshold!r}", "threshold")
    embedder = None
    raw_embedder = table.get("embedder", Mapping)
    if raw_embedder is not None:
        sub = _Table(raw_embedder, f"{path}.embedder", source)
        embedder = EmbedderConfig(
            base_url=sub.get("base_url", str, required=True), model=sub.get("model", str, required=True),
            api_key_env=sub.get("api_key_env", str), timeout_s=sub.number("timeout_s", 30.0, positive=True),
        )
        if not embedder.base_url.startswith(("http://", "https://")):
            sub.fail(f"must be an http(s) URL, got {embedder.base_url!r}", "base_url")
        sub.finish()
    table.finish()
    try:
        QueryRouter.load(file)
    except CascadeError as err:
        table.fail(str(err), "file")
    return RouterConfig(file=file, threshold=float(threshold), embedder=embedder)


def build_router(config: RouterConfig) -> tuple[QueryRouter, Any]:
    """The loaded router (with the configured threshold) and its embedder (None: the small tier's own)."""
    router = QueryRouter.load(config.file).set_params(threshold=config.threshold)
    if config.embedder is None:
        return router, None
    from cascade_core.backends.embedders import OpenAIEmbedder

    e = config.embedder
    key = os.environ.get(e.api_key_env) if e.api_key_env else None
    if e.api_key_env and not key:
        from cascade_core.errors import ConfigurationError

        raise ConfigurationError(f"environment variable {e.api_key_env!r} (the router embedder's api_key_env) is empty or unset")
    return router, OpenAIEmbedder(e.base_url, e.model, api_key=key, timeout=e.timeout_s)
