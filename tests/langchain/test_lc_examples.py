"""Smoke runs of the LangChain examples. Their large tier is always the real Qwen-1.5B on a llama.cpp server, so
all are slow: once with a fake small-tier server (a kept answer is certain), once with the real SmolLM2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ["langchain_rag.py", "langchain_agent.py"]


def run_example(name: str, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "shared"), str(ROOT)])}
    env.pop("OPENAI_API_KEY", None)
    done = subprocess.run([sys.executable, str(ROOT / "examples" / name), *args], capture_output=True, text=True,
                          timeout=600, env=env, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.slow
@pytest.mark.parametrize("name", EXAMPLES)
def test_example_runs_with_a_small_tier_server(name: str, small_server: Any) -> None:
    out = run_example(name, "--small-url", small_server.base_url)
    assert "small (kept)" in out and "saved $" in out


@pytest.mark.slow
@pytest.mark.parametrize("name", EXAMPLES)
def test_example_runs_with_the_embedded_small_model(name: str) -> None:
    out = run_example(name)
    assert "tier" in out or "model call" in out
    assert "saved $" in out
