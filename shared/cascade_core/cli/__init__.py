"""The ``cascade`` command: collect, fit, calibrate and evaluate deferral rules on your data.

Typical session::

    cascade collect --data fit.jsonl  --small embedded --large embedded --out runs/fit.cache.jsonl
    cascade collect --data test.jsonl --small embedded --large embedded --out runs/test.cache.jsonl
    cascade fit --cache runs/fit.cache.jsonl --model logistic --out runs/rule.json
    cascade calibrate --cache runs/fit.cache.jsonl --rule runs/rule.json --deferral-rate 0.3 --out runs/calib.json
    cascade calibrate --cache runs/fit.cache.jsonl --risk kept_error --epsilon 0.05 --delta 0.1 --out runs/calib.json
    cascade calibrate --cache runs/fit.cache.jsonl --signal margin --probability --out runs/p.json --plot runs/rel.png
    cascade eval --cache runs/test.cache.jsonl --rule runs/rule.json --plot runs/curves.png --csv runs/table.csv
    cascade eval --cache runs/test.cache.jsonl --calibration-file runs/calib.json   # realised risk vs the promise
    cascade fit --router --cache runs/fit.cache.jsonl --out runs/router.json   # needs collect --prompt-embedding
    cascade calibrate --router runs/router.json --cache runs/fit.cache.jsonl --deferral-rate 0.3 --out runs/hybrid.json
    cascade serve --config cascade.toml          # an OpenAI-compatible endpoint (docs/serve.md)

Tiers: see :mod:`cascade_core.cli.tiers`. Errors the user can fix (bad data line, corrupt rule file,
bad option) print one ``error:`` line and exit with status 2.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from cascade_core.cli.tiers import LARGE_FORMATS, TIER_SPEC_HELP
from cascade_core.errors import CascadeError

__all__ = ["build_parser", "main"]


def _add_costs(p: argparse.ArgumentParser) -> None:
    p.add_argument("--small-cost", type=float, help="per-query cost of the small tier (default: measured seconds)")
    p.add_argument("--large-cost", type=float, help="per-query cost of the large tier (default: measured seconds)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``cascade`` (all subcommands)."""
    parser = argparse.ArgumentParser(prog="cascade", description="Token-uncertainty LLM cascades: fit, calibrate, evaluate.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("collect", help="run small and large tiers over a JSONL data set once, caching the results")
    p.add_argument("--data", required=True,
                   help="JSONL file: one {'id', 'prompt', 'answer'[, 'aliases', 'labels']} per line; or "
                        "bigbench:<task path> (a BIG-bench JSON task as k-shot prompts, e.g. bigbench:fact_checker/fever)")
    p.add_argument("--split", choices=["calibration", "test", "all"], default="all",
                   help="bigbench: data only: the fixed split (calibration = the fit split; default: all)")
    p.add_argument("--shots", type=int, help="bigbench: data only: examples shown before each question (default: "
                                             "3, or one per label for label tasks)")
    p.add_argument("--seed", type=int, default=0, help="bigbench: data only: seed of the shots, splits and option order")
    p.add_argument("--small", default="embedded", help=f"small tier: {TIER_SPEC_HELP}")
    p.add_argument("--large", default="embedded", help=f"large tier: {TIER_SPEC_HELP}")
    p.add_argument("--out", required=True, help="cache file (JSONL); ids already in it are skipped (resumable)")
    p.add_argument("--max-new-tokens", type=int, default=16)
    p.add_argument("--stop", action="append", help="stop string, escapes allowed (default: '\\n'); repeatable")
    p.add_argument("--top-k", type=int, default=5, help="alternatives recorded per small-model step")
    p.add_argument("--prompt-format", default="completion", choices=["completion", "chat", "plain", "auto"])
    p.add_argument("--large-format", default="auto", choices=list(LARGE_FORMATS),
                   help="how the large tier is prompted: auto = the completion prompt for a llama.cpp or local large "
                        "tier when --prompt-format is completion, a chat message otherwise")
    p.add_argument("--scorer", default="auto", help="auto | exact_match | alias_match | label_accuracy | package.module:function")
    p.add_argument("--embedding", action="store_true", help="also record the small model's pooled embedding (local models)")
    p.add_argument("--prompt-embedding", nargs="?", const="small", metavar="EMBEDDER",
                   help="also record each prompt's pooled embedding before generation (a router's features): the small "
                        "tier's own (no value; local models), or openai:<base_url>#<model> (/v1/embeddings; llama.cpp "
                        "in embedding mode); see docs/routing.md")
    p.add_argument("--samples", type=int, default=0, metavar="K",
                   help="also record K small answers sampled at --temperature (for the sample_agreement signal; "
                        "costs K more small calls per query); default 0: none")
    p.add_argument("--temperature", type=float, default=0.7, help="--samples: their temperature (default 0.7)")
    p.add_argument("--sample-seed", type=int, default=0, help="--samples: seed of sample 0 (sample i: seed + i)")
    p.add_argument("--on-error", choices=["stop", "skip"], default="stop", help="on a malformed data line: stop, or skip it")
    p.add_argument("--limit", type=int, help="use only the first N records")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")

    p = sub.add_parser("fit", help="choose and fit a deferral rule on a collection cache (cross-validated; see docs/learned.md)")
    p.add_argument("--cache", required=True, help="cache of the fit split (never the test split)")
    p.add_argument("--router", action="store_true",
                   help="fit a pre-generation QueryRouter on the cached prompt embeddings instead (cascade collect "
                        "--prompt-embedding; --no-embedding: prompt length only); C and components by CV (docs/routing.md)")
    p.add_argument("--out", required=True, help="rule file to write (JSON): the learned rule, or the single signal that won")
    p.add_argument("--cv", type=int, default=5,
                   help="folds of the cross-validated comparison of learned rules vs every single signal "
                        "(default 5); 0: no comparison, fit exactly the --model/--target given")
    p.add_argument("--cv-repeats", type=int, default=3, help="repeat the k-fold split with new shuffles (default 3)")
    p.add_argument("--model", choices=["auto", "logistic", "mlp", "hgb"], default="auto",
                   help="learned model(s) to compare: auto = logistic and monotone gradient-boosted trees (hgb)")
    p.add_argument("--target", choices=["auto", "small_correct", "large_better", "gain", "quality_gap"], default="auto",
                   help="training target(s): small answer correct; large answer better; or regress the gain "
                        "quality(large) - quality(small) (gain = quality_gap). auto: compare all three")
    embed = p.add_mutually_exclusive_group()
    embed.add_argument("--embedding", action="store_true",
                       help="every learned candidate reads the small model's embedding too (the cache must record it)")
    embed.add_argument("--no-embedding", action="store_true",
                       help="no Post-Hoc-Embed candidates (by default they join the comparison when every cached "
                            "answer records the small model's embedding: cascade collect --embedding)")
    p.add_argument("--C", type=float, help="inverse L2 strength (logistic/ridge); default: chosen by CV (1.0 with --cv 0)")
    p.add_argument("--alpha", type=float, default=1e-3, help="L2 penalty (mlp)")
    p.add_argument("--hidden-units", type=int, default=32)
    p.add_argument("--no-monotone", action="store_true", help="hgb: no monotonic constraints on the log-prob features")
    p.add_argument("--signals-only", action="store_true", help="compare single signals only (no learned candidates)")
    p.add_argument("--json", help="also write the comparison table as JSON")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--scorer", help="re-score the cached answers with this quality scorer")

    p = sub.add_parser("calibrate", help="pick a threshold for a target deferral rate or cost budget")
    p.add_argument("--cache", required=True, help="calibration sample (collection cache)")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--rule", help="a learned rule file")
    what.add_argument("--signal", default="margin", help="a signal: margin, chow_sum, chow_average, entropy, chow_quantile, "
                                                            "sample_agreement (a cache collected with --samples)")
    p.add_argument("--alpha", type=float, default=0.0, help="alpha of chow_quantile")
    p.add_argument("--router", help="a router file (cascade fit --router): calibrate the route-then-cascade hybrid, both "
                                    "thresholds sharing --deferral-rate (docs/routing.md)")
    target = p.add_mutually_exclusive_group()
    target.add_argument("--deferral-rate", type=float)
    target.add_argument("--budget", type=float, help="per-query budget, same unit as the costs")
    target.add_argument("--probability", action="store_true",
                        help="fit a map from the score to P(small answer correct) (isotonic regression) instead")
    target.add_argument("--risk", choices=["kept_error", "quality_loss"],
                        help="certify a threshold (docs/trust.md#guarantees): kept_error = error rate among kept "
                             "answers, quality_loss = large-only accuracy minus cascade accuracy; <= --epsilon with "
                             "probability >= 1 - --delta")
    p.add_argument("--epsilon", type=float, help="--risk: the promised risk level (e.g. 0.05)")
    p.add_argument("--delta", type=float, default=0.1, help="--risk: allowed probability that the promise fails (default 0.1)")
    _add_costs(p)
    p.add_argument("--holdout", help="another cache to report the chosen threshold (or the map's ECE) on")
    p.add_argument("--json", help="write the report as JSON (for a threshold: the calibration file, as --out)")
    p.add_argument("--out", help="the calibration file (versioned JSON: rule, threshold, sample report, certificate) "
                                 "for calibration_file=; --probability: the fitted map")
    p.add_argument("--plot", help="--probability: write the reliability diagram (PNG)")
    p.add_argument("--holdout-fraction", type=float, default=0.3,
                   help="--probability without --holdout: fraction of the sample held out for the ECE (default 0.3)")
    p.add_argument("--bins", type=int, default=10, help="--probability: bins of the ECE and the diagram")
    p.add_argument("--seed", type=int, default=0, help="--probability: seed of the held-out split")

    p = sub.add_parser("eval", help="deferral curves, AUC-DF and budget curves on a collection cache")
    p.add_argument("--cache", required=True, help="test cache")
    p.add_argument("--rule", action="append", help="learned rule file, optionally NAME=PATH; repeatable")
    p.add_argument("--calibration-cache", help="cache of the fit split: warm-up thresholds of the budget curves")
    p.add_argument("--calibration-file", help="a file `cascade calibrate --out` wrote: report its deferral rate and "
                                              "(certified) risk on this test cache beside the promise")
    _add_costs(p)
    p.add_argument("--orders", type=int, default=5, help="random query orders for budget curves")
    p.add_argument("--warmup", type=int, default=16, help="queries before the dynamic threshold is data-driven")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--scorer", help="re-score the cached answers with this quality scorer")
    p.add_argument("--bootstrap", type=int, default=200, help="resamples for the standard error of AUC gains (0: off)")
    p.add_argument("--group-by", help="also report AUC-DF per value of this record field (e.g. attribute)")
    p.add_argument("--group-csv", help="write the per-group table as CSV")
    p.add_argument("--csv", help="write the table as CSV")
    p.add_argument("--json", help="write table and curves as JSON")
    p.add_argument("--plot", help="write the deferral-curve plot (PNG)")
    p.add_argument("--budget-plot", help="write the budget-curve plot (PNG)")
    p.add_argument("--title", help="plot title")

    p = sub.add_parser("serve", help="serve cascades as an OpenAI-compatible HTTP endpoint (see docs/serve.md)")
    p.add_argument("--config", required=True, help="TOML file naming the cascades, tiers, rules and server limits")
    p.add_argument("--host", help="interface to bind (overrides [server] host)")
    p.add_argument("--port", type=int, help="TCP port (overrides [server] port)")

    p = sub.add_parser("demo", help="run the embedded demo cascade", add_help=False)
    p.add_argument("args", nargs=argparse.REMAINDER)
    p = sub.add_parser("llama-server", help="serve a GGUF (embedded small/medium/large or a path) with llama.cpp "
                       "on 127.0.0.1", add_help=False)
    p.add_argument("args", nargs=argparse.REMAINDER)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cascade`` command; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["demo"]:
        from cascade_core.cli import demo  # lazily: it loads models

        return int(demo.main(argv[1:]) or 0)
    if argv[:1] == ["llama-server"]:
        from cascade_core.backends import llamacpp

        try:
            return int(llamacpp.main(argv[1:]) or 0)
        except CascadeError as err:
            print(f"cascade llama-server: error: {err}", file=sys.stderr)
            return 2
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from cascade_core.cli import commands

    handler = {
        "collect": commands.run_collect,
        "fit": commands.run_fit,
        "calibrate": commands.run_calibrate,
        "eval": commands.run_eval,
        "serve": commands.run_serve,
    }[args.command]
    try:
        return handler(args)
    except CascadeError as err:
        print(f"cascade {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # caches are flushed line by line: rerun to resume
        print(f"cascade {args.command}: interrupted", file=sys.stderr)
        return 130
