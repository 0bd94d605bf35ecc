"""A LangChain RAG chain whose chat model is a cascade — runs offline, no key needed.

    python examples/langchain_rag.py                 # SmolLM2-135M small tier, Qwen2.5-Coder-1.5B large tier
    python examples/langchain_rag.py --small-url http://127.0.0.1:8000/v1 --small-model qwen2.5-1.5b-instruct
    python examples/langchain_rag.py --large-url https://api.openai.com/v1 --large-model gpt-4o-mini  # real large

The retriever is LangChain's in-memory vector store over a deterministic bag-of-words embedding.
Both tiers are real models: SmolLM2-135M-Instruct in-process (small) and, unless ``--large-url``
is given, ``ChatOpenAI`` talking to Qwen2.5-Coder-1.5B-Instruct on a llama.cpp server that the script
starts on 127.0.0.1 (large). For each question the script prints the
tier that answered, the deciding score, and the cost saved versus sending everything to the large tier.
"""

from __future__ import annotations

import argparse
import os

from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnablePassthrough
from langchain_core.vectorstores import InMemoryVectorStore
from langchain_openai import ChatOpenAI

from cascade_core.backends.defaults import DEFAULT_PRICES, default_small_model
from cascade_core.backends.llamacpp import serve_embedded
from cascade_core.backends.openai import OpenAIModel
from cascade_core.testing.embeddings import hashing_vector
from langchain_cascade import ChatCascade

DOCS = [
    "Paris is the capital of France. The Seine flows through Paris.",
    "Rome is the capital of Italy. The Tiber flows through Rome.",
    "Canberra is the capital of Australia.",
    "The Danube flows through Vienna, Budapest and Belgrade.",
]
QUESTIONS = [
    "What is the capital of France?",
    "Which river flows through Rome?",
    "What is the capital of Australia?",
    "Name a city on the Danube.",
]


STOPWORDS = frozenset(["a", "an", "and", "the", "is", "of", "on", "in", "to", "what", "which", "who", "name", "flows", "through", "city"])


class WordHashEmbeddings(Embeddings):
    """Hashed bag-of-content-words vectors (the library's offline test embedding): deterministic."""

    def embed_query(self, text: str) -> list[float]:
        return hashing_vector(text, stop_words=STOPWORDS)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self.embed_query(t) for t in texts]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threshold", type=float, default=0.3, help="first-token margin threshold")
    parser.add_argument("--small-url", help="OpenAI-compatible server with logprobs for the small tier")
    parser.add_argument("--small-model", default="small")
    parser.add_argument("--large-url", help="OpenAI-compatible server for the large tier (key: $OPENAI_API_KEY)")
    parser.add_argument("--large-model", default="gpt-4o-mini")
    args = parser.parse_args()

    if args.small_url:
        small = OpenAIModel(args.small_model, base_url=args.small_url)
    else:
        small = default_small_model(max_new_tokens=24, threads=1)
    if args.large_url:
        large = ChatOpenAI(model=args.large_model, base_url=args.large_url,
                           api_key=os.environ.get("OPENAI_API_KEY", "not-needed"), max_retries=0)
    else:
        server = serve_embedded("large", threads=1)  # Qwen2.5-Coder-1.5B, sha256-verified, stopped at exit
        large = ChatOpenAI(model=server.alias, base_url=server.base_url, api_key="not-needed", temperature=0,
                           max_tokens=48, max_retries=0)
    llm = ChatCascade(small=small, large=large, threshold=args.threshold,
                      small_pricing=DEFAULT_PRICES["small"], large_pricing=DEFAULT_PRICES["large"])

    store = InMemoryVectorStore.from_documents([Document(d) for d in DOCS], WordHashEmbeddings())
    prompt = ChatPromptTemplate.from_messages([
        ("system", "Answer in one short sentence using the context.\nContext: {context}"),
        ("human", "{question}"),
    ])
    retrieve = store.as_retriever(search_kwargs={"k": 1}) | (lambda docs: docs[0].page_content)
    chain = {"context": retrieve, "question": RunnablePassthrough()} | prompt | llm

    cost = all_large = 0.0
    for question in QUESTIONS:
        message = chain.invoke(question)
        meta = message.response_metadata["cascade"]
        cost, all_large = cost + meta["cost"], all_large + meta["all_large_cost"]
        tier = "small (kept)" if meta["tier"] == 0 else "large (deferred)"
        print(f"Q: {question}\n   tier: {tier:17} {meta['signal']}={meta['score']:.3f} "
              f"(threshold {meta['threshold']})\n   A: {message.text.strip()[:100]}")
    saved = all_large - cost
    share = saved / all_large if all_large else 0.0
    print(f"\ncost ${cost:.7f} vs ${all_large:.7f} all-large: saved ${saved:.7f} ({share:.0%})")


if __name__ == "__main__":
    main()
