"""The multi-turn table: large-only, per-step cascading and sticky escalation, from the cached task rows.

    python -m benchmarks.public.bfcl.multi_turn --report        # reads runs/bfcl/multi_turn, writes docs/figures/

Every configuration is summarised on the tasks all the configurations found have finished (a paired
comparison): BFCL accuracy (``multi_turn_checker``), model calls (steps) per task, the share of steps
the large tier answered, tokens per task on each tier (input / output; the large-only run's stand-in
small tier is not counted) and wall seconds per task. When large-only is under the floor the table
says so: the cascades cannot be judged there.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.public import harness
from benchmarks.public.bfcl.multi_turn import CONFIGS, FLOOR, LARGE, SMALL

__all__ = ["summarize", "write_report"]


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def summarize(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One configuration's numbers over ``rows`` (one per task)."""
    steps = sum(r["steps"] for r in rows)
    return {
        "tasks": len(rows),
        "accuracy": _mean([r["quality"] for r in rows]),
        "steps_per_task": _mean([r["steps"] for r in rows]),
        "large_step_share": sum(r["large_steps"] for r in rows) / steps if steps else float("nan"),
        "small_tokens_per_task": [_mean([r["tokens"]["small"][i] for r in rows]) for i in (0, 1)],
        "large_tokens_per_task": [_mean([r["tokens"]["large"][i] for r in rows]) for i in (0, 1)],
        "seconds_per_task": _mean([r["seconds"] for r in rows]),
        "force_quit": sum(bool(r["force_quit"]) for r in rows),
        "errors": dict(Counter(r["error_type"] for r in rows if not r["quality"]).most_common()),
    }


def _table(summary: dict[str, Any]) -> str:
    lines = ["| configuration | tasks | accuracy | steps / task | steps on large | small tokens / task (in / out) "
             "| large tokens / task (in / out) | s / task |", "|---|---|---|---|---|---|---|---|"]
    for config, s in summary["configs"].items():
        lines.append(f"| {config} | {s['tasks']} | {s['accuracy']:.3f} | {s['steps_per_task']:.1f} | "
                     f"{s['large_step_share']:.0%} | {s['small_tokens_per_task'][0]:.0f} / "
                     f"{s['small_tokens_per_task'][1]:.0f} | {s['large_tokens_per_task'][0]:.0f} / "
                     f"{s['large_tokens_per_task'][1]:.0f} | {s['seconds_per_task']:.0f} |")
    return "\n".join(lines)


def write_report(folder: Path, figures: Path) -> str:
    """Write ``bfcl_multi_turn.{json,md}`` under ``figures`` from the caches in ``folder``; return the markdown."""
    found = {c: harness.TierCache(folder / f"{c}.jsonl").rows() for c in CONFIGS}
    found = {c: rows for c, rows in found.items() if rows}
    common = sorted(set.intersection(*(set(r) for r in found.values()))) if found else []
    summary: dict[str, Any] = {
        "small": SMALL, "large": LARGE, "tasks": common,
        "configs": {c: summarize([rows[i] for i in common]) for c, rows in found.items()},
    }
    large = summary["configs"].get("large")
    summary["below_floor"] = bool(large and large["accuracy"] < FLOOR)
    rows = [r for by_id in found.values() for i, r in by_id.items() if i in common]
    summary["all_turns"] = all(r["turns"] == r["turns_total"] or r["force_quit"] for r in rows)
    summary["max_steps"] = sorted({r["max_steps"] for r in rows})
    md = [f"BFCL multi_turn_base, {len(common)} tasks (small {SMALL}, large {LARGE}; BFCL's multi_turn_checker; "
          f"{'every turn' if summary['all_turns'] else 'shortened tasks (a smoke run)'}, at most "
          f"{'/'.join(map(str, summary['max_steps']))} steps with calls per turn).", "", _table(summary)]
    if summary["below_floor"]:
        md += ["", f"Large-only solves {large['accuracy']:.1%} of the tasks ({round(large['accuracy'] * large['tasks'])} "
                   f"of {large['tasks']}), under the {FLOOR:.0%} floor: per-step and sticky cascading cannot be "
                   f"judged here. Large-only failures: {large['errors']}."]
    text = "\n".join(md) + "\n"
    figures.mkdir(parents=True, exist_ok=True)
    (figures / "bfcl_multi_turn.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    (figures / "bfcl_multi_turn.md").write_text(text, encoding="utf-8")
    return text
