"""The core's subpackages depend on each other in one direction (docs/architecture.md), checked over the source.

Module-level imports only: a function may import a higher layer lazily (the engine starts OpenTelemetry
tracing that way when it is installed).
"""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[2] / "shared" / "cascade_core"
BASE = {"types", "errors", "cost", "redact", "_moved", "__init__", "__main__", "py"}
# subpackage -> the parts of cascade_core it may import at module level
ALLOWED: dict[str, set[str]] = {
    "base": BASE,
    "state": BASE | {"state"},
    "decide": BASE | {"state", "decide"},
    "engine": BASE | {"state", "decide", "engine"},
    "backends": BASE | {"state", "decide", "engine", "backends"},
    "observe": BASE | {"state", "decide", "engine", "observe"},
    "testing": BASE | {"state", "decide", "engine", "backends", "testing"},
    "evaluation": BASE | {"state", "decide", "engine", "backends", "evaluation"},
}


# The tier protocols the engine drives live with the backends that implement them; the engine may import
# that one module of backends/, nothing else there.
PROTOCOLS = "cascade_core.backends.base"


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _layer(path: Path) -> str:
    rel = path.relative_to(PKG).parts
    return rel[0] if len(rel) > 1 else "base"


def _module_level_imports(tree: ast.Module) -> list[str]:
    found: list[str] = []
    for node in tree.body:
        nodes = [node] + (list(ast.walk(node)) if isinstance(node, (ast.If, ast.Try)) else [])
        for n in nodes:
            if isinstance(n, ast.ImportFrom) and n.module and n.module.startswith("cascade_core"):
                found += [n.module] if n.module != "cascade_core" else [f"cascade_core.{a.name}" for a in n.names]
            elif isinstance(n, ast.Import):
                found += [a.name for a in n.names if a.name.startswith("cascade_core")]
    return found


def test_layers_only_import_downwards() -> None:
    violations = []
    for path in sorted(PKG.rglob("*.py")):
        layer = _layer(path)
        if layer not in ALLOWED or layer == "base" and path.name in ("__init__.py", "__main__.py"):
            continue  # cli/ and serve/ are applications on top; cascade_core/__init__ re-exports the API
        for module in _module_level_imports(ast.parse(path.read_text())):
            if _part(module) not in ALLOWED[layer] and not (layer == "engine" and module == PROTOCOLS):
                violations.append(f"{path.relative_to(PKG)} imports {module}")
    assert violations == []
