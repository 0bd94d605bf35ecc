"""QueryRouter: fit / predict / save / load contract, and strict loading of router files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cascade_core.decide.router import ROUTER_FORMAT_NAME, QueryRouter, load_router
from cascade_core.decide.rule_file import load_rule
from cascade_core.errors import ConfigurationError, NotFittedError, RuleFileError


def _data(n: int = 300, d: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    emb = rng.normal(size=(n, d))
    tokens = rng.integers(3, 200, size=n)
    logit = 2.5 * emb[:, 0] - 1.5 * emb[:, 1] + rng.normal(scale=0.3, size=n)
    return emb, tokens, (logit > 0).astype(int)


def test_router_learns_which_prompts_the_small_tier_answers_well() -> None:
    emb, tokens, good = _data()
    router = QueryRouter().fit(emb[:200], tokens[:200], good[:200])
    p = router.predict_good(emb[200:], tokens[200:])
    assert p.shape == (100,) and ((p > 0) & (p < 1)).all()
    assert np.mean((p >= 0.5) == good[200:]) > 0.85
    # p_good ranks good prompts above bad ones
    assert p[good[200:] == 1].mean() > p[good[200:] == 0].mean() + 0.3


def test_router_on_prompt_length_alone_needs_no_embedding() -> None:
    tokens = np.array([5, 8, 300, 400, 6, 350, 9, 280] * 10)
    good = (tokens < 100).astype(int)
    router = QueryRouter(use_embedding=False, threshold=0.5).fit(None, tokens, good)
    assert not router.needs_embedding
    assert router.route_away(router.predict_good(None, [7, 320])).tolist() == [False, True]
    assert router.feature_names_ == ["log_prompt_tokens"]


def test_extra_features_are_used_and_then_required() -> None:
    emb, tokens, good = _data(d=3)
    extra = good[:, None] * 2.0 - 1.0 + np.random.default_rng(1).normal(scale=0.1, size=(good.size, 1))
    router = QueryRouter(use_embedding=False).fit(None, tokens, good, extra=extra)
    assert np.mean((router.predict_good(None, tokens, extra) >= 0.5) == good) > 0.95
    assert router.feature_names_ == ["log_prompt_tokens", "extra_0"]
    with pytest.raises(ConfigurationError, match="extra feature"):
        router.predict_good(None, tokens)


def test_embedding_components_keep_the_full_embedding_as_input() -> None:
    emb, tokens, good = _data(d=16)
    router = QueryRouter(embedding_components=2).fit(emb, tokens, good)
    assert router.n_features_in_ == 17 and router.layers_[0][0].shape == (17, 1)
    full = QueryRouter().fit(emb, tokens, good)
    assert not np.allclose(router.predict_good(emb, tokens), full.predict_good(emb, tokens))


def test_save_load_round_trip_is_exact(tmp_path: Path) -> None:
    emb, tokens, good = _data()
    router = QueryRouter(C=0.5, threshold=0.4).fit(emb, tokens, good)
    path = router.save(tmp_path / "sub" / "router.json")
    data = json.loads(path.read_text())
    assert data["format"] == ROUTER_FORMAT_NAME and data["format_version"] == 1
    loaded = QueryRouter.load(path)
    assert loaded.get_params() == router.get_params()
    np.testing.assert_array_equal(loaded.predict_good(emb, tokens), router.predict_good(emb, tokens))
    assert load_router(path).threshold == 0.4


def test_sklearn_contract() -> None:
    router = QueryRouter(C=2.0)
    assert router.get_params() == {"C": 2.0, "embedding_components": None, "use_embedding": True,
                                   "threshold": None, "max_iter": 1000}
    assert router.set_params(C=3.0) is router and router.C == 3.0
    with pytest.raises(ConfigurationError, match="unknown parameter 'gamma'"):
        router.set_params(gamma=1)
    with pytest.raises(NotFittedError):
        router.predict_good(np.zeros((1, 2)), [3])
    emb, tokens, good = _data()
    assert router.fit(emb, tokens, good) is router


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"C": 0}, "C must be"), ({"C": float("nan")}, "C must be"), ({"threshold": 1.5}, "threshold"),
     ({"embedding_components": 0}, "embedding_components"), ({"use_embedding": "yes"}, "use_embedding"),
     ({"use_embedding": False, "embedding_components": 4}, "needs use_embedding")],
)
def test_bad_parameters_are_refused_at_construction(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        QueryRouter(**kwargs)


def test_bad_fit_input_names_the_problem() -> None:
    emb, tokens, good = _data()
    with pytest.raises(ConfigurationError, match="pass embeddings"):
        QueryRouter().fit(None, tokens, good)
    with pytest.raises(ConfigurationError, match="rows"):
        QueryRouter().fit(emb[:10], tokens, good)
    bad = emb.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ConfigurationError, match="finite"):
        QueryRouter().fit(bad, tokens, good)
    with pytest.raises(ConfigurationError, match="both good and bad"):
        QueryRouter().fit(emb, tokens, np.ones_like(good))
    router = QueryRouter().fit(emb, tokens, good)
    with pytest.raises(ConfigurationError, match="fitted on 9"):
        router.predict_good(emb[:, :4], tokens)
    with pytest.raises(ConfigurationError, match="no threshold"):
        router.route_away([0.2])


def _saved(tmp_path: Path) -> tuple[Path, dict]:
    emb, tokens, good = _data(d=3)
    path = QueryRouter().fit(emb, tokens, good).save(tmp_path / "r.json")
    return path, json.loads(path.read_text())


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda d: d.update(format="llm-cascade/learned-deferral"), "not a query router"),
        (lambda d: d.update(format_version=2), "format_version 2"),
        (lambda d: d.update(format_version=True), "format_version True"),
        (lambda d: d.update(surprise=1), "unknown fields"),
        (lambda d: d["params"].update(gamma=1), "unknown parameters"),
        (lambda d: d["params"].update(C=-1), "corrupt"),
        (lambda d: d.update(mean=d["mean"][:-1]), "shapes"),
        (lambda d: d["layers"][0].update(weight=[[1.0]] * 3), "shapes"),
        (lambda d: d.update(layers=[]), "exactly one"),
        (lambda d: d.update(embedding_dim=5), "n_features_in"),
        (lambda d: d.update(n_extra=-1), "non-negative"),
        (lambda d: d.update(scale=[0.0] * len(d["scale"])), "positive"),
        (lambda d: d["layers"][0].update(bias=[float("nan")]), "NaN"),
        (lambda d: d.pop("mean"), "corrupt"),
    ],
)
def test_strict_load_rejects_bad_files(tmp_path: Path, mutate, match: str) -> None:
    path, data = _saved(tmp_path)
    mutate(data)
    path.write_text(json.dumps(data))  # NaN is written as the JSON extension NaN, which loads as float nan
    with pytest.raises(RuleFileError, match=match):
        QueryRouter.load(path)


def test_load_rejects_missing_oversized_and_non_json_files(tmp_path: Path) -> None:
    with pytest.raises(RuleFileError, match="does not exist"):
        QueryRouter.load(tmp_path / "nope.json")
    path, _ = _saved(tmp_path)
    with pytest.raises(RuleFileError, match="limit"):
        QueryRouter.load(path, max_bytes=10)
    path.write_text("{not json")
    with pytest.raises(RuleFileError, match="not valid JSON"):
        QueryRouter.load(path)


def test_a_router_file_given_as_a_deferral_rule_says_what_it_is(tmp_path: Path) -> None:
    path, _ = _saved(tmp_path)
    with pytest.raises(RuleFileError, match="query router, not a deferral rule: pass it as router="):
        load_rule(path)


def test_select_router_cross_validates_c_and_components_and_records_them(tmp_path: Path) -> None:
    from cascade_core.evaluation.router_fit import select_router

    emb, tokens, good = _data(n=120, d=12)
    router = select_router(emb, tokens, good.astype(float), np.ones(120), cv=3, Cs=(0.01, 1.0), components=(None, 2, 64))
    tried = {(r["C"], r["embedding_components"]) for r in router.selection_["candidates"]}
    assert tried == {(0.01, None), (0.01, 2), (1.0, None), (1.0, 2)}  # 64 >= the 12-d embedding: skipped
    winner = router.selection_["winner"]
    assert winner["auc_df"] == max(r["auc_df"] for r in router.selection_["candidates"])
    assert (router.C, router.embedding_components) == (winner["C"], winner["embedding_components"])
    assert QueryRouter.load(router.save(tmp_path / "r.json")).selection_ == router.selection_
    with pytest.raises(ConfigurationError, match="too few"):
        select_router(emb[:5], tokens[:5], good[:5], np.ones(5), cv=3)
