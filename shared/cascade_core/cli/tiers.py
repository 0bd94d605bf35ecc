"""Tier specifications on the command line.

``--small`` / ``--large`` take one of:

- ``embedded`` — the embedded default of that tier: SmolLM2-135M (small, in-process transformers),
  Qwen2.5-Coder-1.5B (large, on a llama.cpp server started on 127.0.0.1); ``embedded:small`` /
  ``embedded:medium`` (Qwen2.5-Coder-0.5B) / ``embedded:large`` pick one explicitly.
- ``llamacpp:<small|medium|large|path.gguf>`` — a GGUF served by llama.cpp on 127.0.0.1, reached over
  the OpenAI protocol (log-probs included, so it can be a small tier too).
- ``hf:<path-or-id>`` — a local Hugging Face causal LM (a directory, or a cached hub id).
- ``openai:<base_url>#<model>`` — an OpenAI-compatible server (vLLM, llama.cpp, Ollama …); the
  small tier needs one that returns log-probs. The key comes from ``$OPENAI_API_KEY``.

Example:
    >>> parse_tier_spec("openai:http://127.0.0.1:8000/v1#qwen2.5")
    ('openai', 'http://127.0.0.1:8000/v1', 'qwen2.5')
    >>> parse_tier_spec("embedded", role="large")
    ('embedded', 'large', '')
"""

from __future__ import annotations

from typing import Any

from cascade_core.errors import ConfigurationError

__all__ = ["LARGE_FORMATS", "TIER_SPEC_HELP", "build_tier", "large_tier_format", "parse_tier_spec"]

_SERVERS: dict[str, Any] = {}  # llama.cpp servers for GGUF paths, one per path per process

TIER_SPEC_HELP = (
    "embedded | embedded:small|medium|large | llamacpp:<small|medium|large|file.gguf> | hf:<path-or-id> | "
    "openai:<base_url>#<model>"
)
_EMBEDDED = ("small", "medium", "large")
LARGE_FORMATS = ("auto", "completion", "chat")
"""How the large tier is prompted: ``auto`` = a completion prompt through ``/v1/completions`` when it is
served by llama.cpp (embedded or ``llamacpp:``) or in-process (``hf:``) and the prompts are completion
prompts, a chat message otherwise (``openai:`` servers); ``completion`` / ``chat`` force one."""


def large_tier_format(kind: str, prompt_format: str, large_format: str = "auto") -> str:
    """The prompt format of a large tier of ``kind`` (see :data:`LARGE_FORMATS`).

    A few-shot completion prompt sent as a chat message makes an instruction-tuned model explain
    instead of completing ("To determine the ..."), so a llama.cpp large tier completes by default;
    an arbitrary OpenAI-compatible server may have no ``/v1/completions`` and chats unless told.

    >>> large_tier_format("llamacpp", "completion"), large_tier_format("openai", "completion")
    ('completion', 'chat')
    >>> large_tier_format("llamacpp", "completion", "chat")
    'chat'
    """
    if large_format not in LARGE_FORMATS:
        raise ConfigurationError(f"large_format must be one of {', '.join(LARGE_FORMATS)}; got {large_format!r}")
    if large_format != "auto":
        return large_format
    return "completion" if kind in ("llamacpp", "embedded", "hf") and prompt_format == "completion" else "chat"


def parse_tier_spec(spec: str, role: str = "small") -> tuple[str, str, str]:
    """Split a tier spec into ``(kind, location, model)``; raises ``ConfigurationError`` naming the allowed forms."""
    spec = spec.strip()
    if spec == "embedded":
        return "embedded", role, ""
    kind, sep, rest = spec.partition(":")
    if not sep or not rest:
        raise ConfigurationError(f"invalid tier spec {spec!r}; use {TIER_SPEC_HELP}")
    if kind == "embedded":
        if rest not in _EMBEDDED:
            raise ConfigurationError(f"invalid tier spec {spec!r}: embedded tiers are 'small', 'medium' and 'large'")
        return "embedded", rest, ""
    if kind == "llamacpp":
        return "llamacpp", rest, ""
    if kind == "hf":
        return "hf", rest, ""
    if kind == "openai":
        base_url, hash_, model = rest.rpartition("#")
        if not hash_ or not base_url or not model:
            raise ConfigurationError(f"invalid tier spec {spec!r}: write openai:<base_url>#<model>")
        return "openai", base_url, model
    raise ConfigurationError(f"unknown tier kind {kind!r} in {spec!r}; use {TIER_SPEC_HELP}")


def build_tier(
    spec: str, role: str, *, top_k: int = 5, max_new_tokens: int = 16, prompt_format: str = "completion",
    threads: int = 2, large_format: str = "auto",
) -> Any:
    """Instantiate the model of a tier spec (loads local models, starts llama.cpp servers once per process).

    ``large_format`` sets how the ``"large"`` role is prompted (:func:`large_tier_format`); judged tiers
    use ``prompt_format``.
    """
    kind, location, model = parse_tier_spec(spec, role)
    if role == "large":
        prompt_format = large_tier_format(kind, prompt_format, large_format)
    scored_top_k = top_k if role != "large" else 0
    if kind == "llamacpp" or (kind == "embedded" and location in ("medium", "large")):
        from cascade_core.backends.llamacpp import LlamaCppServer, serve_embedded

        if location in _EMBEDDED:
            server = serve_embedded(location, threads=threads)
        else:
            server = _SERVERS.get(location) or LlamaCppServer(location, threads=threads)
            _SERVERS[location] = server
        fmt = "completion" if prompt_format == "completion" else "chat"  # /v1/completions or /v1/chat/completions
        return server.openai_model(top_k=scored_top_k, max_new_tokens=max_new_tokens, prompt_format=fmt)
    if kind == "openai":
        from cascade_core.backends.openai import openai_tier

        wire = "completion" if role == "large" and prompt_format == "completion" else None  # judged: the default
        return openai_tier(model, role, base_url=location, top_k=top_k, max_new_tokens=max_new_tokens, prompt_format=wire)
    from cascade_core.backends.transformers import TransformersModel

    if kind == "embedded":  # the small one: in-process, so a deferral costs one decoding step
        from cascade_core.backends.defaults import default_small_model

        return default_small_model(top_k=top_k, max_new_tokens=max_new_tokens, prompt_format=prompt_format)  # type: ignore[arg-type]
    return TransformersModel(location, top_k=top_k, max_new_tokens=max_new_tokens, prompt_format=prompt_format)  # type: ignore[arg-type]
