"""Scoring an answer against a record: normalisation, alias matching, and the named quality scorers.

``cascade collect`` / ``cascade eval --scorer`` pick a scorer by name (:func:`resolve_quality_scorer`);
the bundled data sets score with the same :func:`is_correct`.

Example:
    >>> normalize_answer("St. John's")
    'saint john s'
"""

from __future__ import annotations

import importlib
import re
import unicodedata
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from cascade_core.decide.answers import LETTER_FOLDS as _LETTER_FOLDS
from cascade_core.decide.answers import answer_tokens, normalize_answer
from cascade_core.decide.answers import first_line as _first_line
from cascade_core.errors import ConfigurationError

__all__ = [
    "QualityScorer",
    "alias_match",
    "exact_match",
    "is_correct",
    "label_accuracy",
    "normalize_answer",
    "resolve_quality_scorer",
    "slug",
]

#: ``(prediction, record) -> quality`` (1.0 = right).
QualityScorer = Callable[[str, Mapping[str, Any]], float]


class _HasAliases(Protocol):
    @property
    def aliases(self) -> tuple[str, ...]: ...


def _contains(haystack: tuple[str, ...], needle: tuple[str, ...]) -> bool:
    n = len(needle)
    if n == 0:
        return False
    return any(haystack[i : i + n] == needle for i in range(len(haystack) - n + 1))


def is_correct(prediction: str, example: _HasAliases) -> bool:
    """Whether ``prediction`` answers ``example``.

    Only the first non-empty line of the prediction counts. Both sides are normalised (casefold,
    accents stripped, punctuation removed, whitespace collapsed); the prediction is right when any
    alias occurs in it as a whole-word sequence, so "Paris, France." answers "Paris" but "Parish"
    does not, and "+331" does not answer "+33". Apostrophes and hyphens are compared both as word
    breaks and as nothing ("N'Djamena" = "Ndjamena", "Port-au-Prince" = "Port au Prince").
    """
    lines = [line for line in prediction.strip().splitlines() if line.strip()]
    if not lines:
        return False
    first = lines[0]
    for join in (False, True):
        pred = answer_tokens(first, join_apostrophes=join)
        if any(_contains(pred, answer_tokens(alias, join_apostrophes=join)) for alias in example.aliases):
            return True
    return False


def slug(key: str) -> str:
    """An ASCII identifier for ``key`` (accents folded, runs of other characters as ``_``).

    >>> slug("Côte d'Ivoire")
    'cote_d_ivoire'
    """
    text = unicodedata.normalize("NFKD", key.casefold()).translate(_LETTER_FOLDS)
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return re.sub(r"[^a-z0-9]+", "_", text).strip("_")


# -- answer scorers ------------------------------------------------------------------------------------


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^\w+]+", " ", text.casefold()).split())


def _answers(record: Mapping[str, Any]) -> list[str]:
    answers = [record["answer"]] if record.get("answer") is not None else []
    answers += [a for a in record.get("aliases") or [] if a not in answers]
    if not answers:
        raise ConfigurationError(f"record {record.get('id', '?')!r} has no 'answer' (or 'aliases') to score against")
    return [str(a) for a in answers]


def exact_match(prediction: str, record: Mapping[str, Any]) -> float:
    """1.0 when the first line of ``prediction`` equals the answer or an alias (case/punctuation-insensitive).

    >>> exact_match(" Paris.\\nQ: next", {"answer": "Paris"}), exact_match("Paris, France", {"answer": "Paris"})
    (1.0, 0.0)
    """
    pred = _norm(_first_line(prediction))
    return float(any(pred == _norm(a) for a in _answers(record)))


def alias_match(prediction: str, record: Mapping[str, Any]) -> float:
    """1.0 when an accepted answer occurs as a whole-word sequence in the first line (world-facts rule).

    >>> alias_match("Paris, France.", {"answer": "Paris"}), alias_match("Parish", {"answer": "Paris"})
    (1.0, 0.0)
    """
    from types import SimpleNamespace

    return float(is_correct(prediction, SimpleNamespace(aliases=tuple(_answers(record)))))


def label_accuracy(prediction: str, record: Mapping[str, Any]) -> float:
    """1.0 when the label the prediction starts with (longest of ``record["labels"]``) is the gold ``answer``.

    >>> label_accuracy(" South America", {"answer": "South America", "labels": ["North America", "South America"]})
    1.0
    """
    gold = _norm(str(record.get("answer", "")))
    labels = record.get("labels")
    if not labels:
        raise ConfigurationError(f"record {record.get('id', '?')!r} has no 'labels' for label accuracy")
    pred = _norm(_first_line(prediction))
    matches = [_norm(lab) for lab in labels if pred == _norm(lab) or pred.startswith(_norm(lab) + " ")]
    return float(bool(matches) and max(matches, key=len) == gold)


_BUILTIN: dict[str, QualityScorer] = {
    "exact_match": exact_match,
    "alias_match": alias_match,
    "label_accuracy": label_accuracy,
}


def _auto(prediction: str, record: Mapping[str, Any]) -> float:
    return label_accuracy(prediction, record) if record.get("labels") else alias_match(prediction, record)


def resolve_quality_scorer(spec: str | QualityScorer = "auto") -> QualityScorer:
    """A quality scorer from a name (``auto``, ``exact_match``, ``alias_match``, ``label_accuracy``),
    a ``"package.module:function"`` hook taking ``(prediction, record)``, or a callable.

    ``auto`` uses label accuracy for records with ``labels`` and alias matching otherwise.
    """
    if callable(spec):
        return spec
    if spec == "auto":
        return _auto
    if spec in _BUILTIN:
        return _BUILTIN[spec]
    if isinstance(spec, str) and ":" in spec:
        module_name, _, attr = spec.partition(":")
        try:
            fn = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as err:
            raise ConfigurationError(f"cannot import quality scorer hook {spec!r}: {err}") from err
        if not callable(fn):
            raise ConfigurationError(f"quality scorer hook {spec!r} is not callable")
        return fn
    raise ConfigurationError(
        f"unknown quality scorer {spec!r}; use one of {['auto', *_BUILTIN]} or 'package.module:function'"
    )
