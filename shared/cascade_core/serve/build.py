"""Turn a validated :class:`~cascade_core.serve.config.ServeConfig` into :class:`~cascade_core.Cascade` objects.

Rules are cheap to build (no models); tiers may load local models, so :func:`build_cascades` is
called once when the server starts.

Example:
    >>> from cascade_core.serve.config import RuleConfig
    >>> build_rule(RuleConfig(signal="chow_quantile", signal_params={"alpha": 0.1}, threshold=-2.0)).scorer.name
    'chow_quantile(alpha=0.1)'
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Any

from cascade_core.decide.calibration_file import load_calibration
from cascade_core.decide.rules import ThresholdRule
from cascade_core.decide.scorers import make_scorer
from cascade_core.decide.thresholds import DynamicBudgetThreshold, ThresholdPolicy
from cascade_core.engine import Cascade, Tier
from cascade_core.errors import ConfigurationError
from cascade_core.serve.config import CascadeConfig, RuleConfig, ServeConfig, TierConfig

__all__ = ["build_cascade", "build_cascades", "build_rule", "build_tier_model", "warm_up"]

logger = logging.getLogger(__name__)


def build_rule(config: RuleConfig) -> ThresholdRule:
    """The :class:`ThresholdRule` of a rule table (loads a learned rule file or calibration file if one is named)."""
    if config.calibration_file is not None:
        return _calibrated_rule(config)
    if config.rule_file is not None:
        from cascade_core.decide.learned.rule import LearnedDeferral

        signal: Any = LearnedDeferral.load(config.rule_file)
    else:
        signal = config.signal or "margin"
    threshold: float | ThresholdPolicy
    if config.dynamic is not None:
        try:
            threshold = DynamicBudgetThreshold(**config.dynamic)
        except TypeError as err:
            raise ConfigurationError(f"dynamic: {err}") from err
    else:
        assert config.threshold is not None
        threshold = config.threshold
    return ThresholdRule(signal, threshold, **dict(config.signal_params))


def _calibrated_rule(config: RuleConfig) -> ThresholdRule:
    """The rule of a calibration file; a ``signal``/``rule_file`` named beside it must be the one calibrated."""
    assert config.calibration_file is not None
    rule = load_calibration(config.calibration_file).build_rule()
    if config.signal is None and config.rule_file is None and config.signal_params:
        raise ConfigurationError(f"signal parameters {sorted(config.signal_params)} given without a signal beside calibration_file")
    if config.rule_file is not None or config.signal is not None:
        from cascade_core.decide.learned.rule import LearnedDeferral

        named: Any = LearnedDeferral.load(config.rule_file) if config.rule_file else config.signal
        expected = make_scorer(named, **({} if config.rule_file else dict(config.signal_params))).name
        if expected != rule.scorer.name:
            raise ConfigurationError(
                f"calibration_file {config.calibration_file!r} was calibrated for {rule.scorer.name!r}, not {expected!r}; "
                "drop signal/rule_file (the file carries its rule) or recalibrate"
            )
    return rule


def build_tier_model(config: TierConfig, role: str) -> Any:
    """The model of one tier; an OpenAI-compatible tier reads its key from ``api_key_env`` now."""
    if config.spec is not None:
        from cascade_core.cli.tiers import build_tier

        return build_tier(config.spec, role, top_k=config.top_k, max_new_tokens=config.max_new_tokens)
    from cascade_core.backends.openai import OpenAIModel

    key = os.environ.get(config.api_key_env) if config.api_key_env else None
    if config.api_key_env and not key:
        raise ConfigurationError(f"environment variable {config.api_key_env!r} (the tier's api_key_env) is empty or unset")
    assert config.model is not None
    return OpenAIModel(
        config.model, base_url=config.base_url, api_key=key or "not-needed",
        top_k=config.top_k if role == "small" else 0, max_new_tokens=config.max_new_tokens, timeout=config.timeout_s,
    )


def warm_up(model: Any) -> None:
    """Create a tier's async HTTP client now: building one loads TLS certificates (~0.5-2 s), which
    must not happen on the event loop during the first request."""
    if hasattr(type(model), "aclient"):
        # outside a running loop there is nothing to warm: OpenAIModel keeps one client per event loop
        with contextlib.suppress(RuntimeError):
            model.aclient  # noqa: B018 - the property creates and caches the running loop's client


def build_cascade(config: CascadeConfig) -> Cascade:
    """One cascade: its tiers (with prices and display names) and a fresh rule per judged tier."""
    last = len(config.tiers) - 1
    tiers = []
    for i, tier in enumerate(config.tiers):
        model = build_tier_model(tier, "small" if i < last else "large")
        warm_up(model)
        tiers.append(Tier(model, tier.pricing, name=tier.name))
    rules = [build_rule(rule) for rule in config.rules]
    router, embedder = None, None
    if config.router is not None:
        from cascade_core.serve.router_config import build_router

        router, embedder = build_router(config.router)
    try:
        return Cascade(tiers, rules, on_small_error=config.on_small_error, max_new_tokens=config.max_new_tokens,  # type: ignore[arg-type]
                       router=router, router_embedder=embedder, threshold_store=config.threshold_store)
    except ConfigurationError as err:
        raise ConfigurationError(f"cascades.{config.name}: {err}") from err


def build_cascades(config: ServeConfig) -> dict[str, Cascade]:
    """Every cascade of the file, by name (in file order)."""
    cascades = {}
    for name, cascade_config in config.cascades.items():
        cascades[name] = build_cascade(cascade_config)
        logger.info("cascade %r ready: %r", name, cascades[name])
    return cascades
