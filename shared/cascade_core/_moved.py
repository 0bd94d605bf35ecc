"""Old module paths from before the subpackage layout (0.1), kept importable with a DeprecationWarning.

``import cascade_core.signals`` returns the module now at ``cascade_core.decide.signals`` (the same object, so
``mock.patch`` and ``isinstance`` keep working). Installed once by ``cascade_core/__init__``.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings
from types import ModuleType

MOVED: dict[str, str] = {
    "signals": "decide.signals",
    "scorers": "decide.scorers",
    "rules": "decide.rules",
    "thresholds": "decide.thresholds",
    "probability": "decide.probability",
    "tool_uncertainty": "decide.tool_uncertainty",
    "rule_file": "decide.rule_file",
    "learned": "decide.learned.rule",
    "learned_features": "decide.learned.features",
    "learned_trees": "decide.learned.trees",
    "rule_selection": "evaluation.rule_selection",
    "stops": "engine.stops",
    "tool_calls": "engine.tool_calls",
    "context": "engine.context",
    "content": "engine.content",
    "telemetry": "observe.telemetry",
    "monitor": "observe.monitor",
    "embedded": "backends.embedded",
    "defaults": "backends.defaults",
    "collect": "evaluation.collect",
    "calibration": "evaluation.calibration",
    "plots": "evaluation.plots",
    "datasets": "evaluation.datasets",
    "fake_server": "testing.fake_server",
    "demo": "cli.demo",
    "cli.report": "evaluation.report",
}


class _AliasLoader(importlib.abc.Loader):
    def __init__(self, target: str) -> None:
        self.target = target

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        warnings.warn(
            f"{spec.name} moved to {self.target}; import it from there", DeprecationWarning, stacklevel=2
        )
        module = importlib.import_module(self.target)
        self._spec = module.__spec__
        return module

    def exec_module(self, module: ModuleType) -> None:
        # Already executed under its new name; the import system has just overwritten __spec__ with the alias's.
        module.__spec__ = self._spec


class _MovedFinder(importlib.abc.MetaPathFinder):
    """Resolves ``cascade_core.<old>`` (and anything below it) to its new module."""

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> importlib.machinery.ModuleSpec | None:
        prefix, _, rest = fullname.partition(".")
        if prefix != "cascade_core" or not rest:
            return None
        for old, new in MOVED.items():
            if rest == old or rest.startswith(old + "."):
                target = f"cascade_core.{new}{rest[len(old):]}"
                return importlib.machinery.ModuleSpec(fullname, _AliasLoader(target))
        return None


def install() -> None:
    if not any(isinstance(finder, _MovedFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _MovedFinder())  # before PathFinder, which would load a second copy via __path__
