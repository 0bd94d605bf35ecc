"""Shared test set-up: fully offline, real embedded models loaded once per session."""

from __future__ import annotations

import os

# Nothing in the test suite may reach the internet: the hub and tiktoken must use local files.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402

from cascade_core.cost import _point_tiktoken_at_bundled_cache  # noqa: E402

_point_tiktoken_at_bundled_cache()


@pytest.fixture(scope="session")
def embedded_small():
    """SmolLM2-135M-Instruct (chat template) as a TransformersModel; loaded once per session."""
    from cascade_core.defaults import default_small_model

    return default_small_model(max_new_tokens=16)


@pytest.fixture(scope="session")
def embedded_small_completion():
    """The same SmolLM2 weights, prompted as a few-shot completion model (what the demo uses)."""
    from cascade_core.defaults import default_small_model

    return default_small_model(prompt_format="completion", max_new_tokens=8)


@pytest.fixture(scope="session")
def embedded_large_completion():
    """Gemma-3-270M base, prompted as a few-shot completion model; loaded once per session."""
    from cascade_core.defaults import default_large_model

    return default_large_model(prompt_format="completion", max_new_tokens=8)


@pytest.fixture(scope="session")
def tiny_pair():
    """A tiny from-config Llama and its word-level tokenizer (plumbing tests, no download)."""
    from cascade_core.testing import tiny_model, tiny_tokenizer

    tokenizer = tiny_tokenizer()
    return tiny_model(tokenizer), tokenizer
