"""Test harness shipped with the library: one of each fake, for users' tests and ours.

- :mod:`~cascade_core.testing.scripted` — :class:`ScriptedModel` (a tier that answers from a script with chosen
  token confidences) and a tiny random transformers model/tokenizer (``tiny_model``, ``tiny_tokenizer``).
- :mod:`~cascade_core.testing.fake_server` — :class:`FakeOpenAIServer`, an OpenAI-compatible server on 127.0.0.1,
  and responder helpers (``keyword_responder``, ``message_text``, ``tool_call_text``).
- :mod:`~cascade_core.testing.distribution` — ``scripted_top_k``, the one top-k distribution both fakes emit.
- :mod:`~cascade_core.testing.embeddings` — ``hashing_vector``, an offline hashed bag-of-words embedding.

Example:
    >>> from cascade_core import Request
    >>> from cascade_core.testing import ScriptedModel
    >>> ScriptedModel("Paris").complete(Request.from_prompt("Capital of France?")).text
    'Paris'
"""

from cascade_core.testing.scripted import ScriptedModel, tiny_model, tiny_tokenizer

__all__ = ["ScriptedModel", "tiny_model", "tiny_tokenizer"]
