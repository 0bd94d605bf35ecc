"""``cascade serve``: the cascade as an OpenAI-compatible HTTP endpoint, with Prometheus metrics.

Any OpenAI client becomes a cascade client by changing ``base_url``; the request's ``model`` picks
a named cascade. Modules: :mod:`~cascade_core.serve.config` (TOML loading and validation),
:mod:`~cascade_core.serve.build` (config → cascades), :mod:`~cascade_core.serve.wire` (OpenAI JSON ⇄
core types), :mod:`~cascade_core.serve.app` (the Starlette app), :mod:`~cascade_core.serve.metrics`
(prometheus-client collectors), :mod:`~cascade_core.serve.runner` (uvicorn). See ``docs/serve.md``.

Needs the ``serve`` extra: ``pip install 'llm-cascade[serve]'``.
"""

from cascade_core.serve.app import create_app
from cascade_core.serve.build import build_cascades
from cascade_core.serve.config import ServeConfig, ServerSettings, load_config, parse_config
from cascade_core.serve.metrics import ServeMetrics
from cascade_core.serve.runner import build_server, serve

__all__ = [
    "ServeConfig",
    "ServeMetrics",
    "ServerSettings",
    "build_cascades",
    "build_server",
    "create_app",
    "load_config",
    "parse_config",
    "serve",
]
