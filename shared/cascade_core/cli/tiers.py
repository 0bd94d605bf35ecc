"""Tier specifications on the command line.

``--small`` / ``--large`` take one of:

- ``embedded`` — the embedded default of that tier (SmolLM2-135M small, Gemma-3-270M large);
  ``embedded:small`` / ``embedded:large`` pick one explicitly.
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

TIER_SPEC_HELP = "embedded | embedded:small | embedded:large | hf:<path-or-id> | openai:<base_url>#<model>"


def parse_tier_spec(spec: str, role: str = "small") -> tuple[str, str, str]:
    """Split a tier spec into ``(kind, location, model)``; raises ``ConfigurationError`` naming the allowed forms."""
    spec = spec.strip()
    if spec == "embedded":
        return "embedded", role, ""
    kind, sep, rest = spec.partition(":")
    if not sep or not rest:
        raise ConfigurationError(f"invalid tier spec {spec!r}; use {TIER_SPEC_HELP}")
    if kind == "embedded":
        if rest not in ("small", "large"):
            raise ConfigurationError(f"invalid tier spec {spec!r}: embedded tiers are 'small' and 'large'")
        return "embedded", rest, ""
    if kind == "hf":
        return "hf", rest, ""
    if kind == "openai":
        base_url, hash_, model = rest.rpartition("#")
        if not hash_ or not base_url or not model:
            raise ConfigurationError(f"invalid tier spec {spec!r}: write openai:<base_url>#<model>")
        return "openai", base_url, model
    raise ConfigurationError(f"unknown tier kind {kind!r} in {spec!r}; use {TIER_SPEC_HELP}")


def build_tier(spec: str, role: str, *, top_k: int = 5, max_new_tokens: int = 16, prompt_format: str = "completion") -> Any:
    """Instantiate the model of a tier spec (loads local models)."""
    kind, location, model = parse_tier_spec(spec, role)
    if kind == "openai":
        from cascade_core.backends.openai import OpenAIModel

        return OpenAIModel(model, base_url=location, top_k=top_k if role == "small" else 0, max_new_tokens=max_new_tokens)
    from cascade_core.backends.transformers import TransformersModel

    if kind == "embedded":
        from cascade_core.defaults import default_large_model, default_small_model

        factory = default_small_model if location == "small" else default_large_model
        return factory(top_k=top_k, max_new_tokens=max_new_tokens, prompt_format=prompt_format)  # type: ignore[arg-type]
    return TransformersModel(location, top_k=top_k, max_new_tokens=max_new_tokens, prompt_format=prompt_format)  # type: ignore[arg-type]
