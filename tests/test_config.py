"""Configuration: the seed's config.yaml shape, TOML, env and flags, and clear refusals."""

import json
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from devstral_proxy.config import ConfigError, load
from tests.support import free_port, http

SEED_YAML = """
server:
  host: "0.0.0.0"
  port: 8080

backends:
  primary:
    url: "http://10.50.10.14:1234"
    timeout: 300

model_mapping:
  "gpt-3.5-turbo": "llama-3.1-instruct-13b"
  "gpt-4": "llama-3.1-instruct-13b"

authentication:
  enabled: true
  valid_api_keys:
    - "sk-secure-random-key-123"

request:
  max_content_length: 1048576  # 1MB limit
  default_timeout: 300

logging:
  level: "INFO"
  include_request_body: false  # Don't log sensitive data
  include_response_body: false
"""


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_seed_yaml_loads_unchanged(tmp_path):
    c = load(write(tmp_path, "config.yaml", SEED_YAML), env={})
    (b,) = c.backend_list()
    assert (b.name, b.url, c.backend_timeout(b)) == ("primary", "http://10.50.10.14:1234", 300)
    assert c.model_mapping["gpt-4"] == "llama-3.1-instruct-13b"
    assert c.authentication.valid_api_keys == ["sk-secure-random-key-123"]
    assert (c.server.host, c.server.port, c.max_body_bytes) == ("0.0.0.0", 8080, 1048576)


def test_toml_env_and_flags_override_in_order(tmp_path):
    path = write(tmp_path, "c.toml", '[server]\nport = 1\n[backends.a]\nurl = "http://127.0.0.1:1"\ndialect = "mistral"\n[model_mapping]\n"gpt-4" = "x"\n')
    c = load(path, env={"DEVSTRAL_PROXY_PORT": "2"})
    assert c.server.port == 2 and c.backend_list()[0].dialect == "mistral"
    c = load(path, env={"DEVSTRAL_PROXY_PORT": "2"}, overrides={"port": 3, "upstream": "http://127.0.0.1:9"})
    assert c.server.port == 3 and [b.url for b in c.backend_list()] == ["http://127.0.0.1:9"]
    c = load(None, env={"DEVSTRAL_PROXY_CONFIG": path, "DEVSTRAL_PROXY_UPSTREAM": "http://h:5"})
    assert c.backend_list()[0].url == "http://h:5" and c.model_mapping == {"gpt-4": "x"}


def test_backends_as_a_list(tmp_path):
    c = load(write(tmp_path, "c.json", json.dumps({"backends": [{"url": "http://a:1"}, {"url": "http://b:2", "name": "b"}]})), env={})
    assert [b.name for b in c.backend_list()] == ["backend0", "b"]


@pytest.mark.parametrize(
    "text, where",
    [
        ('[server]\nport = "x"\n[backends.p]\nurl = "http://a:1"', "server.port"),
        ('[server]\nprot = 1\n[backends.p]\nurl = "http://a:1"', "prot"),
        ('[backends.p]\nurl = "ftp://a"', "backends.p.url"),
        ('[backends.p]\nurl = "http://a:1"\ndialect = "klingon"', "backends.p.dialect"),
        ('[backends.p]\nurl = "http://a:1"\ntimeout = -1', "backends.p.timeout"),
        ("[server]\nport = 70000\n[backends.p]\nurl = 'http://a:1'", "server.port"),
        ('[backends.p]\nurl = "http://a:1"\n[authentication]\nenabled = true', "authentication.valid_api_keys"),
        ("[server]\n", "backends"),
        ("this is = = not toml", "not valid toml"),
        ('[server]\nallow_ips = ["10.0.0.0/33"]\n[backends.p]\nurl = "http://a:1"', "server.allow_ips[0]"),
        ('[backends.p]\nurl = "http://a:1"\n[authentication]\napi_keys_file = "/nonexistent/keys"', "authentication.api_keys_file"),
    ],
)
def test_invalid_config_names_the_key(tmp_path, text, where):
    with pytest.raises(ConfigError) as err:
        load(write(tmp_path, "c.toml", text), env={})
    assert where in str(err.value)


@pytest.mark.parametrize(
    "text, says",
    [
        ('[routing]\nstrategy = "random"', "routing.strategy: Invalid enum value 'random' (one of: least_loaded, affinity, round_robin)"),
        ("[server]\nprot = 1", "server: Object contains unknown field `prot` (did you mean `port`?)"),
        ('[server]\nport = "31094"', "server.port: Expected `int`, got `str` (a number, without quotes)"),
        ('[backends.p]\nurl = "http://a:1"\ndialekt = "mistral"', "backends.p: Object contains unknown field `dialekt` (did you mean `dialect`?)"),
    ],
)
def test_a_config_error_says_what_would_be_right(tmp_path, text, says):
    backend = '\n[backends.q]\nurl = "http://a:1"\n' if "backends.p" not in text else ""
    with pytest.raises(ConfigError) as err:
        load(write(tmp_path, "c.toml", text + backend), env={})
    assert str(err.value) == says


