"""Sticky escalation: once a conversation's step was deferred, its later steps start at the last tier.

An agent loop calls the model once per step with the conversation so far. When the small tier was
not sure enough at one step, the steps after it usually build on that step (tool results the large
tier asked for), and users of routers ask for *session affinity*: the same conversation stays on
one model. :class:`StickySessions` remembers, in a bounded LRU, the conversations whose step was
deferred and marks their later requests (``request.metadata[STICKY_KEY]``); the plan then skips the
small tiers with a ``"sticky"`` decision — no small-tier call, no wasted prefill.

A conversation is named by a session id when the caller gives one, else by a hash of its opening
messages (every message up to and including the first user message), which stay the same as an
agent loop appends steps. Two conversations that open with the same messages and give no session
id share one entry.

Example:
    >>> from cascade_core.engine.result import CascadeResult
    >>> from cascade_core.types import Message, Request
    >>> sessions = StickySessions(max_sessions=2)
    >>> step1 = Request.from_messages([Message("user", "Plan my trip")])
    >>> request, key = sessions.route(step1)
    >>> STICKY_KEY in request.metadata
    False
    >>> sessions.record(key, CascadeResult("…", 1, "large", (), ()))  # step 1 was deferred
    >>> step2 = Request.from_messages([Message("user", "Plan my trip"), Message("assistant", "…"),
    ...                                Message("user", "and the hotel?")])
    >>> sessions.route(step2)[0].metadata[STICKY_KEY]
    True
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from cascade_core.errors import ConfigurationError
from cascade_core.types import Request

__all__ = ["SESSION_METADATA_KEYS", "STICKY_KEY", "StickySessions", "conversation_key", "session_of"]

STICKY_KEY = "cascade_sticky"
"""``Request.metadata`` flag: this conversation was escalated earlier, skip the small tiers."""
SESSION_METADATA_KEYS = ("session_id", "thread_id", "conversation_id")
"""Run-metadata keys that name a conversation, first found wins (LangGraph sets ``thread_id``)."""


def session_of(metadata: Mapping[str, Any] | None) -> str | None:
    """The conversation's id in a framework run's metadata, if any (see :data:`SESSION_METADATA_KEYS`).

    >>> session_of({"thread_id": 7}), session_of({}), session_of(None)
    ('7', None, None)
    """
    for name in SESSION_METADATA_KEYS:
        if metadata and metadata.get(name) is not None:
            return str(metadata[name])
    return None


def conversation_key(request: Request, session_id: str | None = None) -> str:
    """The session id when given, else a hash of the opening messages (up to the first user message)."""
    if session_id is not None:
        return f"session:{session_id}"
    opening: list[Any] = []
    for message in request.messages:
        opening.append([message.role, message.content if isinstance(message.content, str) else repr(message.content)])
        if message.role == "user":
            break
    return "opening:" + hashlib.sha256(json.dumps(opening, ensure_ascii=False).encode()).hexdigest()


class StickySessions:
    """A bounded LRU of the conversations whose step was deferred (thread-safe).

    Args:
        max_sessions: How many escalated conversations are remembered; the least recently used is
            forgotten first (its next step starts at the small tier again).
    """

    def __init__(self, max_sessions: int = 1024) -> None:
        if isinstance(max_sessions, bool) or not isinstance(max_sessions, int) or max_sessions < 1:
            raise ConfigurationError(f"max_sessions must be a positive int, got {max_sessions!r}")
        self.max_sessions = max_sessions
        self._escalated: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._escalated)

    def __contains__(self, key: object) -> bool:
        return key in self._escalated

    def route(self, request: Request, session_id: str | None = None) -> tuple[Request, str]:
        """``request`` marked with :data:`STICKY_KEY` when its conversation was escalated, and its key."""
        key = conversation_key(request, session_id)
        with self._lock:
            if key not in self._escalated:
                return request, key
            self._escalated.move_to_end(key)
        return request.replace(metadata={**request.metadata, STICKY_KEY: True}), key

    def record(self, key: str, result: Any) -> None:
        """Remember ``key`` when ``result`` came from a later tier than the first (a deferral)."""
        if getattr(result, "tier", 0) == 0:
            return
        with self._lock:
            self._escalated[key] = None
            self._escalated.move_to_end(key)
            while len(self._escalated) > self.max_sessions:
                self._escalated.popitem(last=False)

    def __repr__(self) -> str:
        return f"StickySessions(max_sessions={self.max_sessions}, escalated={len(self)})"
