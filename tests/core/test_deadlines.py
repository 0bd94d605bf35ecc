"""Timeouts, deadlines and cancellation: nothing hangs, nothing is called after the caller gave up.

Table over entry points (sync/async, plain/stream) and small tiers that are thread-backed (only
``stream_steps``; async runs it in worker threads) or natively async (own ``astream_steps``),
plus the OpenAI backend against a server that never answers.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import AsyncIterator, Iterator

import openai  # noqa: F401 - imported up front: the first import takes longer than the limits below
import pytest
from fault_server import Action, FaultServer

from cascade_core import (
    Cascade,
    CascadeError,
    ConfigurationError,
    DeadlineExceededError,
    LargeTierError,
    ThresholdRule,
    TierTimeoutError,
)
from cascade_core.backends.base import TokenModelBase
from cascade_core.backends.openai import OpenAIModel
from cascade_core.testing import ScriptedModel
from cascade_core.types import Request, StepsEnd, TokenAlternative, TokenStep, Usage

pytestmark = pytest.mark.timeout(20)

DELAY = 0.4  # how long a "silent" tier blocks; every limit below is far shorter


class ThreadBackedSmall(TokenModelBase):
    """A small tier with only a blocking ``stream_steps`` (like TransformersModel): silent for ``delay`` s."""

    def __init__(self, delay: float = DELAY) -> None:
        self.model_name, self.top_k, self.delay = "slow-small", 5, delay
        self.closed = threading.Event()
        self.errors: list[BaseException] = []

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def _steps(self) -> list[TokenStep]:
        top = (TokenAlternative("Paris", math.log(0.9)), TokenAlternative("Lyon", math.log(0.05)))
        return [TokenStep("Paris", math.log(0.9), top)]

    def stream_steps(self, request: Request) -> Iterator[TokenStep | StepsEnd]:
        try:
            time.sleep(self.delay)
            yield from self._steps()
            yield StepsEnd(Usage(1, 1), "stop")
        except BaseException as err:  # GeneratorExit when closed; anything else is a bug
            if not isinstance(err, GeneratorExit):
                self.errors.append(err)
            raise
        finally:
            self.closed.set()


class NativeAsyncSmall(ThreadBackedSmall):
    """The same, with its own non-blocking ``astream_steps`` (like OpenAIModel)."""

    async def astream_steps(self, request: Request) -> AsyncIterator[TokenStep | StepsEnd]:  # type: ignore[override]
        try:
            await asyncio.sleep(self.delay)
            for step in self._steps():
                yield step
            yield StepsEnd(Usage(1, 1), "stop")
        finally:
            self.closed.set()


class SilentLarge(ScriptedModel):
    """A large tier that blocks ``delay`` s before answering."""

    def __init__(self, delay: float = DELAY) -> None:
        super().__init__("Paris, France", name="silent-large")
        self.delay = delay

    def stream_steps(self, request):  # type: ignore[override]
        time.sleep(self.delay)
        yield from super().stream_steps(request)

    async def acomplete(self, request):  # type: ignore[override]
        await asyncio.sleep(self.delay)
        return await super().acomplete(request)


def _wait_for(predicate, timeout: float = 2.0) -> None:
    end = time.monotonic() + timeout
    while not predicate() and time.monotonic() < end:
        time.sleep(0.01)


async def _run(cascade: Cascade, mode: str) -> object:
    if mode == "invoke":
        return await asyncio.to_thread(cascade.invoke, "Capital of France?")
    if mode == "ainvoke":
        return await cascade.ainvoke("Capital of France?")
    if mode == "stream":
        def consume() -> object:
            return [c for c in cascade.stream("Capital of France?")][-1].result
        return await asyncio.to_thread(consume)
    return [c async for c in cascade.astream("Capital of France?")][-1].result


MODES = ["invoke", "ainvoke", "stream", "astream"]
SMALLS = [ThreadBackedSmall, NativeAsyncSmall]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("small_cls", SMALLS, ids=["thread-backed", "native-async"])
async def test_silent_small_tier_defers_after_its_timeout(mode, small_cls):
    small, large = small_cls(), ScriptedModel("Paris, France")
    cascade = Cascade([small, large], rules=ThresholdRule("margin", 0.3), small_timeout=0.1)
    started = time.monotonic()
    result = await _run(cascade, mode)
    assert time.monotonic() - started < DELAY  # did not wait for the silent tier
    assert result.tier == 1 and result.text == "Paris, France" and len(large.calls) == 1
    assert "TierTimeoutError" in result.decision.reason and "0.1 s" in result.decision.reason
    assert small.closed.wait(DELAY + 2) and not small.errors  # closed once its step returned, no crash


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("small_cls", SMALLS, ids=["thread-backed", "native-async"])
async def test_deadline_stops_the_call_and_never_calls_the_large_tier(mode, small_cls):
    small, large = small_cls(), ScriptedModel("Paris, France")
    cascade = Cascade([small, large], small_timeout=5.0, deadline=0.1)
    started = time.monotonic()
    with pytest.raises(DeadlineExceededError, match="0.1 s"):
        await _run(cascade, mode)
    assert time.monotonic() - started < DELAY
    await asyncio.sleep(0.05)
    assert not large.calls


@pytest.mark.parametrize("small_cls", SMALLS, ids=["thread-backed", "native-async"])
@pytest.mark.parametrize("how", ["wait_for", "task.cancel"])
@pytest.mark.parametrize("streaming", [False, True])
async def test_cancelling_the_caller_propagates_and_never_calls_the_large_tier(small_cls, how, streaming):
    small, large = small_cls(), ScriptedModel("Paris, France")
    cascade = Cascade([small, large], small_timeout=None, deadline=None)
    call = _run(cascade, "astream" if streaming else "ainvoke")
    if how == "wait_for":
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(call, 0.1)
    else:
        task = asyncio.ensure_future(call)
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    await asyncio.to_thread(small.closed.wait, DELAY + 2)  # let the abandoned step finish
    await asyncio.sleep(0.05)
    assert not large.calls  # nothing was called (or paid) after the caller gave up
    assert small.closed.is_set() and not small.errors  # no "generator already executing"


@pytest.mark.parametrize("mode", MODES)
async def test_silent_large_tier_raises_large_tier_error_with_the_decision(mode):
    small, large = ScriptedModel("Paris", confidence=0.2), SilentLarge()
    cascade = Cascade([small, large], rules=ThresholdRule("margin", 0.5), large_timeout=0.1)
    with pytest.raises(LargeTierError) as info:
        await _run(cascade, mode)
    err = info.value
    assert isinstance(err.__cause__, TierTimeoutError)
    assert err.tier == 1 and err.decision.defer
    assert err.decision.score == pytest.approx(0.0) and err.decision.threshold == 0.5
    assert "after the deferral" in str(err) and "margin" in str(err)


@pytest.mark.parametrize("mode", MODES)
async def test_on_large_error_small_answers_from_the_small_tier_flagged(mode):
    small, large = ScriptedModel("Paris is the capital", confidence=0.2), SilentLarge()
    cascade = Cascade([small, large], rules=ThresholdRule("margin", 0.5), large_timeout=0.1, on_large_error="small")
    result = await _run(cascade, mode)
    # the margin rule had stopped the small tier after one token: the fallback generates the whole answer
    assert result.tier == 0 and result.text == "Paris is the capital"
    assert result.fallback and "TierTimeoutError" in result.fallback_reason
    assert result.generation.finish_reason == "stop" and len(small.calls) == 2
    assert result.decision.defer  # the record still says the rule deferred
    assert result.as_dict()["fallback"] is True


def test_on_large_error_small_with_a_failed_small_tier_raises():
    small, large = ScriptedModel("x", fail=True), ScriptedModel("y", fail=True)
    cascade = Cascade([small, large], on_large_error="small")
    with pytest.raises(LargeTierError) as info:
        cascade.invoke("q")
    assert "tier 0 failed" in info.value.decision.reason


def test_openai_large_tier_hanging_server_is_cut_by_large_timeout():
    with FaultServer(Action("hang")) as server:
        large = OpenAIModel("hang", base_url=server.base_url, api_key="sk-x", max_retries=0, timeout=30)
        assert large.client is not None  # build the client (SSL context…) before the clock starts
        cascade = Cascade([ScriptedModel("?", confidence=0.1), large], rules=ThresholdRule("margin", 0.5),
                          large_timeout=0.3)
        started = time.monotonic()
        with pytest.raises(LargeTierError):
            cascade.invoke("q")
        assert time.monotonic() - started < 2
        _wait_for(lambda: server.requests)  # the abandoned request reaches the server in its own time
        assert len(server.requests) == 1


async def test_openai_small_tier_hanging_server_defers_async():
    with FaultServer(Action("hang")) as server:
        small = OpenAIModel("hang", base_url=server.base_url, api_key="sk-x", max_retries=0, timeout=30)
        cascade = Cascade([small, ScriptedModel("Paris")], small_timeout=0.3)
        result = await cascade.ainvoke("q")
        assert result.tier == 1 and "TierTimeoutError" in result.decision.reason
        assert len(server.requests) == 1


def test_async_client_is_not_reused_across_event_loops():
    with FaultServer(Action("ok")) as server:
        model = OpenAIModel("ok", base_url=server.base_url, api_key="sk-x", max_retries=0, timeout=3)
        texts = [asyncio.run(model.acomplete(Request.from_prompt("q"))).text for _ in range(2)]
        assert texts == ["Paris is in France"] * 2
        assert len(server.requests) == 2  # no failed first attempt, no retry


@pytest.mark.parametrize(
    "kwargs",
    [{"small_timeout": 0}, {"large_timeout": -1}, {"deadline": math.nan}, {"deadline": True},
     {"small_timeout": "5"}, {"on_large_error": "ignore"}, {"large_timeout": math.inf}],
)
def test_limits_are_validated_at_construction(kwargs):
    with pytest.raises(ConfigurationError):
        Cascade([ScriptedModel("a"), ScriptedModel("b")], **kwargs)


def test_defaults_are_documented_values():
    cascade = Cascade([ScriptedModel("a"), ScriptedModel("b")])
    assert (cascade.small_timeout, cascade.large_timeout, cascade.deadline) == (10.0, 60.0, 120.0)
    assert cascade.on_large_error == "raise"
    assert issubclass(LargeTierError, CascadeError) and issubclass(DeadlineExceededError, CascadeError)


def test_fallback_answer_must_pass_the_answer_check_too():
    small, large = ScriptedModel("not json", confidence=0.9), ScriptedModel("y", fail=True)
    cascade = Cascade([small, large], rules=ThresholdRule("margin", 0.3), on_large_error="small")
    with pytest.raises(LargeTierError) as info:  # the small answer was rejected: it is no fallback
        cascade.invoke("q", check=lambda g: "not JSON" if not g.text.startswith("{") else None)
    assert "answer check failed" in info.value.decision.reason
    kept = Cascade([ScriptedModel("Paris", confidence=0.2), ScriptedModel("y", fail=True)],
                   rules=ThresholdRule("chow_average", -0.01), on_large_error="small")
    result = kept.invoke("q", check=lambda g: None)
    assert result.fallback and result.text == "Paris" and len(kept.tiers[0].model.calls) == 1  # no regeneration


def test_a_call_stuck_forever_does_not_keep_the_process_from_exiting(tmp_path):
    import subprocess
    import sys

    script = tmp_path / "stuck.py"
    script.write_text(
        "import threading\n"
        "from cascade_core import Cascade, LargeTierError, ThresholdRule\n"
        "from cascade_core.testing import ScriptedModel\n"
        "class Stuck(ScriptedModel):\n"
        "    def complete(self, request):\n"
        "        threading.Event().wait()  # a client with no timeout of its own\n"
        "c = Cascade([ScriptedModel('a', confidence=0.1), Stuck('b')], rules=ThresholdRule('margin', 0.5), large_timeout=0.2)\n"
        "try:\n"
        "    c.invoke('q')\n"
        "except LargeTierError as err:\n"
        "    print('raised', type(err.__cause__).__name__)\n"
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=15,
                          env={**__import__("os").environ, "PYTHONPATH": ":".join(sys.path)})
    assert done.returncode == 0 and "raised TierTimeoutError" in done.stdout, done.stderr


def test_no_fallback_once_large_tier_text_was_streamed():
    class BreaksMidStream(ScriptedModel):
        def stream(self, request):  # type: ignore[override]
            chunks = super().stream(request)
            yield next(chunks)
            raise ConnectionError("cut mid-stream")

    small = ScriptedModel("Paris", confidence=0.2)
    cascade = Cascade([small, BreaksMidStream("Lima is the capital")], rules=ThresholdRule("margin", 0.5),
                      on_large_error="small")
    texts = []
    with pytest.raises(LargeTierError, match="cut mid-stream"):
        for chunk in cascade.stream("q"):
            texts.append(chunk.text)
    assert texts == ["Lima"]  # what was sent stays the large tier's; nothing spliced after it
    assert len(small.calls) == 1  # and the small tier was not asked again


class ThreadRecordingSmall(ThreadBackedSmall):
    """Records which thread ran each call's ``stream_steps``."""

    def __init__(self) -> None:
        super().__init__(delay=0.0)
        self.threads: list[int] = []

    def stream_steps(self, request: Request) -> Iterator[TokenStep | StepsEnd]:
        self.threads.append(threading.get_ident())
        yield from super().stream_steps(request)


