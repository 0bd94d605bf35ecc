"""`cascade serve` replicas sharing one budget through a real valkey-server: config, decisions, metrics, store faults."""

from __future__ import annotations

import httpx
import pytest

from cascade_core import Cascade, DynamicBudgetThreshold, Pricing, ThresholdRule, Tier
from cascade_core.errors import ConfigurationError
from cascade_core.serve import create_app, parse_config
from cascade_core.state.redis_store import RedisStore
from cascade_core.testing import ScriptedModel

from .harness import serving

SMALL = "openai:http://127.0.0.1:9/v1#small"
DYNAMIC = {"signal": "margin", "dynamic": {"deferral_rate": 0.5, "warmup": 4, "window": 64}}


def _doc(**cascade):
    base = {"tiers": [SMALL, {"kind": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "large"}], "rule": DYNAMIC}
    return {"cascades": {"qa": {**base, **cascade}}}


@pytest.mark.parametrize(("doc", "message"), [
    (_doc(threshold_store="http://127.0.0.1:6379"), "cascades.qa.threshold_store: must be a redis://"),
    (_doc(threshold_store="redis://h:6379/0", rule={"threshold": 0.3}), "only a [dynamic] threshold keeps state"),
    (_doc(threshold_store="redis://h/0", threshold_store_env="X"), "give either threshold_store or threshold_store_env"),
    (_doc(threshold_store_env="NO_SUCH_ENV_VAR_X"), "threshold_store_env: environment variable 'NO_SUCH_ENV_VAR_X'"),
    (_doc(threshold_store=6379), "cascades.qa.threshold_store: must be a string"),
])
def test_bad_threshold_store_config_names_the_key(doc, message, tmp_path):
    with pytest.raises(ConfigurationError, match=message.replace("[", "\\[").replace("]", "\\]")):
        parse_config(doc, base_dir=tmp_path)


def test_store_url_from_the_environment_stays_out_of_the_repr(monkeypatch, tmp_path):
    monkeypatch.setenv("CASCADE_STATE_URL", "redis://:pw-in-env-0000@127.0.0.1:6379/0?key=fleet")
    config = parse_config(_doc(threshold_store_env="CASCADE_STATE_URL"), base_dir=tmp_path)
    assert config.cascades["qa"].threshold_store.endswith("key=fleet") and "pw-in-env" not in repr(config)


def _replica(url: str, confidence: float) -> Cascade:
    small = ScriptedModel("small answer", confidence=confidence, name="small-model")
    return Cascade([Tier(small, Pricing(0.0, 0.0), name="small"), Tier(ScriptedModel("large answer"), Pricing(1.0, 4.0),
                                                                        name="large")],
                   rules=ThresholdRule("margin", DynamicBudgetThreshold(deferral_rate=0.5, warmup=4, window=64,
                                                                        initial_threshold=0.3)),
                   threshold_store=RedisStore(f"{url}?key=serve-fleet", retry_after_s=0.1))


def _ask(running, n: int) -> list[str]:
    answers = []
    for i in range(n):
        reply = httpx.post(running.base_url + "/chat/completions", timeout=10,
                           json={"model": "qa", "messages": [{"role": "user", "content": f"q{i}"}]})
        assert reply.status_code == 200
        answers.append(reply.json()["choices"][0]["message"]["content"])
    return answers


def _metric(running, name: str) -> float:
    for line in httpx.get(running.url + "/metrics", timeout=5).text.splitlines():
        if line.startswith(f'{name}{{cascade="qa"}}'):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not exported")


def test_replicas_share_one_budget_and_survive_the_store_dying(redis_server):
    easy, hard = _replica(redis_server.url, 0.95), _replica(redis_server.url, 0.45)  # skewed: B gets the hard tenant
    with serving(create_app({"qa": easy})) as a, serving(create_app({"qa": hard})) as b:
        answers_a, answers_b = [], []
        for _ in range(10):
            answers_a += _ask(a, 1)
            answers_b += _ask(b, 1)
        assert answers_a == ["small answer"] * 10 and answers_b == ["large answer"] * 10  # one budget, 50 % fleet-wide
        assert _metric(a, "cascade_state_store_up") == 1.0
        redis_server.kill()
        assert len(_ask(a, 10) + _ask(b, 10)) == 20  # every request still answered (status 200 checked)
        assert _metric(a, "cascade_state_store_up") == 0.0 and _metric(a, "cascade_state_store_fallbacks_total") >= 10
        assert _metric(b, "cascade_state_store_errors_total") >= 1
