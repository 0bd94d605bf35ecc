"""Exception hierarchy for ``cascade_core``.

Every error the library raises on purpose derives from :class:`CascadeError`, so callers can catch
one type. Configuration and input errors also derive from :class:`ValueError`, so code that already
catches ``ValueError`` for bad arguments keeps working.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from types import ModuleType
from typing import Any

__all__ = [
    "BackendError",
    "DeadlineExceededError",
    "LargeTierError",
    "LogprobsUnavailableError",
    "CascadeError",
    "MissingDependencyError",
    "ConfigurationError",
    "DataFormatError",
    "InvalidRequestError",
    "ModelNotAvailableError",
    "NotFittedError",
    "RuleFileError",
    "SignalError",
    "TierTimeoutError",
    "require",
]


class CascadeError(Exception):
    """Base class of every error raised by the cascade library."""


class ConfigurationError(CascadeError, ValueError):
    """A cascade, rule, threshold or backend was configured with an invalid value."""


class LogprobsUnavailableError(ConfigurationError):
    """The small tier's server answers without token log-probs, so no signal can judge its answers.

    Raised at the first call rather than deferring every query (which would quietly turn the cascade
    into an all-large one). A configuration fault of the deployment, not of one reply. The options:
    serve the small model where log-probs come back (vLLM, ``cascade llama-server``, llama.cpp's
    server, OpenAI chat models with ``logprobs=True``), run it in-process (``--small embedded`` or
    the transformers backend), or use that endpoint as the large tier only.
    """


class InvalidRequestError(CascadeError, ValueError):
    """A request cannot be served: no messages, non-text content, unknown role…"""


class BackendError(CascadeError, RuntimeError):
    """A model backend failed (HTTP error, malformed server reply, model crash)."""


class TierTimeoutError(BackendError, TimeoutError):
    """A tier sent nothing within its timeout (``Cascade(small_timeout=…, large_timeout=…)``)."""


class DeadlineExceededError(CascadeError, TimeoutError):
    """The whole call ran past ``Cascade(deadline=…)``; no further tier is called."""


class SignalError(CascadeError, ValueError):
    """A signal cannot be computed from what the small tier returned (NaN or positive log-probs,
    too few alternatives). A runtime fault of the reply, not of the configuration: the cascade
    defers and records the reason."""


class LargeTierError(BackendError):
    """The last tier failed. Carries the decisions taken before it (``decisions``) so the caller
    knows the query was deferred, from which tier, with which score; the provider's exception is
    ``__cause__``.

    Attributes:
        tier: Index of the tier that failed (the last).
        decisions: The :class:`~cascade_core.engine.result.Decision` records taken before the call.
    """

    def __init__(self, message: str, *, tier: int, decisions: Sequence[Any] = ()) -> None:
        super().__init__(message)
        self.tier = tier
        self.decisions: tuple[Any, ...] = tuple(decisions)

    @property
    def decision(self) -> Any:
        """The last decision before the failing call (the deferral), if any."""
        return self.decisions[-1] if self.decisions else None


class ModelNotAvailableError(CascadeError, RuntimeError):
    """A model (for instance an embedded default) is not installed or cannot be loaded offline."""


class NotFittedError(ConfigurationError, AttributeError):
    """A learned rule was used before ``fit`` (mirrors ``sklearn.exceptions.NotFittedError``).

    A configuration fault: the cascade was given a rule that cannot decide yet."""


class RuleFileError(CascadeError, ValueError):
    """A saved rule file is missing, corrupt, or of an unsupported format version."""


class DataFormatError(CascadeError, ValueError):
    """A data file (JSONL data set, cache) has a malformed record; the message names the line."""


class MissingDependencyError(CascadeError, ImportError):
    """An optional dependency is not installed; the message names the extra that provides it
    (an installation fault, not a fault of the configuration or of a request)."""


def require(module: str, extra: str, *, purpose: str = "") -> ModuleType:
    """Import an optional dependency, or raise :class:`MissingDependencyError` naming its extra.

    Args:
        module: The module to import (``"torch"``, ``"sklearn.isotonic"``).
        extra: The ``llm-cascade`` extra that installs it (``"local"``, ``"eval"``).
        purpose: What needs it, for the message (``"fitting a probability map"``).

    Example:
        >>> require("json", "eval").__name__
        'json'
        >>> require("no_such_module_xyz", "eval", purpose="this example")
        Traceback (most recent call last):
        ...
        cascade_core.errors.MissingDependencyError: this example needs the 'no_such_module_xyz' package: pip install 'llm-cascade[eval]'
    """
    try:
        return importlib.import_module(module)
    except ImportError as err:
        package = module.partition(".")[0]
        who = purpose or "this feature"
        raise MissingDependencyError(
            f"{who} needs the {package!r} package: pip install 'llm-cascade[{extra}]'"
        ) from err