def test_synchronous_calls_reuse_an_idle_worker_thread():
    small = ThreadRecordingSmall()
    cascade = Cascade([small, ScriptedModel("Paris, France")], rules=ThresholdRule("margin", 0.3), small_timeout=5.0)
    for _ in range(20):
        assert cascade.invoke("Capital of France?").tier == 0
    assert threading.get_ident() not in small.threads  # run under the timeout, in a worker
    assert len(set(small.threads)) == 1  # one worker reused, not a new thread per call


def test_a_worker_stuck_on_an_abandoned_call_is_not_reused():
    stuck = ThreadBackedSmall(delay=DELAY)
    slow = Cascade([stuck, ScriptedModel("Paris, France")], rules=ThresholdRule("margin", 0.3), small_timeout=0.05)
    assert slow.invoke("q").decision.reason is not None  # timed out: deferred
    fast = Cascade([ScriptedModel("Paris", confidence=0.9), ScriptedModel("Paris, France")],
                   rules=ThresholdRule("margin", 0.3), small_timeout=0.2)
    started = time.monotonic()
    assert fast.invoke("q").tier == 0  # not queued behind the stuck call (it would time out)
    assert time.monotonic() - started < DELAY
    assert stuck.closed.wait(DELAY * 5)  # the abandoned stream is still closed once its call returns
