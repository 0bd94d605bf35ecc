"""Auth, malformed input, limits, saturation, timeouts and graceful shutdown, over real HTTP."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time

import httpx
import openai
import pytest

from cascade_core.backends.openai import OpenAIModel
from cascade_core.serve import ServerSettings, create_app
from cascade_core.testing.fake_server import FakeOpenAIServer, FakeReply

from .harness import scripted_cascade, serving

KEY = "sk-client-key-123"
TIER_KEY = "sk-tier-secret-456"
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


def _slow_or_failing(body):
    content = body["messages"][-1]["content"]
    if "slow" in content and not body.get("stream"):
        time.sleep(1.5)  # a slow upstream: the reply comes after the server's 1 s request timeout
    delay = 1.0 if "crawl" in content else 0.3 if "slow" in content else 0.0
    return FakeReply("one two three four five six", delay_s=delay)


@pytest.fixture(scope="module")
def fake():
    with FakeOpenAIServer(_slow_or_failing) as server:
        yield server


@pytest.fixture(scope="module")
def running(fake):
    large = OpenAIModel("fake-large", base_url=fake.base_url, api_key=TIER_KEY, top_k=0, max_retries=0)
    settings = ServerSettings(api_keys=(KEY, "sk-second-key"), max_concurrency=2, retry_after_s=3, request_timeout_s=1.0,
                              max_request_bytes=4000, max_tokens_limit=100)
    with socket.socket() as sock:  # a port nothing listens on: a tier that is down
        sock.bind(("127.0.0.1", 0))
        down_url = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    down = OpenAIModel("down-large", base_url=down_url, api_key=TIER_KEY, top_k=0, max_retries=0)
    cascades = {"keep": scripted_cascade(confidence=0.9), "remote": scripted_cascade(confidence=0.2, large=large),
                "down": scripted_cascade(confidence=0.2, large=down)}
    app = create_app(cascades, settings)
    with serving(app) as server:
        yield server


def _post(running, body, key=KEY, **kwargs):
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    return httpx.post(running.base_url + "/chat/completions", json=body, headers=headers, timeout=10, **kwargs)


@pytest.mark.parametrize(
    "header",
    [None, "", "Bearer", "Bearer wrong", f"Basic {KEY}", f"Bearer {KEY}x", f"Bearer {KEY[:-1]}", f"Token {KEY}"],
)
def test_wrong_or_missing_key_is_401_without_detail(running, header):
    headers = {"Authorization": header} if header is not None else {}
    response = httpx.post(running.base_url + "/chat/completions", json={"model": "keep", "messages": QUESTION},
                          headers=headers, timeout=10)
    assert response.status_code == 401
    assert response.json() == {"error": {"message": "unauthorized", "type": "authentication_error", "param": None, "code": None}}
    assert httpx.get(running.base_url + "/models", headers=headers).status_code == 401


@pytest.mark.parametrize("key", [KEY, "sk-second-key"])
def test_every_configured_key_is_accepted(running, key):
    response = _post(running, {"model": "keep", "messages": QUESTION}, key=key)
    assert response.status_code == 200
    lower = httpx.post(running.base_url + "/chat/completions", json={"model": "keep", "messages": QUESTION},
                       headers={"Authorization": f"bearer {key}"}, timeout=10)
    assert lower.status_code == 200 and response.json()["choices"][0]["message"]["content"] == "Paris"


MALFORMED = [
    ({"messages": QUESTION}, "model"),
    ({"model": "keep"}, "messages"),
    ({"model": "keep", "messages": []}, "messages"),
    ({"model": "keep", "messages": "hi"}, "messages"),
    ({"model": "keep", "messages": ["hi"]}, "messages[0]"),
    ({"model": "keep", "messages": [{"role": "robot", "content": "hi"}]}, "messages[0].role"),
    ({"model": "keep", "messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
    ({"model": "keep", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
     "messages[0].content[0].type"),
    ({"model": "keep", "messages": [*QUESTION, {"role": "tool", "content": "sunny"}]}, "messages[1].tool_call_id"),
    ({"model": "keep", "messages": [{"role": "assistant", "content": None, "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{not json"}}]}]},
     "messages[0].tool_calls[0].function.arguments"),
    ({"model": "keep", "messages": QUESTION, "max_tokens": 101}, "max_tokens"),
    ({"model": "keep", "messages": QUESTION, "max_tokens": 0}, "max_tokens"),
    ({"model": "keep", "messages": QUESTION, "max_tokens": "ten"}, "max_tokens"),
    ({"model": "keep", "messages": QUESTION, "max_completion_tokens": 1000}, "max_completion_tokens"),
    ({"model": "keep", "messages": QUESTION, "stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ({"model": "keep", "messages": QUESTION, "stop": [""]}, "stop"),
    ({"model": "keep", "messages": QUESTION, "temperature": 5}, "temperature"),
    ({"model": "keep", "messages": QUESTION, "temperature": "hot"}, "temperature"),
    ({"model": "keep", "messages": QUESTION, "stream": "yes"}, "stream"),
    ({"model": "keep", "messages": QUESTION, "n": 2}, "n"),
    ({"model": "keep", "messages": QUESTION, "logprobs": True}, "logprobs"),
    ({"model": "keep", "messages": QUESTION, "tools": [{"type": "function"}]}, "tools[0].function"),
    ({"model": "keep", "messages": QUESTION, "tools": [{"type": "function", "function": {"description": "x"}}]},
     "tools[0].function.name"),
    ({"model": "keep", "messages": QUESTION, "tools": [{"type": "function", "function": {"name": "f"}}],
      "tool_choice": {"type": "function", "function": {"name": "g"}}}, "tool_choice"),
    ({"model": "keep", "messages": QUESTION, "response_format": {"type": "xml"}}, "response_format.type"),
    ({"model": "keep", "messages": QUESTION, "response_format": {"type": "json_schema", "json_schema": {"schema": 3}}},
     "response_format.json_schema.schema"),
    ([1, 2], "body"),
]


@pytest.mark.parametrize(("body", "param"), MALFORMED, ids=[p for _, p in MALFORMED])
def test_malformed_body_is_400_naming_the_field(running, body, param):
    response = _post(running, body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param and error["message"].startswith(param) and error["type"] == "invalid_request_error"
    assert "Traceback" not in response.text


@pytest.mark.parametrize("raw", [b"{not json", b"", b"\xff\xfe", b'{"model": "keep", "messages": [}'])
def test_body_that_is_not_json_is_400(running, raw):
    response = httpx.post(running.base_url + "/chat/completions", content=raw, timeout=10,
                          headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})
    assert response.status_code == 400 and response.json()["error"]["param"] == "body"


def test_unknown_model_is_404_listing_the_cascades(running):
    response = _post(running, {"model": "gpt-4o", "messages": QUESTION})
    assert response.status_code == 404
    assert response.json()["error"]["param"] == "model" and "'keep'" in response.json()["error"]["message"]


def test_request_size_limit_with_and_without_content_length(running):
    big = {"model": "keep", "messages": [{"role": "user", "content": "x" * 5000}]}
    response = _post(running, big)
    assert response.status_code == 413 and "4000 bytes" in response.json()["error"]["message"]

    def chunks():
        data = json.dumps(big).encode()
        for i in range(0, len(data), 1000):
            yield data[i:i + 1000]

    chunked = httpx.post(running.base_url + "/chat/completions", content=chunks(), timeout=10,
                         headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})
    assert chunked.status_code == 413


def test_tier_failure_is_502_and_tier_key_never_leaks(running, caplog):
    caplog.set_level(logging.DEBUG)
    response = _post(running, {"model": "down", "messages": QUESTION})
    assert response.status_code == 502 and response.json()["error"]["type"] == "upstream_error"
    assert "127.0.0.1" not in response.text and "down-large at" in caplog.text  # details only in the server log
    ok = _post(running, {"model": "remote", "messages": QUESTION})
    assert ok.status_code == 200 and ok.json()["choices"][0]["message"]["content"] == "one two three four five six"
    metrics = httpx.get(running.url + "/metrics").text
    assert 'cascade_errors_total{cascade="down",kind="backend",tier="large"} 1.0' in metrics
    for text in (response.text, ok.text, metrics, caplog.text, repr(running.app.state.server.cascades)):
        assert TIER_KEY not in text and KEY not in text


def test_saturated_server_answers_429_with_retry_after_and_loses_nothing(running):
    results: list[httpx.Response] = []

    def slow():
        results.append(_post(running, {"model": "remote", "messages": [{"role": "user", "content": "slow"}]}))

    # the slow upstream answers after the 1 s timeout: each request holds its slot until it times out
    threads = [threading.Thread(target=slow) for _ in range(2)]
    for t in threads:
        t.start()
    running.wait_in_flight(2)
    rejected = _post(running, {"model": "keep", "messages": QUESTION})
    assert rejected.status_code == 429 and rejected.headers["retry-after"] == "3"
    for t in threads:
        t.join(timeout=10)
    assert [r.status_code for r in results] == [504, 504]
    assert "1 s" in results[0].json()["error"]["message"]
    assert _post(running, {"model": "keep", "messages": QUESTION}).status_code == 200
    assert running.in_flight() == 0


def test_stream_past_the_timeout_ends_with_an_error_event(running):
    client = openai.OpenAI(base_url=running.base_url, api_key=KEY, max_retries=0)
    stream = client.chat.completions.create(model="remote", messages=[{"role": "user", "content": "slow"}], stream=True)
    with pytest.raises(openai.APIError, match="longer than 1 s"):
        list(stream)
    assert running.in_flight() == 0


def test_graceful_shutdown_finishes_in_flight_requests(fake):
    large = OpenAIModel("fake-large", base_url=fake.base_url, top_k=0, max_retries=0)
    app = create_app({"remote": scripted_cascade(confidence=0.2, large=large)}, ServerSettings(request_timeout_s=10))
    body = {"model": "remote", "messages": [{"role": "user", "content": "slow"}]}
    outcomes: dict[str, object] = {}
    with serving(app) as running:
        def plain():
            outcomes["plain"] = httpx.post(running.base_url + "/chat/completions", json=body, timeout=10)

        def streamed():
            with httpx.stream("POST", running.base_url + "/chat/completions", json={**body, "stream": True}, timeout=10) as r:
                outcomes["stream"] = list(r.iter_lines())

        threads = [threading.Thread(target=plain), threading.Thread(target=streamed)]
        for t in threads:
            t.start()
        running.wait_in_flight(2)
        running.server.should_exit = True  # what SIGTERM does
        for t in threads:
            t.join(timeout=10)
        running.thread.join(timeout=10)
        assert not running.thread.is_alive()
        with pytest.raises(httpx.ConnectError):
            httpx.get(running.url + "/healthz", timeout=2)
    plain_response = outcomes["plain"]
    assert plain_response.status_code == 200  # type: ignore[attr-defined]
    assert plain_response.json()["choices"][0]["message"]["content"] == "one two three four five six"  # type: ignore[attr-defined]
    lines = [line for line in outcomes["stream"] if line]  # type: ignore[union-attr]
    assert lines[-1] == "data: [DONE]"
    final = json.loads(lines[-2].removeprefix("data: "))
    assert final["choices"][0]["finish_reason"] == "stop" and final["cascade"]["tier"] == 1


def test_client_disconnect_mid_stream_frees_the_slot(fake):
    large = OpenAIModel("fake-large", base_url=fake.base_url, top_k=0, max_retries=0)
    app = create_app({"remote": scripted_cascade(confidence=0.2, large=large)}, ServerSettings(request_timeout_s=30))
    body = {"model": "remote", "messages": [{"role": "user", "content": "crawl"}], "stream": True}
    with serving(app) as running:
        with httpx.stream("POST", running.base_url + "/chat/completions", json=body, timeout=10) as response:
            lines = response.iter_lines()
            assert any('"one"' in line for line in lines)  # the large tier's first token: it is streaming now
        started = time.monotonic()
        while running.in_flight():  # the whole answer would take 6 s more
            assert time.monotonic() - started < 3, "the slot was not released after the client disconnected"
            time.sleep(0.05)
