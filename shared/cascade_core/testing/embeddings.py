"""A deterministic, offline text embedding for tests and examples (no model, no download).

:func:`hashing_vector` is a hashed bag of words (the "hashing trick", as scikit-learn's
``HashingVectorizer``): each lower-cased word adds ±1 to one of ``dim`` buckets chosen by a stable
hash (BLAKE2b), and the vector is L2-normalised. Texts that share words are close, so a vector store
retrieves sensibly on small keyword-style corpora. It is *not* a semantic embedding: use a real
embedding model in applications. The framework adapters wrap it (LlamaIndex:
:class:`llamaindex_cascade.HashingEmbedding`); a LangChain ``Embeddings`` is three lines over it.

Example:
    >>> a, b = hashing_vector("Paris is in France", 64), hashing_vector("France: Paris", 64)
    >>> round(sum(x * y for x, y in zip(a, b)), 2) > 0.5
    True
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Collection

__all__ = ["hashing_vector"]

_WORD = re.compile(r"\w+", re.UNICODE)


def hashing_vector(text: str, dim: int = 256, *, stop_words: Collection[str] = ()) -> list[float]:
    """The L2-normalised hashed bag of words of ``text`` (all zeros if it has no words).

    Args:
        text: The text to embed.
        dim: Number of hash buckets (the vector length).
        stop_words: Lower-case words to leave out (e.g. ``{"the", "of"}`` for sharper retrieval).

    >>> v = hashing_vector("the cat", 8, stop_words={"the"})
    >>> len(v), round(sum(x * x for x in v), 6)
    (8, 1.0)
    """
    vector = [0.0] * dim
    for word in _WORD.findall(text.lower()):
        if word in stop_words:
            continue
        digest = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
        vector[digest % dim] += 1.0 if digest >> 63 else -1.0
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    return [x / norm for x in vector]
