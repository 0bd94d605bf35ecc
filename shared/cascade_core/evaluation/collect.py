"""Run the small and large tiers over a JSONL data set once and cache what evaluation needs.

Data lines are JSON objects with ``id`` and ``prompt`` (a completion prompt), plus what the answer
scorer needs (``answer``, ``aliases``; ``labels`` for classification — these are also recorded at
the small model's first step for a label margin). Every other field is kept.

The cache is JSONL, one line per example: the small model's :class:`~cascade_core.types.Generation`
(tokens, log-probs, top-k, optional pooled embedding), both answers, their qualities and the
seconds each tier took; with a prompt embedder (``cascade collect --prompt-embedding``) also the
prompt's pooled embedding, its token count and the seconds that prefill took — what a
pre-generation :class:`~cascade_core.decide.router.QueryRouter` is fitted on; with samples
(``cascade collect --samples K --temperature T``) also k answers sampled at temperature T
(``small.samples``, their usage as ``small.sample_usage`` and their seconds as ``sample_seconds``),
so the ``sample_agreement`` signal can be scored offline beside the log-prob signals of the same greedy
answer. Caches without those fields (older ones) load unchanged. It is resumable: ids already cached are skipped, and a last line cut off
by a crash is dropped. Steps are recorded as the cascade engine sees them: up to and including
the token that completes a stop string.

Example:
    >>> from cascade_core.testing import ScriptedModel
    >>> rows = collect_records([{"id": "q1", "prompt": "Capital of France?", "answer": "Paris"}],
    ...                        ScriptedModel("Paris"), ScriptedModel("Paris"), progress=False)
    >>> rows[0].small_quality, rows[0].large_quality
    (1.0, 1.0)
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from cascade_core.backends.base import LargeModel, PromptEmbedder, SmallModel
from cascade_core.engine.steps import read_steps
from cascade_core.engine.stops import truncate_at_stop
from cascade_core.errors import ConfigurationError, DataFormatError, require
from cascade_core.evaluation.quality import QualityScorer, resolve_quality_scorer
from cascade_core.types import Generation, Request, TokenAlternative, TokenStep, Usage

__all__ = [
    "CACHE_VERSION",
    "CachedExample",
    "collect",
    "collect_records",
    "drop_truncated_tail",
    "generation_from_dict",
    "generation_to_dict",
    "load_cache",
    "read_jsonl",
    "resume_cache",
    "run_large",
    "run_samples",
    "run_small",
]

logger = logging.getLogger(__name__)

CACHE_VERSION = 1
OnError = Literal["stop", "skip"]


def generation_to_dict(generation: Generation) -> dict[str, Any]:
    """A JSON-friendly dict of a generation (inverse: :func:`generation_from_dict`)."""
    return {
        "text": generation.text,
        "steps": [
            [s.token, s.logprob, [[a.token, a.logprob] for a in s.top], s.token_id, s.text] for s in generation.steps
        ],
        "usage": [generation.usage.input_tokens, generation.usage.output_tokens],
        "finish_reason": generation.finish_reason,
        "model_name": generation.model_name,
        "embedding": None if generation.embedding is None else np.asarray(generation.embedding, dtype=np.float64).tolist(),
    } | ({} if not generation.samples else {
        "samples": list(generation.samples),
        "sample_usage": [generation.sample_usage.input_tokens, generation.sample_usage.output_tokens],
    })


def generation_from_dict(data: dict[str, Any]) -> Generation:
    """Rebuild a :class:`Generation` from :func:`generation_to_dict` output."""
    steps = tuple(
        TokenStep(tok, float(lp), tuple(TokenAlternative(t, float(v)) for t, v in top), token_id, text)
        for tok, lp, top, token_id, text in data["steps"]
    )
    emb = data.get("embedding")
    samples = data.get("samples") or []
    if not isinstance(samples, list) or not all(isinstance(t, str) for t in samples):
        raise DataFormatError("a generation's 'samples' must be a list of answer texts")
    return Generation(
        text=data["text"],
        steps=steps,
        usage=Usage(*data.get("usage", (0, 0))),
        finish_reason=data.get("finish_reason", "stop"),
        model_name=data.get("model_name", ""),
        embedding=None if emb is None else np.asarray(emb, dtype=np.float64),
        samples=tuple(samples),
        sample_usage=Usage(*data.get("sample_usage", (0, 0))),
    )


@dataclass(frozen=True)
class CachedExample:
    """One data-set example run through both tiers."""

    id: str
    record: dict[str, Any]
    small: Generation
    large_text: str
    small_quality: float
    large_quality: float
    small_seconds: float = 0.0
    large_seconds: float = 0.0
    label_tokens: tuple[str, ...] | None = None
    large_usage: Usage = field(default_factory=Usage)
    prompt_embedding: tuple[float, ...] | None = None
    """The small model's pooled prompt embedding (before generation), when collected."""
    prompt_tokens: int | None = None
    """The prompt's length in the small model's tokens, counted with the prompt embedding."""
    prompt_seconds: float = 0.0
    """Seconds the prompt embedding took (the router's own latency)."""
    sample_seconds: float = 0.0
    """Seconds the small tier's sampled answers took (``small.samples``; not in ``small_seconds``)."""
    sampling: dict[str, Any] | None = None
    """How ``small.samples`` were drawn: ``{"k", "temperature", "seed"}`` (the ``sample_agreement`` parameters)."""

    def to_json(self) -> str:
        router = {} if self.prompt_embedding is None else {
            "prompt_embedding": list(self.prompt_embedding), "prompt_tokens": self.prompt_tokens,
            "prompt_seconds": self.prompt_seconds,
        }
        return json.dumps(
            router | {
                "cache_version": CACHE_VERSION,
                "id": self.id,
                "record": self.record,
                "small": generation_to_dict(self.small),
                "large": {"text": self.large_text, "usage": [self.large_usage.input_tokens, self.large_usage.output_tokens]},
                "small_quality": self.small_quality,
                "large_quality": self.large_quality,
                "small_seconds": self.small_seconds,
                "large_seconds": self.large_seconds,
                "label_tokens": None if self.label_tokens is None else list(self.label_tokens),
            } | ({"sample_seconds": self.sample_seconds, "sampling": self.sampling} if self.small.samples else {}),
            ensure_ascii=False,
        )

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CachedExample:
        if data.get("cache_version") != CACHE_VERSION:
            raise DataFormatError(f"cache_version {data.get('cache_version')!r}, expected {CACHE_VERSION}")
        labels = data.get("label_tokens")
        embedding = data.get("prompt_embedding")
        if embedding is not None and (not isinstance(embedding, list) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in embedding)):
            raise DataFormatError(f"id {data.get('id')!r}: prompt_embedding must be a list of finite numbers")
        tokens = data.get("prompt_tokens")
        if tokens is not None and (isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 0):
            raise DataFormatError(f"id {data.get('id')!r}: prompt_tokens must be a non-negative int, got {tokens!r}")
        return cls(
            id=str(data["id"]),
            record=dict(data["record"]),
            small=generation_from_dict(data["small"]),
            large_text=str(data["large"]["text"]),
            small_quality=float(data["small_quality"]),
            large_quality=float(data["large_quality"]),
            small_seconds=float(data.get("small_seconds", 0.0)),
            large_seconds=float(data.get("large_seconds", 0.0)),
            label_tokens=None if labels is None else tuple(labels),
            large_usage=Usage(*data["large"].get("usage", (0, 0))),
            prompt_embedding=None if embedding is None else tuple(float(v) for v in embedding),
            prompt_tokens=tokens,
            prompt_seconds=float(data.get("prompt_seconds", 0.0)),
            sample_seconds=float(data.get("sample_seconds", 0.0)),
            sampling=_sampling(data.get("sampling"), data.get("id")),
        )


