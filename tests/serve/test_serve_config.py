"""The TOML config (validation errors name the key) and `cascade serve` / `python -m cascade_core serve`
end to end in a subprocess, with tiers on a fake OpenAI-compatible server."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest

from cascade_core.decide.calibration_file import CalibrationFile
from cascade_core.decide.learned.rule import LearnedDeferral
from cascade_core.decide.risk import certify_threshold
from cascade_core.decide.rule_file import SignalRule
from cascade_core.errors import ConfigurationError
from cascade_core.serve import build_cascades, load_config, parse_config
from cascade_core.testing.fake_server import FakeOpenAIServer, FakeReply
from cascade_core.types import Generation, TokenStep

REPO = Path(__file__).resolve().parents[2]
SMALL = "openai:http://127.0.0.1:9/v1#small"


def _doc(**cascade):
    base = {"tiers": [SMALL, {"kind": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "large"}],
            "rule": {"signal": "margin", "threshold": 0.3}}
    return {"cascades": {"qa": {**base, **cascade}}}


def _with(doc, **server):
    return {**doc, "server": server}


BAD = [
    ({}, "config: cascades: is required"),
    ({"cascades": {}}, "config: cascades: define at least one"),
    ({"cascades": {"qa": {}}, "extra": 1}, "config: cascades.qa.tiers: is required"),
    (_doc(tiers=[SMALL]), "cascades.qa.tiers: a cascade needs at least 2 tiers"),
    (_doc(tiers=["bogus:x", SMALL]), "cascades.qa.tiers[0].spec: unknown tier kind 'bogus'"),
    (_doc(tiers=[SMALL, {"kind": "openai", "base_url": "http://h/v1"}]), "cascades.qa.tiers[1].model: is required"),
    (_doc(tiers=[SMALL, {"kind": "openai", "base_url": "h/v1", "model": "m"}]), "cascades.qa.tiers[1].base_url: must be an http(s) URL"),
    (_doc(tiers=[SMALL, {"kind": "openai", "base_url": "http://h/v1", "model": "m", "api_key_env": "NO_SUCH_ENV_VAR_X"}]),
     "cascades.qa.tiers[1].api_key_env: environment variable 'NO_SUCH_ENV_VAR_X' is empty or unset"),
    (_doc(tiers=[SMALL, {"kind": "vllm", "model": "m"}]), "cascades.qa.tiers[1].kind: unknown tier kind 'vllm'"),
    (_doc(tiers=[SMALL, {"spec": SMALL, "prise": 1}]), "cascades.qa.tiers[1]: unknown key(s) ['prise']"),
    (_doc(tiers=[{"spec": SMALL, "input_per_million": -1}, SMALL]), "cascades.qa.tiers[0].input_per_million: must be a number >= 0"),
    (_doc(tiers=[{"spec": SMALL, "top_k": "5"}, SMALL]), "cascades.qa.tiers[0].top_k: must be an integer, got str"),
    (_doc(tiers=[3, SMALL]), "cascades.qa.tiers[0]: must be a table"),
    (_doc(rule={"signal": "margin", "threshold": 5.0}), "cascades.qa.rule: threshold for margin=5.0 is outside"),
    (_doc(rule={"signal": "vibes", "threshold": 0.3}), "cascades.qa.rule: unknown signal 'vibes'"),
    (_doc(rule={"threshold": 0.3, "dynamic": {"deferral_rate": 0.3}}), "cascades.qa.rule: give exactly one of threshold"),
    (_doc(rule={"signal": "margin"}), "cascades.qa.rule: give exactly one of threshold"),
    (_doc(rule={"dynamic": {"rate": 0.3}}), "cascades.qa.rule.dynamic: unknown key(s) ['rate']"),
    (_doc(rule={"dynamic": {"warmup": 4}}), "cascades.qa.rule: DynamicBudgetThreshold: give exactly one of budget"),
    (_doc(rule={"rule_file": "missing.json", "threshold": 0.5}), "cascades.qa.rule: rule file"),
    (_doc(rule={"signal": "margin", "rule_file": "r.json", "threshold": 0.5}), "cascades.qa.rule: give either signal or rule_file"),
    (_doc(rule={"threshold": 0.3}, rules=[{"threshold": 0.3}]), "cascades.qa: give either [rule]"),
    ({"cascades": {"qa": {"tiers": [SMALL, SMALL], "rules": [{"threshold": 0.3}, {"threshold": 0.3}]}}},
     "cascades.qa.rules: give one rule per non-final tier (1), got 2"),
    (_doc(on_small_error="ignore"), "cascades.qa.on_small_error: must be 'defer' or 'raise'"),
    ({"cascades": {"my qa": _doc()["cascades"]["qa"]}}, "cascades.my qa: cascade names"),
    (_with(_doc(), port="80"), "server.port: must be an integer, got str"),
    (_with(_doc(), port=70000), "server.port: must be a TCP port"),
    (_with(_doc(), max_concurrency=0), "server.max_concurrency: must be an integer >= 1"),
    (_with(_doc(), request_timeout_s=0), "server.request_timeout_s: must be a positive"),
    (_with(_doc(), api_keys_env="NO_SUCH_ENV_VAR_X"), "server.api_keys_env: environment variable"),
    (_with(_doc(), workers=4), "server: unknown key(s) ['workers']"),
    (_with(_doc(), log_level="loud"), "server.log_level: must be one of"),
]


@pytest.mark.parametrize(("doc", "message"), BAD, ids=[m.split(":")[1].strip() + f"-{i}" for i, (_, m) in enumerate(BAD)])
def test_invalid_config_names_the_key(doc, message, tmp_path):
    with pytest.raises(ConfigurationError) as err:
        parse_config(doc, base_dir=tmp_path)
    assert message in str(err.value)


def test_keys_from_env_are_hidden_and_thresholds_from_files(tmp_path, monkeypatch):
    monkeypatch.setenv("CASCADE_TEST_KEYS", "sk-a, sk-b")
    CalibrationFile(SignalRule("margin").to_dict(), threshold=0.42).save(tmp_path / "cal.json")
    gens = [Generation("x", tuple(TokenStep(f"t{i}", lp) for i, lp in enumerate(lps)))
            for lps in ([-0.05, -0.1], [-2.5, -3.0], [-0.1, -0.02], [-3.0, -1.9]) * 5]
    LearnedDeferral().fit_generations(gens, [1, 0, 1, 0] * 5).save(tmp_path / "rule.json")
    doc = {"server": {"api_keys_env": "CASCADE_TEST_KEYS"},
           "cascades": {"margin": {**_doc()["cascades"]["qa"], "rule": {"calibration_file": "cal.json"}},
                        "learned": {**_doc()["cascades"]["qa"], "rule": {"rule_file": "rule.json", "threshold": 0.6}},
                        "budget": {**_doc()["cascades"]["qa"], "rule": {"signal": "chow_average", "dynamic": {
                            "budget": 0.5, "small_cost": 0.1, "large_cost": 1.0, "warmup": 8}}}}}
    config = parse_config(doc, base_dir=tmp_path)
    assert config.server.api_keys == ("sk-a", "sk-b") and "sk-a" not in repr(config)
    cascades = build_cascades(config)
    assert cascades["margin"].rules[0].policy.current_threshold == 0.42
    assert cascades["learned"].rules[0].scorer.name == "learned(logistic)"
    assert cascades["budget"].rules[0].policy.deferral_rate == pytest.approx(0.4)


def test_a_certified_calibration_file_brings_its_rule_and_certificate(tmp_path):
    cert = certify_threshold([0.9] * 100 + [0.2] * 100, [1] * 100 + [0] * 100, epsilon=0.05, delta=0.1)
    CalibrationFile(SignalRule("chow_average").to_dict(), threshold=0.9, certificate=cert).save(tmp_path / "cal.json")
    doc = {"cascades": {"qa": {**_doc()["cascades"]["qa"], "rule": {"calibration_file": "cal.json"}}}}
    rule = build_cascades(parse_config(doc, base_dir=tmp_path))["qa"].rules[0]
    assert rule.scorer.name == "chow_average" and rule.policy.certificate == cert
    assert rule.policy.current_threshold == 0.9


@pytest.mark.parametrize(
    ("content", "rule", "message"),
    [
        (None, {"signal": "margin"}, "was calibrated for 'chow_average', not 'margin'"),
        ('{"signal": "margin", "sample": {"threshold": 0.4}}', {}, "is not a calibration file"),
        ("{", {}, "is not valid JSON"),
    ],
)
def test_a_wrong_or_foreign_calibration_file_is_refused(tmp_path, content, rule, message):
    path = tmp_path / "cal.json"
    if content is None:
        CalibrationFile(SignalRule("chow_average").to_dict(), threshold=-1.0).save(path)
    else:
        path.write_text(content)
    doc = {"cascades": {"qa": {**_doc()["cascades"]["qa"], "rule": {"calibration_file": "cal.json", **rule}}}}
    with pytest.raises(ConfigurationError, match=message):
        parse_config(doc, base_dir=tmp_path)


def test_toml_syntax_error_and_missing_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[server\nport = 1\n")
    with pytest.raises(ConfigurationError, match="bad.toml: not valid TOML"):
        load_config(bad)
    with pytest.raises(ConfigurationError, match="cannot read config file"):
        load_config(tmp_path / "none.toml")


def test_example_config_is_valid(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-example")
    monkeypatch.setenv("CASCADE_API_KEYS", "sk-client")
    config = load_config(REPO / "examples" / "cascade.toml")
    assert len(config.cascades) >= 2


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_cascade_serve_subprocess_end_to_end_and_sigterm(tmp_path):
    def responder(body):
        if body["model"] == "small":
            return FakeReply("Lyon", confidence=0.2)  # unsure: defer
        return FakeReply("Paris")

    with FakeOpenAIServer(responder) as fake:
        config = tmp_path / "cascade.toml"
        config.write_text(f"""
