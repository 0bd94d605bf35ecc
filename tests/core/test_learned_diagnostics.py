"""Smoke test of benchmarks/studies/learned_diagnostics.py on generated data (the real run is documented in docs/learned.md)."""

from __future__ import annotations

import json

from benchmarks.studies import learned_diagnostics


def test_diagnostics_report_on_synthetic_data(tmp_path, capsys):
    out = tmp_path / "diag"
    assert learned_diagnostics.main(["--synthetic", "--out-dir", str(out), "--fast", "--sizes", "40", "160", "--draws", "1", "--cv", "4",
                      "--cv-repeats", "1", "--pooled-sizes", "40", "200"]) == 0
    report = json.loads((out / "learned_diagnostics.json").read_text())
    assert (out / "learning_curve.png").read_bytes()[:4] == b"\x89PNG"
    rows = {r["rule"]: r for r in report["test"]["rows"]}
    assert {"random", "oracle", "cv-selected", "chow_sum", "margin", "entropy"} <= set(rows)
    assert rows["oracle"]["auc_df"] >= rows["cv-selected"]["auc_df"] >= rows["random"]["auc_df"]
    # the generated task needs two features together: the learned rule beats every single signal on test
    assert rows["cv-selected"]["vs_best_signal"] > 2 * rows["cv-selected"]["vs_best_signal_se"] > 0
    assert len(report["coefficients_small_correct_logistic"]) == 15
    cal = report["calibration"]["learned(logistic,small_correct,C=1)"]
    assert sum(b[2] for b in cal["bins"]) == report["n_test"] == 240 and 0 <= cal["ece"] < 0.2
    assert {r["group"] for r in report["per_group"]["rows"]} == {"capital", "currency"}
    assert sorted({r["n_fit"] for r in report["learning_curve"]}) == [40, 160]
    assert "cv-selected on the fit split" in capsys.readouterr().out
    pooled = report["pooled_learning_curve"]
    assert sorted({r["n_fit"] for r in pooled}) == [40, 200] and all(r["held_out"] == 100 for r in pooled)
    big = next(r for r in pooled if r["n_fit"] == 200 and r["rule"].startswith("learned(logistic,small"))
    assert big["vs_best_signal"] > 0  # with enough data the two-feature rule beats any single signal
