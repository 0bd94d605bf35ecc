"""Fixtures for the LlamaIndex adapter: two fake OpenAI-compatible servers on 127.0.0.1, fresh per test."""

from __future__ import annotations

from collections.abc import Iterator

from cascade_core.cost import use_bundled_tiktoken_cache

# tiktoken (used by LlamaIndex and the cost figures) must read its bundled cache: no network.
use_bundled_tiktoken_cache()

import pytest  # noqa: E402

from cascade_core.testing.fake_server import FakeOpenAIServer, FakeReply  # noqa: E402
from llamaindex_cascade import CascadeLLM  # noqa: E402

from .fakes import make_llm, replies  # noqa: E402


@pytest.fixture
def small_server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(replies()) as server:
        yield server


@pytest.fixture
def large_server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(replies(default=FakeReply("Large answer.", confidence=0.99))) as server:
        yield server


@pytest.fixture
def llm(small_server: FakeOpenAIServer, large_server: FakeOpenAIServer) -> CascadeLLM:
    """A CascadeLLM over the two fake servers (fresh per test: async clients bind to one loop)."""
    return make_llm(small_server, large_server)


@pytest.fixture(scope="session")
def embedded_small_model():
    """The real SmolLM2-135M-Instruct small tier (loaded once per process; skipped if not installed)."""
    from cascade_core.errors import ModelNotAvailableError

    try:
        from cascade_core.backends.defaults import default_small_model

        return default_small_model(max_new_tokens=16)
    except (ImportError, ModelNotAvailableError) as err:
        pytest.skip(f"embedded small model unavailable: {err}")
