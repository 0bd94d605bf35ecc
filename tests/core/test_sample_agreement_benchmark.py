"""benchmarks/studies/sample_agreement.py: the measurement on synthetic rows (fast); a real-model smoke run (slow)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from benchmarks.studies import sample_agreement as bench
from cascade_core.evaluation.collect import CachedExample
from cascade_core.types import Generation, TokenAlternative, TokenStep, Usage

ROOT = Path(__file__).resolve().parents[2]


def _row(i: int, right: bool, margin_p: float, samples: tuple[str, ...]) -> CachedExample:
    step = TokenStep("a", math.log(0.6), (TokenAlternative("a", math.log(0.6)), TokenAlternative("b", math.log(margin_p))))
    text = "right" if right else "wrong"
    # usage counts all calls: the greedy one (20 in, 2 out) and the two samples (40 in, 4 out)
    small = Generation(text, (step,), Usage(60, 6), samples=samples, sample_usage=Usage(40, 4))
    return CachedExample(str(i), {"answer": "right"}, small, "right", float(right), 1.0, small_seconds=0.1,
                         large_seconds=0.5, sample_seconds=0.3, sampling={"k": 2, "temperature": 0.7, "seed": 0})


def test_measure_reports_both_signals_with_standard_errors_and_their_costs() -> None:
    # margins say nothing (all 0.3), the samples agree exactly when the answer is right
    rows = [_row(i, i % 2 == 0, 0.3, ("right", "right") if i % 2 == 0 else ("x", "y")) for i in range(20)]
    res = bench.measure(rows, SimpleNamespace(k=2, bootstrap=30, seed=0))
    assert res["auc_df"]["sample_agreement"] == res["auc_df"]["oracle"] > res["auc_df"]["margin"]
    assert res["agreement_minus_margin"] > 0 and res["auc_df_se"]["margin"] > 0
    assert res["cost"]["margin"] == {"small_calls_per_query": 1, "small_input_tokens": 20.0, "small_output_tokens": 2.0,
                                     "small_seconds": 0.1}
    assert res["cost"]["sample_agreement"] == {"small_calls_per_query": 3, "small_input_tokens": 60.0,
                                               "small_output_tokens": 6.0, "small_seconds": 0.4}


def test_bad_sampling_options_are_rejected_by_name() -> None:
    with pytest.raises(Exception, match="k must be an int >= 1"):
        bench.parse(["--k", "0"])
    with pytest.raises(Exception, match="temperature"):
        bench.parse(["--temperature", "0"])


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_sample_agreement_study_runs_with_the_real_models(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "shared"), str(ROOT)]), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "benchmarks.studies.sample_agreement", "--tiny", "--quiet",
                           "--cache-dir", str(tmp_path)], capture_output=True, text=True, timeout=1180, env=env, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads((tmp_path / "tiny" / "sample_agreement.json").read_text())
    assert set(out["datasets"]) == {"world_facts", "qa_wikidata"} and out["tiny"]
    for res in out["datasets"].values():
        assert res["n"] == 4 and set(res["auc_df"]) == {"margin", "sample_agreement", "random", "oracle"}
        assert res["cost"]["sample_agreement"]["small_calls_per_query"] == 5
    assert (tmp_path / "tiny" / "sample_agreement.png").stat().st_size > 0
