"""Rule files written by ``cascade fit``: a learned rule, or the single signal that beat it.

``cascade fit`` compares candidate rules by cross-validation (:mod:`cascade_core.evaluation.rule_selection`)
and saves the winner. A learned winner is a :class:`~cascade_core.decide.learned.rule.LearnedDeferral` file
(``"format": "llm-cascade/learned-deferral"``); a single-signal winner is a
:class:`SignalRule` file (``"format": "llm-cascade/signal-rule"``) naming the signal and its
parameters. Both record the comparison table under ``"selection"``. :func:`load_rule` reads
either (strictly: size limit, JSON, format, version, fields) and returns a scorer that plugs into
:class:`~cascade_core.decide.rules.ThresholdRule`, the adapters and ``cascade serve``.

Example:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "rule.json"
    >>> _ = SignalRule("chow_quantile", {"alpha": 0.1}).save(path)
    >>> load_rule(path).name
    'chow_quantile(alpha=0.1)'
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from cascade_core.decide.scorers import (
    SCORERS,
    Scorer,
    WrappedScorer,
    labels_of,
    make_scorer,
)
from cascade_core.errors import CascadeError, RuleFileError
from cascade_core.types import Generation

__all__ = ["SIGNAL_FORMAT_NAME", "SIGNAL_FORMAT_VERSION", "SignalRule", "load_rule", "read_rule_json", "rule_from_dict"]

SIGNAL_FORMAT_NAME = "llm-cascade/signal-rule"
SIGNAL_FORMAT_VERSION = 1
#: Largest rule file :func:`load_rule` reads (a fitted rule is a few KB; an MLP over a 4096-d embedding
#: with 64 hidden units ~ 10 MB of JSON).
MAX_RULE_FILE_BYTES = 32 * 1024 * 1024


class SignalRule(WrappedScorer):
    """A single named signal chosen by ``cascade fit``, as a scorer (delegates to :func:`make_scorer`).

    Args:
        signal: A signal name (``margin``, ``chow_sum``, ``chow_average``, ``chow_quantile``, ``entropy``).
        params: Its parameters (``{"alpha": 0.1}``, ``{"labels": [...]}``).
        selection: The cross-validated comparison that chose it (recorded, not used for scoring).

    Example:
        >>> rule = SignalRule("chow_sum")
        >>> rule.name, rule.score_range
        ('chow_sum', (-inf, 0.0))
    """

    def __init__(self, signal: str, params: dict[str, Any] | None = None, selection: dict[str, Any] | None = None) -> None:
        self.signal = signal
        self.params = dict(params or {})
        self.scorer: Scorer = make_scorer(signal, **self.params)
        self.selection = selection

    @property
    def name(self) -> str:
        return self.scorer.name

    @property
    def score_range(self) -> tuple[float, float]:
        return self.scorer.score_range

    @property
    def labels(self) -> tuple[str, ...] | None:
        return tuple(labels_of(self.scorer)) or None

    def __call__(self, generation: Generation) -> float:
        return float(self.scorer(generation))

    def __repr__(self) -> str:
        return f"SignalRule({self.signal!r}, {self.params!r})"

    def to_dict(self) -> dict[str, Any]:
        """The rule as a JSON-serialisable dict."""
        out: dict[str, Any] = {
            "format": SIGNAL_FORMAT_NAME, "format_version": SIGNAL_FORMAT_VERSION, "signal": self.signal, "params": self.params,
        }
        if self.selection is not None:
            out["selection"] = self.selection
        return out

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the rule to a JSON file (parent directories created). Returns the path."""
        return write_json_file(path, self.to_dict(), indent=1)

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "rule data") -> SignalRule:
        """Rebuild from :meth:`to_dict` output; raises :class:`RuleFileError` if invalid."""
        if not isinstance(data, dict) or data.get("format") != SIGNAL_FORMAT_NAME:
            raise RuleFileError(f"{source} is not a signal rule (expected \"format\": \"{SIGNAL_FORMAT_NAME}\")")
        version = data.get("format_version")
        if isinstance(version, bool) or version != SIGNAL_FORMAT_VERSION:
            raise RuleFileError(f"{source} has format_version {version!r}; this llm-cascade reads version {SIGNAL_FORMAT_VERSION}")
        unknown = set(data) - {"format", "format_version", "signal", "params", "selection"}
        if unknown:
            raise RuleFileError(f"{source} has unknown fields {sorted(unknown)}")
        signal, params, selection = data.get("signal"), data.get("params", {}), data.get("selection")
        if not isinstance(signal, str) or signal not in SCORERS:
            raise RuleFileError(f"{source}: 'signal' must be one of {sorted(SCORERS)}, got {signal!r}")
        if not isinstance(params, dict) or (selection is not None and not isinstance(selection, dict)):
            raise RuleFileError(f"{source}: 'params' and 'selection' must be objects")
        try:
            return cls(signal, params, selection)
        except CascadeError as err:
            raise RuleFileError(f"{source}: invalid signal parameters: {err}") from err


