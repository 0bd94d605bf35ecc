"""The public-benchmark report (benchmarks/public/report.py) on synthetic caches laid out as the suite writes them.

The caches are built so the answer is known: the small tier's first-token log-prob says (noisily)
whether its answer is right, one embedding direction says it before generation, and cascadeflow's
drafter score is uninformative. The report must rank accordingly, never put a method above the oracle,
score cascadeflow's chat drafts with the prompt's answer prefix stripped, and write its JSON, table and plot.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from benchmarks.public import report
from cascade_core.evaluation.collect import CachedExample
from cascade_core.types import Generation, TokenAlternative, TokenStep, Usage

TASK = "toy/claims"
N_FIT, N_TEST = 80, 120


def _generation(text: str, logprob: float) -> Generation:
    top = (TokenAlternative(text, logprob), TokenAlternative("x", math.log(max(1e-6, 1 - math.exp(logprob)))))
    return Generation(text, (TokenStep(text, logprob, top),), Usage(10, 1))


def _write_task(runs, rng: np.random.Generator) -> dict[str, list[str]]:
    folder = runs / TASK.replace("/", "__")
    folder.mkdir(parents=True)
    ids: dict[str, list[str]] = {}
    all_ids, good = [], []
    for split, n in (("fit", N_FIT), ("test", N_TEST)):
        lines = []
        for i in range(n):
            right = bool(rng.random() < 0.55)
            answer = "true" if i % 2 else "false"
            small_text = answer if right else ("false" if answer == "true" else "true")
            confidence = np.clip((0.85 if right else 0.55) + rng.normal(0, 0.12), 0.05, 0.99)
            record = {"id": f"{split}{i}", "answer": answer, "aliases": [answer], "labels": ["true", "false"],
                      "kind": "labels", "answer_prefix": "A:", "task": TASK}
            lines.append(CachedExample(
                id=record["id"], record=record, small=_generation(small_text, math.log(confidence)), large_text=answer,
                small_quality=float(right), large_quality=1.0, small_seconds=0.2, large_seconds=1.0, large_usage=Usage(10, 1),
                label_tokens=("true", "false"),
            ).to_json())
            all_ids.append(record["id"])
            good.append(right)
        (folder / f"qwen05.{split}.cache.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
        ids[split] = [json.loads(line)["id"] for line in lines]
    good_arr = np.array(good, dtype=float)
    embedding = rng.normal(size=(len(all_ids), 6))
    embedding[:, 0] = 1.5 * good_arr + rng.normal(0, 0.6, len(all_ids))  # knowable before generation
    np.savez(folder / "qwen05.prompt_embedding.npz", ids=np.array(all_ids), embedding=embedding,
             tokens=rng.integers(20, 60, len(all_ids)), seconds=np.full(20, 0.05))  # 20 timed alone, as embed.py
    # cascadeflow: chat drafts that repeat the prompt's "A:", right as often as ours, score unrelated to it
    with open(folder / "cascadeflow.logprobs.qwen05.jsonl", "w", encoding="utf-8") as fh:
        for i, key in enumerate(ids["test"]):
            answer = "true" if i % 2 else "false"
            fh.write(json.dumps({"id": key, "text": f"A: {answer}" if i % 3 else "A: maybe", "drafter_quality": float(rng.random())}) + "\n")
    # its default setting on the first 40 test prompts only: reported on that subset, beside the others
    with open(folder / "cascadeflow.default.qwen05.jsonl", "w", encoding="utf-8") as fh:
        for i, key in enumerate(ids["test"][:40]):
            fh.write(json.dumps({"id": key, "text": "true" if i % 2 else "false", "drafter_quality": 0.5}) + "\n")
    return ids


@pytest.fixture
def toy_runs(tmp_path):
    runs = tmp_path / "runs"
    _write_task(runs, np.random.default_rng(3))
    return runs


def test_report_ranks_every_method_on_the_same_test_split(toy_runs, tmp_path):
    out = tmp_path / "figures"
    assert report.main(["--runs", str(toy_runs), "--tasks", TASK, "--small", "qwen05", "--out", str(out), "--quiet",
                        "--resamples", "20"]) == 0
    (row,) = json.loads((out / "public_benchmark.json").read_text())
    auc, se = row["auc"], row["se"]
    assert row["n_fit"] == N_FIT and row["n_test"] == N_TEST
    assert set(auc) == set(report.METHODS) - {"cascadeflow_default"}  # that setting did not run
    assert all(se[m] >= 0 for m in auc) and se["margin"] > 0
    ours = [m for m in auc if not m.startswith("cascadeflow")]  # methods deciding over our small answers
    assert all(auc[m] <= auc["oracle"] + 1e-9 for m in ours)
    assert auc["margin"] > auc["random"] + 0.02  # the log-prob carries the signal
    assert auc["router"] > auc["random"] + 0.02  # so does the embedding, before generation
    # its drafts are right on 2/3 of the queries once "A:" is stripped ("A: maybe" never is); its score is
    # noise, so its curve is its own random line, from 2/3 (all drafts kept) to 1 (all escalated)
    assert row["cascadeflow_logprobs_draft_accuracy"] == pytest.approx(2 / 3, abs=0.01)
    assert auc["cascadeflow_logprobs"] == pytest.approx((2 / 3 + 1) / 2, abs=0.04)
    subset = row["cascadeflow_notes"]["default_subset"]
    assert subset["n"] == 40 and subset["default_draft_accuracy"] == 1.0  # every default draft is right
    assert subset["cascadeflow_default"] == pytest.approx(1.0)  # nothing to gain: its curve is flat at 1
    costs = row["compute_at_95"]
    assert set(row["price_at_95"]) == set(costs)
    assert costs["oracle"] <= costs["margin"] <= costs["random"] + 1e-9
    assert costs["router"] > 0 and costs["hybrid"] > 0
    table = (out / "public_benchmark.md").read_text()
    best = max((m for m in report.RANKED if m in auc), key=lambda m: auc[m])
    assert f"| {best} | **{auc[best]:.3f}" in table
    assert (out / "public_qwen05.png").stat().st_size > 10_000 and (out / "public_qwen05_cost.png").stat().st_size > 10_000


def test_missing_embeddings_leave_out_the_router_rows_and_name_the_command(toy_runs, tmp_path, capsys):
    (toy_runs / TASK.replace("/", "__") / "qwen05.prompt_embedding.npz").unlink()
    assert report.main(["--runs", str(toy_runs), "--tasks", TASK, "--small", "qwen05", "--out", str(tmp_path), "--quiet",
                        "--resamples", "5", "--name", "inhouse"]) == 0
    (row,) = json.loads((tmp_path / "inhouse_benchmark.json").read_text())
    assert (tmp_path / "inhouse_benchmark.md").exists() and (tmp_path / "inhouse_qwen05.png").exists()
    assert "router" not in row["auc"] and "hybrid" not in row["auc"] and "margin" in row["auc"]
    assert "benchmarks.public.embed --tiers qwen05" in capsys.readouterr().err


def test_inhouse_workloads_are_split_and_scored_as_their_studies_do():
    """world_facts: the data set's own calibration/test splits, few-shot completion prompts; RAG: the seeded
    question list of ``rag_caches`` (first n_fit = fit), chat prompts, scored by the workload's whole-word match."""
    from benchmarks.public import harness
    from benchmarks.studies.length_bias import build_records
    from cascade_core.evaluation.datasets.world_facts import load_world_facts
    from cascade_core.evaluation.quality import resolve_quality_scorer

    facts = harness.splits("world_facts", 5, 7)
    assert [r["id"] for r in facts["test"]] == [e.id for e in load_world_facts("test", limit=7)]
    assert len(facts["fit"]) == 5 and not {r["id"] for r in facts["fit"]} & {r["id"] for r in facts["test"]}
    assert all(r["prompt"].endswith("A:") for r in facts["fit"])
    rag = harness.splits("rag", 4, 6)
    assert rag["fit"] + rag["test"] == build_records(10, harness.RAG_SEED)
    settings = harness.workload("rag")
    assert (settings.prompt_format, settings.max_new_tokens) == ("chat", 40)
    score = resolve_quality_scorer(settings.quality)
    record = rag["test"][0]
    assert score(f"The answer is {record['answer']}.", record) == 1.0  # a sentence holding the answer is right
    assert resolve_quality_scorer(harness.workload("world_facts").quality) is resolve_quality_scorer("auto")
    assert harness.workload("bigbench/some_task") == harness.BIGBENCH


