"""The harness every benchmark script imports: shared options, thread count, paths, the small model, timing.

Every speed benchmark prints ratios measured in one run on this machine (absolute times are noise on
a shared machine). ``--tiny`` swaps the real embedded SmolLM2-135M for a tiny from-config model so a
smoke test can run each script in a second; its numbers mean nothing. Scripts run as modules from
the repository root: ``python -m benchmarks.speed.bench_overhead --help``.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
"""The repository root (``runs/`` and ``docs/figures/`` live below it)."""
RESULTS_DIR = ROOT / "benchmarks" / "results"
"""Where the studies write their results JSON."""
TINY_HELP = "tiny from-config model (smoke test; numbers meaningless)"


def parser(
    doc: str | None,
    threads: int | None = 1,
    *,
    threads_help: str = "torch intra-op threads",
    tiny: str | None = TINY_HELP,
    quiet: bool = True,
) -> argparse.ArgumentParser:
    """An argument parser showing the script's docstring, with the options benchmarks share.

    Args:
        doc: the script's ``__doc__`` (shown verbatim by ``--help``, usage lines included).
        threads: default of ``--threads``; ``None`` leaves the option out.
        threads_help: what ``--threads`` sets (torch threads, llama.cpp server threads, ...).
        tiny: help of ``--tiny`` (a smoke run); ``None`` leaves the option out.
        quiet: add ``--quiet`` (no progress bars).
    """
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    if tiny is not None:
        p.add_argument("--tiny", action="store_true", help=tiny)
    if threads is not None:
        p.add_argument("--threads", type=int, default=threads, help=f"{threads_help} (default %(default)s)")
    if quiet:
        p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def add_run_size(p: argparse.ArgumentParser, *, queries: int, max_new_tokens: int, repeats: int = 3) -> None:
    """Add ``--queries``, ``--max-new-tokens`` and ``--repeats`` (runs per query; the fastest is kept)."""
    p.add_argument("--queries", type=int, default=queries, help="prompts (default %(default)s)")
    p.add_argument("--max-new-tokens", type=int, default=max_new_tokens, help="answer length cap (default %(default)s)")
    p.add_argument("--repeats", type=int, default=repeats, help="runs per prompt, the fastest kept (default %(default)s)")


def parse_and_pin(p: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """Parse ``argv`` and pin torch to ``--threads`` threads: how a benchmark timing torch starts."""
    args = p.parse_args(argv)
    set_threads(args.threads)
    return args


def set_threads(n: int) -> None:
    """Pin torch (and OpenMP) to ``n`` threads, so runs are comparable."""
    os.environ["OMP_NUM_THREADS"] = str(n)
    import torch

    torch.set_num_threads(n)


def small_model(tiny: bool, **kwargs: Any) -> Any:
    """The small tier: the embedded SmolLM2-135M, or a tiny from-config Llama with ``tiny``."""
    kwargs.setdefault("prompt_format", "completion")
    if tiny:
        from cascade_core.backends.transformers import TransformersModel
        from cascade_core.testing import tiny_model, tiny_tokenizer

        tok = tiny_tokenizer()
        return TransformersModel(tiny_model(tok, layers=2), tok, name="tiny", **kwargs)
    from cascade_core.backends.defaults import default_small_model

    return default_small_model(**kwargs)


def prompts(tiny: bool, n: int, style: str = "few-shot") -> list[str]:
    """``n`` world-facts prompts: 2-shot (~45 tokens) or ``"question"`` only (~15 tokens).

    The tiny model gets short sentences from its vocabulary instead.
    """
    if tiny:
        base = ["the cat sat on the", "paris is the capital of", "what is the capital of spain ?", "the dog ate"]
        return [base[i % len(base)] for i in range(n)]
    from cascade_core.evaluation.datasets.world_facts import few_shot_prompt, load_world_facts

    examples = load_world_facts("test", limit=n)
    if style == "question":
        return [f"Q: {e.question}\nA:" for e in examples]
    return [few_shot_prompt(e) for e in examples]


def seconds(fn: Callable[..., Any], *args: Any) -> float:
    """Wall time of one call ``fn(*args)``."""
    started = time.perf_counter()
    fn(*args)
    return time.perf_counter() - started


def machine() -> str:
    """One line describing this machine and the torch set-up."""
    import platform

    import torch

    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__} "
        f"({torch.get_num_threads()} thread(s))"
    )
