"""Deterministic splits shared by the bundled data sets (world facts, world regions).

Every example is ranked by ``sha256(f"{seed}:{id}")`` within its group (an attribute, a label); the
first 40 % (rounded) of a group's ranking form the ``"calibration"`` split, the rest ``"test"``.
The rank depends on the example's own id only, so adding or removing an example moves at most one
other example (at the 40 % boundary). A ``limit`` takes the top of the same rankings.

Example:
    >>> ids = [f"q{i}" for i in range(10)]
    >>> cal, test = split_ranked(ids, "calibration", 0, id_of=str), split_ranked(ids, "test", 0, id_of=str)
    >>> len(cal), len(test), sorted(cal + test) == sorted(ids)
    (4, 6, True)
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from cascade_core.errors import ConfigurationError

__all__ = [
    "CALIBRATION_FRACTION",
    "SPLITS",
    "check_limit",
    "check_split",
    "even_quotas",
    "rank_key",
    "round_robin",
    "split_ranked",
]

T = TypeVar("T")

SPLITS: tuple[str, ...] = ("calibration", "test", "all")
"""Allowed ``split`` values."""

CALIBRATION_FRACTION = 0.4
"""Share of each group's ranking in the ``"calibration"`` split."""


def rank_key(seed: int, example_id: str) -> str:
    """The sort key of an example in its group's ranking for ``seed``."""
    return hashlib.sha256(f"{seed}:{example_id}".encode()).hexdigest()


def check_split(split: str) -> str:
    """``split`` if it is one of :data:`SPLITS`, else :class:`ConfigurationError`."""
    if split not in SPLITS:
        raise ConfigurationError(f"unknown split {split!r}; allowed: {', '.join(SPLITS)}")
    return split


def check_limit(limit: int | None) -> int | None:
    """``limit`` if it is ``None`` or a non-negative int, else :class:`ConfigurationError`."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise ConfigurationError(f"limit must be a non-negative integer or None, got {limit!r}")
    return limit


def _example_id(example: Any) -> str:
    return str(example.id)


def split_ranked(items: Iterable[T], split: str, seed: int, *, id_of: Callable[[T], str] = _example_id) -> list[T]:
    """One group's examples of ``split``, in ranking order (the first 40 % are ``"calibration"``)."""
    ranked = sorted(items, key=lambda item: rank_key(seed, id_of(item)))
    n_cal = round(CALIBRATION_FRACTION * len(ranked))
    if split == "calibration":
        return ranked[:n_cal]
    if split == "test":
        return ranked[n_cal:]
    return ranked


def even_quotas(sizes: Mapping[str, int], limit: int) -> dict[str, int]:
    """Spread ``limit`` as evenly as possible over the groups, capped by their sizes (a remainder
    goes to the groups first in sorted order).

    >>> even_quotas({"a": 1, "b": 5, "c": 5}, 6)
    {'a': 1, 'b': 3, 'c': 2}
    """
    quotas = {a: 0 for a in sizes}
    remaining = min(limit, sum(sizes.values()))
    while remaining > 0:
        open_groups = [a for a in sorted(sizes) if quotas[a] < sizes[a]]
        share, extra = divmod(remaining, len(open_groups))
        for i, a in enumerate(open_groups):
            take = min(share + (1 if i < extra else 0), sizes[a] - quotas[a])
            quotas[a] += take
            remaining -= take
    return quotas


def round_robin(groups: Mapping[str, Sequence[T]], limit: int, order: Sequence[str]) -> list[T]:
    """At most ``limit`` items taken one per group in ``order``, depth by depth of each ranking.

    >>> round_robin({"x": [1, 2, 3], "y": [4]}, 3, ("x", "y"))
    [1, 4, 2]
    """
    picked: list[T] = []
    depth = 0
    while len(picked) < limit and any(depth < len(v) for v in groups.values()):
        for name in order:
            if depth < len(groups[name]) and len(picked) < limit:
                picked.append(groups[name][depth])
        depth += 1
    return picked
