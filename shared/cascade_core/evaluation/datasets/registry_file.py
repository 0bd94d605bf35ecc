"""A data file that comes from the package registry by name: fetched once with ``pip download --no-deps``,
its sha256 checked before it is read, cached under the library's cache folder.

Public benchmark data (BIG-bench's sdist, BFCL's wheel) ships inside packages that must never be
installed (they pull TensorFlow, or every provider SDK). :class:`RegistryFile` describes one such
file; :meth:`RegistryFile.ensure` returns its checked path, fetching it first when it is missing.
Environment variables named after ``env`` override the location (``<env>_<PATH_ENV>``), the hash
(``<env>_SHA256``, for the tests' synthetic files) and switch fetching off (``<env>_FETCH=0``).

Example:
    >>> f = RegistryFile("the BFCL wheel", "bfcl-eval", "2026.3.23", "bfcl_eval-2026.3.23-py3-none-any.whl",
    ...                  "0" * 64, env="CASCADE_BFCL", path_env="WHEEL", size="1.9 MB", cache_name="bfcl")
    >>> f.fetch_command("/tmp/x")
    'pip download --no-deps bfcl-eval==2026.3.23 -d /tmp/x'
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from cascade_core.errors import DataFormatError

__all__ = ["RegistryFile", "sha256_of"]

logger = logging.getLogger(__name__)


def sha256_of(path: Path) -> str:
    """The file's sha256, read in 1 MB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class RegistryFile:
    """One pinned file of one package on the registry.

    Attributes:
        label: What it is, for messages ("the BIG-bench archive").
        package: The distribution name (``bigbench``).
        version: The pinned version.
        filename: The file ``pip download`` writes.
        sha256: Its pinned hash.
        env: Prefix of the environment overrides (``CASCADE_BIGBENCH``).
        path_env: Suffix of the location override (``ARCHIVE`` → ``$CASCADE_BIGBENCH_ARCHIVE``).
        size: Its size, for the fetch message.
        cache_name: Its folder under the library's cache folder (``cache_dir()/<cache_name>/<version>/``).
        timeout: Seconds the download may take.
    """

    label: str
    package: str
    version: str
    filename: str
    sha256: str
    env: str
    path_env: str
    size: str
    cache_name: str
    timeout: float = 1800.0

    def folder(self) -> Path:
        """``cache_dir()/<cache_name>/<version>/``, the default home of the file."""
        from cascade_core.backends.embedded import cache_dir  # the library's one cache folder

        return cache_dir() / self.cache_name / self.version

    def path(self) -> Path:
        """Where the file is looked for: ``$<env>_<path_env>``, else :meth:`folder`."""
        override = os.environ.get(f"{self.env}_{self.path_env}")
        return Path(override).expanduser() if override else self.folder() / self.filename

    @property
    def overridden(self) -> bool:
        """Whether the location comes from the environment (a test's synthetic file)."""
        return bool(os.environ.get(f"{self.env}_{self.path_env}"))

    def expected_sha256(self) -> str:
        return os.environ.get(f"{self.env}_SHA256", self.sha256)

    def fetch_command(self, folder: str | os.PathLike[str]) -> str:
        """The one command that fetches the file into ``folder``."""
        return f"pip download --no-deps {self.package}=={self.version} -d {folder}"

    def fetch(self, folder: Path | None = None) -> Path:
        """Run the fetch command into ``folder`` (default: the file's folder); returns the file's path.

        Raises:
            DataFormatError: pip failed (no registry reachable, …); the message gives the command to run by hand.
        """
        target = (folder or self.path().parent).expanduser()
        target.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "pip", *self.fetch_command(target).split()[1:]]
        logger.warning("fetching %s (%s) from the package registry into %s", self.label, self.size, target)
        try:
            subprocess.run(command, check=True, capture_output=True, text=True, timeout=self.timeout)
        except (OSError, subprocess.SubprocessError) as err:
            detail = (getattr(err, "stderr", "") or str(err)).strip()
            raise DataFormatError(
                f"could not fetch {self.label} ({detail.splitlines()[-1] if detail else err}); "
                f"fetch it with: {self.fetch_command(target)}"
            ) from err
        return target / self.filename

    def ensure(self, *, fetch: bool = True) -> Path:
        """The checked file, fetched first when it is missing and ``fetch`` is true (and ``$<env>_FETCH`` is not 0).

        Raises:
            DataFormatError: the file is missing (the message names the one command that fetches it), or its
                sha256 is not the pinned one (a corrupt or different file; it is never read).
        """
        path = self.path()
        if not path.exists():
            if not (fetch and os.environ.get(f"{self.env}_FETCH", "1") != "0"):
                raise DataFormatError(f"{self.label} is not at {path}; fetch it with: {self.fetch_command(path.parent)}")
            fetched = self.fetch(path.parent)
            if fetched != path:
                shutil.move(str(fetched), path)
        expected = self.expected_sha256()
        actual = sha256_of(path)
        if actual != expected:
            raise DataFormatError(
                f"{path} has sha256 {actual}, expected {expected} ({self.package}=={self.version} from the package "
                f"registry); delete it and fetch it again with: {self.fetch_command(path.parent)}"
            )
        return path