def test_rank_counts_take_the_top_two_per_task():
    rows = [{"auc": {"margin": 0.9, "router": 0.8, "hybrid": 0.7}}, {"auc": {"margin": 0.5, "router": 0.6, "hybrid": 0.7}}]
    counts = report.rank_counts(rows)
    assert (counts["margin"], counts["router"], counts["hybrid"]) == (1, 2, 1)


@pytest.mark.slow
def test_collect_and_embed_smoke_run_on_the_real_tiers(bigbench_archive, tmp_path):
    """The suite end to end on a synthetic task: all three tiers on their llama.cpp servers, the joined
    caches every method reads, and the small models' query embeddings (one thread each)."""
    from benchmarks.public import collect, embed
    from cascade_core.evaluation.collect import load_cache

    runs = tmp_path / "runs"
    common = ["--runs", str(runs), "--tasks", TASK, "--fit", "3", "--test", "3", "--threads", "1", "--quiet"]
    assert collect.main(common) == 0
    assert embed.main(common) == 0
    folder = runs / TASK.replace("/", "__")
    for small in ("smollm2", "qwen05"):
        test = load_cache(folder / f"{small}.test.cache.jsonl")
        assert len(test) == 3 and all(e.small.steps and e.large_text for e in test)
        assert all(e.label_tokens for e in test)  # a label task: the margin reads the labels' first tokens
        data = np.load(folder / f"{small}.prompt_embedding.npz")
        assert len(data["ids"]) == 6 and data["embedding"].shape[0] == 6 and (data["tokens"] > 0).all()
        assert np.isfinite(data["embedding"]).all() and len(set(map(tuple, data["embedding"].round(4)))) == 6
    summary = json.loads((runs / "collect_summary.json").read_text())
    assert summary[0]["task"] == TASK and {"smollm2", "qwen05", "qwen15"} <= set(summary[0])


