"""ChatCascade inside real LangChain objects: an LCEL RAG chain, a ``create_agent`` agent, streaming
through chains, structured output into pydantic — no mocks, fake OpenAI servers on 127.0.0.1."""

from __future__ import annotations

from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnablePassthrough
from langchain_core.tools import tool
from langchain_core.vectorstores import InMemoryVectorStore
from lc_fakes import WordHashEmbeddings
from pydantic import BaseModel, Field

from langchain_cascade import ChatCascade

DOCS = [
    "Paris is the capital of France and lies on the Seine.",
    "Rome is the capital of Italy; the Tiber flows through it.",
    "Madrid is the capital of Spain.",
]


class _Embeddings(WordHashEmbeddings, Embeddings):
    pass


@pytest.fixture
def llm(small: Any, large: Any) -> ChatCascade:
    return ChatCascade(small=small, large=large, threshold=0.3)


@pytest.fixture
def rag_chain(llm: ChatCascade) -> Any:
    store = InMemoryVectorStore.from_documents([Document(d) for d in DOCS], _Embeddings())
    retriever = store.as_retriever(search_kwargs={"k": 1})
    prompt = ChatPromptTemplate.from_messages([
        ("system", "Answer from the context.\nContext: {context}"),
        ("human", "{question}"),
    ])

    def join(docs: list[Document]) -> str:
        return "\n".join(d.page_content for d in docs)

    return {"context": retriever | join, "question": RunnablePassthrough()} | prompt | llm | StrOutputParser()


def test_rag_chain_answers_through_the_cascade(rag_chain: Any, small_server: Any) -> None:
    answer = rag_chain.invoke("Which river flows through Rome, the capital of Italy?")
    assert isinstance(answer, str) and answer.startswith("Hello from the small model")
    system = small_server.requests[-1]["messages"][0]["content"]
    assert "Tiber" in system  # the retrieved document reached the small tier's prompt


def test_rag_chain_streams_strings(rag_chain: Any) -> None:
    pieces = list(rag_chain.stream("What is the capital of Spain?"))
    assert len(pieces) > 3 and "".join(pieces).startswith("Hello from the small model")


async def test_rag_chain_deferred_query_answers_from_large(rag_chain: Any, large_server: Any) -> None:
    answer = await rag_chain.ainvoke("Which river is in Paris, France? [unsure]")
    assert answer.startswith("Hello from the large model")
    assert "Seine" in large_server.requests[-1]["messages"][0]["content"]


async def test_stream_events_report_each_token_once(llm: ChatCascade) -> None:
    chain = ChatPromptTemplate.from_messages([("human", "{q}")]) | llm | StrOutputParser()
    for question, tier in (("Hi", "small"), ("Hi [unsure]", "large")):
        tokens = [e["data"]["chunk"].text async for e in chain.astream_events({"q": question}, version="v2")
                  if e["event"] == "on_chat_model_stream"]
        # only ChatCascade's own run streams: the wrapped large model does not report a second copy
        assert "".join(tokens).startswith(f"Hello from the {tier} model")
        assert "".join(tokens).count("Hello") == 1


def test_with_structured_output_into_pydantic_in_a_chain(llm: ChatCascade) -> None:
    class Capital(BaseModel):
        """The capital of a country."""

        city: str = Field(description="The capital city")
        country: str = Field(description="The country")

    chain = ChatPromptTemplate.from_messages([("human", "{q}")]) | llm.with_structured_output(Capital)
    assert isinstance(chain.invoke({"q": "Capital of France?"}), Capital)
    assert isinstance(chain.invoke({"q": "Capital of France? [bad-json]"}), Capital)  # deferred, still parsed


@pytest.mark.parametrize("question,tier", [("What is the weather in 'Paris'?", 0),
                                           ("What is the weather in 'Paris'? [unsure]", 1)])
def test_create_agent_calls_a_tool_through_the_cascade(llm: ChatCascade, question: str, tier: int) -> None:
    seen: list[str] = []

    @tool
    def get_weather(location: str) -> str:
        """Get the weather at a location."""
        seen.append(location)
        return f"It is sunny in {location}."

    agent = create_agent(llm, tools=[get_weather], system_prompt="You are a weather assistant.")
    result = agent.invoke({"messages": [{"role": "user", "content": question}]})
    messages = result["messages"]
    assert seen == ["Paris"]
    calls = [m for m in messages if isinstance(m, AIMessage) and m.tool_calls]
    assert calls and calls[0].response_metadata["cascade"]["tier"] == tier
    assert any(isinstance(m, ToolMessage) and "sunny" in m.content for m in messages)
    final = messages[-1]
    assert isinstance(final, AIMessage) and "tool result" in final.content
