"""RAG workload: a LangChain retriever chain and a LlamaIndex query engine, with real models on both tiers.

    make workload-rag                                   # 100 test + 40 calibration questions, both frameworks
    python -m benchmarks.studies.workload_rag --tiny            # 6 + 6 questions, a smoke run
    python -m benchmarks.studies.workload_rag --framework langchain --limit 100

Corpus: one document per country, the record the ``countryinfo`` package ships (``key: value`` lines of
its JSON: capital, region, subregion, population, area, currencies, languages, calling codes, demonym,
top-level domain). Questions with gold answers are drawn from the same records with a fixed seed;
calibration questions come from a disjoint set of countries. Retrieval is offline: a hashed
bag-of-words embedding (``HashingEmbedding``) in LangChain's ``InMemoryVectorStore`` and in a LlamaIndex
``VectorStoreIndex``.

Tiers: SmolLM2-135M-Instruct in-process (small, one torch thread), Qwen2.5-Coder-1.5B-Instruct on a
llama.cpp server (large, one thread). Configurations, each run for real on the test split:
small-only (the cascade with threshold 0: never defers), large-only (``ChatOpenAI`` / ``OpenAILike``
against the server), and the cascade at the first-token-margin threshold that defers
``--deferral-rate`` of the calibration split. Prints a markdown table per framework and writes
``benchmarks/results/rag_<framework>.json``.
"""

from __future__ import annotations

import argparse
import random
import re
from collections.abc import Callable
from typing import Any

from benchmarks import harness
from benchmarks.studies.workloads_common import (
    Tally,
    document_text,
    llama_server,
    load_countries,
    markdown_table,
    normalise,
    save,
    split_countries,
    timed,
)

SEED = 10
PROMPT = ("Answer the question using only the context. Reply with the answer only, in a few words.\n\n"
          "Context:\n{context}\n\nQuestion: {question}\nAnswer:")
TEMPLATES: dict[str, tuple[str, Callable[[dict[str, Any]], list[str]]]] = {
    "capital": ("What is the capital of {name}?", lambda r: [r["capital"]]),
    "currency": ("What is the currency code of {name}?", lambda r: [r["currencies"][0]]),
    "subregion": ("In which subregion is {name}?", lambda r: [r["subregion"]]),
    "calling": ("What is the calling code of {name}?", lambda r: [r["callingCodes"][0]]),
    "tld": ("What is the top-level domain of {name}?", lambda r: [r["tld"][0], r["tld"][0].lstrip(".")]),
    "demonym": ("What is the demonym of {name}?", lambda r: [r["demonym"]]),
}


