"""LangChain's standard chat-model suites, run offline against fake OpenAI-compatible servers.

The integration suite runs twice: once where the small tier is confident (answers are kept and
streamed from the small tier) and once where every answer is deferred to a real ``ChatOpenAI``
large tier, so both paths meet the same contract.
"""

from __future__ import annotations

import base64
import io
import wave
from typing import Any

import httpx
import pytest
from langchain_tests.integration_tests import ChatModelIntegrationTests
from langchain_tests.integration_tests import chat_models as standard_chat_tests
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


# A 1x1 PNG, a one-page PDF and 10 ms of silent WAV: what the standard multimodal tests would
# otherwise download (the machine is offline; the model under test never looks at the bytes).
_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
_PDF = (b"%PDF-1.1\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj 2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj "
        b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 72 72]>>endobj trailer<</Root 1 0 R>>\n%%EOF\n")


def _wav() -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x00\x00" * 80)
    return out.getvalue()


def _offline_get(url: str, *args: Any, **kwargs: Any) -> httpx.Response:
    body = _PDF if url.endswith(".pdf") else _wav() if url.endswith(".wav") else _PNG
    return httpx.Response(200, content=body, request=httpx.Request("GET", url))


class _Integration(ChatModelIntegrationTests):
    threshold = 0.3

    @pytest.fixture(autouse=True)
    def _servers(self, small_server: Any, large_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        self.small_server, self.large_server = small_server, large_server
        # the standard multimodal tests fetch sample media from the internet; serve it locally
        monkeypatch.setattr(standard_chat_tests.httpx, "get", _offline_get)
        monkeypatch.setattr(standard_chat_tests, "_get_base64_from_url",
                            lambda url: base64.b64encode(_offline_get(url).content).decode())

    # Multimodal input skips the text-only small tier ("multimodal") and goes to the large tier, a
    # ChatOpenAI on the fake server, which accepts these content blocks (so both classes run them).
    @property
    def supports_image_inputs(self) -> bool:
        return True

    @property
    def supports_image_urls(self) -> bool:
        return True

    @property
    def supports_pdf_inputs(self) -> bool:
        return True

    @property
    def supports_audio_inputs(self) -> bool:
        return True

    @property
    def supports_image_tool_message(self) -> bool:
        return True

    @property
    def supports_pdf_tool_message(self) -> bool:
        return True

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
