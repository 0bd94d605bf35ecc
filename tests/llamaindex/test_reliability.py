"""CascadeLLM under faults: timeouts and the large-tier failure policy reach a real LlamaIndex OpenAI large tier."""

from __future__ import annotations

import time

import pytest
from llama_index.core.llms import ChatMessage
from llama_index.llms.openai import OpenAI

from cascade_core import InvalidRequestError, LargeTierError, TierTimeoutError
from cascade_core.testing import ScriptedModel
from cascade_core.testing.fake_server import FakeOpenAIServer, FakeReply
from llamaindex_cascade import CascadeLLM

pytestmark = pytest.mark.timeout(20)


def _silent(body: dict) -> FakeReply:
    time.sleep(3.0)
    return FakeReply("too late")


def _llm(server: FakeOpenAIServer, **kwargs) -> CascadeLLM:
    large = OpenAI(model="gpt-4o-mini", api_base=server.base_url, api_key="sk-li-secret-123456", max_retries=0)
    return CascadeLLM(small=ScriptedModel("Paris is the capital", confidence=0.2), large=large, threshold=0.5,
                      large_timeout=0.3, **kwargs)


def test_silent_llamaindex_openai_large_tier_is_cut_by_large_timeout():
    with FakeOpenAIServer(_silent) as server:
        llm = _llm(server)
        started = time.monotonic()
        with pytest.raises(LargeTierError) as info:
            llm.chat([ChatMessage(role="user", content="Capital of France?")])
        assert time.monotonic() - started < 2.0
    assert isinstance(info.value.__cause__, TierTimeoutError)


async def test_on_large_error_small_falls_back_and_flags_it():
    with FakeOpenAIServer(_silent) as server:
        response = await _llm(server, on_large_error="small").acomplete("Capital?")
    assert response.text == "Paris is the capital"
    meta = response.additional_kwargs["cascade"]
    assert meta["fallback"] is True and meta["tier"] == 0


@pytest.mark.parametrize("bad", [0, True])
def test_per_call_max_tokens_zero_or_bool_is_rejected(bad):
    llm = CascadeLLM(small=ScriptedModel("a"), large=ScriptedModel("b"))
    with pytest.raises(InvalidRequestError, match="max_new_tokens"):
        llm.complete("q", max_tokens=bad)


def test_policies_given_beside_a_ready_cascade_are_refused_not_ignored():
    from cascade_core import Cascade, ConfigurationError

    cascade = Cascade([ScriptedModel("a"), ScriptedModel("b")])
    with pytest.raises(ConfigurationError, match="on the Cascade itself"):
        CascadeLLM(cascade=cascade, on_large_error="small")
    assert CascadeLLM(cascade=cascade).complete("q").text == "a"
