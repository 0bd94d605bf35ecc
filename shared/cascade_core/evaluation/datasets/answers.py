"""Answer normalisation and scoring for the short-answer QA data sets (world facts, world regions).

Example:
    >>> normalize_answer("St. John's")
    'saint john s'
"""

from __future__ import annotations

import re
import unicodedata
from typing import Protocol

__all__ = ["is_correct", "normalize_answer", "slug"]


class _HasAliases(Protocol):
    @property
    def aliases(self) -> tuple[str, ...]: ...


# Letters that NFKD does not decompose into base letter + combining mark.
_LETTER_FOLDS = str.maketrans(
    {"đ": "d", "ð": "d", "ł": "l", "ø": "o", "æ": "ae", "œ": "oe", "ß": "ss", "þ": "th", "ı": "i"}
)
_APOSTROPHES = frozenset("'’ʼʻ`´")


def _tokens(text: str, *, join_apostrophes: bool) -> tuple[str, ...]:
    text = unicodedata.normalize("NFKD", text.casefold()).translate(_LETTER_FOLDS)
    out = []
    for ch in text:
        cat = unicodedata.category(ch)
        if cat.startswith("M"):  # combining accent
            continue
        if ch in _APOSTROPHES or (join_apostrophes and ch in "-."):
            out.append("" if join_apostrophes else " ")
        elif cat[0] in "LN" and cat != "Lm":
            out.append(ch)
        else:
            out.append(" ")
    tokens = "".join(out).split()
    return tuple("saint" if t == "st" else t for t in tokens)


def normalize_answer(text: str) -> str:
    """Casefold, strip accents, turn punctuation into spaces, collapse whitespace.

    ``"St. John's"`` → ``"saint john s"``; ``"Bogotá"`` → ``"bogota"``; ``"+33"`` → ``"33"``.
    (The abbreviation "st" is read as "saint".)
    """
    return " ".join(_tokens(text, join_apostrophes=False))


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
        pred = _tokens(first, join_apostrophes=join)
        if any(_contains(pred, _tokens(alias, join_apostrophes=join)) for alias in example.aliases):
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
