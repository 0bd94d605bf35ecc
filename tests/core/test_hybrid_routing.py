"""Route-then-cascade under one budget, on scripted scores (cascade_core.evaluation.routing)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cascade_core.errors import ConfigurationError
from cascade_core.evaluation.curves import deferral_curve, oracle_curve
from cascade_core.evaluation.routing import (
    HybridCurve,
    QueryCosts,
    apply_hybrid,
    calibrate_hybrid,
    cost_at_quality,
    fit_hybrid,
    hybrid_curve,
    router_curve,
)


def _tiers(n: int = 400, seed: int = 0) -> dict[str, np.ndarray]:
    """Two kinds of query: the router sees the kind, the token score sees errors within a kind."""
    rng = np.random.default_rng(seed)
    hard = rng.random(n) < 0.4
    small = np.where(hard, rng.random(n) < 0.2, rng.random(n) < 0.9).astype(float)
    large = np.ones(n)
    p_good = np.where(hard, 0.2, 0.9) + rng.normal(scale=0.02, size=n)
    scores = small * 0.5 + rng.normal(scale=0.35, size=n)
    return {"p": p_good, "s": scores, "small": small, "large": large}


def test_total_deferral_equals_the_budget_on_the_fit_split() -> None:
    t = _tiers()
    for point in fit_hybrid(t["p"], t["s"], t["small"], t["large"], budgets=[0.1, 0.3, 0.5, 0.8]):
        quality, rate, routed = apply_hybrid(point, t["p"], t["s"], t["small"], t["large"])
        assert rate == pytest.approx(point.budget, abs=1 / 400)
        assert routed == pytest.approx(point.route_share) and 0 <= routed <= rate + 1e-9
        assert quality == pytest.approx(point.fit_quality)


def test_route_share_zero_reproduces_the_plain_cascade() -> None:
    t = _tiers()
    cascade = deferral_curve(t["s"], t["small"], t["large"])
    constant = np.full(400, 0.5)  # a router that cannot tell queries apart routes nothing
    for point in fit_hybrid(constant, t["s"], t["small"], t["large"], budgets=[0.1, 0.25, 0.6]):
        assert point.route_share == 0.0
        assert point.fit_quality == pytest.approx(cascade.quality_at(point.budget))
        assert (t["s"] < point.cascade_threshold).mean() == pytest.approx(point.budget)


def test_grid_one_tries_the_plain_cascade_and_the_router_alone() -> None:
    t = _tiers()
    cascade = deferral_curve(t["s"], t["small"], t["large"])
    router = router_curve(t["p"], t["small"], t["large"])
    for budget in (0.2, 0.5):
        point = fit_hybrid(t["p"], t["s"], t["small"], t["large"], budgets=[budget], grid=1)[0]
        best = max(cascade.quality_at(budget), router.quality_at(budget))
        assert point.fit_quality == pytest.approx(best, abs=1e-9)
        assert point.route_share in (0.0, pytest.approx(budget))


def test_a_perfect_router_takes_the_whole_budget() -> None:
    t = _tiers()
    perfect = t["small"] + np.random.default_rng(2).normal(scale=0.01, size=400)  # p_good ranks exactly by small quality
    wrong = int((t["small"] == 0).sum())
    for budget in (0.1, 0.2):  # below the share of wrong small answers, routing them is optimal
        assert budget * 400 < wrong
        point = fit_hybrid(perfect, t["s"], t["small"], t["large"], budgets=[budget])[0]
        assert point.route_share == pytest.approx(budget)
        assert point.cascade_threshold == -math.inf


def test_perfect_token_scores_keep_the_hybrid_at_the_oracle() -> None:
    t = _tiers()
    perfect_scores = t["small"] + np.random.default_rng(3).normal(scale=0.01, size=400)
    point = fit_hybrid(t["p"], perfect_scores, t["small"], t["large"], budgets=[0.2])[0]
    # routing cannot beat perfect token scores: the hybrid stays at the oracle, routing only queries
    # whose small answer was wrong anyway (a routed query is cheaper at the same quality)
    assert point.fit_quality == pytest.approx(oracle_curve(t["small"], t["large"]).quality_at(0.2))
    assert (t["small"][t["p"] < point.router_threshold] == 0).all()


def test_hybrid_beats_both_stages_when_each_sees_a_different_error() -> None:
    fit, test = _tiers(seed=0), _tiers(seed=1)
    points = fit_hybrid(fit["p"], fit["s"], fit["small"], fit["large"])
    curve = hybrid_curve(points, test["p"], test["s"], test["small"], test["large"])
    cascade = deferral_curve(test["s"], test["small"], test["large"])
    router = router_curve(test["p"], test["small"], test["large"])
    assert curve.auc > cascade.auc and curve.auc > router.auc
    assert any(0 < pt.route_share < pt.budget for pt in points)  # both stages used somewhere


def test_hybrid_curve_is_on_the_deferral_curve_grid() -> None:
    fit, test = _tiers(seed=0), _tiers(n=250, seed=1)
    curve = hybrid_curve(fit_hybrid(fit["p"], fit["s"], fit["small"], fit["large"]), test["p"], test["s"],
                         test["small"], test["large"])
    reference = deferral_curve(test["s"], test["small"], test["large"])
    assert isinstance(curve, HybridCurve)
    np.testing.assert_array_equal(curve.rates, reference.rates)
    assert curve.quality[0] == pytest.approx(test["small"].mean())
    assert curve.quality[-1] == pytest.approx(test["large"].mean())
    assert curve.routed.shape == curve.rates.shape and curve.routed[0] == 0 and (curve.routed <= curve.rates + 1e-9).all()


def test_router_curve_routes_the_lowest_p_good_first() -> None:
    curve = router_curve([0.9, 0.1, 0.5], [1, 0, 0], [1, 1, 1])
    assert curve.quality.tolist() == pytest.approx([1 / 3, 2 / 3, 1.0, 1.0])
    assert curve.name == "router"


def test_cost_counts_the_router_prefill_instead_of_a_small_generation() -> None:
    t = _tiers()
    costs = QueryCosts(small=1.0, large=10.0, router=0.2)
    cascade = deferral_curve(t["s"], t["small"], t["large"])
    router = router_curve(t["p"], t["small"], t["large"])
    target = 0.95
    c_cascade = cost_at_quality(cascade, costs, target, routed_share=0.0)
    c_router = cost_at_quality(router, costs, target, routed_share=router.rates)
    # at the rate r where the cascade reaches the target: (c_s + r c_l) / c_l
    r = next(x for x, q in zip(cascade.rates, cascade.quality) if q >= target)
    assert c_cascade <= (1.0 + r * 10.0) / 10.0 + 1e-12
    # a routed query pays 0.2 instead of 1.0: the router alone is cheaper per deferred query
    r_router = next(x for x, q in zip(router.rates, router.quality) if q >= target)
    assert c_router <= ((1 - r_router) * 1.0 + r_router * 0.2 + r_router * 10.0) / 10.0 + 1e-12
    assert c_router > (r_router - 1 / 400) * 10.0 / 10.0
    points = fit_hybrid(t["p"], t["s"], t["small"], t["large"])
    hybrid = hybrid_curve(points, t["p"], t["s"], t["small"], t["large"])
    assert cost_at_quality(hybrid, costs, target) <= min(c_cascade, c_router) + 0.02
    assert not math.isnan(cost_at_quality(points, costs, target))
    assert math.isnan(cost_at_quality(cascade, costs, 1.01, routed_share=0.0))


def test_cost_at_quality_needs_the_routed_share_of_a_plain_curve() -> None:
    curve = deferral_curve([0.9, 0.1], [1, 0], [1, 1])
    with pytest.raises(ConfigurationError, match="routed_share"):
        cost_at_quality(curve, QueryCosts(1, 10), 1.0)
    with pytest.raises(ConfigurationError, match="routed_share must lie"):
        cost_at_quality(curve, QueryCosts(1, 10), 1.0, routed_share=1.0)
    with pytest.raises(ConfigurationError, match="QueryCosts.large"):
        QueryCosts(1, 0)
    with pytest.raises(ConfigurationError, match="QueryCosts.router"):
        QueryCosts(1, 10, router=-1)


def test_calibrate_hybrid_is_the_fit_rule_at_one_budget() -> None:
    t = _tiers()
    point = calibrate_hybrid(t["p"], t["s"], t["small"], t["large"], 0.3)
    assert point == fit_hybrid(t["p"], t["s"], t["small"], t["large"], budgets=[0.3])[0]
    routed = t["p"] < point.router_threshold
    assert routed.mean() == pytest.approx(point.route_share)
    deferred = ~routed & (t["s"] < point.cascade_threshold)
    assert (routed | deferred).mean() == pytest.approx(0.3, abs=1 / 400)


def test_bad_input_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="equally many"):
        fit_hybrid([0.1, 0.2], [0.1], [1, 0], [1, 1], budgets=[0.5])
    with pytest.raises(ConfigurationError, match="in \\[0, 1\\]"):
        fit_hybrid([0.1, 0.2], [0.1, 0.3], [1, 0], [1, 1], budgets=[1.5])
    with pytest.raises(ConfigurationError, match="NaN"):
        fit_hybrid([0.1, float("nan")], [0.1, 0.3], [1, 0], [1, 1], budgets=[0.5])
    with pytest.raises(ConfigurationError, match="at least one HybridPoint"):
        hybrid_curve([], [0.1], [0.1], [1], [1])
