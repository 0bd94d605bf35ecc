"""Answer normalisation shared by answer-level signals and quality scoring (text in, text out, no I/O).

:func:`normalize_answer` is the normaliser ``cascade eval`` scores answers with
(:mod:`cascade_core.evaluation.quality` re-exports it); :func:`answer_key` is what the
``sample_agreement`` signal compares: the normalised first non-empty line of an answer.

Example:
    >>> normalize_answer("St. John's")
    'saint john s'
    >>> answer_key(" Paris, France.\\nQ: next question")
    'paris france'
"""

from __future__ import annotations

import unicodedata

__all__ = ["LETTER_FOLDS", "answer_key", "answer_tokens", "first_line", "normalize_answer"]

#: Letters that NFKD does not decompose into base letter + combining mark.
LETTER_FOLDS = str.maketrans(
    {"đ": "d", "ð": "d", "ł": "l", "ø": "o", "æ": "ae", "œ": "oe", "ß": "ss", "þ": "th", "ı": "i"}
)
_APOSTROPHES = frozenset("'’ʼʻ`´")


def answer_tokens(text: str, *, join_apostrophes: bool) -> tuple[str, ...]:
    """Casefolded, accent-free word tokens of ``text`` (punctuation splits; "st" is read as "saint").

    ``join_apostrophes``: apostrophes, hyphens and dots join their neighbours instead of splitting.

    >>> answer_tokens("Port-au-Prince", join_apostrophes=True), answer_tokens("N'Djamena", join_apostrophes=False)
    (('portauprince',), ('n', 'djamena'))
    """
    text = unicodedata.normalize("NFKD", text.casefold()).translate(LETTER_FOLDS)
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
    return " ".join(answer_tokens(text, join_apostrophes=False))


def first_line(text: str) -> str:
    """The first non-empty line of ``text``, stripped ("" when there is none).

    >>> first_line("\\n  Paris \\nLyon")
    'Paris'
    """
    lines = [line for line in str(text).strip().splitlines() if line.strip()]
    return lines[0].strip() if lines else ""


def answer_key(text: str) -> str:
    """The key two answers are compared by: :func:`normalize_answer` of the :func:`first_line`.

    ``"Paris."``, ``" paris"`` and ``"Paris\\nQ: ..."`` share the key ``"paris"``; ``"Paris, France"``
    has the key ``"paris france"`` (a different answer). An empty answer has the key ``""``.
    """
    return normalize_answer(first_line(text))
