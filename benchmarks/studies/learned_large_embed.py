"""Paper A's other embedding: the *large* model's intermediate layer, as features of the deferral rule.

When the large tier is local, a partial forward pass over the prompt (the first ``L`` of its layers, no
generation) gives a representation of what the large model makes of the question. Paper A adds it to
the Post-Hoc features. This script measures whether it helps here, and what it costs:

1. Loads Qwen2.5-Coder-1.5B-Instruct (the embedded large tier, 28 layers) in fp32 transformers and runs
   the first ``max(--layers)`` layers over each world_facts prompt, exactly as the large tier sees it
   (its chat template). It keeps, per layer in ``--layers``, the hidden state of the prompt's last token
   (the position that will predict the answer) and the mean over the prompt's tokens. Resumable: one
   ``.npz`` per split under ``--runs``. The seconds per prompt of the partial pass and of a full forward
   pass over the same prompt are measured on the same machine in the same run.
2. For each (layer, pooling), the large embedding takes the place of ``Generation.embedding`` in the
   llama.cpp caches of ``scripts/reproduce_tables.sh`` (small: SmolLM2 on llama.cpp; large answers and
   qualities as collected), and ``learned_embed.analyse`` chooses by 5-fold × 3 CV on the fit split among
   every single signal, Post-Hoc-Quantile logistic rules and Post-Hoc + large-embedding logistic rules
   (full or PCA-reduced; several C; three targets), then measures everything on the test split.

Run::

    OMP_NUM_THREADS=1 python -m benchmarks.studies.learned_large_embed --data-dir runs/reproduce \\
        --runs runs/large_embed --out benchmarks/results/learned_large_embed.json
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import harness
from benchmarks.studies.learned_embed import _print, analyse, world_facts_cache
from cascade_core.errors import DataFormatError
from cascade_core.evaluation.collect import CachedExample, load_cache, read_jsonl

NOTE = ("small tier: SmolLM2-135M-Instruct on llama.cpp (the reproduce caches); embedding = the LARGE model's "
        "(Qwen2.5-Coder-1.5B, fp32 transformers) hidden state at layer {layer} of 28 over its chat-templated "
        "prompt, pooled by {pool}; no small-model embedding")


def embed_prompts(records: Sequence[dict[str, Any]], layers: Sequence[int], out: Path, threads: int) -> dict[str, Any]:
    """Per-record large-model embeddings at ``layers`` (last token and mean), cached in ``out`` (.npz)."""
    if out.exists():
        saved = np.load(out)
        if list(saved["ids"]) == [str(r["id"]) for r in records] and list(saved["layers"]) == list(layers):
            return {k: saved[k] for k in saved.files}

    from cascade_core.backends.embedded import load_embedded

    harness.set_threads(threads)
    model, tokenizer = load_embedded("large")
    all_layers = model.model.layers
    captured: dict[int, Any] = {}

    def keep(layer: int) -> Any:  # the decoder layer's own output (hidden_states[-1] of a partial pass is normed)
        def hook(_module: Any, _inputs: Any, output: Any) -> None:
            captured[layer] = output[0] if isinstance(output, tuple) else output
        return hook

    handles = [all_layers[layer - 1].register_forward_hook(keep(layer)) for layer in layers]
    try:
        result = _partial_passes(model, tokenizer, records, layers, captured)
    finally:
        for handle in handles:
            handle.remove()
        model.model.layers = all_layers
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, **result)
    return result


def _partial_passes(model: Any, tokenizer: Any, records: Sequence[dict[str, Any]], layers: Sequence[int],
                    captured: dict[int, Any]) -> dict[str, Any]:
    """Run the first ``max(layers)`` decoder layers over each chat-templated prompt; pool what the hooks caught."""
    import torch
    from tqdm.auto import tqdm

    body, depth = model.model, max(layers)
    all_layers = body.layers
    last: dict[int, list[np.ndarray]] = {layer: [] for layer in layers}
    mean: dict[int, list[np.ndarray]] = {layer: [] for layer in layers}
    partial_s, full_s, tokens = [], [], []
    for i, record in enumerate(tqdm(records, desc=f"large layers 1..{depth}", unit="prompt")):
        text = tokenizer.apply_chat_template([{"role": "user", "content": record["prompt"]}], tokenize=False,
                                             add_generation_prompt=True)
        ids = tokenizer(text, return_tensors="pt")
        tokens.append(int(ids["input_ids"].shape[1]))
        with torch.inference_mode():
            body.layers = all_layers[:depth]  # the partial pass: only the first `depth` decoder layers run
            start = time.perf_counter()
            body(**ids)
            partial_s.append(time.perf_counter() - start)
            hidden = dict(captured)
            body.layers = all_layers
            if i % 10 == 0:  # the full forward pass over the same prompt, for the cost ratio
                start = time.perf_counter()
                full = model(**ids, output_hidden_states=True).hidden_states
                full_s.append(time.perf_counter() - start)
                for layer in layers:  # the partial pass must give the full pass's states at every kept layer
                    if not torch.allclose(hidden[layer], full[layer], atol=1e-4):
                        raise RuntimeError(f"partial pass differs from the full pass at layer {layer}")
        for layer in layers:
            h = hidden[layer][0].float().numpy()
            last[layer].append(h[-1])
            mean[layer].append(h.mean(0))
    result = {"ids": np.asarray([str(r["id"]) for r in records]), "layers": np.asarray(list(layers)),
              "partial_seconds": np.asarray(partial_s), "full_seconds": np.asarray(full_s),
              "prompt_tokens": np.asarray(tokens)}
    for layer in layers:
        result[f"last_{layer}"] = np.stack(last[layer])
        result[f"mean_{layer}"] = np.stack(mean[layer])
    return result


def with_embedding(examples: Sequence[CachedExample], ids: Sequence[str], vectors: np.ndarray) -> list[CachedExample]:
    """``examples`` with each id's vector as its small generation's ``embedding`` (a missing id raises)."""
    by_id = {str(i): v for i, v in zip(ids, vectors)}
    missing = [e.id for e in examples if e.id not in by_id]
    if missing:
        raise DataFormatError(f"{len(missing)} cached examples have no large embedding, e.g. {missing[:3]}")
    return [dataclasses.replace(e, small=dataclasses.replace(e.small, embedding=by_id[e.id])) for e in examples]


def main(argv: Sequence[str] | None = None) -> int:
    p = harness.parser(__doc__, threads=1, threads_help="torch threads of the large model", tiny=None, quiet=False)
    p.add_argument("--data-dir", type=Path, required=True, help="world_facts.{fit,test}.jsonl and their llama.cpp caches")
    p.add_argument("--runs", type=Path, default=Path("runs/large_embed"))
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--layers", type=int, nargs="+", default=[7, 14, 21])
    p.add_argument("--pool", nargs="+", default=["last", "mean"], choices=["last", "mean"])
    p.add_argument("--components", type=int, nargs="*", default=[8, 32], help="PCA sizes (the full width is always tried)")
    p.add_argument("--cv", type=int, default=5)
    p.add_argument("--cv-repeats", type=int, default=3)
    p.add_argument("--resamples", type=int, default=200)
    args = p.parse_args(argv)
    caches, embeddings = {}, {}
    for split in ("fit", "test"):
        try:
            caches[split] = load_cache(world_facts_cache(args.data_dir, split))
        except DataFormatError as err:
            p.error(str(err))
        records = [r for _, r in read_jsonl(args.data_dir / f"world_facts.{split}.jsonl")]
        embeddings[split] = embed_prompts(records, args.layers, args.runs / f"world_facts.{split}.npz", args.threads)
    timing = np.concatenate([embeddings[s]["partial_seconds"] for s in ("fit", "test")])
    full = np.concatenate([embeddings[s]["full_seconds"] for s in ("fit", "test")])
    large_s = np.asarray([e.large_seconds for s in ("fit", "test") for e in caches[s]])
    cost = {"partial_pass_s_per_prompt": round(float(timing.mean()), 4),
            "full_forward_s_per_prompt": round(float(full.mean()), 4) if full.size else None,
            "large_tier_answer_s_per_query_llamacpp": round(float(large_s.mean()), 4),
            "prompt_tokens_mean": round(float(np.concatenate([embeddings[s]["prompt_tokens"] for s in ("fit", "test")]).mean()), 1),
            "depth": int(max(args.layers))}
    print("cost:", cost)
    reports: dict[str, Any] = {"cost": cost, "variants": {}}
    for layer in args.layers:
        for pool in args.pool:
            key = f"{pool}_{layer}"
            fit = with_embedding(caches["fit"], embeddings["fit"]["ids"], embeddings["fit"][key])
            test = with_embedding(caches["test"], embeddings["test"]["ids"], embeddings["test"][key])
            report = analyse(fit, test, cv=args.cv, repeats=args.cv_repeats, resamples=args.resamples,
                             components=[None, *args.components])
            report["note"] = NOTE.format(layer=layer, pool="the prompt's last token" if pool == "last" else "the mean over the prompt")
            _print(report)
            reports["variants"][key] = report
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(reports, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
