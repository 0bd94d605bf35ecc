"""PNG plots of deferral curves and budget curves (matplotlib, Agg backend; no display needed).

Example:
    >>> from cascade_core.evaluation.curves import deferral_curve, oracle_curve, random_curve
    >>> import tempfile, os
    >>> small, large = [1, 0, 1, 0], [1, 1, 1, 0]
    >>> curve = deferral_curve([0.9, 0.1, 0.8, 0.5], small, large, name="margin")
    >>> with tempfile.TemporaryDirectory() as d:
    ...     path = plot_deferral_curves([curve], random_curve(small, large), oracle_curve(small, large),
    ...                                 os.path.join(d, "curves.png"))
    ...     path.stat().st_size > 0
    True
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cascade_core.errors import ConfigurationError, require
from cascade_core.evaluation.curves import BudgetCurve, DeferralCurve

__all__ = ["plot_budget_curves", "plot_deferral_curves", "plot_reliability_diagram"]


def _pyplot() -> Any:
    matplotlib = require("matplotlib", "eval", purpose="plots")
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: str | os.PathLike[str]) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=120, metadata={"Software": None})
    _pyplot().close(fig)
    return out


def plot_deferral_curves(
    curves: Sequence[DeferralCurve],
    random: DeferralCurve,
    oracle: DeferralCurve,
    path: str | os.PathLike[str],
    *,
    title: str = "Deferral curves",
) -> Path:
    """Quality vs deferral rate for each curve, with the random line and the oracle; AUC-DF in the legend."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9.5, 5))
    for curve in curves:
        ax.plot(curve.rates, curve.quality, lw=1.6, label=f"{curve.name} ({curve.auc:.3f})")
    ax.plot(random.rates, random.quality, "k--", lw=1.2, label=f"random ({random.auc:.3f})")
    ax.plot(oracle.rates, oracle.quality, "k:", lw=1.4, label=f"oracle ({oracle.auc:.3f})")
    ax.set_xlabel("deferral rate (fraction sent to the large model)")
    ax.set_ylabel("cascade quality")
    ax.set_xlim(0, 1)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, title="signal (AUC-DF)", title_fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _save(fig, path)


def plot_budget_curves(curves: Sequence[BudgetCurve], path: str | os.PathLike[str], *, title: str = "Budget curves") -> Path:
    """Accuracy vs per-query budget (dynamic threshold, mean ± std over query orders); normalised area in the legend."""
    if not curves:
        raise ConfigurationError("no budget curves to plot")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9.5, 5))
    for curve in curves:
        style = "k--" if curve.name == "random" else "-"
        ax.plot(curve.budgets, curve.quality, style, lw=1.5, label=f"{curve.name} ({curve.area:.3f})")
        ax.fill_between(curve.budgets, curve.quality - curve.quality_std, curve.quality + curve.quality_std, alpha=0.12)
    ax.set_xlabel(f"budget per query (small cost {curves[0].small_cost:.3g}, large cost {curves[0].large_cost:.3g})")
    ax.set_ylabel("accuracy")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(
        fontsize=8, title="signal (area / (c_l - c_s))", title_fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0)
    )
    return _save(fig, path)


def plot_reliability_diagram(
    series: Sequence[tuple[str, Sequence[tuple[float, float, int]], float]],
    path: str | os.PathLike[str],
    *,
    title: str = "Reliability diagram",
) -> Path:
    """Observed accuracy vs stated probability per bin, one line per ``(name, bins, ece)``; the
    diagonal is perfect calibration. ``bins`` as from :func:`cascade_core.decide.probability.reliability_bins`."""
    if not series:
        raise ConfigurationError("no reliability series to plot")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.plot([0, 1], [0, 1], "k:", lw=1.2, label="perfect calibration")
    for name, bins, ece in series:
        conf = [b[0] for b in bins]
        acc = [b[1] for b in bins]
        sizes = [12 + 60 * b[2] / max(c for _, _, c in bins) for b in bins]
        (line,) = ax.plot(conf, acc, "-", lw=1.4, label=f"{name} (ECE {ece:.3f})")
        ax.scatter(conf, acc, s=sizes, color=line.get_color(), alpha=0.7)
    ax.set_xlabel("stated probability that the small answer is correct")
    ax.set_ylabel("observed accuracy of the small answer")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    return _save(fig, path)
