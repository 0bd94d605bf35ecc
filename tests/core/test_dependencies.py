"""The core imports with its required dependencies only; optional ones are imported lazily and a
missing one names the extra that installs it (each check in a fresh interpreter)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# opentelemetry is left out: the engine records a span tree whenever opentelemetry-api is installed
# and configured (observe/telemetry imports it if present); without it, calls run the same (tested below).
OPTIONAL = ("torch", "transformers", "accelerate", "safetensors", "gguf", "sklearn", "matplotlib", "countryinfo",
            "tqdm", "openai", "starlette", "uvicorn", "xllamacpp", "redis")


def _run(code: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "shared"), str(ROOT)])}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env, cwd=ROOT)


@pytest.mark.parametrize("blocked", [None, "opentelemetry"])
def test_core_engine_and_decide_import_no_optional_dependency(blocked: str | None) -> None:
    done = _run(
        "import json, sys\n"
        + (f"sys.modules[{blocked!r}] = None  # as if not installed\n" if blocked else "")
        + "import cascade_core, cascade_core.engine, cascade_core.decide, cascade_core.testing\n"
        "from cascade_core import Cascade, ThresholdRule\n"
        "from cascade_core.testing import ScriptedModel\n"
        "Cascade([ScriptedModel('a', confidence=0.2), ScriptedModel('b')], rules=ThresholdRule('margin', 0.3)).invoke('q')\n"
        f"print(json.dumps(sorted(m for m in {OPTIONAL!r} if m in sys.modules)))\n"
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout) == []


@pytest.mark.parametrize(
    ("blocked", "call", "extra"),
    [
        ("sklearn", "from cascade_core.decide.probability import ProbabilityMap; ProbabilityMap.fit([0, 1], [0, 1])", "eval"),
        ("sklearn", "from cascade_core.decide.learned.rule import LearnedDeferral; "
                    "LearnedDeferral().fit([[0.0], [1.0]], [0, 1])", "eval"),
        ("matplotlib", "from cascade_core.evaluation.plots import _pyplot; _pyplot()", "eval"),
        ("countryinfo", "from cascade_core.evaluation.datasets import build_world_facts; build_world_facts()", "eval"),
        ("torch", "import cascade_core.backends.transformers", "local"),
        ("redis", "from cascade_core import Cascade, ThresholdRule, DynamicBudgetThreshold; "
                  "from cascade_core.testing import ScriptedModel; Cascade([ScriptedModel('a'), ScriptedModel('b')], "
                  "rules=ThresholdRule('margin', DynamicBudgetThreshold(deferral_rate=0.3)), "
                  "threshold_store='redis://127.0.0.1:6379/0')", "redis"),
    ],
)
def test_missing_optional_dependency_names_its_extra(blocked: str, call: str, extra: str) -> None:
    done = _run(
        f"import sys; sys.modules[{blocked!r}] = None  # as if not installed\n"
        "from cascade_core.errors import MissingDependencyError\n"
        f"try:\n    {call}\nexcept MissingDependencyError as err:\n    print(err)\n"
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"pip install 'llm-cascade[{extra}]'" in done.stdout
