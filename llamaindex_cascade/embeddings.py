"""A deterministic, offline text embedding for tests and examples (no model, no download).

:class:`HashingEmbedding` is a LlamaIndex ``BaseEmbedding`` over
:func:`cascade_core.testing.embeddings.hashing_vector` (a hashed bag of words, L2-normalised).
Texts that share words are close, so a ``VectorStoreIndex`` retrieves sensibly on small
keyword-style corpora. It is *not* a semantic embedding: use a real embedding model in applications.

Example:
    >>> emb = HashingEmbedding(dim=64)
    >>> a, b = emb.get_text_embedding("Paris is in France"), emb.get_text_embedding("France: Paris")
    >>> round(sum(x * y for x, y in zip(a, b)), 2) > 0.5
    True
"""

from __future__ import annotations

from llama_index.core.base.embeddings.base import BaseEmbedding, Embedding
from llama_index.core.bridge.pydantic import Field

from cascade_core.testing.embeddings import hashing_vector

__all__ = ["HashingEmbedding"]


class HashingEmbedding(BaseEmbedding):
    """Hashed bag-of-words embedding: deterministic across runs and machines.

    Args:
        dim: Number of hash buckets (the vector length).
    """

    dim: int = Field(default=256, gt=0, description="Number of hash buckets (the vector length).")
    model_name: str = Field(default="hashing-bag-of-words", description="Name reported in metadata.")

    @classmethod
    def class_name(cls) -> str:
        return "HashingEmbedding"

    def _embed(self, text: str) -> Embedding:
        return hashing_vector(text, self.dim)

    def _get_query_embedding(self, query: str) -> Embedding:
        return self._embed(query)

    async def _aget_query_embedding(self, query: str) -> Embedding:
        return self._embed(query)

    def _get_text_embedding(self, text: str) -> Embedding:
        return self._embed(text)
