"""Deterministic scripted models for tests and docs (like ``langchain_core``'s fake chat models).

:class:`ScriptedModel` "generates" a fixed answer with chosen token confidences, so engine
decisions can be tested without a real model. It implements both tier protocols.

Example:
    >>> model = ScriptedModel("Paris", confidence=0.8)
    >>> steps = [e for e in model.stream_steps(None) if hasattr(e, "logprob")]
    >>> round(float(__import__("math").exp(steps[0].logprob)), 2)
    0.8
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from cascade_core.backends.base import TokenModelBase
from cascade_core.errors import BackendError, ConfigurationError, require
from cascade_core.testing.distribution import scripted_top_k
from cascade_core.types import Request, StepsEnd, TextSamples, TokenAlternative, TokenStep, Usage

__all__ = ["ScriptedModel", "tiny_model", "tiny_tokenizer"]


class ScriptedModel(TokenModelBase):
    """A model that answers from a script.

    Args:
        answers: One answer for every call, or a list used in turn (cycled).
        confidence: Probability of each answer's first token; the runner-up gets ``min(c, (1-c)*0.8)``.
        token_confidence: Probability of every later token.
        name: Model name.
        top_k: Alternatives recorded per step.
        fail: Raise :class:`BackendError` instead of answering (to test error handling).
        samples: For :meth:`generate_texts` at a temperature > 0: one list of sampled answers per
            sampling call, used in turn (cycled; a list shorter than the ``n`` asked for is cycled too).
            ``None``: every sample repeats the current answer.
        fail_samples: Raise :class:`BackendError` on sampling calls only.

    Attributes:
        calls: Requests received, in order (greedy answers: step streams and temperature-0 texts).
            ``steps_served`` counts steps actually produced; ``sample_calls`` the sampling calls'
            ``(request, n, temperature, seed)``.
    """

    def __init__(
        self,
        answers: str | Sequence[str],
        *,
        confidence: float | Sequence[float] = 0.9,
        token_confidence: float = 0.95,
        name: str = "scripted",
        top_k: int = 5,
        fail: bool = False,
        samples: Sequence[Sequence[str]] | None = None,
        fail_samples: bool = False,
    ) -> None:
        confs = [confidence] if isinstance(confidence, (int, float)) else list(confidence)
        if not confs or any(not 0.0 < c <= 1.0 for c in [*confs, token_confidence]):
            raise ConfigurationError("ScriptedModel confidences must be in (0, 1]")
        self.answers = [answers] if isinstance(answers, str) else list(answers)
        self.confidences = confs
        self.token_confidence = token_confidence
        self.model_name = name
        self.top_k = top_k
        self.fail = fail
        if samples is not None and (isinstance(samples, str) or any(isinstance(s, str) or not s for s in samples) or not samples):
            raise ConfigurationError("ScriptedModel.samples must be a non-empty list of non-empty lists of answers")
        self.samples = None if samples is None else [list(s) for s in samples]
        self.fail_samples = fail_samples
        self.sample_calls: list[tuple[Any, int, float, int | None]] = []
        self.calls: list[Any] = []
        self.steps_served = 0
        self._lock = threading.Lock()

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def _step(self, token: str, p: float) -> TokenStep:
        alts = tuple(TokenAlternative(t, lp) for t, lp in scripted_top_k(token, p, self.top_k))
        return TokenStep(token, math.log(p), alts[: self.top_k])

    def stream_steps(self, request: Request | None) -> Iterator[TokenStep | StepsEnd]:
        with self._lock:
            n = len(self.calls)
            self.calls.append(request)
        if self.fail:
            raise BackendError(f"{self.model_name}: scripted failure")
        answer = self.answers[n % len(self.answers)]
        confidence = self.confidences[n % len(self.confidences)]
        tokens = re.findall(r"\s*\S+|\s+", answer)
        limit = request.max_new_tokens if request is not None and request.max_new_tokens else None
        for i, token in enumerate(tokens[:limit]):
            with self._lock:
                self.steps_served += 1
            yield self._step(token, confidence if i == 0 else self.token_confidence)
        prompt = request.prompt_text if request is not None else ""
        yield StepsEnd(Usage(self.count_tokens(prompt), len(tokens[:limit])), "stop")


    def generate_texts(self, request: Request, *, n: int, temperature: float, seed: int | None = None) -> TextSamples:
        """The scripted answer as text (temperature 0), or ``n`` scripted samples (temperature > 0)."""
        prompt = self.count_tokens(request.prompt_text) if request is not None else 0
        if temperature == 0:
            with self._lock:
                index = len(self.calls)
                self.calls.append(request)
            if self.fail:
                raise BackendError(f"{self.model_name}: scripted failure")
            texts = [self.answers[index % len(self.answers)]] * n
        else:
            with self._lock:
                index = len(self.sample_calls)
                self.sample_calls.append((request, n, temperature, seed))
                current = self.answers[(len(self.calls) - 1) % len(self.answers)] if self.calls else self.answers[0]
            if self.fail or self.fail_samples:
                raise BackendError(f"{self.model_name}: scripted sampling failure")
            script = self.samples[index % len(self.samples)] if self.samples is not None else [current]
            texts = [script[i % len(script)] for i in range(n)]
        limit = request.max_new_tokens if request is not None and request.max_new_tokens else None
        texts = ["".join(re.findall(r"\s*\S+|\s+", t)[:limit]) for t in texts]
        usage = Usage(prompt * n, sum(self.count_tokens(t) for t in texts))
        return TextSamples(tuple(texts), usage, calls=n)


_TINY_CORPUS = (
    "the cat sat on the mat . the dog ate the bone . paris is the capital of france . "
    "rome is the capital of italy . what is the capital of spain ? madrid . yes no maybe"
)


def tiny_tokenizer(corpus: str = _TINY_CORPUS) -> Any:
    """A word-level fast tokenizer trained offline on ``corpus`` (for plumbing tests)."""
    require("transformers", "local", purpose="tiny_tokenizer")
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator([corpus], trainers.WordLevelTrainer(special_tokens=["[UNK]", "[BOS]", "[EOS]"]))
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", bos_token="[BOS]", eos_token="[EOS]")


def tiny_model(tokenizer: Any, *, seed: int = 0, layers: int = 1) -> Any:
    """A randomly initialised tiny Llama built from a config (no download), matching ``tokenizer``."""
    require("torch", "local", purpose="tiny_model")
    require("transformers", "local", purpose="tiny_model")
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=layers,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=256,
        eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.bos_token_id, pad_token_id=0,
    )
    return LlamaForCausalLM(config).eval()
