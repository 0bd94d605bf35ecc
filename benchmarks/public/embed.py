"""The small models' pooled prompt embeddings for the public tasks: what a pre-generation router reads.

    python -m benchmarks.public.embed --fit 40 --test 100

The embedding of a prompt is the mean of the model's last-layer hidden states over every prompt
token (one prefill, no token generated) — computed with an fp32 transformers copy of the same GGUF
the llama.cpp server runs. Every prompt of a task starts with the same few-shot block, so that block
is run once and its key/value cache reused: the embedding is ``(sum over the block + sum over the
question) / (tokens of both)``, checked against a full forward pass on the first prompts of each task.
Writes ``runs/public/<task>/<tier>.prompt_embedding.npz`` (``ids``, ``embedding``, ``seconds``).
"""

from __future__ import annotations

import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from benchmarks.public import harness  # noqa: E402

CHECKED = 2  # prompts per task compared with a full forward pass


def _shared_head(prompts: list[str]) -> str:
    """The longest common prefix of ``prompts`` cut back to just before the last blank line (a token boundary)."""
    head = os.path.commonprefix(prompts)
    cut = head.rfind("\n\n")
    return head[:cut] if cut >= 0 else ""  # "...answer" / "\n\nQ: ..." splits cleanly; "\n\n" / "On" may merge


def embed_task(model, tokenizer, records: list[dict], torch) -> tuple[np.ndarray, list[float]]:
    prompts = [r["prompt"] for r in records]
    head_ids = tokenizer(_shared_head(prompts), return_tensors="pt", add_special_tokens=False).input_ids
    with torch.no_grad():
        if head_ids.shape[1]:
            out = model(head_ids, use_cache=True, output_hidden_states=True)
            past, head_sum = out.past_key_values, out.hidden_states[-1][0].sum(0)
        else:
            past, head_sum = None, 0.0
        n_head = head_ids.shape[1]
        rows, seconds = [], []
        for index, prompt in enumerate(prompts):
            started = time.perf_counter()
            ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False).input_ids
            if n_head and not torch.equal(ids[0, :n_head], head_ids[0]):
                raise RuntimeError("the shared block tokenises differently inside a prompt")
            rest = ids[:, n_head:]
            out = model(rest, past_key_values=past, use_cache=True, output_hidden_states=True)
            if past is not None:
                past.crop(-rest.shape[1])  # back to the shared block
            total = head_sum + out.hidden_states[-1][0].sum(0)
            embedding = (total / ids.shape[1]).double().numpy()
            seconds.append(time.perf_counter() - started)
            if index < CHECKED:
                full = model(ids, output_hidden_states=True).hidden_states[-1][0].mean(0).double().numpy()
                if not np.allclose(full, embedding, atol=1e-3, rtol=1e-3):
                    raise RuntimeError(f"cached-prefix embedding differs from a full pass by {np.abs(full - embedding).max()}")
            rows.append(embedding)
    return np.stack(rows), seconds


def main(argv: list[str] | None = None) -> int:
    args = harness.parser(__doc__).parse_args(argv)
    import torch

    from cascade_core.backends.embedded import load_embedded

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    for name in harness.SMALL_TIERS:
        model, tokenizer = load_embedded(harness.TIERS[name][0])
        model.eval()
        for task in harness.task_names(args):
            out = harness.task_folder(args.runs, task) / f"{name}.prompt_embedding.npz"
            records = [r for recs in harness.splits(task, args.fit, args.test).values() for r in recs]
            if out.exists() and set(np.load(out)["ids"]) >= {r["id"] for r in records}:
                continue
            emb, seconds = embed_task(model, tokenizer, records, torch)
            out.parent.mkdir(parents=True, exist_ok=True)
            np.savez(out, ids=np.array([r["id"] for r in records]), embedding=emb, seconds=np.array(seconds))
            print(f"{name} {task}: {len(records)} prompts, {np.mean(seconds):.3f} s each (question part)", flush=True)
        del model
    print(f"wall time {time.perf_counter() - started:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