def _sampling(value: Any, example_id: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) != {"k", "temperature", "seed"}:
        raise DataFormatError(f"id {example_id!r}: 'sampling' must be an object with k, temperature and seed")
    return dict(value)


def read_jsonl(path: str | os.PathLike[str], *, on_error: OnError = "stop") -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, record)`` for every data line; blank lines are ignored.

    A line that is not a JSON object with a non-empty string ``prompt`` and an ``id``, or whose id
    repeats an earlier one, raises :class:`DataFormatError` naming the file and line
    (``on_error="stop"``), or is logged and skipped (``on_error="skip"``).
    """
    if on_error not in ("stop", "skip"):
        raise DataFormatError(f"on_error must be 'stop' or 'skip', got {on_error!r}")
    seen: set[str] = set()
    try:
        fh = open(path, encoding="utf-8")  # noqa: SIM115 - closed below, generator
    except OSError as err:
        raise DataFormatError(f"cannot read data file {os.fspath(path)!r}: {err.strerror or err}") from err
    with fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            problem = None
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                problem = f"not valid JSON ({err.msg} at column {err.colno})"
            else:
                if not isinstance(record, dict):
                    problem = f"expected a JSON object, got {type(record).__name__}"
                elif not isinstance(record.get("prompt"), str) or not record["prompt"].strip():
                    problem = "missing a non-empty string field 'prompt'"
                elif not isinstance(record.get("id"), (str, int)) or isinstance(record.get("id"), bool):
                    problem = "missing field 'id' (a string or integer)"
                elif str(record["id"]) in seen:
                    problem = f"duplicate id {record['id']!r}"
            if problem is not None:
                message = f"{os.fspath(path)}:{number}: {problem}"
                if on_error == "stop":
                    raise DataFormatError(message + " (pass --on-error skip to skip bad lines)")
                logger.warning("skipping %s", message)
                continue
            seen.add(str(record["id"]))
            yield number, record


def load_cache(path: str | os.PathLike[str]) -> list[CachedExample]:
    """Read a collection cache. A truncated last line (interrupted write) is ignored with a warning.

    Raises:
        DataFormatError: a complete line is not a valid cache entry (the message names the line).
    """
    p = Path(path)
    if not p.exists():
        raise DataFormatError(f"cache file {os.fspath(path)!r} does not exist; run `cascade collect` first")
    out: list[CachedExample] = []
    text = p.read_text(encoding="utf-8")
    lines = text.split("\n")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            out.append(CachedExample.from_json(json.loads(line)))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
            if number == len(lines) and not text.endswith("\n"):
                logger.warning("%s:%d: ignoring a truncated last line (interrupted write)", path, number)
                continue
            raise DataFormatError(f"{os.fspath(path)}:{number}: not a valid cache entry ({err})") from err
    return out


def _label_tokens(small: SmallModel, labels: Sequence[str]) -> tuple[str, ...]:
    """The first token (as the small model's tokenizer splits ``" " + label``) of each label."""
    tokenizer = getattr(small, "tokenizer", None)
    if tokenizer is None:
        return tuple(labels)
    out: list[str] = []
    for label in labels:
        ids = tokenizer.encode(" " + label.strip(), add_special_tokens=False)
        token = tokenizer.decode(ids[:1]) if ids else label
        if token.strip() and token not in out:
            out.append(token)
    return tuple(out)


def _recording_embedding(small: SmallModel) -> SmallModel:
    """``small`` set to record the pooled embedding on its ``StepsEnd``, where the backend can."""
    with_embedding = getattr(small, "with_embedding", None)
    return with_embedding() if with_embedding is not None else small


def run_small(small: SmallModel, request: Request) -> Generation:
    """The small tier's generation, read as the cascade reads it (up to a stop string, then its end event)."""
    steps = read_steps(small.stream_steps(request), request.stop)
    return steps.generation(small.model_name, lambda: small.count_tokens(request.prompt_text))


def run_samples(small: SmallModel, request: Request, generation: Generation, k: int, temperature: float,
                seed: int | None = 0) -> Generation:
    """``generation`` with ``k`` answers of ``small`` sampled at ``temperature`` (as the cascade adds them:
    sample i seeded ``seed + i``, their usage added to the generation's)."""
    from cascade_core.decide.scorers import SampleAgreement

    SampleAgreement(k=k, temperature=temperature, seed=seed)  # validates k, temperature and seed
    generate = getattr(small, "generate_texts", None)
    if generate is None:
        raise ConfigurationError(f"small tier {small.model_name} cannot sample plain-text answers (no generate_texts)")
    reply = generate(request, n=k, temperature=temperature, seed=seed)
    texts = tuple(truncate_at_stop(t, request.stop) if request.stop else t for t in reply.texts)
    return replace(generation, samples=texts, usage=generation.usage + reply.usage, sample_usage=reply.usage)


def run_large(large: LargeModel, request: Request) -> tuple[str, Usage]:
    """The large tier's answer text and usage for ``request`` (its stream, collected)."""
    text, usage = "", Usage()
    for chunk in large.stream(request):
        text += chunk.text
        usage = chunk.usage or usage
    return text, usage


def _prompt_features(embedder: PromptEmbedder | None, request: Request) -> dict[str, Any]:
    """The prompt's embedding, token count and embedding seconds, as :class:`CachedExample` fields."""
    if embedder is None:
        return {}
    started = time.perf_counter()
    vector = np.asarray(embedder.embed(request.prompt_text), dtype=np.float64).reshape(-1)
    seconds = time.perf_counter() - started
    return {"prompt_embedding": tuple(vector.tolist()), "prompt_tokens": int(embedder.count_tokens(request.prompt_text)),
            "prompt_seconds": seconds}


def collect_records(
    records: Iterable[dict[str, Any]],
    small: SmallModel,
    large: LargeModel,
    *,
    cache_path: str | os.PathLike[str] | None = None,
    max_new_tokens: int = 16,
    stop: Sequence[str] = ("\n",),
    quality: str | QualityScorer = "auto",
    record_embedding: bool = False,
    prompt_embedder: PromptEmbedder | None = None,
    samples: int = 0,
    sample_temperature: float = 0.7,
    sample_seed: int | None = 0,
    progress: bool = True,
) -> list[CachedExample]:
    """Run both tiers over ``records`` (skipping ids already in ``cache_path``) and return every
    record's :class:`CachedExample` in data order; new entries are appended to the cache as they finish.

    ``prompt_embedder``: also record each prompt's pooled embedding and token count (a router's features).
    ``samples``: also record that many small answers sampled at ``sample_temperature`` (sample i seeded
    ``sample_seed + i``), for the ``sample_agreement`` signal."""
    scorer = resolve_quality_scorer(quality)
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 0:
        raise ConfigurationError(f"samples must be a non-negative int (0: none), got {samples!r}")
    records = list(records)
    if record_embedding:
        small = _recording_embedding(small)
    cached = resume_cache(cache_path) if cache_path is not None else {}
    todo = [r for r in records if str(r["id"]) not in cached]
    if cached:
        logger.info("%d of %d examples already cached; running %d", len(records) - len(todo), len(records), len(todo))
    sink = None
    if cache_path is not None:
        Path(cache_path).parent.mkdir(parents=True, exist_ok=True)
        sink = open(cache_path, "a", encoding="utf-8")  # noqa: SIM115 - closed in finally
    tqdm = require("tqdm.auto", "eval", purpose="collect").tqdm

    try:
        for record in tqdm(todo, desc="collect", unit="query", disable=not progress):
            labels = tuple(record.get("labels") or ())
            label_tokens = _label_tokens(small, labels) if labels else None
            request = Request.from_prompt(
                record["prompt"], max_new_tokens=max_new_tokens, stop=tuple(stop), first_step_tokens=labels,
            )
            prompt = _prompt_features(prompt_embedder, request)
            t0 = time.perf_counter()
            generation = run_small(small, request)
            t1 = time.perf_counter()
            if samples:
                generation = run_samples(small, request.replace(first_step_tokens=()), generation, samples,
                                         sample_temperature, sample_seed)
            t_samples = time.perf_counter() - t1
            t1 = time.perf_counter()
            large_text, large_usage = run_large(large, request.replace(first_step_tokens=()))
            t2 = time.perf_counter()
            entry = CachedExample(
                id=str(record["id"]),
                record={k: v for k, v in record.items() if k != "prompt"},
                small=generation,
                large_text=large_text,
                small_quality=float(scorer(generation.text, record)),
                large_quality=float(scorer(large_text, record)),
                small_seconds=t1 - t0 - t_samples,
                sample_seconds=t_samples,
                sampling={"k": samples, "temperature": float(sample_temperature), "seed": sample_seed} if samples else None,
                large_seconds=t2 - t1,
                label_tokens=label_tokens,
                large_usage=large_usage,
                **prompt,
            )
            if not (math.isfinite(entry.small_quality) and math.isfinite(entry.large_quality)):
                raise DataFormatError(f"quality scorer returned a non-finite value for id {entry.id!r}")
            cached[entry.id] = entry
            if sink is not None:
                sink.write(entry.to_json() + "\n")
                sink.flush()
    finally:
        if sink is not None:
            sink.close()
    return [cached[str(r["id"])] for r in records]


def resume_cache(path: str | os.PathLike[str]) -> dict[str, CachedExample]:
    """The examples already in a cache being appended to, by id ({} when it does not exist yet); a
    truncated last line (a write cut off by an interrupted run) is dropped from the file first."""
    if not Path(path).exists():
        return {}
    cached = {c.id: c for c in load_cache(path)}
    drop_truncated_tail(Path(path))
    return cached


def drop_truncated_tail(path: Path) -> None:
    """Cut a JSONL file back to its last complete line (a write cut off by an interrupted run)."""
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        cut = data.rfind(b"\n") + 1
        path.write_bytes(data[:cut])


def collect(
    data_path: str | os.PathLike[str],
    small: SmallModel,
    large: LargeModel,
    cache_path: str | os.PathLike[str],
    *,
    on_error: OnError = "stop",
    limit: int | None = None,
    **kwargs: Any,
) -> list[CachedExample]:
    """:func:`collect_records` over a JSONL file (see :func:`read_jsonl` for ``on_error``)."""
    records = [record for _, record in read_jsonl(data_path, on_error=on_error)]
    if limit is not None:
        records = records[:limit]
    if not records:
        raise DataFormatError(f"data file {os.fspath(data_path)!r} has no usable records")
    return collect_records(records, small, large, cache_path=cache_path, **kwargs)
