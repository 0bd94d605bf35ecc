"""Helpers for batched prefill of a local causal LM: shared-prompt-prefix groups, per-request caches.

Pure functions over token ids and KV-cache tensors; :meth:`TransformersModel.stream_steps_batch`
uses them. Prompts built from one template (few-shot examples, a system prompt) share a long
token prefix; computing it once per group and only the differing suffixes per request is what
makes a batch of first-token decisions cheaper than one prefill per request on a CPU, where a
prefill is compute-bound (its cost grows with the tokens it processes, batched or not).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from cascade_core.errors import require

if TYPE_CHECKING:
    import torch
else:
    torch = require("torch", "local", purpose="cascade_core.backends.prefill")

__all__ = ["MIN_SHARED_PREFIX", "common_prefix", "shared_prefix_groups", "split_kv"]

#: Shortest common token prefix worth computing once for a group of prompts.
MIN_SHARED_PREFIX = 16


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the common prefix of two token sequences.

    >>> common_prefix([1, 2, 3], [1, 2, 4, 5])
    2
    """
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def shared_prefix_groups(prompts: Sequence[Sequence[int]], min_shared: int = MIN_SHARED_PREFIX) -> list[tuple[list[int], int]]:
    """Group prompt indices by a shared token prefix of at least ``min_shared`` tokens.

    Returns ``(indices, shared)`` pairs; ``shared`` leaves every member at least one token of its
    own. Prompts sharing no long prefix with another come last, in one group with ``shared=0``.

    >>> shared_prefix_groups([[1, 2, 3, 9], [5, 6], [1, 2, 3, 8]], min_shared=2)
    [([0, 2], 3), ([1], 0)]
    """
    order = sorted(range(len(prompts)), key=lambda i: list(prompts[i]))
    groups: list[tuple[list[int], int]] = []
    alone: list[int] = []
    members, shared = [order[0]], 0
    for i in [*order[1:], None]:
        lcp = common_prefix(prompts[members[-1]], prompts[i]) if i is not None else 0
        joint = min(shared, lcp) if len(members) > 1 else lcp
        if i is not None and joint >= min_shared:
            members.append(i)
            shared = joint
            continue
        if len(members) > 1:
            shared = min(shared, min(len(prompts[m]) for m in members) - 1)
        if len(members) > 1 and shared >= min_shared:
            groups.append((sorted(members), shared))
        else:
            alone.extend(members)
        if i is not None:
            members, shared = [i], 0
    if alone:
        groups.append((sorted(alone), 0))
    return groups


def split_kv(tensor: torch.Tensor, row: int, shared: int, pad: int) -> torch.Tensor:
    """One request's keys or values from a batched cache laid out ``[shared | padding | own]``."""
    own = tensor[row:row + 1, :, shared + pad:]
    return torch.cat([tensor[row:row + 1, :, :shared], own], dim=2) if shared else own
