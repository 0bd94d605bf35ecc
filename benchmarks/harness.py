"""Shared set-up for the benchmark scripts: thread count, the small model, prompts, timing.

Every benchmark prints ratios measured in one run on this machine (absolute times are noise on a
shared machine). ``--tiny`` swaps the real embedded SmolLM2-135M for a tiny from-config model so a
smoke test can run each script in a second; its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from typing import Any

# Before torch starts OpenMP: idle OpenMP threads sleep instead of spinning. With the default
# (active) policy on a shared, oversubscribed 2-core machine, a 2-thread torch forward in the main
# thread measured 6-8x slower than the same forward in a worker thread.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def parser(doc: str | None, threads: int = 1) -> argparse.ArgumentParser:
    """An argument parser with the options every benchmark shares."""
    p = argparse.ArgumentParser(description=(doc or "").split("\n\n")[0])
    p.add_argument("--tiny", action="store_true", help="tiny from-config model (smoke test; numbers meaningless)")
    p.add_argument("--threads", type=int, default=threads, help="torch intra-op threads (default %(default)s)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


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
