"""The main job end to end with the real embedded pair (slow): calibration, cascade, baselines, summary."""

from __future__ import annotations

import pytest

from cascade_core import Cascade, Pricing, ThresholdRule, Tier
from cascade_core.cli.demo import calibrate, run_demo, summarize
from cascade_core.evaluation.datasets.world_facts import load_world_facts

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pair(embedded_small_completion, embedded_large):
    return [Tier(embedded_small_completion, Pricing(0.02, 0.02)), Tier(embedded_large, Pricing(0.15, 0.6))]


def test_calibration_defers_the_target_share_of_calibration_questions(pair):
    examples = load_world_facts("calibration", limit=12)
    threshold = calibrate(Cascade(pair), examples, deferral_rate=0.5)
    cascade = Cascade(pair, rules=ThresholdRule("margin", threshold))
    small, scorer = cascade.tiers[0].model, cascade.rules[0].scorer
    from cascade_core.cli.demo import _request
    from cascade_core.types import Generation

    scores = [scorer(Generation("", tuple(e for e in small.stream_steps(_request(x, 1)) if hasattr(e, "logprob"))))
              for x in examples]
    assert sum(s < threshold for s in scores) == 6  # 50 % of 12, margins are continuous (no ties)


def test_demo_rows_are_consistent_with_the_tier_that_answered(pair, capsys):
    examples = load_world_facts("test", limit=8)  # 2 per attribute
    cascade = Cascade(pair, rules=ThresholdRule("margin", 0.5))
    rows = run_demo(cascade, examples)
    assert len(rows) == 8 and {r.example.attribute for r in rows} == {"capital", "continent", "demonym", "language"}
    for row in rows:
        expected = row.small_correct if row.tier == 0 else row.large_correct
        assert row.cascade_correct == expected
        assert (row.score < 0.5) == (row.tier == 1)
        assert row.all_large_cost > 0
    printed = capsys.readouterr()
    assert printed.out.count("margin=") + printed.err.count("margin=") == 8
    summary = summarize(rows, 0.5)
    assert "accuracy   small only:" in summary and "deferral rate:" in summary and "saved" in summary