def make_questions(records: list[dict[str, Any]], n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` (question, gold answers, country) items drawn with ``seed`` from the package records."""
    rng = random.Random(seed)
    pairs = [(r, kind) for r in records for kind, (_, gold) in TEMPLATES.items() if all(gold(r)) and gold(r)[0]]
    rng.shuffle(pairs)
    return [{"question": TEMPLATES[kind][0].format(name=r["name"]), "gold": TEMPLATES[kind][1](r),
             "kind": kind, "country": r["name"]} for r, kind in pairs[:n]]


def is_correct(answer: str, gold: list[str]) -> bool:
    text = normalise(answer)
    return any(re.search(r"(?<!\w)" + re.escape(normalise(g)) + r"(?!\w)", text) for g in gold if normalise(g))


# -- LangChain -----------------------------------------------------------------------------------------
def langchain_runner(records: list[dict[str, Any]], top_k: int) -> Callable[[Any, Tally, list[dict]], None]:
    from langchain_core.callbacks import BaseCallbackHandler
    from langchain_core.documents import Document
    from langchain_core.embeddings import Embeddings
    from langchain_core.output_parsers import StrOutputParser
    from langchain_core.prompts import ChatPromptTemplate
    from langchain_core.runnables import RunnablePassthrough
    from langchain_core.vectorstores import InMemoryVectorStore

    from llamaindex_cascade.embeddings import HashingEmbedding

    class Hashing(Embeddings):
        """The same hashed bag of words for LangChain's vector store."""

        def __init__(self) -> None:
            self.inner = HashingEmbedding(dim=4096)

        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return [self.inner.get_text_embedding(t) for t in texts]

        def embed_query(self, text: str) -> list[float]:
            return self.inner.get_query_embedding(text)

    class Calls(BaseCallbackHandler):
        def __init__(self) -> None:
            self.messages: list[Any] = []

        def on_llm_end(self, response: Any, **kwargs: Any) -> None:
            self.messages.append(response.generations[0][0].message)

    store = InMemoryVectorStore(Hashing())
    store.add_documents([Document(document_text(r), metadata={"country": r["name"]}) for r in records])
    retriever = store.as_retriever(search_kwargs={"k": top_k})
    prompt = ChatPromptTemplate.from_messages([("human", PROMPT)])

    def run(llm: Any, tally: Tally, items: list[dict]) -> None:
        from tqdm import tqdm

        chain = ({"context": retriever | (lambda docs: "\n\n".join(d.page_content for d in docs)),
                  "question": RunnablePassthrough()} | prompt | llm | StrOutputParser())
        for item in tqdm(items, desc=tally.name, unit="q"):
            calls = Calls()
            started = tally.seconds
            with timed(tally):
                answer = chain.invoke(item["question"], config={"callbacks": [calls]})
            hit = item["country"] in {d.metadata["country"] for d in retriever.invoke(item["question"])}
            metas = [_lc_meta(m) for m in calls.messages]
            if any(meta is not None for meta, _ in metas):  # the wrapped large model's own end event: not a call
                metas = [(meta, usage) for meta, usage in metas if meta is not None]
            _book(tally, item, answer, hit, metas, tally.seconds - started)

    return run


def _lc_meta(message: Any) -> tuple[dict | None, tuple[int, int] | None]:
    meta = message.response_metadata.get("cascade")
    usage = message.usage_metadata or {}
    return meta, (usage.get("input_tokens", 0), usage.get("output_tokens", 0))


# -- LlamaIndex ----------------------------------------------------------------------------------------
def llamaindex_runner(records: list[dict[str, Any]], top_k: int) -> Callable[[Any, Tally, list[dict]], None]:
    from llama_index.core import Document, PromptTemplate, VectorStoreIndex
    from llama_index.core.instrumentation import get_dispatcher
    from llama_index.core.instrumentation.event_handlers import BaseEventHandler
    from llama_index.core.instrumentation.events.llm import LLMChatEndEvent

    from llamaindex_cascade.embeddings import HashingEmbedding

    class Calls(BaseEventHandler):
        responses: list[Any] = []

        def handle(self, event: Any, **kwargs: Any) -> None:
            if isinstance(event, LLMChatEndEvent) and event.response is not None:
                self.responses.append(event.response)

    calls = Calls()
    get_dispatcher().add_event_handler(calls)
    index = VectorStoreIndex.from_documents(
        [Document(text=document_text(r), metadata={"country": r["name"]}) for r in records],
        embed_model=HashingEmbedding(dim=4096))
    template = PromptTemplate(PROMPT.replace("{context}", "{context_str}").replace("{question}", "{query_str}"))

    def run(llm: Any, tally: Tally, items: list[dict]) -> None:
        from tqdm import tqdm

        engine = index.as_query_engine(llm=llm, similarity_top_k=top_k, text_qa_template=template,
                                       response_mode="compact")
        for item in tqdm(items, desc=tally.name, unit="q"):
            calls.responses.clear()
            started = tally.seconds
            with timed(tally):
                response = engine.query(item["question"])
            hit = item["country"] in {n.metadata["country"] for n in response.source_nodes}
            metas = []
            for r in list(calls.responses):
                if "cascade" in r.additional_kwargs:
                    metas.append((r.additional_kwargs["cascade"], None))
                else:  # the plain OpenAI-compatible LLM: its usage comes with the raw response
                    usage = getattr(r.raw, "usage", None)
                    metas.append((None, (getattr(usage, "prompt_tokens", 0), getattr(usage, "completion_tokens", 0))))
            if any(meta is not None for meta, _ in metas):
                metas = [(meta, usage) for meta, usage in metas if meta is not None]
            _book(tally, item, str(response), hit, metas, tally.seconds - started)

    return run


def _book(tally: Tally, item: dict, answer: str, hit: bool, metas: list, seconds: float) -> None:
    ok = is_correct(answer, item["gold"])
    tally.items += 1
    tally.correct += int(ok)
    cost_before = tally.cost
    scores, small_prompt = [], 0
    for meta, usage in metas:
        tally.add_call(meta, usage)
        if meta is not None:
            scores.append(meta["score"])
            small_prompt += meta["runs"][0]["input_tokens"]
    tally.rows.append({**item, "answer": answer.strip(), "correct": ok, "retrieved": hit, "scores": scores,
                       "seconds": seconds, "cost": tally.cost - cost_before, "small_prompt_tokens": small_prompt})


def derived_cascade(small: Tally, large: Tally, threshold: float, name: str) -> Tally:
    """The cascade at ``threshold`` replayed from the logged single-tier runs (greedy decoding on both tiers).

    A question is kept when its small-tier first-token margin clears the threshold (then: the small run's
    answer, time and cost), else deferred (the large run's answer and cost plus the small tier's prompt
    and one token; time: the large run's plus the *whole* small run's, an upper bound).
    """
    from cascade_core.backends.defaults import DEFAULT_PRICES
    from cascade_core.types import Usage

    out = Tally(name, threshold=threshold, notes=["replayed from the small-only and large-only runs"])
    for s_row, l_row in zip(small.rows, large.rows, strict=True):
        kept = all(score is not None and score >= threshold for score in s_row["scores"])
        out.items += 1
        out.llm_calls += 1
        out.all_large_cost += l_row["cost"]
        if kept:
            out.correct += int(s_row["correct"])
            out.small_calls += 1
            out.seconds += s_row["seconds"]
            out.cost += s_row["cost"]
        else:
            out.correct += int(l_row["correct"])
            out.deferred_calls += 1
            out.seconds += s_row["seconds"] + l_row["seconds"]
            out.cost += l_row["cost"] + DEFAULT_PRICES["small"].cost(Usage(s_row["small_prompt_tokens"], 1))
        out.rows.append({"question": s_row["question"], "kept": kept, "correct": out.correct})
    return out


# -- the run -------------------------------------------------------------------------------------------
def build_llms(framework: str, small: Any, server: Any, max_tokens: int) -> tuple[Callable[[float], Any], Any]:
    """(cascade factory by threshold, large-only LLM) for ``framework``."""
    from cascade_core.backends.defaults import DEFAULT_PRICES

    if framework == "langchain":
        from langchain_openai import ChatOpenAI

        from langchain_cascade import ChatCascade

        def large_lc() -> Any:
            return ChatOpenAI(base_url=server.base_url, model=server.alias, api_key="x", temperature=0,
                              max_tokens=max_tokens, timeout=300, max_retries=1)

        def cascade(threshold: float) -> Any:
            return ChatCascade(small=small, large=large_lc(), threshold=threshold, max_tokens=max_tokens,
                               small_pricing=DEFAULT_PRICES["small"], large_pricing=DEFAULT_PRICES["large"])

        return cascade, large_lc()
    from llama_index.llms.openai_like import OpenAILike

    from llamaindex_cascade import CascadeLLM

    def large_li() -> Any:
        return OpenAILike(model=server.alias, api_base=server.base_url, api_key="x", temperature=0.0,
                          max_tokens=max_tokens, is_chat_model=True, is_function_calling_model=True,
                          context_window=4096, timeout=300, max_retries=1)

    def cascade_li(threshold: float) -> Any:
        return CascadeLLM(small=small, large=large_li(), threshold=threshold,
                          small_pricing=DEFAULT_PRICES["small"], large_pricing=DEFAULT_PRICES["large"])

    return cascade_li, large_li()


def run_framework(framework: str, args: argparse.Namespace, small: Any, server: Any) -> dict[str, Any]:
    from cascade_core.decide.thresholds import calibrate_threshold

    records = load_countries()
    calib_countries, test_countries = split_countries(records, SEED, 60)
    calib = make_questions(calib_countries, args.calibration, SEED + 1)
    test = make_questions(test_countries, args.limit, SEED + 2)
    runner = (langchain_runner if framework == "langchain" else llamaindex_runner)(records, args.top_k)
    cascade_llm, large_llm = build_llms(framework, small, server, args.max_tokens)

    calibration = Tally(f"{framework} calibration (small, scores only)")
    runner(cascade_llm(0.0), calibration, calib)
    scores = [s for row in calibration.rows for s in row["scores"] if s is not None]
    threshold = float(calibrate_threshold(scores, deferral_rate=args.deferral_rate))
    tallies = [Tally("small only (SmolLM2-135M)", threshold=0.0), Tally("large only (Qwen-1.5B, llama.cpp)"),
               Tally(f"cascade, calibrated to {args.deferral_rate:.0%} deferral", threshold=threshold)]
    runner(cascade_llm(0.0), tallies[0], test)
    runner(large_llm, tallies[1], test)
    if args.measure_cascade:
        runner(cascade_llm(threshold), tallies[2], test)
    else:
        tallies[2] = derived_cascade(tallies[0], tallies[1], threshold, tallies[2].name + " (replayed)")
    retrieval = sum(r["retrieved"] for r in tallies[1].rows) / max(1, len(test))
    table = markdown_table(tallies, "accuracy")
    print(f"\n## RAG, {framework}: {len(test)} test questions, {len(calib)} calibration questions, "
          f"retrieval hit rate (gold country in top-{args.top_k}) {retrieval:.2f}\n\n{table}\n", flush=True)
    payload = {"framework": framework, "test_questions": len(test), "calibration_questions": len(calib),
               "top_k": args.top_k, "max_tokens": args.max_tokens, "retrieval_hit_rate": retrieval,
               "threshold": threshold, "table": table, "summaries": [t.summary() for t in tallies],
               "rows": {t.name: t.rows for t in [calibration, *tallies]}}
    if not args.tiny:
        print("wrote", save(f"rag_{framework}", payload))
    return payload


def main(argv: list[str] | None = None) -> int:
    parser = harness.parser(
        __doc__, threads=None, quiet=False,
        tiny="6 test + 6 calibration questions, nothing saved (with --limit/--calibration: those sizes)")
    parser.add_argument("--framework", choices=["langchain", "llamaindex", "both"], default="both")
    parser.add_argument("--limit", type=int, default=None, help="test questions (default 100)")
    parser.add_argument("--calibration", type=int, default=None, help="calibration questions (default 40)")
    parser.add_argument("--deferral-rate", type=float, default=0.3, help="target deferral rate on calibration")
    parser.add_argument("--top-k", type=int, default=2, help="documents retrieved per question")
    parser.add_argument("--measure-cascade", action="store_true",
                        help="run the calibrated cascade for real too (default: replay it from the two single-tier runs)")
    parser.add_argument("--max-tokens", type=int, default=16, help="answer length cap, both tiers")
    args = parser.parse_args(argv)
    args.limit = args.limit or (6 if args.tiny else 100)
    args.calibration = args.calibration or (6 if args.tiny else 40)
    harness.set_threads(1)
    from cascade_core.backends.defaults import default_small_model

    small = default_small_model(max_new_tokens=args.max_tokens)
    frameworks = ["langchain", "llamaindex"] if args.framework == "both" else [args.framework]
    with llama_server("large") as server:
        for framework in frameworks:
            run_framework(framework, args, small, server)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
