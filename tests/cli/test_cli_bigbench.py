"""``cascade collect --data bigbench:<task>`` end to end over a fake OpenAI-compatible server on 127.0.0.1
(a synthetic BIG-bench archive), and how each tier spec is prompted (``--large-format``)."""

from __future__ import annotations

import pytest

from cascade_core.cli import main
from cascade_core.cli.tiers import build_tier
from cascade_core.errors import ConfigurationError
from cascade_core.evaluation.collect import load_cache
from cascade_core.testing.fake_server import FakeOpenAIServer, FakeReply


def _responder(body):
    """Small: says "true" to every claim, confident only on even claim numbers. Large: reads the gold answer off
    the claim number (i % 3 != 0 -> true), like the synthetic task's labels."""
    claim = body["messages"][-1]["content"].rsplit("Claim number ", 1)[1]
    number = int(claim.split()[0])
    if body["model"] == "large":
        return FakeReply(" true" if number % 3 else " false")
    return FakeReply(" true", confidence=0.9 if number % 2 == 0 else 0.4)


def test_collect_reads_a_bigbench_task_split(bigbench_archive, tmp_path, capsys):
    out = tmp_path / "claims.cache.jsonl"
    with FakeOpenAIServer(_responder) as srv:
        code = main(["collect", "--data", "bigbench:toy/claims", "--split", "test", "--limit", "6", "--out", str(out),
                     "--small", f"openai:{srv.base_url}#small", "--large", f"openai:{srv.base_url}#large", "--no-progress"])
    assert code == 0, capsys.readouterr().err
    rows = load_cache(out)
    assert len(rows) == 6 and all(r.record["task"] == "toy/claims" for r in rows)
    assert all(r.large_quality == 1.0 for r in rows)  # scored by the task's own target_scores
    assert [r.small_quality for r in rows] == [float(r.record["answer"] == "true") for r in rows]
    assert all(r.record["labels"] == ["true", "false"] for r in rows)


def test_collect_names_an_unknown_task_and_an_empty_selection(bigbench_archive, tmp_path, capsys):
    args = ["--out", str(tmp_path / "c.jsonl"), "--small", "openai:http://127.0.0.1:9/v1#s",
            "--large", "openai:http://127.0.0.1:9/v1#l"]
    assert main(["collect", "--data", "bigbench:toy/claim", *args]) == 2
    assert "toy/claims" in capsys.readouterr().err
    assert main(["collect", "--data", "bigbench:toy/claims", "--limit", "0", *args]) == 2
    assert "selects no examples" in capsys.readouterr().err
    assert main(["collect", "--data", "bigbench:", *args]) == 2
    assert "task path" in capsys.readouterr().err


def test_large_tier_prompt_format_follows_large_format():
    url = "openai:http://127.0.0.1:9/v1#m"
    assert build_tier(url, "large").prompt_format == "chat"  # an arbitrary server may have no /v1/completions
    assert build_tier(url, "large", large_format="completion").prompt_format == "completion"
    assert build_tier(url, "large", prompt_format="chat", large_format="auto").prompt_format == "chat"
    assert build_tier(url, "small").prompt_format == "chat"  # a judged OpenAI tier is unchanged
    with pytest.raises(ConfigurationError, match="large_format"):
        build_tier(url, "large", large_format="text")
