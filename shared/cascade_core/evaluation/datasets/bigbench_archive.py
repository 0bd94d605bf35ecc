"""The BIG-bench archive: fetched by name from the package registry on first use, checked, cached.

BIG-bench (Srivastava et al., 2022; Apache-2.0, as stated in its ``setup.py``; each upstream data set
keeps its own licence) ships its JSON tasks inside the ``bigbench==1.0.0`` source distribution.
That package is never installed (it pulls TensorFlow): :func:`fetch_archive` runs
``pip download --no-deps bigbench==1.0.0`` into the cache, :func:`ensure_archive` checks the
archive's sha256, and the ``task.json`` files are extracted once into
``cache_dir()/bigbench/1.0.0/tasks/<task path>/task.json``. Nothing is committed to the repository,
and every file keeps the BIG-bench canary string: never train a model you ship on them.

Example:
    >>> ARCHIVE_NAME
    'bigbench-1.0.0.tar.gz'
    >>> FETCH_COMMAND.split()[:4]
    ['pip', 'download', '--no-deps', 'bigbench==1.0.0']
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tarfile
import tempfile
from pathlib import Path

from cascade_core.errors import DataFormatError
from cascade_core.evaluation.datasets.registry_file import RegistryFile

__all__ = [
    "ARCHIVE_NAME",
    "ARCHIVE_SHA256",
    "FETCH_COMMAND",
    "archive_path",
    "ensure_archive",
    "fetch_archive",
    "task_dir",
]

logger = logging.getLogger(__name__)

VERSION = "1.0.0"
ARCHIVE_NAME = f"bigbench-{VERSION}.tar.gz"
ARCHIVE_SHA256 = "1bb398a5512c6d798cdebe0dfa0ac03f67f6033fa6b39c6ef71df978c7cbc5c2"
"""sha256 of ``bigbench-1.0.0.tar.gz`` (358 MB) as the registry serves it."""
_PREFIX = f"bigbench-{VERSION}/bigbench/benchmark_tasks/"
FETCH_COMMAND = f"pip download --no-deps bigbench=={VERSION} -d {{dir}}"  # the command ARCHIVE.fetch runs
"""The one command that fetches the archive (``{dir}``: the archive's folder)."""


ARCHIVE = RegistryFile("the BIG-bench archive", "bigbench", VERSION, ARCHIVE_NAME, ARCHIVE_SHA256,
                       env="CASCADE_BIGBENCH", path_env="ARCHIVE", size="358 MB", cache_name="bigbench")


def _root() -> Path:
    return ARCHIVE.folder()


def archive_path() -> Path:
    """Where the archive is looked for: ``$CASCADE_BIGBENCH_ARCHIVE``, else ``cache_dir()/bigbench/1.0.0/``."""
    return ARCHIVE.path()


def fetch_archive(folder: Path | None = None) -> Path:
    """Run ``pip download --no-deps bigbench==1.0.0`` into ``folder`` (default: the archive's folder).

    Raises:
        DataFormatError: pip failed (no registry reachable, …); the message gives the command to run by hand.
    """
    return ARCHIVE.fetch(folder)


def ensure_archive(*, fetch: bool = True) -> Path:
    """The checked archive, fetched first when it is missing and ``fetch`` is true.

    ``$CASCADE_BIGBENCH_FETCH=0`` turns fetching off (for offline machines); ``$CASCADE_BIGBENCH_SHA256``
    overrides the expected hash (for the tests' synthetic archives).

    Raises:
        DataFormatError: the archive is missing (the message names the one command that fetches it), or its
            sha256 is not the pinned one (a corrupt or different file; it is never read).
    """
    return ARCHIVE.ensure(fetch=fetch)


def _expected_sha256() -> str:
    return ARCHIVE.expected_sha256()


def _extracted_root(archive: Path, sha: str) -> Path:
    return _root() / f"tasks-{sha[:12]}" if not os.environ.get("CASCADE_BIGBENCH_ARCHIVE") else (
        archive.parent / f".{archive.name}.tasks-{sha[:12]}"
    )


def task_dir(*, fetch: bool = True) -> Path:
    """The folder holding every ``<task path>/task.json`` of the archive (extracted once, on first use).

    The archive is hashed only before it is extracted: the folder is named by the hash it was checked
    against, so a later call finds it without reading the 358 MB again.
    """
    root = _extracted_root(archive_path(), _expected_sha256())
    if (root / "INDEX.json").exists():
        return root
    archive = ensure_archive(fetch=fetch)
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=root.parent))
    names: list[str] = []
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                if not (member.isfile() and member.name.startswith(_PREFIX) and member.name.endswith("/task.json")):
                    continue
                rel = member.name[len(_PREFIX):]
                if ".." in Path(rel).parts:
                    continue
                source = tar.extractfile(member)
                if source is None:
                    continue
                out = tmp / rel
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(source.read())
                names.append(rel[: -len("/task.json")])
        if not names:
            raise DataFormatError(f"{archive} holds no {_PREFIX}<task>/task.json files")
        (tmp / "INDEX.json").write_text(json.dumps(sorted(names)), encoding="utf-8")
        if root.exists():
            shutil.rmtree(root)
        tmp.rename(root)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return root
