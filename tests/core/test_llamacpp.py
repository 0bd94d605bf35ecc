"""The OpenAI-compatible backend against a real llama.cpp server (xllamacpp) on 127.0.0.1.

Fast tests check :class:`LlamaCppServer`'s validation and lifecycle errors; the ``slow`` ones start the
real servers once per session (SmolLM2-135M and Qwen2.5-Coder-1.5B, see ``tests/conftest.py``) and check
what a cascade relies on: per-step top-k log-probs, margins that agree with the same weights run in
transformers, streaming, a deferred stream that really stops the server's generation, and tool calls.
"""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from cascade_core import Cascade, ThresholdRule
from cascade_core.backends.llamacpp import LlamaCppServer, free_port
from cascade_core.errors import BackendError, ConfigurationError
from cascade_core.types import Request, StepsEnd, TokenStep, ToolSpec

CALCULATOR = ToolSpec(
    "calculator",
    "Evaluate an arithmetic expression and return the number.",
    {"type": "object", "properties": {"expression": {"type": "string"}}, "required": ["expression"]},
)


def _margin(step: TokenStep) -> float:
    probs = np.exp([alt.logprob for alt in step.top])
    return float(probs[0] - probs[1])


# --------------------------------------------------------------------------------------------- fast tests


def test_missing_model_file_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="no GGUF file at"):
        LlamaCppServer(tmp_path / "nope.gguf")


@pytest.mark.parametrize("field", ["threads", "n_ctx", "parallel", "port"])
@pytest.mark.parametrize("value", [0, -1, True, 1.5])
def test_bad_numbers_name_the_field(tmp_path: Path, field: str, value: object) -> None:
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    with pytest.raises(ConfigurationError, match=f"LlamaCppServer.{field} must be a positive int"):
        LlamaCppServer(model, **{field: value})


def test_a_file_that_is_not_a_model_fails_with_the_log(tmp_path: Path) -> None:
    model = tmp_path / "broken.gguf"
    model.write_bytes(b"GGUF" + b"\0" * 64)
    server = LlamaCppServer(model, threads=1, startup_timeout=60)
    with pytest.raises(BackendError, match="exited during start-up") as info:
        server.start()
    assert not server.running
    assert str(server.log_path) in str(info.value)


def test_free_port_is_bindable() -> None:
    import socket

    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_unstarted_server_has_no_url(tmp_path: Path) -> None:
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    server = LlamaCppServer(model)
    assert "stopped" in repr(server)
    with pytest.raises(BackendError, match="not been started"):
        server.base_url  # noqa: B018
    server.stop()  # stopping a stopped server is fine


# --------------------------------------------------------------------------------------------- real servers

QUESTIONS = [
    "What is the capital of Tuvalu?",
    "Name a primary colour.",
    "What is 2+2?",
    "Who wrote Hamlet?",
    "What is the capital of Burkina Faso?",
    "What is the largest planet?",
]


@pytest.mark.slow
def test_server_streams_top_k_logprobs_for_every_step(llama_small_server) -> None:
    small = llama_small_server.openai_model(top_k=5, max_new_tokens=6)
    events = list(small.stream_steps(Request.from_prompt("Name three colours.")))
    steps, end = [e for e in events if isinstance(e, TokenStep)], events[-1]
    assert isinstance(end, StepsEnd) and end.usage is not None and end.usage.output_tokens == len(steps) == 6
    assert end.finish_reason == "length"
    for step in steps:
        assert len(step.top) == 5 and step.top[0].token == step.token
        logprobs = [alt.logprob for alt in step.top]
        assert logprobs == sorted(logprobs, reverse=True) and all(lp <= 0 for lp in logprobs)


@pytest.mark.slow
def test_first_token_margin_matches_transformers_on_the_same_weights(llama_small_server, embedded_small) -> None:
    """llama.cpp runs the Q4_1 weights with 8-bit activations, transformers their fp32 de-quantisation:
    margins agree within 0.1 per question and 0.05 on average (measured: mean 0.03, max 0.08)."""
    remote = llama_small_server.openai_model(top_k=5, max_new_tokens=1)
    diffs = []
    for question in QUESTIONS:
        request = Request.from_prompt(question, max_new_tokens=1)
        server_step = next(e for e in remote.stream_steps(request) if isinstance(e, TokenStep))
        local_step = next(e for e in embedded_small.stream_steps(request) if isinstance(e, TokenStep))
        assert server_step.token == local_step.token, question
        diffs.append(abs(_margin(server_step) - _margin(local_step)))
    assert max(diffs) < 0.1 and float(np.mean(diffs)) < 0.05, diffs


@pytest.mark.slow
def test_cascade_over_two_real_servers_streams_and_records_the_decision(llama_small_server, llama_large_server) -> None:
    small = llama_small_server.openai_model(top_k=5, max_new_tokens=12)
    large = llama_large_server.openai_model(top_k=0, max_new_tokens=12)
    kept = Cascade([small, large], rules=ThresholdRule("margin", 0.0))
    chunks = list(kept.stream("Say hello."))
    result = chunks[-1].result
    assert result.tier == 0 and result.text and "".join(c.text for c in chunks[:-1]) + chunks[-1].text == result.text
    deferred = Cascade([small, large], rules=ThresholdRule("margin", float("inf"))).invoke(
        "What is the capital of France? Answer with one word.")
    assert deferred.tier == 1 and "Paris" in deferred.text
    assert deferred.decision.defer and deferred.decision.early_exit
    assert deferred.runs[0].usage.output_tokens <= 1  # the small tier's stream was closed after one token


