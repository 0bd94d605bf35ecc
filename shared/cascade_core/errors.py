"""Exception hierarchy for ``cascade_core``.

Every error the library raises on purpose derives from :class:`CascadeError`, so callers can catch
one type. Configuration and input errors also derive from :class:`ValueError`, so code that already
catches ``ValueError`` for bad arguments keeps working.
"""

from __future__ import annotations

__all__ = [
    "BackendError",
    "CascadeError",
    "ConfigurationError",
    "DataFormatError",
    "InvalidRequestError",
    "ModelNotAvailableError",
    "NotFittedError",
    "RuleFileError",
]


class CascadeError(Exception):
    """Base class of every error raised by the cascade library."""


class ConfigurationError(CascadeError, ValueError):
    """A cascade, rule, threshold or backend was configured with an invalid value."""


class InvalidRequestError(CascadeError, ValueError):
    """A request cannot be served: no messages, non-text content, unknown role…"""


class BackendError(CascadeError, RuntimeError):
    """A model backend failed (HTTP error, malformed server reply, model crash)."""


class ModelNotAvailableError(CascadeError, RuntimeError):
    """A model (for instance an embedded default) is not installed or cannot be loaded offline."""


class NotFittedError(CascadeError, ValueError, AttributeError):
    """A learned rule was used before ``fit`` (mirrors ``sklearn.exceptions.NotFittedError``)."""


class RuleFileError(CascadeError, ValueError):
    """A saved rule file is missing, corrupt, or of an unsupported format version."""


class DataFormatError(CascadeError, ValueError):
    """A data file (JSONL data set, cache) has a malformed record; the message names the line."""
