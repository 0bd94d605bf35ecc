"""The public benchmark suite's one harness: tiers on llama.cpp servers, per-tier generation caches, argparse.

Every model runs on a llama.cpp server the library starts on 127.0.0.1 (``serve_embedded``), with an
explicit thread count; the tiers are used one at a time, so two model processes never compete for
the cores. Each tier's answers are cached per task and split as JSONL (one line per example:
the generation with its per-token log-probs, the seconds it took, its quality), resumable: ids
already cached are skipped, a cut-off last line is dropped. The caches of a (small, large) pair are
then joined into :class:`~cascade_core.evaluation.collect.CachedExample` files that ``cascade fit`` /
``cascade eval`` read unchanged.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RUNS = Path(os.environ.get("CASCADE_PUBLIC_RUNS", "runs/public"))

#: name -> (embedded tier, display name, role)
TIERS: dict[str, tuple[str, str, str]] = {
    "smollm2": ("small", "SmolLM2-135M", "small"),
    "qwen05": ("medium", "Qwen2.5-Coder-0.5B", "small"),
    "qwen15": ("large", "Qwen2.5-Coder-1.5B", "large"),
}
#: parameters of each model (its model card): what a token costs it, for the benchmark's cost model
PARAMETERS: dict[str, float] = {"smollm2": 0.135e9, "qwen05": 0.494e9, "qwen15": 1.54e9}
SMALL_TIERS = ("smollm2", "qwen05")
LARGE_TIER = "qwen15"
TOP_K = 20  # the most an OpenAI-compatible server returns; covers every label's first token
MAX_NEW_TOKENS = 12
STOP = ("\n",)


def parser(doc: str | None) -> argparse.ArgumentParser:
    """The options every script of the suite shares (on top of the benchmarks' own ``--threads``/``--quiet``)."""
    from benchmarks import harness as shared

    p = shared.parser(doc, threads=1, threads_help="llama.cpp threads per server", tiny=None)
    p.add_argument("--tasks", nargs="*", help="BIG-bench task paths (default: the eight public tasks)")
    p.add_argument("--fit", type=int, default=40, help="fit (calibration-split) examples per task (default %(default)s)")
    p.add_argument("--test", type=int, default=100, help="test examples per task (default %(default)s)")
    p.add_argument("--runs", type=Path, default=RUNS, help="cache folder (default %(default)s)")
    return p


@dataclass(frozen=True)
class Workload:
    """How one task's prompts are sent and its answers scored.

    Attributes:
        prompt_format: ``"completion"`` (few-shot prompts on ``/v1/completions``) or ``"chat"``.
        max_new_tokens: The answer's token cap.
        stop: Stop strings.
        quality: A quality scorer spec for :func:`~cascade_core.evaluation.quality.resolve_quality_scorer`.
    """

    prompt_format: str = "completion"
    max_new_tokens: int = MAX_NEW_TOKENS
    stop: tuple[str, ...] = STOP
    quality: str = "auto"


#: the BIG-bench tasks' settings
BIGBENCH = Workload()
RAG_SEED = 11  # benchmarks.studies.rag_caches' question seed
#: the in-house workloads the suite also runs (docs/routing.md): world_facts' few-shot QA (the settings of
#: scripts/reproduce_tables.sh) and the RAG workload's one-sentence answers over a country's record
#: (benchmarks.studies.rag_caches)
INHOUSE: dict[str, Workload] = {
    "world_facts": Workload(max_new_tokens=10),
    "rag": Workload(prompt_format="chat", max_new_tokens=40, quality="benchmarks.studies.length_bias:quality"),
}


def workload(task: str) -> Workload:
    """The settings of ``task``: an in-house workload's, else the BIG-bench tasks'."""
    return INHOUSE.get(task, BIGBENCH)


def task_names(args: argparse.Namespace) -> list[str]:
    from cascade_core.evaluation.datasets.bigbench import PUBLIC_TASKS

    return list(args.tasks or PUBLIC_TASKS)


def task_folder(runs: Path, task: str) -> Path:
    return runs / task.replace("/", "__")


def splits(task: str, n_fit: int, n_test: int) -> dict[str, list[dict[str, Any]]]:
    """The records of the fit and test splits (the top of each split's fixed ranking; the RAG workload's
    questions are one seeded list, whose first ``n_fit`` are the fit split, as in ``rag_caches``)."""
    from cascade_core.evaluation.datasets.bigbench import bigbench_records

    if task == "world_facts":
        from cascade_core.evaluation.datasets.world_facts import load_world_facts, to_record

        return {split: [to_record(e) for e in load_world_facts(name, limit=n)]
                for split, name, n in (("fit", "calibration", n_fit), ("test", "test", n_test))}
    if task == "rag":
        from benchmarks.studies.length_bias import build_records

        records = build_records(n_fit + n_test, RAG_SEED)
        return {"fit": records[:n_fit], "test": records[n_fit:]}
    return {"fit": bigbench_records(task, "calibration", limit=n_fit), "test": bigbench_records(task, "test", limit=n_test)}


_SERVERS: dict[str, Any] = {}


def server(name: str, threads: int, n_ctx: int = 4096) -> Any:
    """The llama.cpp server of tier ``name`` (started once per process, with the first call's ``n_ctx``)."""
    from cascade_core.backends.llamacpp import serve_embedded

    if name not in _SERVERS:
        _SERVERS[name] = serve_embedded(TIERS[name][0], threads=threads, n_ctx=n_ctx)
    return _SERVERS[name]


def model(name: str, threads: int, prompt_format: str = "completion", max_new_tokens: int = MAX_NEW_TOKENS) -> Any:
    """An ``OpenAIModel`` of tier ``name`` on its server (small tiers record the top-k per token)."""
    role = TIERS[name][2]
    return server(name, threads).openai_model(
        top_k=TOP_K if role == "small" else 0, max_new_tokens=max_new_tokens, prompt_format=prompt_format,
    )


@dataclass
class TierCache:
    """One tier's answers on one task split: JSONL rows keyed by ``id``, appended as they finish."""

    path: Path

    def rows(self) -> dict[str, dict[str, Any]]:
        from cascade_core.evaluation.collect import drop_truncated_tail

        if not self.path.exists():
            return {}
        drop_truncated_tail(self.path)
        lines = self.path.read_text(encoding="utf-8").splitlines()
        return {row["id"]: row for row in map(json.loads, lines) if row}

    def append(self, row: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def run_tier(
    name: str, records: Sequence[dict[str, Any]], cache: TierCache, *, threads: int, settings: Workload = BIGBENCH,
    quiet: bool = False,
) -> dict[str, dict[str, Any]]:
    """Run tier ``name`` over every record not yet in ``cache`` with the task's ``settings``; return all rows by id."""
    from tqdm.auto import tqdm

    from cascade_core.evaluation.collect import generation_to_dict, run_large, run_small
    from cascade_core.evaluation.quality import resolve_quality_scorer
    from cascade_core.types import Request

    score = resolve_quality_scorer(settings.quality)
    rows = cache.rows()
    todo = [r for r in records if r["id"] not in rows]
    if not todo:
        return rows
    prompt_format = settings.prompt_format
    tier = model(name, threads, prompt_format, settings.max_new_tokens)
    small = TIERS[name][2] == "small"
    for record in tqdm(todo, desc=f"{name} {cache.path.parent.name}", unit="q", disable=quiet):
        request = Request.from_prompt(record["prompt"], max_new_tokens=settings.max_new_tokens, stop=settings.stop)
        started = time.perf_counter()
        if small:
            generation = run_small(tier, request)
            text, usage, gen = generation.text, generation.usage, generation_to_dict(generation)
        else:
            text, usage = run_large(tier, request)
            gen = None
        row = {"id": record["id"], "tier": name, "format": prompt_format, "text": text,
               "usage": [usage.input_tokens, usage.output_tokens], "seconds": time.perf_counter() - started,
               "quality": float(score(text, record)), "generation": gen}
        cache.append(row)
        rows[row["id"]] = row
    return rows


def label_first_tokens(name: str, labels: Sequence[str], threads: int) -> tuple[str, ...]:
    """The first token of ``" " + label`` for each label, as tier ``name``'s tokenizer splits it (the
    server's ``/tokenize``); labels sharing a first token are listed once, as ``cascade collect`` does."""
    import httpx

    out: list[str] = []
    for label in labels:
        reply = httpx.post(server(name, threads).url + "/tokenize",
                           json={"content": " " + label.strip(), "with_pieces": True}, timeout=30)
        reply.raise_for_status()
        pieces = reply.json()["tokens"]
        token = pieces[0]["piece"] if pieces else label
        if token.strip() and token not in out:
            out.append(token)
    return tuple(out)


def join(records: Iterable[dict[str, Any]], small_rows: dict[str, dict[str, Any]],
         large_rows: dict[str, dict[str, Any]], out: Path, label_tokens: tuple[str, ...] | None = None) -> Path:
    """Write the (small, large) pair's :class:`CachedExample` file for ``records``."""
    from cascade_core.evaluation.collect import CachedExample, generation_from_dict
    from cascade_core.types import Usage

    out.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    for record in records:
        s, g = small_rows[record["id"]], large_rows[record["id"]]
        labels = label_tokens if record.get("labels") else None
        lines.append(CachedExample(
            id=record["id"], record={k: v for k, v in record.items() if k != "prompt"},
            small=generation_from_dict(s["generation"]), large_text=g["text"],
            small_quality=s["quality"], large_quality=g["quality"], small_seconds=s["seconds"],
            large_seconds=g["seconds"], label_tokens=labels, large_usage=Usage(*g["usage"]),
        ).to_json())
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


def stop_servers() -> None:
    for srv in _SERVERS.values():
        srv.stop()
    _SERVERS.clear()
