"""The LlamaIndex examples run offline with real models on both tiers (smoke runs in a subprocess, with timeouts).

Their large tier is Qwen-1.5B on a llama.cpp server the example starts, so every run is slow."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cascade_core.testing.fake_server import FakeOpenAIServer, FakeReply

from .fakes import replies

ROOT = Path(__file__).resolve().parents[2]


def _run(script: str, *args: str, timeout: float = 120) -> str:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "shared"), str(ROOT)])}
    env.pop("OPENAI_API_KEY", None)
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.slow
def test_agent_example_runs_with_real_models():
    out = _run("llamaindex_agent.py", timeout=600)
    assert out.count("Q: ") == 2 and out.count("A: ") == 2
    assert "step: tier" in out and "saved $" in out


@pytest.mark.slow
def test_query_engine_example_runs_against_a_small_server():
    with FakeOpenAIServer(replies(default=FakeReply("From the documents.", confidence=0.95))) as small:
        out = _run("llamaindex_query_engine.py", "--small-url", small.base_url, timeout=600)
    assert out.count("A: From the documents.") == 4 and "0 deferred" in out


@pytest.mark.slow
def test_query_engine_example_runs_with_the_embedded_small_model():
    out = _run("llamaindex_query_engine.py", timeout=600)
    assert out.count("Q: ") == 4 and "LLM calls" in out and "saved $" in out
