"""Learned deferral rules (paper A's Post-Hoc rules): features from the small model's tokens, a fitted model.

- :mod:`~cascade_core.decide.learned.features` — quantile / embedding feature vectors.
- :mod:`~cascade_core.decide.learned.rule` — :class:`LearnedDeferral` (fit, score, save/load as JSON).
- :mod:`~cascade_core.decide.learned.trees` — monotone gradient-boosted trees exported to JSON.
"""
