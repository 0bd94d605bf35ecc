"""cascadeflow 1.2.0 on the same llama.cpp servers and prompts — run in its OWN virtualenv, never ours.

``benchmarks.public.peers`` creates the virtualenv (``runs/public/venv-cascadeflow``: cascadeflow==1.2.0 and
langchain-openai), starts nothing itself, and calls this script with the servers it already runs:

    <venv>/bin/python benchmarks/public/cascadeflow_peer.py --prompts P.jsonl --out O.jsonl \\
        --setting logprobs --drafter URL#ALIAS --verifier URL#ALIAS

Settings (every call greedy, ``max_tokens`` and the stop string as our tiers get them):

- ``logprobs``: drafter ``ChatOpenAI(logprobs=True)``, pre-router off, ``quality_threshold=0`` — every draft
  is kept and its ``drafter_quality`` recorded (its rule is ``drafter_quality >= quality_threshold``, so this
  one run gives every point of a threshold sweep once the verifier's answer is known).
- ``default``: the same without ``logprobs`` (its text heuristic: what its users get by default).
- ``pre_router``: cascadeflow's defaults (pre-router on, ``quality_threshold=0.7``): which queries it routes
  straight to the verifier.
- ``verifier``: ``quality_threshold=1.01``, pre-router off: every query escalates, so the answer is the
  verifier's, reached through cascadeflow itself.

Only 127.0.0.1 is contacted. Imports nothing from this repository.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def _chat(spec: str, max_tokens: int, logprobs: bool):
    from langchain_openai import ChatOpenAI

    url, _, alias = spec.rpartition("#")
    if not url.startswith("http://127.0.0.1"):
        raise SystemExit(f"refusing a non-loopback server: {url}")
    return ChatOpenAI(base_url=url, api_key="x", model=alias, temperature=0, max_retries=0, max_tokens=max_tokens,
                      timeout=120, logprobs=logprobs or None)


def _cascade(args: argparse.Namespace):
    from cascadeflow.integrations.langchain import CascadeFlow

    drafter = _chat(args.drafter, args.max_tokens, logprobs=args.setting == "logprobs")
    verifier = _chat(args.verifier, args.max_tokens, logprobs=False)
    options = {
        "logprobs": {"quality_threshold": 0.0, "enable_pre_router": False},
        "default": {"quality_threshold": 0.0, "enable_pre_router": False},
        "pre_router": {},
        "verifier": {"quality_threshold": 1.01, "enable_pre_router": False},
    }[args.setting]
    return CascadeFlow(drafter=drafter, verifier=verifier, **options)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--prompts", required=True, help="JSONL: {id, prompt}")
    p.add_argument("--out", required=True, help="JSONL rows appended; ids already there are skipped")
    p.add_argument("--setting", required=True, choices=["logprobs", "default", "pre_router", "verifier"])
    p.add_argument("--drafter", required=True, help="base_url#alias of the drafter's server")
    p.add_argument("--verifier", required=True, help="base_url#alias of the verifier's server")
    p.add_argument("--max-tokens", type=int, default=12)
    p.add_argument("--stop", default="\n")
    args = p.parse_args(argv)
    os.environ.setdefault("OPENAI_API_KEY", "x")
    import cascadeflow

    done = set()
    if os.path.exists(args.out):
        with open(args.out, encoding="utf-8") as fh:
            done = {json.loads(line)["id"] for line in fh if line.strip()}
    cascade = _cascade(args)
    with open(args.prompts, encoding="utf-8") as fh:
        prompts = [json.loads(line) for line in fh if line.strip()]
    with open(args.out, "a", encoding="utf-8") as out:
        for row in prompts:
            if row["id"] in done:
                continue
            started = time.perf_counter()
            message = cascade.invoke(row["prompt"], stop=[args.stop])
            seconds = time.perf_counter() - started
            meta = dict(message.response_metadata.get("cascade") or {})
            usage = getattr(message, "usage_metadata", None) or {}
            out.write(json.dumps({
                "id": row["id"], "setting": args.setting, "text": message.content, "seconds": seconds,
                "drafter_quality": meta.get("drafter_quality"), "model_used": meta.get("model_used"),
                "accepted": meta.get("accepted"), "input_tokens": usage.get("input_tokens"),
                "output_tokens": usage.get("output_tokens"),
                "cascadeflow": getattr(cascadeflow, "__version__", "?"),
            }) + "\n")
            out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