def _metric(server: LlamaCppServer, name: str) -> float:
    with urllib.request.urlopen(server.url + "/metrics", timeout=5) as reply:
        for line in reply.read().decode().splitlines():
            if line.startswith(f"llamacpp:{name} "):
                return float(line.split()[1])
    raise AssertionError(f"no metric {name}")


@pytest.mark.slow
def test_closing_a_deferred_stream_stops_the_servers_generation(llama_small_server) -> None:
    small = llama_small_server.openai_model(top_k=5, max_new_tokens=400)
    before = _metric(llama_small_server, "tokens_predicted_total")
    events = small.stream_steps(Request.from_prompt("Write a very long story about a dragon."))
    assert isinstance(next(events), TokenStep)
    events.close()  # what the cascade does when the first-token margin defers
    deadline = time.monotonic() + 10
    while _metric(llama_small_server, "requests_processing") > 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _metric(llama_small_server, "requests_processing") == 0
    assert _metric(llama_small_server, "tokens_predicted_total") - before < 100  # far fewer than the 400 allowed


@pytest.mark.slow
def test_large_tier_tool_call_written_as_json_becomes_a_tool_call(llama_large_server) -> None:
    large = llama_large_server.openai_model(top_k=0, max_new_tokens=64)
    request = Request.from_prompt("What is 17 * 23? Use the calculator tool.", tools=(CALCULATOR,))
    completion = large.complete(request)
    assert len(completion.tool_calls) == 1, completion.text
    call = completion.tool_calls[0]
    assert call.name == "calculator" and "17" in call.arguments["expression"] and "23" in call.arguments["expression"]
    assert "```" not in completion.text and "calculator" not in completion.text
    chunks = list(large.stream(request))
    assert chunks[-1].tool_calls and chunks[-1].tool_calls[0].name == "calculator"
    assert "```" not in "".join(c.text for c in chunks)  # held back, then stripped


@pytest.mark.slow
def test_large_tier_call_cut_off_by_max_tokens_stays_text(llama_large_server) -> None:
    large = llama_large_server.openai_model(top_k=0, max_new_tokens=10)
    completion = large.complete(Request.from_prompt("What is 17 * 23? Use the calculator tool.", tools=(CALCULATOR,)))
    assert completion.tool_calls == () and completion.finish_reason == "length"
    assert completion.text.startswith("```")  # an incomplete call is never turned into a tool call


@pytest.mark.slow
def test_completion_endpoint_gives_few_shot_steps_and_the_same_text_as_complete(llama_small_server) -> None:
    small = llama_small_server.openai_model(top_k=3, max_new_tokens=6, prompt_format="completion")
    request = Request.from_prompt("Q: What is the capital of Italy?\nA: Rome\n\nQ: What is the capital of France?\nA:",
                                  stop=("\n",))
    steps = [e for e in small.stream_steps(request) if isinstance(e, TokenStep)]
    assert steps and all(len(s.top) == 3 for s in steps)
    text = "".join(s.token for s in steps)
    assert "Paris" in text and "\n" not in text
    assert small.complete(request).text == text


@pytest.mark.slow
def test_parallel_slots_reach_the_server() -> None:
    import json

    from cascade_core.backends.llamacpp import serve_embedded

    server = serve_embedded("small", threads=1, parallel=3)
    try:
        assert serve_embedded("small", threads=1, parallel=3) is server  # one server per (tier, threads, slots)
        with urllib.request.urlopen(server.url + "/props", timeout=10) as reply:
            assert json.load(reply)["total_slots"] == 3
        model = server.openai_model(top_k=5, max_new_tokens=2)
        results = Cascade([model, model], rules=ThresholdRule("margin", 0.0)).batch(QUESTIONS[:3], max_concurrency=3)
        assert [r.tier for r in results] == [0, 0, 0] and all(r.text for r in results)
    finally:
        server.stop()


def test_embedding_flag_must_be_a_bool(tmp_path: Path) -> None:
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    with pytest.raises(ConfigurationError, match="LlamaCppServer.embedding must be True or False"):
        LlamaCppServer(model, embedding="yes")  # type: ignore[arg-type]


@pytest.mark.slow
def test_embedding_server_mean_pools_the_prompt_in_one_prefill() -> None:
    import json

    from cascade_core.backends.llamacpp import serve_embedded

    server = serve_embedded("small", threads=1, embedding=True)
    try:
        assert serve_embedded("small", threads=1, embedding=True) is server
        assert serve_embedded("small", threads=1) is not server  # completions come from their own server

        def embed(text: str) -> list[float]:
            body = json.dumps({"input": text, "model": server.alias}).encode()
            request = urllib.request.Request(server.base_url + "/embeddings", data=body,
                                             headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=30) as reply:
                return json.load(reply)["data"][0]["embedding"]

        a, b, a2 = embed("The capital of France is"), embed("Seventeen times twenty-three is"), embed("The capital of France is")
        assert len(a) == len(b) > 100 and a == a2  # deterministic, one vector per input
        assert a != b
        assert sum(x * x for x in a) ** 0.5 > 1.5  # the raw mean, not a unit vector
    finally:
        server.stop()
