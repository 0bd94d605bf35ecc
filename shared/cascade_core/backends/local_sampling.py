"""Plain-text answers of a local ``transformers`` model: the greedy one, or k samples in one batched call.

What :meth:`~cascade_core.backends.transformers.TransformersModel.generate_texts` runs (the
:class:`~cascade_core.backends.base.TextGenerator` protocol, read by the ``sample_agreement``
signal). Samples come from ``model.generate(do_sample=True, temperature=T, num_return_sequences=k)``
with ``top_k=0, top_p=1`` (plain temperature sampling), seeded once with ``seed`` for the batch
(so a repeated call draws the same k samples); the greedy answer is the model's own step loop read
to its end, so it is the text ``stream_steps`` gives.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cascade_core.engine.steps import read_steps
from cascade_core.engine.stops import truncate_at_stop
from cascade_core.errors import BackendError, ConfigurationError
from cascade_core.types import Request, TextSamples, Usage

if TYPE_CHECKING:
    from cascade_core.backends.transformers import TransformersModel

__all__ = ["generate_texts"]


def _check(n: int, temperature: float) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigurationError(f"generate_texts: n must be a positive int, got {n!r}")
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not 0 <= temperature <= 2:
        raise ConfigurationError(f"generate_texts: temperature must be a number in [0, 2], got {temperature!r}")


def _stop_criteria(model: TransformersModel, prompt_len: int, stop: tuple[str, ...]) -> Any:
    """Rows end once their decoded text holds a stop string (``generate``'s own ``stop_strings`` needs
    a tokenizer vocabulary it can parse, which not every tokenizer has)."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    class _Stop(StoppingCriteria):  # type: ignore[misc]
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            texts = model.tokenizer.batch_decode(input_ids[:, prompt_len:], skip_special_tokens=True)
            return torch.tensor([any(s in t for s in stop) for t in texts], dtype=torch.bool)

    return StoppingCriteriaList([_Stop()])


def generate_texts(model: TransformersModel, request: Request, n: int, temperature: float, seed: int | None) -> TextSamples:
    """``n`` answers of ``model`` to ``request`` as text (see the module docstring)."""
    _check(n, temperature)
    if temperature == 0:
        texts, usage = [], Usage()
        for _ in range(n):
            steps = read_steps(model.stream_steps(request), request.stop)
            texts.append(steps.text)
            usage = usage + steps.usage(lambda: model.count_tokens(request.prompt_text))
        return TextSamples(tuple(texts), usage, calls=n)
    import torch

    ids = model._encode(request)
    limit = request.max_new_tokens or model.max_new_tokens
    options: dict[str, Any] = {
        "do_sample": True, "temperature": float(temperature), "top_k": 0, "top_p": 1.0, "num_return_sequences": n,
        "max_new_tokens": limit, "pad_token_id": model._pad_id, "attention_mask": torch.ones_like(ids),
    }
    if request.stop:
        options["stopping_criteria"] = _stop_criteria(model, int(ids.shape[1]), request.stop)
    try:
        with model._lock, torch.inference_mode(), torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(seed)
            else:
                torch.seed()
            out = model.model.generate(ids, **options)
    except Exception as err:
        raise BackendError(f"{model.model_name}: sampling failed: {type(err).__name__}: {err}") from err
    new = out[:, ids.shape[1]:]
    texts, generated = [], 0
    for row in new.tolist():
        end = next((i for i, t in enumerate(row) if t in model._eos), None)
        tokens = row[:end] if end is not None else row
        while end is None and tokens and tokens[-1] == model._pad_id:  # a row stopped early, padded to the longest
            tokens = tokens[:-1]
        generated += len(tokens) + (end is not None)
        text = model.tokenizer.decode(tokens, skip_special_tokens=True)
        texts.append(truncate_at_stop(text, request.stop) if request.stop else text)
    return TextSamples(tuple(texts), Usage(int(ids.shape[1]) * n, generated), calls=1)
