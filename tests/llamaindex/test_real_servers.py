"""CascadeLLM with real models on both tiers (issue 10, item 5): a FunctionAgent and structured prediction.

Small tier: SmolLM2-135M-Instruct on a llama.cpp server (core ``OpenAIModel``, top-5 log-probs).
Large tier: Qwen2.5-Coder-1.5B-Instruct on a llama.cpp server, reached through LlamaIndex's own
``OpenAILike`` LLM (native tools; llama.cpp returns Qwen's calls as a ```json block in content,
which the large-tier wrapper recovers). Nothing here is scripted: the tool really runs.
"""

from __future__ import annotations

from typing import Any

import pytest
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.bridge.pydantic import BaseModel, Field
from llama_index.core.prompts import PromptTemplate
from llama_index.core.tools import FunctionTool

from cascade_core import ThresholdRule
from llamaindex_cascade import CascadeLLM

pytestmark = [
    pytest.mark.slow,
    # llama-index's workflow engine touches deprecated pydantic properties; the warnings are theirs.
    pytest.mark.filterwarnings("ignore::pydantic.warnings.PydanticDeprecatedSince20"),
    pytest.mark.filterwarnings("ignore::pydantic.warnings.PydanticDeprecatedSince211"),
]


def _cascade_llm(small_server: Any, large_server: Any, threshold: float) -> CascadeLLM:
    from llama_index.llms.openai_like import OpenAILike

    small = small_server.openai_model(top_k=5, max_new_tokens=48, timeout=120, max_retries=0)
    large = OpenAILike(model=large_server.alias, api_base=large_server.base_url, api_key="x", temperature=0,
                       max_tokens=160, timeout=180, max_retries=0, context_window=8192, is_chat_model=True,
                       is_function_calling_model=True)
    return CascadeLLM(small=small, large=large, rule=ThresholdRule("margin", threshold))


@pytest.mark.parametrize("threshold", [0.5, float("inf")], ids=["cascade", "all-large"])
async def test_function_agent_really_calls_the_tool(llama_small_server, llama_large_server, threshold) -> None:
    calls: list[tuple[int, int]] = []

    def multiply(a: int, b: int) -> int:
        """Multiply two integers and return the product."""
        calls.append((a, b))
        return a * b

    agent = FunctionAgent(
        tools=[FunctionTool.from_defaults(fn=multiply)],
        llm=_cascade_llm(llama_small_server, llama_large_server, threshold),
        system_prompt="You are a calculator. Always use the multiply tool for multiplication, then state the result.",
    )
    result = await agent.run(user_msg="What is 1234 times 5678? Use the multiply tool.")
    assert calls == [(1234, 5678)]
    answer = str(result.response.content).replace(",", "")
    assert "7006652" in answer, answer
    assert [c.tool_name for c in result.tool_calls] == ["multiply"]


class City(BaseModel):
    """A city and the country it is in."""

    name: str = Field(description="The city's name")
    country: str = Field(description="The country the city is in")
    population_millions: float = Field(description="Population in millions")


@pytest.mark.parametrize("threshold", [0.3, float("inf")], ids=["cascade", "all-large"])
def test_structured_predict_returns_a_valid_object(llama_small_server, llama_large_server, threshold) -> None:
    llm = _cascade_llm(llama_small_server, llama_large_server, threshold)
    city = llm.structured_predict(
        City, PromptTemplate("Describe {city}: its name, country and population in millions."), city="Paris"
    )
    assert isinstance(city, City)
    assert city.name.lower() == "paris" and "france" in city.country.lower()
    assert 0 < city.population_millions < 50
