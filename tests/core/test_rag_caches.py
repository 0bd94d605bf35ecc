"""benchmarks/studies/rag_caches.py with the real models (slow): both tiers answer, caches load, the split holds."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cascade_core.evaluation.collect import load_cache

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_rag_caches_small_run_with_the_real_models(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "shared"), str(ROOT)]), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "benchmarks.studies.rag_caches", "--limit", "5", "--fit", "2",
                           "--out-dir", str(tmp_path)], capture_output=True, text=True, timeout=880, env=env, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    fit, test = load_cache(tmp_path / "rag.fit.cache.jsonl"), load_cache(tmp_path / "rag.test.cache.jsonl")
    assert [e.id for e in fit] == ["q0", "q1"] and [e.id for e in test] == ["q2", "q3", "q4"]
    for e in fit + test:
        assert e.small.steps and len(e.small.steps[0].top) >= 2  # the small tier's top-k log-probs, per token
        assert e.large_text.strip() and e.small_quality in (0.0, 1.0) and e.large_quality in (0.0, 1.0)
        assert e.record["kind"] in {"capital", "currency", "subregion", "calling", "tld", "demonym"}
    assert "test: 3 questions" in done.stdout
