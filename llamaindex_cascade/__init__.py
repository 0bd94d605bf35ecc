"""LlamaIndex integration of ``llm-cascade``: :class:`CascadeLLM`, a drop-in ``FunctionCallingLLM``.

Example:
    >>> from cascade_core.testing import ScriptedModel
    >>> from llamaindex_cascade import CascadeLLM
    >>> llm = CascadeLLM(small=ScriptedModel("Paris", confidence=0.2), large=ScriptedModel("Paris, France"))
    >>> llm.complete("Capital of France?").additional_kwargs["cascade"]["deferred"]
    True
"""

from llamaindex_cascade._events import CascadeDecisionEvent
from llamaindex_cascade.base import CascadeLLM
from llamaindex_cascade.embeddings import HashingEmbedding
from llamaindex_cascade.large import LlamaIndexLargeModel

__all__ = ["CascadeDecisionEvent", "CascadeLLM", "HashingEmbedding", "LlamaIndexLargeModel"]
