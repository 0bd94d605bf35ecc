"""The small models' pooled prompt embeddings for the public tasks: what a pre-generation router reads.

    python -m benchmarks.public.embed --fit 100 --test 300

Each small tier's GGUF runs on a llama.cpp server in embedding mode (``serve_embedded(...,
embedding=True)``: the mean of the last hidden states over the input's tokens — one prefill, no token
generated). Every prompt of a task opens with the same few-shot block, which says nothing about the
query, so the router embeds the query's own part (the prompt after that shared block), as RouteLLM's
routers embed the user's query. Inputs go in batches of :data:`BATCH` (throughput); the first
:data:`TIMED` are also sent alone, and their seconds are the router's cost per query. Writes
``runs/public/<task>/<tier>.prompt_embedding.npz`` (``ids``, ``embedding``, ``tokens``, ``seconds`` of
the single-query requests); a task whose file already covers every id is skipped.
"""

from __future__ import annotations

import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from benchmarks.public import harness  # noqa: E402


def shared_head(prompts: list[str]) -> str:
    """The longest common prefix of ``prompts``, cut back to its last blank line (the end of the last shot)."""
    head = os.path.commonprefix(prompts)
    cut = head.rfind("\n\n")
    return head[: cut + 2] if cut >= 0 else ""


def query_part(prompt: str, head: str) -> str:
    """What the router embeds: the prompt without the few-shot block every prompt shares."""
    return prompt[len(head):] if head and prompt.startswith(head) else prompt


BATCH = 16  # inputs per request: llama.cpp prefills them as one batch
TIMED = 20  # queries also embedded alone, one request each: the router's cost per query


def embed_texts(base_url: str, alias: str, texts: list[str], quiet: bool, desc: str) -> tuple[np.ndarray, list[int], list[float]]:
    """Embeddings and token counts of ``texts`` (batched requests), and the seconds of single-query requests
    for the first :data:`TIMED` (what one routed query costs; batches would understate it)."""
    import httpx
    from tqdm.auto import tqdm

    vectors: list[list[float]] = []
    tokens: list[int] = []
    with httpx.Client(timeout=300) as client:
        def post(inputs: list[str]) -> dict:
            reply = client.post(base_url + "/embeddings", json={"input": inputs, "model": alias})
            reply.raise_for_status()
            return reply.json()

        bar = tqdm(total=len(texts), desc=desc, unit="q", disable=quiet)
        for start in range(0, len(texts), BATCH):
            body = post(texts[start:start + BATCH])
            rows = sorted(body["data"], key=lambda d: d["index"])
            vectors += [row["embedding"] for row in rows]
            bar.update(len(rows))
        bar.close()
        seconds = []
        for text in texts[:TIMED]:
            started = time.perf_counter()
            body = post([text])
            seconds.append(time.perf_counter() - started)
        for text in texts:  # the server's count for one input (the batch reply only totals them)
            tokens.append(len(client.post(base_url.removesuffix("/v1") + "/tokenize", json={"content": text}).json()["tokens"]))
    return np.asarray(vectors, dtype=np.float32), tokens, seconds


def main(argv: list[str] | None = None) -> int:
    p = harness.parser(__doc__)
    p.add_argument("--tiers", nargs="+", choices=harness.SMALL_TIERS, default=list(harness.SMALL_TIERS))
    args = p.parse_args(argv)
    from cascade_core.backends.llamacpp import serve_embedded

    started = time.perf_counter()
    for name in args.tiers:
        server = None
        for task in harness.task_names(args):
            out = harness.task_folder(args.runs, task) / f"{name}.prompt_embedding.npz"
            records = [r for recs in harness.splits(task, args.fit, args.test).values() for r in recs]
            if out.exists() and set(np.load(out)["ids"]) >= {r["id"] for r in records}:
                continue
            server = server or serve_embedded(harness.TIERS[name][0], threads=args.threads, n_ctx=4096, embedding=True)
            head = shared_head([r["prompt"] for r in records])
            texts = [query_part(r["prompt"], head) for r in records]
            emb, tokens, seconds = embed_texts(server.base_url, server.alias, texts, args.quiet, f"{name} {out.parent.name}")
            out.parent.mkdir(parents=True, exist_ok=True)
            np.savez(out, ids=np.array([r["id"] for r in records]), embedding=emb, tokens=np.array(tokens),
                     seconds=np.array(seconds))
            print(f"{name} {task}: {len(records)} queries, {np.mean(tokens):.0f} tokens, {np.mean(seconds):.3f} s each",
                  flush=True)
        if server is not None:
            server.stop()
    print(f"wall time {time.perf_counter() - started:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