[server]
api_keys_env = "SERVE_TEST_KEYS"
log_level = "info"

[cascades.qa]
rule = {{ signal = "margin", threshold = 0.3 }}

[[cascades.qa.tiers]]
spec = "openai:{fake.base_url}#small"
name = "small"

[[cascades.qa.tiers]]
kind = "openai"
base_url = "{fake.base_url}"
model = "large"
api_key_env = "SERVE_TEST_TIER_KEY"
input_per_million = 0.15
output_per_million = 0.6
name = "large"
""")
        port = _free_port()
        env = {**os.environ, "SERVE_TEST_KEYS": "sk-client", "SERVE_TEST_TIER_KEY": "sk-tier-secret",
               "PYTHONPATH": os.pathsep.join([str(REPO / "shared"), str(REPO), os.environ.get("PYTHONPATH", "")])}
        proc = subprocess.Popen([sys.executable, "-m", "cascade_core", "serve", "--config", str(config), "--port", str(port)],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert proc.poll() is None, proc.communicate()[0]
                assert time.monotonic() < deadline, "server did not become healthy in 30 s"
                time.sleep(0.1)
            client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="sk-client", max_retries=0)
            raw = client.chat.completions.with_raw_response.create(model="qa", messages=[{"role": "user", "content": "Capital?"}])
            assert raw.parse().choices[0].message.content == "Paris" and raw.headers["x-cascade-deferred"] == "true"
            assert raw.parse().model_extra["cascade"]["cost"] > 0
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                output = proc.communicate(timeout=15)[0]
            except subprocess.TimeoutExpired:
                proc.kill()
                output = proc.communicate()[0]
    # uvicorn shuts down gracefully, then re-raises the signal so the exit status says "terminated"
    assert proc.returncode in (0, -signal.SIGTERM), output
    assert "Finished server process" in output and "Traceback" not in output
    assert "sk-tier-secret" not in output and "sk-client" not in output


def test_cascade_serve_bad_config_exits_2_naming_the_key(tmp_path, capsys):
    from cascade_core.cli import main

    config = tmp_path / "cascade.toml"
    config.write_text('[cascades.qa]\ntiers = ["embedded", "embedded"]\nrule = { signal = "margin", threshold = 7 }\n')
    assert main(["serve", "--config", str(config)]) == 2
    assert "cascades.qa.rule: threshold for margin=7.0 is outside" in capsys.readouterr().err


def test_a_sample_agreement_rule_takes_its_k_temperature_and_seed(tmp_path):
    doc = _doc(rule={"signal": "sample_agreement", "k": 3, "temperature": 0.9, "seed": 5, "threshold": 0.6})
    rule = build_cascades(parse_config(doc, base_dir=tmp_path))["qa"].rules[0]
    assert rule.scorer.name == "sample_agreement(k=3, temperature=0.9)" and rule.scorer.sampling.seed == 5
    with pytest.raises(ConfigurationError, match="k must be an int >= 1"):
        parse_config(_doc(rule={"signal": "sample_agreement", "k": 0, "threshold": 0.6}), base_dir=tmp_path)
