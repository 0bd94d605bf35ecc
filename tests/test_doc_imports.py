"""Every import shown in the README and docs/ python blocks works, from its current (non-deprecated) path."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_BLOCK = re.compile(r"```python\n(.*?)```", re.S)
_IMPORT = re.compile(r"^\s*(?:>>> )?((?:from [\w.]+ import [\w, ()]+)|(?:import [\w.]+))\s*(?:#.*)?$", re.M)


def _imports() -> list[tuple[str, str]]:
    found = []
    for doc in DOCS:
        for block in _BLOCK.findall(doc.read_text()):
            for line in _IMPORT.findall(block):
                if "(" in line and ")" not in line:  # a parenthesised multi-line import: not checked here
                    continue
                found.append((doc.name, line.strip()))
    return sorted(set(found))


IMPORTS = _imports()


def test_the_docs_have_imports_to_check() -> None:
    assert any(name == "README.md" for name, _ in IMPORTS)


@pytest.mark.parametrize(("doc", "statement"), IMPORTS, ids=[f"{d}:{s}" for d, s in IMPORTS])
def test_doc_import_works_without_deprecation(doc: str, statement: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        exec(statement, {})  # noqa: S102 - the statement is an import line read from our own docs
