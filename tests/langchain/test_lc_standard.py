"""LangChain's standard chat-model suites, run offline against fake OpenAI-compatible servers.

The integration suite runs twice: once where the small tier is confident (answers are kept and
streamed from the small tier) and once where every answer is deferred to a real ``ChatOpenAI``
large tier, so both paths meet the same contract.
"""

from __future__ import annotations

from typing import Any

import pytest
from langchain_tests.integration_tests import ChatModelIntegrationTests
from langchain_tests.unit_tests import ChatModelUnitTests
from lc_fakes import large_chat_openai, small_model

from cascade_core.backends.openai import OpenAIModel
from langchain_cascade import ChatCascade

DEAD_URL = "http://127.0.0.1:9/v1"  # never contacted: unit tests only construct models


class TestChatCascadeUnit(ChatModelUnitTests):
    @property
    def chat_model_class(self) -> type[ChatCascade]:
        return ChatCascade

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"small": OpenAIModel("small-fake", base_url=DEAD_URL, api_key="x"), "large": "large-fake",
                "base_url": DEAD_URL}

    @property
    def init_from_env_params(self) -> tuple[dict[str, str], dict[str, Any], dict[str, Any]]:
        return ({"OPENAI_API_KEY": "api_key"},
                {"small": "small-fake", "small_base_url": DEAD_URL, "large": "large-fake"},
                {"api_key": "api_key"})

    @property
    def supports_model_override(self) -> bool:
        # A cascade is a pair of models; one per-call model name cannot say which tier to replace.
        return False


class _Integration(ChatModelIntegrationTests):
    threshold = 0.3

    @pytest.fixture(autouse=True)
    def _servers(self, small_server: Any, large_server: Any) -> None:
        self.small_server, self.large_server = small_server, large_server

    @property
    def chat_model_class(self) -> type[ChatCascade]:
        return ChatCascade

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"small": small_model(self.small_server), "large": large_chat_openai(self.large_server),
                "threshold": self.threshold}

    @property
    def has_tool_choice(self) -> bool:
        return True

    @property
    def supports_json_mode(self) -> bool:
        return True

    @property
    def supports_model_override(self) -> bool:
        # A cascade is a pair of models; one per-call model name cannot say which tier to replace.
        return False

    @property
    def enable_vcr_tests(self) -> bool:
        return False  # nothing to record: every call goes to a local fake server


class TestChatCascadeKept(_Integration):
    """The small tier is confident: every answer comes from it."""

    threshold = 0.3


class TestChatCascadeDeferred(_Integration):
    """The small tier never clears the threshold: every answer comes from ChatOpenAI (large)."""

    threshold = 0.99
