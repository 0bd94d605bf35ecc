#!/usr/bin/env bash
# Regenerate the evaluation tables and figures of docs/evaluation.md (docs/figures/*) with the
# embedded model pair (SmolLM2-135M small, Qwen2.5-Coder-1.5B-Instruct large, both on llama.cpp servers
# started on 127.0.0.1 by the library), fully offline:
#
#     scripts/reproduce_tables.sh
#
# For each data set (world_facts: generative QA; world_regions: 6-way classification), it
#   1. writes the calibration ("fit") and test splits as JSONL (deterministic, seed 0),
#   2. runs both tiers once over each split with `cascade collect` (resumable caches in $RUNS),
#   3. fits the learned rules on the fit split only (`cascade fit`),
#   4. calibrates a threshold on the fit split and reports it on the test split (`cascade calibrate`),
#   5. evaluates every signal and rule on the test split (`cascade eval`: table, CSV, JSON, PNGs).
# Nothing is tuned on the test split. Sizes can be changed with FACTS_FIT, FACTS_TEST, REGIONS_FIT,
# REGIONS_TEST (defaults below); rerunning with the same data reuses the caches. SMALL / LARGE override the
# tiers (cascade tier specs; default: SmolLM2 few-shot on /v1/completions, Qwen-1.5B chat). TASKS picks
# the data sets (default "world_facts"; world_regions needs SMALL=embedded, whose tokenizer gives the label tokens). About 25 minutes on a quiet 2-core CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="shared${PYTHONPATH:+:$PYTHONPATH}"
export CASCADE_CACHE_DIR="${CASCADE_CACHE_DIR:-$PWD/.cache}"
PY="${PYTHON:-.venv/bin/python}"
RUNS="${RUNS:-runs/reproduce}"
FIG="${FIGURES:-docs/figures}"
SMALL="${SMALL:-llamacpp:small}"
LARGE="${LARGE:-embedded}"
TASKS="${TASKS:-world_facts}"
FACTS_FIT="${FACTS_FIT:-240}"
FACTS_TEST="${FACTS_TEST:-360}"
REGIONS_FIT="${REGIONS_FIT:-91}"
REGIONS_TEST="${REGIONS_TEST:-135}"
# EMBED=1 also records the small model's pooled embedding and fits the Post-Hoc-Embed rule
# (one extra small-model forward pass per query).
EMBED="${EMBED:-0}"
# One torch thread per process: on a shared 2-core CPU this was ~5x faster than two threads.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
# Costs for the budget curves: relative compute per query, proportional to parameter counts
# (135M vs 1.54B). Measured seconds are also in the caches but are noisy on a shared CPU.
COSTS=(--small-cost 1 --large-cost 11)
mkdir -p "$RUNS" "$FIG"
EMBED_COLLECT=(); [ "$EMBED" = 1 ] && EMBED_COLLECT=(--embedding)
cascade() { "$PY" -m cascade_core.cli "$@"; }

"$PY" - "$RUNS" "$FACTS_FIT" "$FACTS_TEST" "$REGIONS_FIT" "$REGIONS_TEST" <<'PYEOF'
import sys
from cascade_core.evaluation.datasets import world_facts, world_regions
runs, ff, ft, rf, rt = sys.argv[1], *map(int, sys.argv[2:])
world_facts.write_jsonl(world_facts.load_world_facts("calibration", limit=ff), f"{runs}/world_facts.fit.jsonl")
world_facts.write_jsonl(world_facts.load_world_facts("test", limit=ft), f"{runs}/world_facts.test.jsonl")
world_regions.write_jsonl(world_regions.load_world_regions("calibration", limit=rf), f"{runs}/world_regions.fit.jsonl")
world_regions.write_jsonl(world_regions.load_world_regions("test", limit=rt), f"{runs}/world_regions.test.jsonl")
PYEOF

# a cache belongs to one data file: its name carries the file's hash, so a changed data set is
# collected afresh instead of being mixed with stale entries
cache_of() { echo "$RUNS/$1.$2.$(sha256sum "$RUNS/$1.$2.jsonl" | cut -c1-12).cache.jsonl"; }

for task in $TASKS; do
  tokens=10; [ "$task" = world_regions ] && tokens=4
  for split in fit test; do
    cascade collect --data "$RUNS/$task.$split.jsonl" --small "$SMALL" --large "$LARGE" \
      --out "$(cache_of "$task" "$split")" --max-new-tokens "$tokens" --stop '\n' "${EMBED_COLLECT[@]}"
  done
done

for task in $TASKS; do
  fit="$(cache_of "$task" fit)"; test="$(cache_of "$task" test)"
  # the fixed paper-A configurations (no comparison), and the rule `cascade fit` picks by 5-fold CV on
  # the fit split among learned candidates and every single signal (docs/learned.md)
  cascade fit --cache "$fit" --cv 0 --model logistic --out "$RUNS/$task.logistic.json"
  cascade fit --cache "$fit" --cv 0 --model mlp --out "$RUNS/$task.mlp.json"
  cascade fit --cache "$fit" --cv 5 --out "$RUNS/$task.cv_selected.json" --json "$FIG/$task.fit_selection.json"
  rules=(--rule "post_hoc_quantile(logistic)=$RUNS/$task.logistic.json" --rule "post_hoc_quantile(mlp)=$RUNS/$task.mlp.json"
         --rule "cascade_fit(cv)=$RUNS/$task.cv_selected.json")
  if [ "$EMBED" = 1 ]; then
    # embedding features: 576 dims for a few dozen examples, so a stronger L2 penalty, fixed a priori
    cascade fit --cache "$fit" --cv 0 --model logistic --embedding --C 0.05 --out "$RUNS/$task.logistic_embed.json"
    rules+=(--rule "post_hoc_embed(logistic)=$RUNS/$task.logistic_embed.json")
  fi
  cascade calibrate --cache "$fit" --rule "$RUNS/$task.logistic.json" --deferral-rate 0.3 --holdout "$test" \
    "${COSTS[@]}" --json "$FIG/$task.calibration.json"
  cascade eval --cache "$test" --calibration-cache "$fit" "${COSTS[@]}" --orders 10 \
    "${rules[@]}" --group-by attribute --group-csv "$FIG/$task.auc_df_by_attribute.csv" \
    --csv "$FIG/$task.auc_df.csv" --json "$FIG/$task.eval.json" \
    --plot "$FIG/$task.deferral_curves.png" --budget-plot "$FIG/$task.budget_curves.png" \
    --title "$task: SmolLM2-135M -> Qwen2.5-Coder-1.5B (test split)"
done
echo "figures and tables written to $FIG"
