"""Run the app under uvicorn: ``cascade serve --config cascade.toml``.

uvicorn handles SIGTERM/SIGINT gracefully: it stops accepting connections, lets in-flight requests
and streams finish (up to ``shutdown_timeout_s``), then exits.
"""

from __future__ import annotations

import logging
import math
import os
from typing import Any

from cascade_core.serve.app import create_app
from cascade_core.serve.build import build_cascades
from cascade_core.serve.config import ServeConfig, load_config

__all__ = ["build_server", "serve"]

logger = logging.getLogger(__name__)


def build_server(config: ServeConfig, *, host: str | None = None, port: int | None = None) -> Any:
    """A ``uvicorn.Server`` for the config (builds the cascades, so local models load here)."""
    import uvicorn

    settings = config.server
    app = create_app(build_cascades(config), settings)
    uv_config = uvicorn.Config(
        app, host=host or settings.host, port=settings.port if port is None else port,
        log_level=settings.log_level, timeout_graceful_shutdown=math.ceil(settings.shutdown_timeout_s),
        access_log=settings.log_level in ("debug", "trace"), server_header=False,
    )
    return uvicorn.Server(uv_config)


def serve(config_path: str | os.PathLike[str], *, host: str | None = None, port: int | None = None) -> int:
    """Load the config, build the cascades and serve until SIGTERM/SIGINT; returns the exit status."""
    config = load_config(config_path)
    server = build_server(config, host=host, port=port)
    logger.info("serving cascades %s", list(config.cascades))
    server.run()
    return 0