def write_json_file(path: str | os.PathLike[str], data: Any, *, indent: int | None = None) -> Path:
    """Write ``data`` as JSON atomically (a temporary file renamed into place; parent directories created)."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=indent), encoding="utf-8")
    os.replace(tmp, out)
    return out


def read_rule_json(
    path: str | os.PathLike[str], *, max_bytes: int = MAX_RULE_FILE_BYTES, kind: str = "rule file"
) -> tuple[Any, str]:
    """The parsed JSON of a saved rule (or probability map) and a description of it for messages.

    Raises :class:`RuleFileError` if the file is missing, over ``max_bytes``, unreadable, not JSON
    or nested too deeply; ``kind`` names the file in those messages.
    """
    source = f"{kind} {os.fspath(path)!r}"
    try:
        size = Path(path).stat().st_size
    except FileNotFoundError as err:
        raise RuleFileError(f"{source} does not exist") from err
    except OSError as err:
        raise RuleFileError(f"{source} cannot be read: {err}") from err
    if size > max_bytes:
        raise RuleFileError(f"{source} is {size} bytes, over the {max_bytes}-byte limit for a {kind}")
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise RuleFileError(f"{source} does not exist") from err
    except (OSError, UnicodeDecodeError) as err:
        raise RuleFileError(f"{source} cannot be read: {err}") from err
    try:
        return json.loads(text), source
    except json.JSONDecodeError as err:
        raise RuleFileError(f"{source} is not valid JSON (line {err.lineno}, column {err.colno}): {err.msg}") from err
    except RecursionError as err:
        raise RuleFileError(f"{source} is nested too deeply to be a {kind}") from err


def rule_from_dict(data: Any, *, source: str = "rule data") -> Any:
    """A :class:`~cascade_core.decide.learned.rule.LearnedDeferral` or :class:`SignalRule` from a rule file's JSON."""
    from cascade_core.decide.learned.rule import FORMAT_NAME, LearnedDeferral

    kind = data.get("format") if isinstance(data, dict) else None
    if kind == SIGNAL_FORMAT_NAME:
        return SignalRule.from_dict(data, source=source)
    if kind == FORMAT_NAME:
        return LearnedDeferral.from_dict(data, source=source)
    if kind == "llm-cascade/query-router":
        raise RuleFileError(
            f"{source} is a query router, not a deferral rule: pass it as router= (Cascade, ChatCascade, CascadeLLM) "
            "or [cascades.NAME.router] in cascade serve"
        )
    raise RuleFileError(
        f"{source} is not a rule file (expected \"format\": \"{FORMAT_NAME}\" or \"{SIGNAL_FORMAT_NAME}\", got {kind!r})"
    )


def load_rule(path: str | os.PathLike[str], *, max_bytes: int = MAX_RULE_FILE_BYTES) -> Any:
    """Load any rule file ``cascade fit`` writes: a :class:`~cascade_core.decide.learned.rule.LearnedDeferral` or a :class:`SignalRule`.

    Raises:
        RuleFileError: missing, too large, not JSON, not a rule, another format version, or corrupt.
    """
    data, source = read_rule_json(path, max_bytes=max_bytes)
    return rule_from_dict(data, source=source)
