"""A Post-Hoc-Embed rule file in an LCEL chain: ChatCascade's small tier records the embedding the rule reads."""

from __future__ import annotations

import pytest
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import PromptTemplate

from cascade_core import ThresholdRule
from cascade_core.backends.transformers import TransformersModel
from cascade_core.decide.learned.rule import LearnedDeferral
from cascade_core.errors import ConfigurationError
from cascade_core.testing import ScriptedModel
from langchain_cascade import ChatCascade


def test_a_saved_embedding_rule_decides_inside_a_chain(tiny_pair, post_hoc_embed, tmp_path):
    rule, generate = post_hoc_embed
    rule.save(tmp_path / "rule.json")
    model, tokenizer = tiny_pair
    small = TransformersModel(model, tokenizer, top_k=3, max_new_tokens=4, prompt_format="completion")
    llm = ChatCascade(small=small, large=ScriptedModel("the large answer"),
                      rule=ThresholdRule(LearnedDeferral.load(tmp_path / "rule.json"), 0.5))
    chain = PromptTemplate.from_template("{animal}") | llm
    scores = []
    for animal in ("the cat", "the dog", "a mat", "the sun"):
        message = chain.invoke({"animal": animal})
        meta = message.response_metadata["cascade"]
        expected = rule(generate(small, animal))
        assert meta["signal"] == rule.name and meta["score"] == pytest.approx(expected, abs=1e-9)
        assert (meta["tier"] == 0) == (expected >= 0.5)
        assert (StrOutputParser().invoke(message) == "the large answer") == (expected < 0.5)
        scores.append(expected)
    assert len(set(scores)) > 1  # the embedding moves the score from prompt to prompt


def test_an_embedding_rule_with_a_text_only_small_tier_is_refused(post_hoc_embed):
    rule, _ = post_hoc_embed
    with pytest.raises(ConfigurationError, match="Post-Hoc-Embed"):
        ChatCascade(small=ScriptedModel("small"), large=ScriptedModel("big"), rule=ThresholdRule(rule, 0.5))
