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

__all__ = ["TIER_SPEC_HELP", "build_tier", "parse_tier_spec"]

_SERVERS: dict[str, Any] = {}  # llama.cpp servers for GGUF paths, one per path per process

TIER_SPEC_HELP = (
    "embedded | embedded:small|medium|large | llamacpp:<small|medium|large|file.gguf> | hf:<path-or-id> | "
    "openai:<base_url>#<model>"
)
_EMBEDDED = ("small", "medium", "large")


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
    threads: int = 2,
) -> Any:
    """Instantiate the model of a tier spec (loads local models, starts llama.cpp servers once per process)."""
    kind, location, model = parse_tier_spec(spec, role)
    scored_top_k = top_k if role != "large" else 0
    if kind == "llamacpp" or (kind == "embedded" and location in ("medium", "large")):
        from cascade_core.backends.llamacpp import LlamaCppServer, serve_embedded

        if location in _EMBEDDED:
            server = serve_embedded(location, threads=threads)
        else:
            server = _SERVERS.get(location) or LlamaCppServer(location, threads=threads)
            _SERVERS[location] = server
        # a judged tier keeps the few-shot completion format (the /v1/completions endpoint); the large one chats
        fmt = "completion" if prompt_format == "completion" and role != "large" else "chat"
        return server.openai_model(top_k=scored_top_k, max_new_tokens=max_new_tokens, prompt_format=fmt)
    if kind == "openai":
        from cascade_core.backends.openai import openai_tier

        return openai_tier(model, role, base_url=location, top_k=top_k, max_new_tokens=max_new_tokens)
    from cascade_core.backends.transformers import TransformersModel

    if kind == "embedded":  # the small one: in-process, so a deferral costs one decoding step
        from cascade_core.backends.defaults import default_small_model

        return default_small_model(top_k=top_k, max_new_tokens=max_new_tokens, prompt_format=prompt_format)  # type: ignore[arg-type]
    return TransformersModel(location, top_k=top_k, max_new_tokens=max_new_tokens, prompt_format=prompt_format)  # type: ignore[arg-type]
