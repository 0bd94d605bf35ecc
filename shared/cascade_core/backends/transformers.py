"""Local Hugging Face ``transformers`` backend: a causal LM decoded step by step on this machine.

Each step records the emitted token's log-prob and the top-k alternatives (``torch.topk`` of the
step's log-softmax — the full vocabulary scores are never kept). Decoding is a plain KV-cached
loop, so the cascade can stop it after the first step (first-token-margin deferral costs one
prefill + one step) and stream a kept answer token by token.

Example:
    >>> from cascade_core.backends.transformers import TransformersModel
    >>> from cascade_core.backends.embedded import load_embedded
    >>> model, tokenizer = load_embedded("small")  # doctest: +SKIP
    >>> small = TransformersModel(model, tokenizer, top_k=5, prompt_format="completion")  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import inspect
import logging
import threading
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from cascade_core.backends.base import TokenModelBase
from cascade_core.backends.local_sampling import generate_texts
from cascade_core.backends.prefill import shared_prefix_groups, split_kv
from cascade_core.engine.stops import truncate_at_stop
from cascade_core.errors import BackendError, ConfigurationError, ModelNotAvailableError, require
from cascade_core.types import Request, StepsEnd, TextSamples, TokenAlternative, TokenStep, Usage

if TYPE_CHECKING:
    import torch
else:
    torch = require("torch", "local", purpose="cascade_core.backends.transformers")

__all__ = ["PromptFormat", "TransformersModel"]

logger = logging.getLogger(__name__)

PromptFormat = Literal["auto", "chat", "plain", "completion"]
_FORMATS = ("auto", "chat", "plain", "completion")
_PLAIN_ROLES = {"system": "System", "user": "User", "assistant": "Assistant", "tool": "Tool"}


def _load(model_id: str, dtype: torch.dtype) -> tuple[Any, Any]:
    require("transformers", "local", purpose="TransformersModel")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(model_id)
        model = AutoModelForCausalLM.from_pretrained(model_id, dtype=dtype)
    except (OSError, ValueError) as err:
        raise ModelNotAvailableError(
            f"could not load {model_id!r} with transformers ({err}); pass a local path or an installed model"
        ) from err
    return model, tokenizer


class TransformersModel(TokenModelBase):
    """A local causal LM as a cascade tier (small or large).

    Args:
        model: A loaded ``PreTrainedModel``, or an HF model id / local path to load.
        tokenizer: Its tokenizer (loaded with the model when ``model`` is a path).
        top_k: Alternatives recorded per step (≥ 2 for margin and entropy signals).
        max_new_tokens: Default cap on generated tokens.
        prompt_format: ``"chat"`` (the tokenizer's chat template), ``"plain"`` ("User: …\\nAssistant:"
            transcript, for base models), ``"completion"`` (message contents concatenated, for
            few-shot prompts), or ``"auto"`` (chat if the tokenizer has a template, else plain).
        temperature: 0 (default) decodes greedily; > 0 samples at that temperature.
        seed: Seed for sampling.
        record_embedding: Also record the mean last-layer hidden state of the generated tokens
            (the "Post-Hoc-Embed" feature of paper A).
        name: Model name for results (default: the model's ``name_or_path``).
        dtype: Weights' dtype when ``model`` is a path to load.
        max_batch_size: Most requests :meth:`stream_steps_batch` prefills in one forward pass
            (``Cascade.batch`` / ``abatch`` group requests by it); 1 turns batched prefill off.

    Example:
        >>> from cascade_core.testing import tiny_model, tiny_tokenizer
        >>> tok = tiny_tokenizer()
        >>> small = TransformersModel(tiny_model(tok), tok, top_k=3, max_new_tokens=4, prompt_format="completion")
        >>> result = small.complete(Request.from_prompt("the cat"))
        >>> result.usage.output_tokens <= 4
        True
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any = None,
        *,
        top_k: int = 5,
        max_new_tokens: int = 64,
        prompt_format: PromptFormat = "auto",
        temperature: float = 0.0,
        seed: int = 0,
        record_embedding: bool = False,
        name: str | None = None,
        dtype: torch.dtype = torch.float32,
        max_batch_size: int = 16,
    ) -> None:
        if isinstance(model, str):
            model, tokenizer = _load(model, dtype)
        if tokenizer is None:
            raise ConfigurationError("TransformersModel needs the tokenizer of the model (tokenizer=...)")
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise ConfigurationError(f"TransformersModel.top_k must be a positive int, got {top_k!r}")
        if not isinstance(max_new_tokens, int) or max_new_tokens < 1:
            raise ConfigurationError(f"TransformersModel.max_new_tokens must be a positive int, got {max_new_tokens!r}")
        if isinstance(max_batch_size, bool) or not isinstance(max_batch_size, int) or max_batch_size < 1:
            raise ConfigurationError(f"TransformersModel.max_batch_size must be a positive int, got {max_batch_size!r}")
        if prompt_format not in _FORMATS:
            raise ConfigurationError(f"prompt_format must be one of {list(_FORMATS)}, got {prompt_format!r}")
        has_template = bool(getattr(tokenizer, "chat_template", None))
        if prompt_format == "chat" and not has_template:
            raise ConfigurationError("prompt_format='chat' but the tokenizer has no chat template; use 'plain'")
        if temperature < 0:
            raise ConfigurationError(f"temperature must be >= 0, got {temperature!r}")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.top_k = top_k
        self.max_new_tokens = max_new_tokens
        self.prompt_format: PromptFormat = ("chat" if has_template else "plain") if prompt_format == "auto" else prompt_format
        self.temperature = float(temperature)
        self.seed = seed
        self.record_embedding = record_embedding
        self.max_batch_size = max_batch_size
        self.model_name = name or str(getattr(model, "name_or_path", "") or type(model).__name__)
        self.context_window = int(getattr(model.config, "max_position_embeddings", 2048) or 2048)
        hidden = getattr(model.config, "hidden_size", None)
        self.embedding_dim: int | None = int(hidden) if isinstance(hidden, int) else None  # what record_embedding gives
        self._lock = threading.Lock()
        # transformers >= 5.2x names the KV cache ``cache``; older releases ``past_key_values``
        forward_params = inspect.signature(model.forward).parameters
        self._cache_arg = "cache" if "cache" in forward_params else "past_key_values"
        # a prefill needs the last position's logits only (as ``generate`` does): skips the LM head elsewhere
        self._last_logits: dict[str, Any] = {"logits_to_keep": 1} if "logits_to_keep" in forward_params else {}
        self._pieces: dict[int, str] = {}  # token id -> its text alone (decoded once per id)
        self._batchable = True  # False once a batched prefill failed (e.g. a cache that cannot be split)
        pad = getattr(tokenizer, "pad_token_id", None)
        self._pad_id = int(pad if pad is not None else tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0)
        eos = getattr(model.generation_config, "eos_token_id", None) if getattr(model, "generation_config", None) else None
        eos = eos if eos is not None else tokenizer.eos_token_id
        self._eos: set[int] = set(eos if isinstance(eos, (list, tuple)) else [eos] if eos is not None else [])

    def __repr__(self) -> str:
        return f"TransformersModel(name={self.model_name!r}, top_k={self.top_k}, prompt_format={self.prompt_format!r})"

    # -- prompts ---------------------------------------------------------------------------------
    def with_embedding(self) -> TransformersModel:
        """This model (same weights, tokenizer and settings) recording the pooled embedding on ``StepsEnd``.

        Example:
            >>> from cascade_core.testing import tiny_model, tiny_tokenizer
            >>> tok = tiny_tokenizer()
            >>> small = TransformersModel(tiny_model(tok), tok, prompt_format="completion")
            >>> small.with_embedding().record_embedding, small.record_embedding
            (True, False)
        """
        if self.record_embedding:
            return self
        twin = copy.copy(self)  # shares the weights, and the lock that serialises their use
        twin.record_embedding = True
        return twin

    def render(self, request: Request) -> str:
        """The prompt text the model sees for ``request``."""
        if self.prompt_format == "completion":
            return "\n\n".join(m.content for m in request.messages)
        if self.prompt_format == "plain":
            lines = [f"{_PLAIN_ROLES[m.role]}: {m.content}" for m in request.messages]
            return "\n".join(lines) + "\nAssistant:"
        messages = [{"role": m.role, "content": m.content} for m in request.messages]
        try:
            return str(self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False))
        except Exception as err:
            raise BackendError(f"{self.model_name}: chat template failed on the messages: {err}") from err

    def _encode(self, request: Request) -> torch.Tensor:
        prompt = self.render(request)
        special = self.prompt_format != "chat"  # chat templates already contain BOS/role tokens
        ids = self.tokenizer(prompt, return_tensors="pt", add_special_tokens=special)["input_ids"]
        limit = request.max_new_tokens or self.max_new_tokens
        if ids.shape[1] + limit > self.context_window:
            raise BackendError(
                f"{self.model_name}: prompt of {ids.shape[1]} tokens + {limit} new tokens exceeds the context "
                f"window of {self.context_window}"
            )
        return ids

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def prompt_embedding(self, prompt: str) -> np.ndarray:
        """The mean of the last-layer hidden states over the prompt's tokens: one forward pass, no token generated.

        What a :class:`~cascade_core.decide.router.QueryRouter` reads before generation (the same
        pooling as ``benchmarks/public/embed.py``; the prompt is tokenised as is, without special tokens).

        Example:
            >>> from cascade_core.testing import tiny_model, tiny_tokenizer
            >>> tok = tiny_tokenizer()
            >>> small = TransformersModel(tiny_model(tok), tok, prompt_format="completion")
            >>> small.prompt_embedding("the cat").shape == (small.embedding_dim,)
            True
        """
        ids = self.tokenizer(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"]
        if ids.shape[1] == 0:
            raise BackendError(f"{self.model_name}: the prompt has no tokens to embed")
        if ids.shape[1] > self.context_window:
            raise BackendError(f"{self.model_name}: prompt of {ids.shape[1]} tokens exceeds the context window of {self.context_window}")
        try:
            with self._lock, torch.inference_mode():
                out = self.model(input_ids=ids, use_cache=False, output_hidden_states=True)
        except Exception as err:
            raise BackendError(f"{self.model_name}: forward pass failed: {err}") from err
        return out.hidden_states[-1][0].float().mean(0).double().numpy()

    def _label_ids(self, labels: tuple[str, ...]) -> list[int]:
        ids: list[int] = []
        for label in labels:
            for variant in (label, " " + label.lstrip()):
                encoded = self.tokenizer.encode(variant, add_special_tokens=False)
                if encoded and encoded[0] not in ids:
                    ids.append(encoded[0])
        return ids

    def _alternatives(self, logprobs: torch.Tensor, extra: list[int]) -> tuple[TokenAlternative, ...]:
        k = min(self.top_k, logprobs.shape[-1])
        values, indices = torch.topk(logprobs, k)
        pairs = dict(zip(indices.tolist(), values.tolist()))
        for token_id in extra:
            pairs.setdefault(token_id, float(logprobs[token_id]))
        ranked = sorted(pairs.items(), key=lambda kv: kv[1], reverse=True)
        return tuple(TokenAlternative(self._piece(i), float(v)) for i, v in ranked)

    def _piece(self, token_id: int) -> str:
        piece = self._pieces.get(token_id)
        if piece is None:
            piece = self._pieces[token_id] = self.tokenizer.decode([token_id])
        return piece

    def _choose(self, logits: torch.Tensor, logprobs: torch.Tensor, generator: torch.Generator) -> int:
        if self.temperature == 0:
            return int(torch.argmax(logprobs))
        probs = torch.softmax(logits / self.temperature, dim=-1)
        return int(torch.multinomial(probs, 1, generator=generator))

    def _forward(self, **kwargs: Any) -> Any:
        with self._lock, torch.inference_mode():
            return self.model(use_cache=True, output_hidden_states=self.record_embedding, **kwargs)

    def generate_texts(self, request: Request, *, n: int, temperature: float, seed: int | None = None) -> TextSamples:
        """``n`` plain-text answers: greedy (``temperature=0``), or sampled in one batched ``generate``
        (``do_sample``, ``num_return_sequences=n``; see :mod:`cascade_core.backends.local_sampling`)."""
        return generate_texts(self, request, n, temperature, seed)

    # -- the step stream ---------------------------------------------------------------------------
    def stream_steps(self, request: Request) -> Iterator[TokenStep | StepsEnd]:
        """Greedy (or sampled) KV-cached decoding, one :class:`TokenStep` per token.

        The end-of-sequence token is reported as a step (its log-prob is part of the sequence's
        uncertainty) with empty ``text``. Closing the iterator stops decoding immediately.
        """
        input_ids = self._encode(request)
        try:
            out = self._forward(input_ids=input_ids, **self._last_logits)
        except Exception as err:
            raise BackendError(f"{self.model_name}: forward pass failed: {err}") from err
        yield from self._decode(request, int(input_ids.shape[1]), *self._row(out, 0, getattr(out, self._cache_arg, None)))

    def stream_steps_batch(self, requests: Sequence[Request]) -> list[Iterator[TokenStep | StepsEnd]]:
        """Prefill ``requests`` in one left-padded forward pass; one step stream per request.

        Each stream yields what :meth:`stream_steps` yields for its request (equal up to float
        rounding): its first step comes from the shared forward pass, later steps decode that
        request alone from its own slice of the KV cache. A caller that closes a stream after its
        first step (a first-token-margin deferral) has paid only its share of one batched prefill.
        A request that cannot join (a prompt over the context window) gets a plain
        :meth:`stream_steps` stream, which raises on first use.

        Example:
            >>> from cascade_core.testing import tiny_model, tiny_tokenizer
            >>> tok = tiny_tokenizer()
            >>> small = TransformersModel(tiny_model(tok), tok, max_new_tokens=3, prompt_format="completion")
            >>> streams = small.stream_steps_batch([Request.from_prompt("the cat"), Request.from_prompt("paris is the")])
            >>> [type(next(s)).__name__ for s in streams]
            ['TokenStep', 'TokenStep']
        """
        streams = [self.stream_steps(r) for r in requests]  # lazy: nothing runs until iterated
        encoded: dict[int, torch.Tensor] = {}
        for i, request in enumerate(requests):
            try:
                encoded[i] = self._encode(request)
            except BackendError:
                continue  # its plain stream raises the same error when used
        if len(encoded) < 2 or not self._batchable:
            return streams
        try:
            rows = self._prefill_rows(list(encoded.values()))
        except Exception as err:  # e.g. a cache layout that cannot be split per request
            logger.warning("%s: batched prefill failed (%s); prefilling one request at a time", self.model_name, err)
            self._batchable = False
            return streams
        for (i, ids), row in zip(encoded.items(), rows):
            streams[i] = self._decode(requests[i], int(ids.shape[1]), *row)
        return streams

    def _prefill_rows(self, inputs: list[torch.Tensor]) -> list[tuple[torch.Tensor, torch.Tensor | None, Any]]:
        """Batched prefill of ``inputs``; per input its last logits, hidden state and own KV cache.

        Prompts sharing a long token prefix (one few-shot template) are grouped: the prefix is
        computed once per group, then the differing suffixes in one left-padded forward pass.
        """
        rows: list[Any] = [None] * len(inputs)
        for members, shared in shared_prefix_groups([ids[0].tolist() for ids in inputs]):
            for i, row in zip(members, self._prefill_group([inputs[i] for i in members], shared)):
                rows[i] = row
        return rows

    def _prefill_group(self, inputs: list[torch.Tensor], shared: int) -> list[tuple[torch.Tensor, torch.Tensor | None, Any]]:
        from transformers import DynamicCache
        from transformers.cache_utils import DynamicLayer

        past: dict[str, Any] = {}
        if shared:  # the common prefix once, its cache then repeated for every member
            prefix = self._forward(input_ids=inputs[0][:, :shared], **self._last_logits)
            cache = getattr(prefix, self._cache_arg)
            cache.batch_repeat_interleave(len(inputs))
            past = {self._cache_arg: cache}
        width = max(int(ids.shape[1]) - shared for ids in inputs)
        batch = torch.full((len(inputs), width), self._pad_id, dtype=torch.long)
        mask = torch.zeros((len(inputs), width), dtype=torch.long)
        for row, ids in enumerate(inputs):
            batch[row, width - (ids.shape[1] - shared):] = ids[0, shared:]
            mask[row, width - (ids.shape[1] - shared):] = 1
        positions = shared + (mask.cumsum(-1) - 1).clamp(min=0)  # positions as in the unbatched prompt
        full_mask = torch.cat([torch.ones((len(inputs), shared), dtype=torch.long), mask], dim=1)
        out = self._forward(input_ids=batch, attention_mask=full_mask, position_ids=positions, **past, **self._last_logits)
        layers = getattr(getattr(out, self._cache_arg, None), "layers", None)
        if not layers or any(type(layer) is not DynamicLayer for layer in layers):
            raise BackendError(f"cache {type(getattr(out, self._cache_arg, None)).__name__} cannot be split per request")
        rows = []
        for row, ids in enumerate(inputs):
            pad = width - (int(ids.shape[1]) - shared)  # dropped: the cache is then that of the prompt alone
            kv = [(split_kv(layer.keys, row, shared, pad), split_kv(layer.values, row, shared, pad)) for layer in layers]
            rows.append(self._row(out, row, DynamicCache(kv)))
        return rows

    def _row(self, out: Any, row: int, cache: Any) -> tuple[torch.Tensor, torch.Tensor | None, Any]:
        hidden = out.hidden_states[-1][row, -1] if self.record_embedding else None
        return out.logits[row, -1], hidden, cache

    def _decode(
        self, request: Request, prompt_tokens: int, logits: torch.Tensor, state: torch.Tensor | None, cache: Any
    ) -> Iterator[TokenStep | StepsEnd]:
        """The step loop, from the prefill's last logits (and hidden state) and its KV cache."""
        limit = request.max_new_tokens or self.max_new_tokens
        extra = self._label_ids(request.first_step_tokens) if request.first_step_tokens else []
        generator = torch.Generator().manual_seed(self.seed)
        text_of = _IncrementalText(self.tokenizer)
        hidden: list[torch.Tensor] = []
        generated = 0
        shown = ""
        finish = "length"
        for step in range(limit):
            if state is not None:  # the state that produces this step's token
                hidden.append(state.float())
            logits = logits.float()
            logprobs = torch.log_softmax(logits, dim=-1)
            token_id = self._choose(logits, logprobs, generator)
            top = self._alternatives(logprobs, extra if step == 0 else [])
            is_eos = token_id in self._eos
            text = ""
            if not is_eos:
                generated += 1
                text = text_of.add(token_id)
                shown += text
            yield TokenStep(self._piece(token_id), min(0.0, float(logprobs[token_id])), top, token_id=token_id, text=text)
            if is_eos or (request.stop and truncate_at_stop(shown, request.stop) != shown):
                finish = "stop"  # end of sequence, or a stop string was produced (callers cut the text)
                break
            if step + 1 < limit:
                out = self._forward(input_ids=torch.tensor([[token_id]]), **{self._cache_arg: cache})
                logits, state, cache = self._row(out, 0, getattr(out, self._cache_arg, None))
        embedding = torch.stack(hidden).mean(0).numpy() if hidden else None
        yield StepsEnd(Usage(prompt_tokens, generated + (finish == "stop")), finish, embedding)


class _IncrementalText:
    """Text of each new token in context, re-decoding only a short window (as TGI and vLLM do).

    Decoding the whole generated prefix at every step costs O(n) per step; the window (the tokens
    since the last complete piece, plus one before them for context) keeps it O(1). A token that
    ends inside a multi-byte character yields "" until the character is complete.
    """

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self.prefix = 0  # start of the context window
        self.read = 0  # end of the text already returned

    def add(self, token_id: int) -> str:
        self.ids.append(token_id)
        before = self.tokenizer.decode(self.ids[self.prefix:self.read], skip_special_tokens=True)
        after = self.tokenizer.decode(self.ids[self.prefix:], skip_special_tokens=True)
        if len(after) > len(before) and not after.endswith("\ufffd") and after.startswith(before):
            self.prefix, self.read = self.read, len(self.ids)
            return after[len(before):]
        return ""
