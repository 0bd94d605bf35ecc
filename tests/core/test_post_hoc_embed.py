"""Post-Hoc-Embed end to end: a rule that reads the small model's pooled embedding makes the cascade
record it, fails clearly where it cannot be had, and `cascade fit` compares it when the cache has it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cascade_core import Cascade, ThresholdRule
from cascade_core.backends.transformers import TransformersModel
from cascade_core.decide.learned.rule import LearnedDeferral
from cascade_core.errors import ConfigurationError
from cascade_core.evaluation.collect import CachedExample
from cascade_core.testing import ScriptedModel
from cascade_core.types import Generation, TokenAlternative, TokenStep


@pytest.fixture()
def small(tiny_pair):
    model, tokenizer = tiny_pair
    return TransformersModel(model, tokenizer, top_k=3, max_new_tokens=4, prompt_format="completion")


def test_cascade_has_its_transformers_small_tier_record_the_embedding(small, post_hoc_embed):
    rule, generate = post_hoc_embed
    assert rule.needs_embedding and rule.embedding_dim == small.embedding_dim == 32
    cascade = Cascade([small, ScriptedModel("big")], ThresholdRule(rule, 0.5))
    assert cascade.tiers[0].model.record_embedding and not small.record_embedding  # a twin; the user's model is untouched
    result = cascade.invoke("the cat")
    expected = rule(generate(small, "the cat"))
    assert result.decision.signal == rule.name and result.decision.score == pytest.approx(expected, abs=1e-9)
    assert result.tier == (0 if expected >= 0.5 else 1)


def test_an_embedding_rule_on_a_tier_that_cannot_record_one_fails_at_construction(post_hoc_embed):
    rule, _ = post_hoc_embed
    with pytest.raises(ConfigurationError, match=r"Post-Hoc-Embed.*cannot record one.*--no-embedding"):
        Cascade([ScriptedModel("small answer"), ScriptedModel("big")], ThresholdRule(rule, 0.5))


def test_an_embedding_rule_fitted_on_another_width_fails_at_construction(small):
    step = TokenStep("a", -0.2, (TokenAlternative("a", -0.2), TokenAlternative("b", -2.0)))
    gens = [Generation("a", (step,), embedding=np.full(7, float(i))) for i in range(6)]
    rule = LearnedDeferral(use_embedding=True).fit_generations(gens, [0, 1, 0, 1, 0, 1])
    with pytest.raises(ConfigurationError, match="7-dimensional embeddings.*gives 32-dimensional"):
        Cascade([small, ScriptedModel("big")], ThresholdRule(rule, 0.5))


def test_a_tool_call_rule_over_an_embedding_rule_gets_the_embedding_too(small, post_hoc_embed):
    from cascade_core.decide.tool_uncertainty import ToolCallRule

    rule, generate = post_hoc_embed
    cascade = Cascade([small, ScriptedModel("big")], ToolCallRule(ThresholdRule(rule, 0.5), name_threshold=0.2))
    assert cascade.tiers[0].model.record_embedding
    assert cascade.invoke("the dog").decision.score == pytest.approx(rule(generate(small, "the dog")), abs=1e-9)
    with pytest.raises(ConfigurationError, match="Post-Hoc-Embed"):
        Cascade([ScriptedModel("small"), ScriptedModel("big")], ToolCallRule(ThresholdRule(rule, 0.5)))


def test_a_rule_without_the_embedding_leaves_the_small_tier_alone(small):
    cascade = Cascade([small, ScriptedModel("big")], ThresholdRule("margin", 0.3))
    assert cascade.tiers[0].model is small


# -- cascade fit ------------------------------------------------------------------------------------
def _cache(path, *, with_embedding: bool, n: int = 60) -> None:
    """Answers whose correctness only the embedding's first coordinate tells (token log-probs are noise)."""
    rng = np.random.default_rng(0)
    lines = []
    for i in range(n):
        ok = i % 2 == 0
        lp = float(rng.uniform(-2.0, -0.1))
        step = TokenStep("a", lp, (TokenAlternative("a", lp), TokenAlternative("b", lp - float(rng.uniform(0.1, 2)))))
        emb = rng.normal(0.0, 1.0, 6)
        emb[0] += 2.5 if ok else -2.5
        small = Generation("a", (step,), embedding=emb if with_embedding else None)
        lines.append(CachedExample(id=f"q{i}", record={"id": f"q{i}"}, small=small, large_text="b",
                                   small_quality=float(ok), large_quality=1.0).to_json())
    path.write_text("\n".join(lines) + "\n")


def _fit(tmp_path, *extra, with_embedding=True):
    from cascade_core.cli import main

    cache, out, table = tmp_path / "fit.jsonl", tmp_path / "rule.json", tmp_path / "selection.json"
    _cache(cache, with_embedding=with_embedding)
    assert main(["fit", "--cache", str(cache), "--out", str(out), "--cv", "3", "--cv-repeats", "1",
                 "--model", "logistic", "--target", "small_correct", "--json", str(table), *extra]) == 0
    return json.loads(out.read_text()), [row["candidate"] for row in json.loads(table.read_text())["table"]]


def test_cascade_fit_compares_post_hoc_embed_when_the_cache_records_the_embedding(tmp_path):
    saved, candidates = _fit(tmp_path)
    assert "learned(logistic+embed,small_correct,C=0.03)" in candidates
    assert "learned(logistic+embed/pca8,small_correct,C=0.3)" in candidates
    assert "+embed" in saved["selection"]["winner"]  # only the embedding carries the correctness here
    loaded = LearnedDeferral.load(tmp_path / "rule.json")
    assert loaded.needs_embedding and loaded.embedding_dim == 6


@pytest.mark.parametrize("extra, with_embedding", [(("--no-embedding",), True), ((), False)])
def test_cascade_fit_leaves_post_hoc_embed_out_when_told_or_when_the_cache_has_no_embedding(tmp_path, extra, with_embedding):
    _, candidates = _fit(tmp_path, *extra, with_embedding=with_embedding)
    assert candidates and not any("+embed" in c for c in candidates)
