"""Fixtures of the server tests."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture()
def chat_body():
    def make(model: str = "keep", content: str = "What is the capital of France?", **extra: Any) -> dict[str, Any]:
        return {"model": model, "messages": [{"role": "user", "content": content}], **extra}

    return make
