"""LangChain integration of ``llm-cascade``: :class:`ChatCascade`, a drop-in chat model.

Example:
    >>> from langchain_cascade import ChatCascade
    >>> from cascade_core.testing import ScriptedModel
    >>> llm = ChatCascade(small=ScriptedModel("Paris", confidence=0.9), large=ScriptedModel("Paris, France"))
    >>> llm.invoke("Capital of France?").content
    'Paris'
"""

from langchain_cascade.chat_models import ChatCascade
from langchain_cascade.large import LangChainLargeModel

__all__ = ["ChatCascade", "LangChainLargeModel"]
