"""The default tier factories, with the model loading replaced by a tiny from-config model (no real weights)."""

from __future__ import annotations

import pytest

from cascade_core.backends import defaults
from cascade_core.backends.transformers import TransformersModel
from cascade_core.errors import ConfigurationError
from cascade_core.testing import tiny_model, tiny_tokenizer
from cascade_core.types import Request


@pytest.fixture
def tiny_embedded(monkeypatch):
    tok = tiny_tokenizer()
    pair = (tiny_model(tok), tok)
    monkeypatch.setattr(defaults, "load_embedded", lambda tier: pair)
    return pair


def test_large_and_medium_in_transformers_build_with_their_defaults(tiny_embedded):
    large = defaults.default_large_model(backend="transformers", prompt_format="completion", max_new_tokens=2)
    medium = defaults.default_medium_model(backend="transformers", prompt_format="completion")
    assert isinstance(large, TransformersModel) and large.model_name == "Qwen2.5-Coder-1.5B-Instruct"
    assert large.top_k == 1 and medium.top_k == 5
    assert isinstance(large.complete(Request.from_prompt("the cat")).text, str)


def test_bad_backend_and_completion_prompts_on_the_server_are_refused(tiny_embedded):
    with pytest.raises(ConfigurationError, match="backend must be 'llamacpp' or 'transformers'"):
        defaults.default_large_model(backend="vllm")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="needs backend='transformers'"):
        defaults.default_large_model(prompt_format="completion")
