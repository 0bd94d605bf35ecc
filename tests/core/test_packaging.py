"""Packaging and layering: the wheel ships three top-level packages; the core imports no framework."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(ROOT)],
        check=True, timeout=300,
    )
    (built,) = out.glob("llm_cascade-*.whl")
    return built


def test_wheel_exposes_the_three_packages_and_not_shared(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    for package in ("cascade_core", "langchain_cascade", "llamaindex_cascade"):
        assert f"{package}/__init__.py" in names and f"{package}/py.typed" in names
    assert "cascade_core/backends/transformers.py" in names
    assert not any(n.startswith("shared/") for n in names)
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "cascade = cascade_core.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_installed_wheel_imports(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, timeout=300)
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "import cascade_core, langchain_cascade, llamaindex_cascade;"
        "assert cascade_core.__file__.startswith(sys.argv[1]), cascade_core.__file__;"
        "print('ok')"
    )
    done = subprocess.run([sys.executable, "-c", code, str(target)], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "ok", done.stderr


def test_core_never_imports_langchain_or_llama_index():
    import cascade_core

    modules = [m.name for m in pkgutil.walk_packages(cascade_core.__path__, "cascade_core.") if not m.name.endswith("__main__")]
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('langchain', 'langchain_core', 'llama_index'))\n"
        "print(bad)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_shared_is_not_an_importable_package():
    assert not (ROOT / "shared" / "__init__.py").exists()
