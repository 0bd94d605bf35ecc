"""benchmarks/studies/risk_guarantee.py on a small synthetic pool: it runs, writes its table, JSON and plot."""

from __future__ import annotations

import json
import math

import numpy as np

from benchmarks.studies import risk_guarantee
from cascade_core.evaluation.collect import CachedExample
from cascade_core.types import Generation, TokenAlternative, TokenStep


def _example(i: int, p_top: float, small_right: bool) -> CachedExample:
    second = min(p_top, (1 - p_top) * 0.9)
    step = TokenStep(" yes", math.log(p_top), (TokenAlternative(" yes", math.log(p_top)), TokenAlternative(" no", math.log(second))))
    return CachedExample(id=f"q{i}", record={"id": f"q{i}", "answer": "yes"}, small=Generation(" yes", (step,)),
                         large_text="yes", small_quality=float(small_right), large_quality=1.0)


def test_benchmark_reports_violation_rates_and_extra_deferral(tmp_path, capsys):
    rng = np.random.default_rng(0)
    folder = tmp_path / "task"
    folder.mkdir()
    for split, size in (("fit", 150), ("test", 250)):
        p = rng.uniform(0.5, 1.0, size)
        rows = [_example(i, float(pi), bool(rng.random() < pi)) for i, pi in enumerate(p)]
        (folder / f"tiny.{split}.cache.jsonl").write_text("".join(r.to_json() + "\n" for r in rows))
    out_json, png = tmp_path / "r.json", tmp_path / "r.png"
    rows = risk_guarantee.main(["--root", str(tmp_path), "--splits", "40", "--sizes", "100", "300", "--quiet",
                                "--json", str(out_json), "--png", str(png)])
    summary = json.loads(out_json.read_text())
    assert summary["populations"] == ["task/tiny"] and summary["pool_sizes"] == [400]
    assert {r["risk"] for r in rows} == {"kept_error", "quality_loss"} and {r["n"] for r in rows} == {100, 300}
    for r in rows:
        assert 0.0 <= r["cert_viol"] <= 1.0 and r["splits"] == 40
        assert r["cert_defer"] >= r["oracle_defer"] - 0.2  # a guarantee costs deferrals, it never buys many
        assert r["split_cert_viol"] is not None  # n <= pool - 100: a held-out split exists
    # on average the naive threshold violates far more often than the certified one
    assert np.mean([r["naive_viol"] for r in rows]) > np.mean([r["cert_viol"] for r in rows])
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert "| task/tiny | kept_error |" in capsys.readouterr().out
