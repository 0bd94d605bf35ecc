"""Offline evaluation: collect generations, deferral curves and metrics, calibration, reports, plots, datasets.

Not needed at run time; plots need matplotlib and rule selection scikit-learn (the ``[eval]`` extra).
The curve functions are re-exported here: ``from cascade_core.evaluation import deferral_curve``.
"""

from cascade_core.evaluation.curves import *  # noqa: F403
from cascade_core.evaluation.curves import __all__  # noqa: F401
