"""One factory for the two-tier cascade the framework adapters build (small model → large model).

``ChatCascade`` (LangChain) and ``CascadeLLM`` (LlamaIndex) take the same settings under the same
names — ``small``, ``large``, ``rule`` or ``signal``/``threshold``/``signal_params`` or
``calibration_file`` (what ``cascade calibrate --out`` wrote), pricing, failure policies, timeouts,
deadline, ``router``/``router_embedder`` — and hand them to :func:`two_tier_cascade`; a ready
:class:`~cascade_core.Cascade` passed instead goes through :func:`given_cascade`. So both adapters
accept the same values and refuse the same mistakes with the same :class:`ConfigurationError`.

Example:
    >>> from cascade_core.testing import ScriptedModel
    >>> cascade = two_tier_cascade(ScriptedModel("Paris", confidence=0.9), ScriptedModel("Paris, France"),
    ...                            threshold=0.5)
    >>> cascade.invoke("Capital of France?").tier
    0
    >>> two_tier_cascade(ScriptedModel("a"), ScriptedModel("b"), signal="chow_sum")
    Traceback (most recent call last):
    ...
    cascade_core.errors.ConfigurationError: two_tier_cascade: signal='chow_sum' needs a threshold= on its scale ...
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Literal

from cascade_core.backends.base import LargeModel, SmallModel
from cascade_core.cost import Pricing
from cascade_core.decide.calibration_file import load_calibration
from cascade_core.decide.rules import DeferralRule, ThresholdRule
from cascade_core.decide.scorers import make_scorer
from cascade_core.decide.thresholds import ThresholdPolicy
from cascade_core.engine.cascade import (
    DEFAULT_DEADLINE,
    DEFAULT_LARGE_TIMEOUT,
    DEFAULT_SMALL_TIMEOUT,
    Cascade,
    Tier,
)
from cascade_core.errors import ConfigurationError
from cascade_core.state.base import StateStore

__all__ = ["DEFAULT_SIGNAL", "DEFAULT_THRESHOLD", "TWO_TIER_DEFAULTS", "deferral_rule", "given_cascade", "two_tier_cascade"]

#: The signal used when none is named: the first-token margin p(top1) - p(top2).
DEFAULT_SIGNAL = "margin"
#: The threshold used with the default signal when none is given (on the margin's [0, 1] scale).
DEFAULT_THRESHOLD = 0.3

#: Every building setting and its default; with a ready ``Cascade`` each must stay at its default.
TWO_TIER_DEFAULTS: Mapping[str, Any] = {
    "small": None,
    "large": None,
    "rule": None,
    "signal": DEFAULT_SIGNAL,
    "threshold": None,
    "signal_params": None,
    "calibration_file": None,
    "small_pricing": None,
    "large_pricing": None,
    "on_small_error": "defer",
    "on_large_error": "raise",
    "small_timeout": DEFAULT_SMALL_TIMEOUT,
    "large_timeout": DEFAULT_LARGE_TIMEOUT,
    "deadline": DEFAULT_DEADLINE,
    "router": None,
    "router_embedder": None,
    "threshold_store": None,
}
_PARTS = ("small", "large", "rule", "signal", "threshold", "signal_params", "calibration_file", "small_pricing",
          "large_pricing", "router", "router_embedder")


def deferral_rule(
    rule: DeferralRule | None = None,
    signal: str = DEFAULT_SIGNAL,
    threshold: float | ThresholdPolicy | None = None,
    signal_params: Mapping[str, Any] | None = None,
    *,
    calibration_file: str | os.PathLike[str] | None = None,
    owner: str = "two_tier_cascade",
) -> DeferralRule:
    """The rule that decides deferral: ``rule`` itself, the rule of a ``calibration_file``, or
    ``ThresholdRule(signal, threshold, **signal_params)``.

    ``threshold=None`` means :data:`DEFAULT_THRESHOLD` for the default signal; any other signal has
    its own scale, so it needs an explicit threshold. A ``calibration_file`` carries its own rule
    and threshold (and risk certificate), so it excludes the other rule settings.

    Raises:
        ConfigurationError: both a rule and signal settings, a rule that is not a ``DeferralRule``,
            an unknown signal, or a threshold outside the signal's range.
        RuleFileError: an unreadable or invalid calibration file.
    """
    if calibration_file is not None:
        extra = [name for name, value in (("rule", rule is not None), ("signal", signal != DEFAULT_SIGNAL),
                                          ("threshold", threshold is not None), ("signal_params", bool(signal_params)))
                 if value]
        if extra:
            raise ConfigurationError(
                f"{owner}: calibration_file= carries its rule and threshold; do not pass {extra} beside it"
            )
        return load_calibration(calibration_file).build_rule()
    if rule is not None:
        extra = [name for name, value in (("signal", signal != DEFAULT_SIGNAL), ("threshold", threshold is not None),
                                          ("signal_params", bool(signal_params))) if value]
        if extra:
            raise ConfigurationError(f"{owner}: pass rule= or signal=/threshold=/signal_params=, not both (got rule= and {extra})")
        if not isinstance(rule, DeferralRule):
            raise ConfigurationError(f"{owner}.rule must be a cascade_core DeferralRule (e.g. ThresholdRule), got {rule!r}")
        return rule
    if threshold is None:
        if signal != DEFAULT_SIGNAL:
            make_scorer(signal, **dict(signal_params or {}))  # an unknown signal is named as such first
            raise ConfigurationError(
                f"{owner}: signal={signal!r} needs a threshold= on its scale (the default {DEFAULT_THRESHOLD} is for {DEFAULT_SIGNAL!r})"
            )
        threshold = DEFAULT_THRESHOLD
    return ThresholdRule(signal, threshold, **dict(signal_params or {}))


def _pricing(value: Pricing | None, name: str, owner: str) -> Pricing:
    if value is None:
        return Pricing()
    if not isinstance(value, Pricing):
        raise ConfigurationError(f"{owner}.{name} must be a cascade_core Pricing, got {type(value).__name__}")
    return value


def two_tier_cascade(
    small: SmallModel | None,
    large: LargeModel | None,
    *,
    rule: DeferralRule | None = None,
    signal: str = DEFAULT_SIGNAL,
    threshold: float | ThresholdPolicy | None = None,
    signal_params: Mapping[str, Any] | None = None,
    calibration_file: str | os.PathLike[str] | None = None,
    small_pricing: Pricing | None = None,
    large_pricing: Pricing | None = None,
    on_small_error: Literal["defer", "raise"] = "defer",
    on_large_error: Literal["raise", "small"] = "raise",
    small_timeout: float | None = DEFAULT_SMALL_TIMEOUT,
    large_timeout: float | None = DEFAULT_LARGE_TIMEOUT,
    deadline: float | None = DEFAULT_DEADLINE,
    max_new_tokens: int | None = None,
    router: Any = None,
    router_embedder: Any = None,
    threshold_store: StateStore | str | None = None,
    owner: str = "two_tier_cascade",
) -> Cascade:
    """A :class:`Cascade` of a small tier (judged by its token log-probs) and a large tier.

    Args:
        small: A core small model (token log-probs and top-k).
        large: A core large model (a framework's chat model wrapped by its adapter).
        rule: A ready deferral rule (e.g. a learned rule); excludes ``signal``/``threshold``/``signal_params``.
        signal: Signal name: ``margin``, ``chow_sum``, ``chow_average``, ``chow_quantile``, ``entropy``.
        threshold: Defer below this number or ``ThresholdPolicy``; ``None``: 0.3 for ``margin``,
            required for other signals.
        signal_params: Parameters of the signal (``alpha=0.1`` for ``chow_quantile``, ``labels=[...]``).
        calibration_file: A file ``cascade calibrate --out`` wrote: its rule and threshold (a
            certified one under ``--risk``); excludes ``rule``/``signal``/``threshold``/``signal_params``.
        small_pricing / large_pricing: Prices per million tokens (for ``cost`` / ``saved``).
        on_small_error / on_large_error / small_timeout / large_timeout / deadline: See :class:`Cascade`.
        max_new_tokens: Cap on generated tokens per call (both tiers).
        router / router_embedder: A pre-generation ``QueryRouter`` (or its file's path) and its prompt
            embedder: see :class:`Cascade` and :mod:`cascade_core.engine.route_stage`.
        threshold_store: Where a dynamic threshold keeps its window (a ``redis://…?key=name`` URL shares it
            across processes); see :class:`Cascade`.
        owner: Name used in error messages (the adapter class).

    Raises:
        ConfigurationError: a missing tier, a small tier without log-probs, or a bad rule setting;
            the message names the setting.
    """
    if small is None or large is None:
        raise ConfigurationError(f"{owner} needs cascade=, or both small= and large=")
    if not isinstance(small, SmallModel):
        raise ConfigurationError(
            f"{owner}.small must be a cascade_core small model (stream_steps with log-probs, top_k), got "
            f"{type(small).__name__}; a chat model that gives no token scores can only be the large tier"
        )
    if not isinstance(large, LargeModel):
        raise ConfigurationError(
            f"{owner}.large must be a framework chat model or a cascade_core large model, got {type(large).__name__}"
        )
    chosen = deferral_rule(rule, signal, threshold, signal_params, calibration_file=calibration_file, owner=owner)
    return Cascade(
        [Tier(small, _pricing(small_pricing, "small_pricing", owner)),
         Tier(large, _pricing(large_pricing, "large_pricing", owner))],
        rules=chosen, max_new_tokens=max_new_tokens, on_small_error=on_small_error, on_large_error=on_large_error,
        small_timeout=small_timeout, large_timeout=large_timeout, deadline=deadline,
        router=router, router_embedder=router_embedder, threshold_store=threshold_store,
    )


def given_cascade(cascade: Any, *, owner: str = "two_tier_cascade", **settings: Any) -> Cascade:
    """Check a ready ``cascade`` passed instead of parts: building settings must not be given beside it.

    Args:
        cascade: What was passed as ``cascade=``.
        owner: Name used in error messages.
        **settings: The building settings as given (names of :data:`TWO_TIER_DEFAULTS`); a part
            (``small``, ``rule`` …) or a changed policy beside a ready cascade is refused, not ignored.

    Raises:
        ConfigurationError: ``cascade`` is not a ``Cascade``, or a setting was given beside it.
    """
    if not isinstance(cascade, Cascade):
        raise ConfigurationError(f"{owner}.cascade must be a cascade_core.Cascade, got {type(cascade).__name__}")
    unknown = sorted(set(settings) - set(TWO_TIER_DEFAULTS))
    if unknown:
        raise ConfigurationError(f"{owner}: unknown settings {unknown}")
    changed = sorted(name for name, value in settings.items() if value != TWO_TIER_DEFAULTS[name]
                     and not (name == "signal_params" and not value))
    parts = [name for name in changed if name in _PARTS]
    if parts:
        raise ConfigurationError(f"{owner}: give either cascade= or small=/large= (with rule options), not both (got {parts})")
    if changed:
        raise ConfigurationError(f"{owner}: with cascade=, set {changed} on the Cascade itself")
    return cascade
