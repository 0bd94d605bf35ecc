"""Smoke test: every benchmark script runs on its tiny setting and reports finite ratios.

The numbers of a tiny run mean nothing; the real ones come from ``make bench`` (docs/performance.md).
"""

from __future__ import annotations

import importlib
import json
import math

import pytest

from benchmarks.speed import bench_batch, bench_memory, bench_server_batch


@pytest.mark.parametrize(
    ("name", "argv"),
    [
        ("overhead", ["--queries", "2", "--repeats", "1", "--max-new-tokens", "4"]),
        ("adapters", ["--queries", "2", "--repeats", "1", "--max-new-tokens", "4", "--calls", "20"]),
        ("early_exit", ["--queries", "2", "--repeats", "1", "--max-new-tokens", "4"]),
        ("signals", ["--tokens", "16", "--repeats", "5"]),
        ("batch", ["--sizes", "1", "4", "--max-new-tokens", "3", "--max-batch-size", "2"]),
        ("server_batch", ["--sizes", "1", "3", "--max-new-tokens", "3", "--repeats", "1"]),
    ],
)
def test_benchmark_runs_on_the_tiny_model(name, argv, capsys):
    results = importlib.import_module(f"benchmarks.speed.bench_{name}").main(["--tiny", "--quiet", *argv])
    out = capsys.readouterr().out
    assert "machine:" in out and results
    assert all(math.isfinite(v) and v > 0 for v in results.values()), results


def test_batch_benchmark_covers_every_mode_and_size(capsys):
    results = bench_batch.main(["--tiny", "--quiet", "--sizes", "2", "3", "--max-new-tokens", "2"])
    modes = {key.split(":")[1].split("/")[0] for key in results}
    sizes = {key.split("/")[-1] for key in results}
    assert modes == {"threads", "batched", "abatched"} and sizes == {"2", "3"}


def test_server_batch_benchmark_covers_every_mode_slot_count_and_size(capsys):
    results = bench_server_batch.main(["--tiny", "--quiet", "--sizes", "2", "3", "--slots", "1", "2",
                                          "--cases", "margin", "--repeats", "1"])
    assert set(results) == {f"margin:{mode}/{n}" for n in (2, 3)
                            for mode in ("batch@1", "abatch@1", "batch@2", "abatch@2", "batch@2/loop@1")}


@pytest.mark.parametrize("child", ["topk", "scores", "abatch"])
def test_memory_benchmark_children_report_peak_rss(child, capsys):
    bench_memory.main(["--tiny", "--child", child, "--tokens", "12", "--calls", "24"])
    row = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert row["baseline_mb"] > 0 and row["increase_mb"] >= 0
    assert row.get("tokens", 12) > 0 and row.get("calls", 24) == 24


def test_routing_benchmark_times_each_path_it_asserts(capsys):
    """Each timed request took the path it names (routed / deferred / kept: the benchmark asserts it per call)."""
    from benchmarks.speed import bench_routing

    results = bench_routing.main(["--tiny", "--quiet", "--queries", "3", "--repeats", "1", "--max-new-tokens", "4"])
    out = capsys.readouterr().out
    assert "routed:" in out and "deferred, full answer:" in out
    assert results["routed_over_deferred_margin"] > 0 and results["routed_over_deferred_full"] > 0
    assert all(math.isfinite(v) for v in results.values())
