"""Remove secrets from text copied out of a server reply before it reaches an error message or a log.

A misbehaving server (or proxy) may echo request headers in an error body; the key must not
travel on into ``BackendError`` messages, logs or tracebacks.

Example:
    >>> redact("bad key: Bearer sk-abc123def456ghi", secrets=("sk-abc123def456ghi",))
    'bad key: Bearer [redacted]'
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable

__all__ = ["redact", "redact_exception"]

_PATTERNS = (
    re.compile(r"(?i)(bearer\s+)[^\s'\",}]+"),
    re.compile(r"(?i)((?:api[_-]?key|authorization|x-api-key)[\"']?\s*[:=]\s*[\"']?)[^\s'\",}]+"),
    re.compile(r"\bsk-[A-Za-z0-9_\-]{8,}"),
)
MASK = "[redacted]"


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` with the given secrets and anything shaped like a bearer token or API key masked."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, MASK)
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: (m.group(1) if m.groups() else "") + MASK, text)
    return text


def redact_exception(err: BaseException, secrets: Iterable[str | None] = ()) -> None:
    """Mask secrets in an exception's ``args`` and ``message`` in place (it is kept as ``__cause__``)."""
    secrets = tuple(secrets)
    err.args = tuple(redact(a, secrets) if isinstance(a, str) else a for a in err.args)
    message = getattr(err, "message", None)
    if isinstance(message, str):
        with contextlib.suppress(AttributeError):  # a read-only attribute stays as it is
            err.message = redact(message, secrets)  # type: ignore[attr-defined]