def test_cli_refuses_invalid_config_with_a_message(tmp_path):
    path = write(tmp_path, "c.toml", '[server]\nport = "nope"\n[backends.p]\nurl = "http://a:1"')
    r = subprocess.run([sys.executable, "-m", "devstral_proxy", "--config", path], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert "server.port" in r.stderr and "Traceback" not in r.stderr


@contextmanager
def serving(args: list[str], port: int, model: str):
    """The proxy as a process with `args`; yields its first answer to a chat request for
    `model`, then stops it with SIGTERM (a clean exit)."""
    proc = subprocess.Popen([sys.executable, "-m", "devstral_proxy", *args], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 15
        while True:
            try:
                r = http("POST", f"http://127.0.0.1:{port}/v1/chat/completions", {"model": model, "messages": [{"role": "user", "content": "hi"}]})
                break
            except OSError:
                assert time.time() < deadline and proc.poll() is None, "proxy did not start"
                time.sleep(0.1)
        yield r
    finally:
        proc.terminate()
        assert proc.wait(10) == 0


def test_cli_process_serves_with_config_file(tmp_path, sim):
    port = free_port()
    path = write(tmp_path, "c.yaml", f'server:\n  port: {port}\nbackends:\n  primary:\n    url: "{sim.url}"\nmodel_mapping:\n  "gpt-4": "mistral-sim"\n')
    with serving(["--config", path, "--host", "127.0.0.1"], port, "gpt-4") as r:
        assert r.status == 200 and r.json()["model"] == "gpt-4"


def test_model_map_from_env_and_flags_adds_to_the_file(tmp_path):
    path = write(tmp_path, "c.toml", '[backends.a]\nurl = "http://127.0.0.1:1"\n[model_mapping]\n"gpt-4" = "x"\n"o3" = "y"\n')
    c = load(path, env={"DEVSTRAL_PROXY_MODEL_MAP": "gpt-4=devstral, claude = qwen "})
    assert c.model_mapping == {"gpt-4": "devstral", "o3": "y", "claude": "qwen"}
    c = load(path, env={"DEVSTRAL_PROXY_MODEL_MAP": "gpt-4=devstral"}, overrides={"model_map": ["gpt-4=z"]})
    assert c.model_mapping == {"gpt-4": "z", "o3": "y"}  # a flag wins over the variable


@pytest.mark.parametrize("pair", ["gpt-4", "=x", "gpt-4="])
def test_a_model_map_pair_without_both_names_is_refused(pair):
    with pytest.raises(ConfigError) as err:
        load(None, env={}, overrides={"upstream": "http://127.0.0.1:1", "model_map": [pair]})
    assert "model_mapping" in str(err.value) and pair in str(err.value)


def test_cli_maps_models_with_flags_alone(sim):
    port = free_port()
    args = ["--upstream", sim.url, "--host", "127.0.0.1", "--port", str(port), "--map", "gpt-4=mistral-sim", "--map", "gpt-4o=mistral-sim"]
    with serving(args, port, "gpt-4o") as r:
        assert r.status == 200 and r.json()["model"] == "gpt-4o"
        assert sim.record.requests[-1]["model"] == "mistral-sim"
        listed = {m["id"] for m in http("GET", f"http://127.0.0.1:{port}/v1/models").json()["data"]}
        assert {"gpt-4", "gpt-4o", "mistral-sim"} <= listed


def test_include_response_body_is_refused_not_silently_ignored():
    from devstral_proxy.config import ConfigError, build

    with pytest.raises(ConfigError, match="include_response_body"):
        build({"logging": {"include_response_body": True}}, env={}, overrides={"upstream": "http://127.0.0.1:8000"})


def test_the_backend_key_by_flag_or_environment():
    from devstral_proxy.config import build

    cfg = build({}, env={"DEVSTRAL_PROXY_BACKEND_API_KEY": "sk-env"}, overrides={"upstream": "http://127.0.0.1:8000"})
    assert cfg.backend_list()[0].api_key == "sk-env"
    cfg = build({}, env={}, overrides={"upstream": "http://127.0.0.1:8000", "api_key": "sk-flag"})
    assert cfg.backend_list()[0].api_key == "sk-flag"


def test_backend_error_codes_come_back_as_strings(proxy):
    from tests.support import http

    r = http("POST", proxy.url + "/v1/chat/completions", {"model": "unknown", "messages": [{"role": "user", "content": "hi"}]})
    assert r.status == 404 and r.json()["error"]["code"] == "404"  # vLLM sends the integer 404
