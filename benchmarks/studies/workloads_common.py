"""Shared parts of the RAG and agent workloads: package data, real tiers, bookkeeping, tables.

The documents and facts come from the installed ``countryinfo`` package (its per-country JSON
files); nothing here writes the facts. Tiers are the embedded models: SmolLM2-135M-Instruct
in-process (transformers, one torch thread) as the small tier, Qwen2.5-Coder-0.5B/1.5B-Instruct on
llama.cpp servers (one thread each) on 127.0.0.1.
"""

from __future__ import annotations

import importlib.resources
import json
import os
import random
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.harness import RESULTS_DIR

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ALIASES = {"medium": "qwen2.5-coder-0.5b-instruct", "large": "qwen2.5-coder-1.5b-instruct"}
_FIELDS = ("capital", "region", "subregion", "population", "area", "currencies", "languages", "callingCodes",
           "demonym", "tld")


def load_countries() -> list[dict[str, Any]]:
    """Every country record shipped in ``countryinfo`` (sorted by name; records without a capital dropped)."""
    data = importlib.resources.files("countryinfo") / "data"
    records = []
    for entry in sorted(data.iterdir(), key=lambda p: p.name):
        if not entry.name.endswith(".json"):
            continue
        record = json.loads(entry.read_text(encoding="utf-8"))
        if record.get("name") and record.get("capital") and record.get("population"):
            records.append(record)
    return sorted(records, key=lambda r: r["name"])


def document_text(record: dict[str, Any]) -> str:
    """The country's package record as ``key: value`` lines (the fields the questions ask about)."""
    lines = [f"name: {record['name']}"]
    for key in _FIELDS:
        value = record.get(key)
        if value in (None, "", []):
            continue
        lines.append(f"{key}: {', '.join(map(str, value)) if isinstance(value, list) else value}")
    return "\n".join(lines)


def split_countries(records: list[dict[str, Any]], seed: int, n_calibration: int) -> tuple[list, list]:
    """Disjoint (calibration, test) country lists, shuffled with ``seed``."""
    shuffled = list(records)
    random.Random(seed).shuffle(shuffled)
    return shuffled[:n_calibration], shuffled[n_calibration:]


def normalise(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[^\w.+ ]", " ", text.lower())).strip()


def numbers_in(text: str) -> list[float]:
    """Numbers written in ``text`` (thousands separators allowed)."""
    out = []
    for match in re.findall(r"-?\d[\d,]*(?:\.\d+)?", text):
        try:
            out.append(float(match.replace(",", "")))
        except ValueError:
            continue
    return out


@contextmanager
def llama_server(tier: str, *, n_ctx: int = 4096) -> Iterator[Any]:
    """An embedded model (``medium``/``large``) on its own llama.cpp server, one thread, sha256-verified."""
    from cascade_core.backends.embedded import locate_gguf
    from cascade_core.backends.llamacpp import LlamaCppServer

    with LlamaCppServer(locate_gguf(tier), alias=ALIASES[tier], threads=1, n_ctx=n_ctx) as server:
        yield server


@dataclass
class Tally:
    """Quality, measured compute and stand-in cost of one configuration over one split."""

    name: str
    items: int = 0
    correct: int = 0
    seconds: float = 0.0
    cost: float = 0.0
    all_large_cost: float = 0.0
    llm_calls: int = 0
    small_calls: int = 0  # LLM calls the small tier answered
    deferred_calls: int = 0
    threshold: float | None = None
    notes: list[str] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def quality(self) -> float:
        return self.correct / self.items if self.items else 0.0

    def add_call(self, meta: dict[str, Any] | None, large_usage: tuple[int, int] | None = None) -> None:
        """Book one LLM call: a cascade decision (``meta``) or a plain large-tier call (its token usage)."""
        from cascade_core.backends.defaults import DEFAULT_PRICES
        from cascade_core.types import Usage

        self.llm_calls += 1
        if meta is not None:
            self.cost += meta["cost"]
            self.all_large_cost += meta["all_large_cost"]
            self.small_calls += int(meta["tier"] == 0)
            self.deferred_calls += int(meta["deferred"])
        else:
            price = DEFAULT_PRICES["large"].cost(Usage(*(large_usage or (0, 0))))
            self.cost += price
            self.all_large_cost += price

    def summary(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("rows")
        data["quality"] = self.quality
        data["small_share"] = self.small_calls / self.llm_calls if self.llm_calls else 0.0
        data["deferral_rate"] = self.deferred_calls / self.llm_calls if self.llm_calls else 0.0
        return data


@contextmanager
def timed(tally: Tally) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        tally.seconds += time.perf_counter() - started


def markdown_table(tallies: list[Tally], quality_name: str) -> str:
    """The README/docs table: quality, measured seconds, stand-in cost, small share, deferral rate."""
    head = (f"| configuration | {quality_name} | compute s (measured) | cost (stand-in $) | vs all-large cost "
            "| LLM calls | answered by small tier | deferral rate |\n|---|---|---|---|---|---|---|---|")
    lines = [head]
    for t in tallies:
        s = t.summary()
        ratio = f"{t.cost / t.all_large_cost:.0%}" if t.all_large_cost else "n/a"
        thr = "" if t.threshold is None else f" (thr {t.threshold:.3f})"
        lines.append(f"| {t.name}{thr} | {t.correct}/{t.items} = {t.quality:.2f} | {t.seconds:.0f} | {t.cost:.2e} "
                     f"| {ratio} | {t.llm_calls} | {s['small_share']:.0%} | {s['deferral_rate']:.0%} |")
    return "\n".join(lines)


def save(name: str, payload: dict[str, Any]) -> Path:
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(payload, indent=1, default=str))
    return path