@pytest.mark.slow
def test_inhouse_rag_collects_chat_answers_with_its_token_cap(tmp_path):
    """``--tasks rag`` on the real tiers: chat prompts, answers up to 40 tokens scored by the workload's own
    matcher, joined for the one small tier asked for (SmolLM2), embedded for its router."""
    from benchmarks.public import collect, embed
    from cascade_core.evaluation.collect import load_cache

    runs = tmp_path / "runs"
    common = ["--runs", str(runs), "--tasks", "rag", "--fit", "1", "--test", "2", "--threads", "1", "--quiet"]
    assert collect.main([*common, "--tiers", "smollm2", "qwen15"]) == 0
    assert embed.main([*common, "--tiers", "smollm2"]) == 0
    test = load_cache(runs / "rag" / "smollm2.test.cache.jsonl")
    assert len(test) == 2 and not (runs / "rag" / "qwen05.test.cache.jsonl").exists()
    rows = [json.loads(line) for line in (runs / "rag" / "smollm2.test.jsonl").read_text().splitlines()]
    assert {r["format"] for r in rows} == {"chat"} and all(r["usage"][1] <= 40 for r in rows)
    assert all(e.record["kind"] and e.large_text for e in test)
    assert set(np.load(runs / "rag" / "smollm2.prompt_embedding.npz")["ids"]) == {e.id for e in test} | {"q0"}
