"""The ``cascade serve`` configuration file (TOML), validated with errors that name the key.

A file has one ``[server]`` table and one ``[cascades.<name>]`` table per cascade; the request's
``model`` field selects the cascade by name. See ``docs/serve.md`` for the full reference and
``examples/cascade.toml`` for a commented example.

Example:
    >>> config = parse_config({
    ...     "server": {"port": 8080},
    ...     "cascades": {"qa": {
    ...         "tiers": ["openai:http://127.0.0.1:8001/v1#small", {"kind": "openai",
    ...                   "base_url": "http://127.0.0.1:8002/v1", "model": "large"}],
    ...         "rule": {"signal": "margin", "threshold": 0.3}}}})
    >>> config.server.port, list(config.cascades), config.cascades["qa"].tiers[1].model
    (8080, ['qa'], 'large')
    >>> parse_config({"cascades": {"qa": {"tiers": ["embedded"], "rule": {"threshold": 0.3}}}})
    Traceback (most recent call last):
    ...
    cascade_core.errors.ConfigurationError: config: cascades.qa.tiers: a cascade needs at least 2 tiers, cheapest first
"""

from __future__ import annotations

import math
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cascade_core.cli.tiers import TIER_SPEC_HELP, parse_tier_spec
from cascade_core.cost import Pricing
from cascade_core.errors import CascadeError, ConfigurationError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = ["CascadeConfig", "RuleConfig", "ServeConfig", "ServerSettings", "TierConfig", "load_config", "parse_config"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$")


@dataclass(frozen=True)
class ServerSettings:
    """The ``[server]`` table: where to listen and the operational limits.

    Attributes:
        host: Interface to bind (``0.0.0.0`` behind a load balancer).
        port: TCP port.
        api_keys: Bearer keys a client must send (empty = no auth). Never shown in ``repr``.
        max_concurrency: Requests served at once; more get 429 with ``Retry-After``.
        retry_after_s: The ``Retry-After`` value (seconds) of a 429.
        request_timeout_s: Wall-clock limit of one request (504, or an error event in a stream).
        max_request_bytes: Largest accepted request body (413 beyond).
        max_tokens_limit: Largest ``max_tokens`` a request may ask for (400 beyond).
        shutdown_timeout_s: On SIGTERM, how long in-flight requests may take to finish.
        log_level: uvicorn's log level.

    Example:
        >>> settings = ServerSettings(api_keys=("sk-client",), max_concurrency=8)
        >>> settings.max_concurrency, "sk-client" in repr(settings)
        (8, False)
    """

    host: str = "127.0.0.1"
    port: int = 8000
    api_keys: tuple[str, ...] = field(default=(), repr=False)
    max_concurrency: int = 64
    retry_after_s: int = 1
    request_timeout_s: float = 120.0
    max_request_bytes: int = 1_000_000
    max_tokens_limit: int = 4096
    shutdown_timeout_s: float = 30.0
    log_level: str = "info"


@dataclass(frozen=True)
class TierConfig:
    """One tier: a tier spec (``embedded``, ``hf:…``, ``openai:…#…``, …) or an OpenAI-compatible server.

    Attributes:
        spec: Tier-spec string built by :func:`cascade_core.cli.tiers.build_tier` (``None`` for ``kind="openai"``).
        base_url: Server URL (``kind="openai"``).
        model: Model name on the server (``kind="openai"``).
        api_key_env: Environment variable holding the server's key (read when the tier is built).
        name: Display name in results, headers and metrics.
        pricing: Prices per million input / output tokens.
        top_k: Alternatives recorded per step (small tiers).
        max_new_tokens: The tier's default generation cap.
        timeout_s: HTTP timeout of an OpenAI-compatible tier.
    """

    spec: str | None = None
    base_url: str | None = None
    model: str | None = None
    api_key_env: str | None = None
    name: str | None = None
    pricing: Pricing = field(default_factory=Pricing)
    top_k: int = 5
    max_new_tokens: int = 256
    timeout_s: float = 60.0


@dataclass(frozen=True)
class RuleConfig:
    """A deferral rule: a signal (or learned rule file) and a fixed or dynamic threshold.

    Attributes:
        signal: A signal name (``margin``, ``chow_sum``, ``chow_average``, ``chow_quantile``, ``entropy``).
        signal_params: Parameters of the signal (``alpha``, ``labels``, ``kind``; ``k``, ``temperature``, ``seed`` of ``sample_agreement``).
        rule_file: A learned rule saved by ``cascade fit`` (instead of ``signal``).
        threshold: A fixed threshold.
        dynamic: Parameters of :class:`~cascade_core.decide.thresholds.DynamicBudgetThreshold` (instead of ``threshold``).
        calibration_file: A file ``cascade calibrate --out`` wrote (instead of ``threshold``): its rule
            and threshold, certified under ``--risk``; a ``signal``/``rule_file`` beside it must name the same score.
    """

    signal: str | None = "margin"
    signal_params: Mapping[str, Any] = field(default_factory=dict)
    rule_file: str | None = None
    threshold: float | None = None
    dynamic: Mapping[str, Any] | None = None
    calibration_file: str | None = None


@dataclass(frozen=True)
class CascadeConfig:
    """One ``[cascades.<name>]`` table."""

    name: str
    tiers: tuple[TierConfig, ...]
    rules: tuple[RuleConfig, ...]
    max_new_tokens: int | None = None
    on_small_error: str = "defer"
    description: str = ""
    router: Any = None  # a serve.router_config.RouterConfig: the [cascades.<name>.router] table
    #: Where the dynamic thresholds keep their windows (``redis://…?key=…`` shares them across replicas).
    threshold_store: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class ServeConfig:
    """A whole configuration file: server settings and the named cascades (in file order)."""

    server: ServerSettings
    cascades: Mapping[str, CascadeConfig]
    source: str = "config"


class _Table:
    """Reads one TOML table, checking types and remembering which keys were used."""

    def __init__(self, data: Any, path: str, source: str) -> None:
        self.source, self.path = source, path
        if not isinstance(data, Mapping):
            self.fail(f"must be a table, got {type(data).__name__}")
        self.data: Mapping[str, Any] = data
        self.used: set[str] = set()

    def where(self, key: str | None = None) -> str:
        return ".".join(p for p in (self.path, key) if p) or "<root>"

    def fail(self, message: str, key: str | None = None) -> Any:
        raise ConfigurationError(f"{self.source}: {self.where(key)}: {message}")

    def get(self, key: str, kinds: type | tuple[type, ...], default: Any = None, *, required: bool = False) -> Any:
        self.used.add(key)
        if key not in self.data:
            if required:
                self.fail("is required", key)
            return default
        value = self.data[key]
        if isinstance(value, bool) and bool not in (kinds if isinstance(kinds, tuple) else (kinds,)):
            self.fail(f"must be {_kind_names(kinds)}, got {value!r}", key)
        if not isinstance(value, kinds):
            self.fail(f"must be {_kind_names(kinds)}, got {type(value).__name__} {value!r}", key)
        return value

    def number(self, key: str, default: float | None, *, low: float = 0.0, positive: bool = False) -> Any:
        value = self.get(key, (int, float), default)
        if value is None:
            return None
        if math.isnan(value) or value < low or (positive and value <= 0):
            self.fail(f"must be a {'positive' if positive else f'number >= {low:g}'}, got {value!r}", key)
        return value

    def integer(self, key: str, default: int | None, *, low: int = 1) -> Any:
        value = self.get(key, int, default)
        if value is not None and value < low:
            self.fail(f"must be an integer >= {low}, got {value!r}", key)
        return value

    def finish(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            self.fail(f"unknown key(s) {unknown}; allowed: {sorted(self.used)}")


def _kind_names(kinds: type | tuple[type, ...]) -> str:
    names = {"str": "a string", "int": "an integer", "float": "a number", "bool": "true or false",
             "list": "an array", "dict": "a table", "Mapping": "a table"}
    kinds = kinds if isinstance(kinds, tuple) else (kinds,)
    return " or ".join(dict.fromkeys(names.get(k.__name__, k.__name__) for k in kinds))


def _server(table: _Table) -> ServerSettings:
    keys = [str(k) for k in table.get("api_keys", list, [])]
    env = table.get("api_keys_env", str)
    if env:
        keys += [k.strip() for k in os.environ.get(env, "").split(",") if k.strip()]
        if not os.environ.get(env, "").strip():
            table.fail(f"environment variable {env!r} is empty or unset", "api_keys_env")
    if any(not k for k in keys):
        table.fail("keys must be non-empty strings", "api_keys")
    log_level = table.get("log_level", str, "info")
    if log_level not in ("critical", "error", "warning", "info", "debug", "trace"):
        table.fail(f"must be one of critical, error, warning, info, debug, trace; got {log_level!r}", "log_level")
    settings = ServerSettings(
        host=table.get("host", str, "127.0.0.1"),
        port=table.integer("port", 8000, low=0),
        api_keys=tuple(keys),
        max_concurrency=table.integer("max_concurrency", 64),
        retry_after_s=table.integer("retry_after_s", 1, low=0),
        request_timeout_s=table.number("request_timeout_s", 120.0, positive=True),
        max_request_bytes=table.integer("max_request_bytes", 1_000_000),
        max_tokens_limit=table.integer("max_tokens_limit", 4096),
        shutdown_timeout_s=table.number("shutdown_timeout_s", 30.0),
        log_level=log_level,
    )
    if settings.port > 65535:
        table.fail(f"must be a TCP port in [0, 65535], got {settings.port}", "port")
    table.finish()
    return settings


def _tier(raw: Any, path: str, source: str, role: str) -> TierConfig:
    if isinstance(raw, str):
        raw = {"spec": raw}
    table = _Table(raw, path, source)
    common: dict[str, Any] = {
        "name": table.get("name", str),
        "pricing": Pricing(table.number("input_per_million", 0.0), table.number("output_per_million", 0.0)),
        "top_k": table.integer("top_k", 5, low=0),
        "max_new_tokens": table.integer("max_new_tokens", 256),
        "timeout_s": table.number("timeout_s", 60.0, positive=True),
    }
    kind = table.get("kind", str)
    spec = table.get("spec", str)
    if (kind is None) == (spec is None):
        table.fail(f"give either spec = '<{TIER_SPEC_HELP}>' or kind = 'openai' with base_url and model")
    if spec is not None:
        try:
            parse_tier_spec(spec, role)
        except ConfigurationError as err:
            table.fail(str(err), "spec")
        table.finish()
        return TierConfig(spec=spec, **common)
    if kind != "openai":
        table.fail(f"unknown tier kind {kind!r}; use kind = 'openai', or spec = '<tier spec>' for {TIER_SPEC_HELP}", "kind")
    tier = TierConfig(
        base_url=table.get("base_url", str, required=True),
        model=table.get("model", str, required=True),
        api_key_env=table.get("api_key_env", str),
        **common,
    )
    if not tier.base_url.startswith(("http://", "https://")):  # type: ignore[union-attr]
        table.fail(f"must be an http(s) URL, got {tier.base_url!r}", "base_url")
    if tier.api_key_env is not None and not os.environ.get(tier.api_key_env):
        table.fail(f"environment variable {tier.api_key_env!r} is empty or unset", "api_key_env")
    table.finish()
    return tier


def _rule(raw: Any, path: str, source: str, base_dir: Path) -> RuleConfig:
    from cascade_core.serve.build import build_rule  # validation builds the rule once (cheap, no models)

    table = _Table(raw, path, source)
    signal = table.get("signal", str)
    rule_file = table.get("rule_file", str)
    if signal is not None and rule_file is not None:
        table.fail("give either signal or rule_file, not both")
    params = {key: table.get(key, (int, float, str, list)) for key in ("alpha", "labels", "kind", "k", "temperature", "seed") if key in table.data}
    threshold = table.get("threshold", (int, float))
    calibration = table.get("calibration_file", str)
    dynamic = table.get("dynamic", Mapping)
    if sum(x is not None for x in (threshold, calibration, dynamic)) != 1:
        table.fail("give exactly one of threshold, calibration_file (from `cascade calibrate --out`) or [dynamic]")
    if dynamic is not None:
        allowed = {"budget", "small_cost", "large_cost", "deferral_rate", "warmup", "initial_threshold", "window"}
        unknown = sorted(set(dynamic) - allowed)
        if unknown:
            table.fail(f"unknown key(s) {unknown}; allowed: {sorted(allowed)}", "dynamic")
    table.finish()
    config = RuleConfig(
        signal=None if rule_file or (calibration and not signal) else (signal or "margin"),
        signal_params=params,
        rule_file=str(base_dir / rule_file) if rule_file else None,
        threshold=threshold,
        dynamic=dict(dynamic) if dynamic is not None else None,
        calibration_file=str(base_dir / calibration) if calibration else None,
    )
    try:
        build_rule(config)
    except CascadeError as err:  # ConfigurationError, RuleFileError
        table.fail(str(err))
    return config


def _cascade(name: str, raw: Any, source: str, base_dir: Path) -> CascadeConfig:
    path = f"cascades.{name}"
    table = _Table(raw, path, source)
    if not _NAME.match(name):
        table.fail("cascade names are what clients send as `model`: letters, digits and ._:/- only")
    tiers_raw = table.get("tiers", list, required=True)
    if len(tiers_raw) < 2:
        table.fail("a cascade needs at least 2 tiers, cheapest first", "tiers")
    last = len(tiers_raw) - 1
    tiers = tuple(_tier(t, f"{path}.tiers[{i}]", source, "small" if i < last else "large") for i, t in enumerate(tiers_raw))
    if "rule" in table.data and "rules" in table.data:
        table.fail("give either [rule] (used after every non-final tier) or rules = [...] (one per non-final tier)")
    if "rules" in table.data:
        raws = table.get("rules", list)
        if len(raws) != last:
            table.fail(f"give one rule per non-final tier ({last}), got {len(raws)}", "rules")
        rules = tuple(_rule(r, f"{path}.rules[{i}]", source, base_dir) for i, r in enumerate(raws))
    else:
        one = table.get("rule", Mapping, required=True)
        rules = tuple(_rule(one, f"{path}.rule", source, base_dir) for _ in range(last))  # own policy state each
    threshold_store = _threshold_store(table, rules)
    on_error = table.get("on_small_error", str, "defer")
    if on_error not in ("defer", "raise"):
        table.fail(f"must be 'defer' or 'raise', got {on_error!r}", "on_small_error")
    router_raw = table.get("router", Mapping)
    router = None
    if router_raw is not None:
        from cascade_core.serve.router_config import parse_router

        router = parse_router(router_raw, f"{path}.router", source, base_dir)
    config = CascadeConfig(
        name=name, tiers=tiers, rules=rules, max_new_tokens=table.integer("max_new_tokens", None),
        on_small_error=on_error, description=table.get("description", str, ""), router=router,
        threshold_store=threshold_store,
    )
    table.finish()
    return config


def _threshold_store(table: _Table, rules: tuple[RuleConfig, ...]) -> str | None:
    """``threshold_store = "redis://…?key=…"`` or ``threshold_store_env = "VAR"`` (a URL with a password stays out of the file)."""
    url = table.get("threshold_store", str)
    env = table.get("threshold_store_env", str)
    if url is not None and env is not None:
        table.fail("give either threshold_store or threshold_store_env, not both")
    if env is not None:
        url = os.environ.get(env, "").strip()
        if not url:
            table.fail(f"environment variable {env!r} is empty or unset", "threshold_store_env")
    if url is None:
        return None
    key = "threshold_store" if env is None else "threshold_store_env"
    if not url.startswith(("redis://", "rediss://", "unix://")):
        table.fail("must be a redis://host:port/db?key=name URL (rediss:// or unix:// also work)", key)
    if all(rule.dynamic is None for rule in rules):
        table.fail("only a [dynamic] threshold keeps state to share: give the rule a [dynamic] table", key)
    return url


def parse_config(data: Mapping[str, Any], *, source: str = "config", base_dir: str | os.PathLike[str] = ".") -> ServeConfig:
    """Validate a parsed TOML document; raises :class:`ConfigurationError` naming the offending key.

    Relative paths (``rule_file``, ``calibration_file``) are resolved against ``base_dir``.
    """
    root = _Table(data, "", source)
    server = _server(_Table(root.get("server", Mapping, {}), "server", source))
    cascades_raw = root.get("cascades", Mapping, required=True)
    if not cascades_raw:
        root.fail("define at least one [cascades.<name>] table", "cascades")
    cascades = {name: _cascade(name, raw, source, Path(base_dir)) for name, raw in cascades_raw.items()}
    root.finish()
    return ServeConfig(server=server, cascades=cascades, source=source)


def load_config(path: str | os.PathLike[str]) -> ServeConfig:
    """Read and validate a ``cascade.toml`` file."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigurationError(f"cannot read config file {str(file)!r}: {err.strerror or err}") from err
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigurationError(f"{file}: not valid TOML: {err}") from err
    return parse_config(data, source=str(file), base_dir=file.parent)
