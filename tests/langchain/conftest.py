"""Shared fixtures for the LangChain adapter tests: two fake OpenAI-compatible servers on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from lc_fakes import large_chat_openai, small_model, smart_responder

from cascade_core.backends.openai import OpenAIModel
from cascade_core.testing.fake_server import FakeOpenAIServer


@pytest.fixture(scope="session")
def small_server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(smart_responder("small")) as server:
        yield server


@pytest.fixture(scope="session")
def large_server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(smart_responder("large")) as server:
        yield server


@pytest.fixture
def small(small_server: FakeOpenAIServer) -> OpenAIModel:
    return small_model(small_server)


@pytest.fixture
def large(large_server: FakeOpenAIServer) -> Any:
    return large_chat_openai(large_server)
