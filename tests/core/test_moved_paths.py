"""Module paths from before the subpackage layout still import, as the same module objects, with a warning."""

from __future__ import annotations

import importlib
import sys

import pytest

from cascade_core._moved import MOVED


@pytest.mark.parametrize("old", sorted(MOVED))
def test_old_path_is_the_new_module(old: str) -> None:
    if old in {"plots"}:
        pytest.importorskip("matplotlib")
    new = importlib.import_module(f"cascade_core.{MOVED[old]}")
    sys.modules.pop(f"cascade_core.{old}", None)
    with pytest.warns(DeprecationWarning, match=f"cascade_core.{old} moved to cascade_core.{MOVED[old]}"):
        aliased = importlib.import_module(f"cascade_core.{old}")
    assert aliased is new
    assert aliased.__spec__.name == f"cascade_core.{MOVED[old]}"  # the alias does not rename the real module


def test_submodule_of_moved_package_is_not_loaded_twice() -> None:
    from cascade_core.evaluation.datasets import world_facts

    sys.modules.pop("cascade_core.datasets", None)
    sys.modules.pop("cascade_core.datasets.world_facts", None)
    with pytest.warns(DeprecationWarning):
        old = importlib.import_module("cascade_core.datasets.world_facts")
    assert old is world_facts


def test_unknown_old_name_still_fails() -> None:
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("cascade_core.no_such_module")
