"""Run the peer (cascadeflow 1.2.0) on the public tasks' test prompts, on the same llama.cpp servers.

    python -m benchmarks.public.peers --test 300 --secondary 100 --verifier 40 --pre-router 30

Creates cascadeflow's own virtualenv on first use (``runs/public/venv-cascadeflow``; its dependencies
never enter ours), starts the same three servers the collection used, and runs
``benchmarks/public/cascadeflow_peer.py`` in that virtualenv for each setting: ``logprobs`` with
Qwen-0.5B as drafter on every test prompt, and on the first ``--secondary`` ones with SmolLM2 and
``default`` (no log-probs: its text heuristic) with Qwen-0.5B, ``verifier``
(every query escalated: the verifier's answer through cascadeflow) on the first ``--verifier`` test
prompts, and ``pre_router`` (its defaults) on the first ``--pre-router``. The sweep scores an
escalated query with the large tier's answer from our collection (same model, same prompt); the
``verifier`` subset measures how often cascadeflow's own verifier call agrees with it.
Resumable: ids already written are skipped.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

from benchmarks.public import harness  # noqa: E402

PEER = Path(__file__).with_name("cascadeflow_peer.py")
PACKAGES = ("cascadeflow==1.2.0", "langchain-openai>=1.0")


def peer_python(runs: Path) -> Path:
    """The cascadeflow virtualenv's interpreter, created (once) with ``pip install cascadeflow==1.2.0``."""
    venv = runs / "venv-cascadeflow"
    python = venv / "bin" / "python"
    if not (venv / ".ready").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *PACKAGES], check=True)
        (venv / ".ready").write_text(" ".join(PACKAGES), encoding="utf-8")
    return python


def _endpoint(name: str, threads: int) -> str:
    srv = harness.server(name, threads)
    return f"{srv.base_url}#{srv.alias}"


def run_setting(python: Path, prompts: Path, out: Path, setting: str, drafter: str, args: object) -> None:
    command = [str(python), str(PEER), "--prompts", str(prompts), "--out", str(out), "--setting", setting,
               "--drafter", _endpoint(drafter, args.threads), "--verifier", _endpoint(harness.LARGE_TIER, args.threads),
               "--max-tokens", str(harness.MAX_NEW_TOKENS)]
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    print(f"  {setting} ({drafter}): {out.name} in {time.perf_counter() - started:.0f} s", flush=True)


def main(argv: list[str] | None = None) -> int:
    p = harness.parser(__doc__)
    p.add_argument("--pre-router", type=int, default=30, help="test prompts run with cascadeflow's pre-router on")
    p.add_argument("--verifier", type=int, default=40, help="test prompts escalated through cascadeflow's verifier")
    p.add_argument("--secondary", type=int, default=100, help="test prompts for the SmolLM2 and default settings")
    args = p.parse_args(argv)
    python = peer_python(args.runs)
    started = time.perf_counter()
    plan = [("logprobs", "qwen05", args.test), ("default", "qwen05", args.secondary), ("verifier", "qwen05", args.verifier),
            ("pre_router", "qwen05", args.pre_router), ("logprobs", "smollm2", args.secondary)]
    try:
        for task in harness.task_names(args):
            folder = harness.task_folder(args.runs, task)
            records = harness.splits(task, 0, args.test)["test"]
            print(task, flush=True)
            for setting, drafter, count in plan:
                subset = records[:count]
                prompts = folder / f"cascadeflow.{setting}.{drafter}.prompts.jsonl"
                prompts.parent.mkdir(parents=True, exist_ok=True)
                prompts.write_text("".join(json.dumps({"id": r["id"], "prompt": r["prompt"]}) + "\n" for r in subset),
                                   encoding="utf-8")
                run_setting(python, prompts, folder / f"cascadeflow.{setting}.{drafter}.jsonl", setting, drafter, args)
    finally:
        harness.stop_servers()
    print(f"wall time {time.perf_counter() - started:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
