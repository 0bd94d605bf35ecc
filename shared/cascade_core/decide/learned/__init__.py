"""Learned deferral rules (paper A's Post-Hoc rules): features from the small model's tokens, a fitted model.

- :mod:`~cascade_core.decide.learned.features` — quantile / embedding feature vectors.
- :mod:`~cascade_core.decide.learned.rule` — :class:`LearnedDeferral` (the estimator and scorer: fit, score, save/load).
- :mod:`~cascade_core.decide.learned.fitting` — the scikit-learn fits behind ``fit`` (needs the ``eval`` extra).
- :mod:`~cascade_core.decide.learned.persistence` — the versioned JSON format, strictly validated on load.
- :mod:`~cascade_core.decide.learned.trees` — monotone gradient-boosted trees exported to JSON.
"""
