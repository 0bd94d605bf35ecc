"""Smoke run of benchmarks/studies/three_tier.py with the real three embedded models on llama.cpp servers (slow)."""

from __future__ import annotations

import json
import runpy
import sys

import pytest

pytestmark = pytest.mark.slow


def test_three_tier_benchmark_runs_and_rows_add_up(tmp_path, monkeypatch, capsys):
    out = tmp_path / "three.json"
    monkeypatch.setattr(sys, "argv", ["three_tier", "--limit", "4", "--calibration", "4", "--threads", "1",
                                      "--json", str(out)])
    with pytest.raises(SystemExit) as info:
        runpy.run_module("benchmarks.studies.three_tier", run_name="__main__")
    assert info.value.code == 0
    table = json.loads(out.read_text())
    rows = {r["config"]: r for r in table["rows"]}
    assert set(rows) == {"small only", "large only", "2-tier cascade", "3-tier cascade"}
    for row in rows.values():
        assert abs(sum(row["answered_by"].values()) - 1.0) < 1e-9 and 0 <= row["accuracy"] <= 1
        assert row["compute_s"] > 0 and row["cost"] > 0
    assert set(rows["3-tier cascade"]["answered_by"]) == {"small", "medium", "large"}
    assert rows["small only"]["answered_by"]["small"] == 1.0
    assert "3-tier cascade" in capsys.readouterr().out
