"""ChatCascade under faults: timeouts and the large-tier failure policy reach a real ChatOpenAI large tier."""

from __future__ import annotations

import asyncio
import time

import pytest
from langchain_openai import ChatOpenAI

from cascade_core import InvalidRequestError, LargeTierError, TierTimeoutError
from cascade_core.testing import ScriptedModel
from cascade_core.testing.fake_server import FakeOpenAIServer, FakeReply
from langchain_cascade import ChatCascade

pytestmark = pytest.mark.timeout(20)


def _silent(body: dict) -> FakeReply:
    time.sleep(3.0)  # longer than every limit below; ChatOpenAI's own default timeout is none at all
    return FakeReply("too late")


def _llm(server: FakeOpenAIServer, **kwargs) -> ChatCascade:
    large = ChatOpenAI(model="gpt-4o-mini", base_url=server.base_url, api_key="sk-lc-secret-123456", max_retries=0)
    return ChatCascade(small=ScriptedModel("Paris is the capital", confidence=0.2), large=large, threshold=0.5,
                       large_timeout=0.3, **kwargs)


def test_silent_chat_openai_large_tier_is_cut_by_large_timeout():
    with FakeOpenAIServer(_silent) as server:
        llm = _llm(server)
        started = time.monotonic()
        with pytest.raises(LargeTierError) as info:
            llm.invoke("Capital of France?")
        assert time.monotonic() - started < 2.0
    assert isinstance(info.value.__cause__, TierTimeoutError)
    assert info.value.decision.defer and info.value.decision.threshold == 0.5


async def test_silent_chat_openai_large_tier_async_stream_is_cut_too():
    with FakeOpenAIServer(_silent) as server:
        llm = _llm(server)
        started = time.monotonic()
        with pytest.raises(LargeTierError):
            async for _ in llm.astream("Capital of France?"):
                pass
        assert time.monotonic() - started < 2.0


@pytest.mark.parametrize("mode", ["invoke", "ainvoke"])
async def test_on_large_error_small_falls_back_and_flags_it_in_metadata(mode):
    with FakeOpenAIServer(_silent) as server:
        llm = _llm(server, on_large_error="small")
        message = llm.invoke("Capital?") if mode == "invoke" else await llm.ainvoke("Capital?")
    meta = message.response_metadata["cascade"]
    assert message.content == "Paris is the capital"
    assert meta["tier"] == 0 and meta["fallback"] is True and "TierTimeoutError" in meta["fallback_reason"]
    assert "sk-lc-secret-123456" not in repr(message) + repr(llm)


def test_cancel_of_ainvoke_calls_nothing_after():
    small = ScriptedModel("Paris", confidence=0.9)
    large = ScriptedModel("Paris, France")
    llm = ChatCascade(small=small, large=large, threshold=0.5)

    async def main() -> None:
        task = asyncio.ensure_future(llm.ainvoke("q"))
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert not large.calls


@pytest.mark.parametrize("bad", [0, True, -1])
def test_per_call_max_tokens_zero_or_bool_is_rejected(bad):
    llm = ChatCascade(small=ScriptedModel("a"), large=ScriptedModel("b"))
    with pytest.raises(InvalidRequestError, match="max_new_tokens"):
        llm.invoke("q", max_tokens=bad)


def test_policies_given_beside_a_ready_cascade_are_refused_not_ignored():
    from cascade_core import Cascade, ConfigurationError

    cascade = Cascade([ScriptedModel("a"), ScriptedModel("b")])
    with pytest.raises(ConfigurationError, match="set \\['large_timeout'\\] on the Cascade itself"):
        ChatCascade(cascade=cascade, large_timeout=5)
    assert ChatCascade(cascade=cascade).invoke("q").content == "a"
