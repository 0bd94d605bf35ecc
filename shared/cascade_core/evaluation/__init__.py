"""Offline evaluation: collect generations, deferral curves and metrics, calibration, reports, plots, datasets.

Not needed at run time; plots need matplotlib and rule selection scikit-learn (the ``[eval]`` extra).
The curve functions and quality scorers are re-exported here: ``from cascade_core.evaluation import
deferral_curve, alias_match``.
"""

from cascade_core.evaluation import curves, quality
from cascade_core.evaluation.curves import *  # noqa: F403
from cascade_core.evaluation.quality import *  # noqa: F403

__all__ = [*curves.__all__, *quality.__all__]
