"""The systemd unit: `systemd-analyze verify` accepts it, and it asks for what the proxy does."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).parent.parent / "systemd" / "devstral-proxy.service"


def test_unit_verifies(tmp_path):
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    text = UNIT.read_text().replace("/opt/devstral-proxy/.venv/bin/devstral-proxy", f"{sys.executable} -m devstral_proxy")
    unit = tmp_path / UNIT.name
    unit.write_text(text)
    r = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip() == "", r.stderr


def test_unit_settings_match_the_proxy():
    settings = dict(line.split("=", 1) for line in UNIT.read_text().splitlines() if "=" in line and not line.startswith("#"))
    assert settings["Type"] == "notify" and settings["WatchdogSec"]
    assert settings["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert settings["KillSignal"] == "SIGTERM" and settings["Restart"] == "on-failure"
    assert int(settings["LimitNOFILE"]) >= 10000
    assert settings["DynamicUser"] == "yes" and settings["ProtectSystem"] == "strict" and settings["NoNewPrivileges"] == "yes"
    assert "AF_INET" in settings["RestrictAddressFamilies"]
    assert settings["EnvironmentFile"].startswith("-")
    assert settings["SupplementaryGroups"] == "devstral-proxy"  # reads the 640 config and key file
    assert (UNIT.parent / "devstral-proxy.env").exists() and (UNIT.parent / "config.toml").exists()


def test_example_config_loads():
    import tomllib

    from devstral_proxy.config import build

    doc = tomllib.loads((UNIT.parent / "config.toml").read_text())
    doc["authentication"] = {}  # the key file lives on the server
    config = build(doc, env={})
    assert config.backend_list()[0].dialect == "mistral"


def test_the_shipped_files_run_the_proxy_as_the_readme_installs_them(sim, tmp_path):
    """The README's steps, as far as this machine allows: the shipped config (backend pointed at
    the simulator), a generated key file, the shipped environment file; the binary serves with
    the key, reloads on SIGHUP and drains on SIGTERM."""
    import json
    import os
    import signal
    import time
    import tomllib

    from tests.support import eventually, free_port, http

    keys = tmp_path / "api-keys"
    keys.write_text("sk-generated-for-the-test\n")
    keys.chmod(0o640)
    text = (UNIT.parent / "config.toml").read_text()
    assert 'api_keys_file = "/etc/devstral-proxy/api-keys"' in text
    doc = tomllib.loads(text)
    doc["authentication"]["api_keys_file"] = str(keys)
    doc["backends"]["vllm"]["url"] = sim.url
    doc["backends"]["vllm"]["dialect"] = "openai"  # the simulator's answers are not judged here
    doc["model_mapping"] = {"gpt-4": "mistral-sim"}
    config = tmp_path / "config.json"
    config.write_text(json.dumps(doc))
    env = dict(os.environ)
    for line in (UNIT.parent / "devstral-proxy.env").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            env[name] = value
    port = free_port()
    env["DEVSTRAL_PROXY_PORT"], env["DEVSTRAL_PROXY_HOST"] = str(port), "127.0.0.1"
    log = tmp_path / "stderr.log"
    proc = subprocess.Popen([sys.executable, "-m", "devstral_proxy", "--config", str(config)], env=env, stderr=log.open("w"))
    try:
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        chat = {"model": "gpt-4", "messages": [{"role": "user", "content": "hi"}]}
        deadline = time.monotonic() + 20
        while True:
            try:
                r = http("POST", url, chat, headers={"authorization": "Bearer sk-generated-for-the-test"})
                break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.1)
        assert r.status == 200
        assert http("POST", url, chat).status == 401
        proc.send_signal(signal.SIGHUP)
        workers = int(env.get("DEVSTRAL_PROXY_WORKERS", "1"))
        eventually(lambda: log.read_text().count("configuration reloaded") >= workers, what="every worker reloading")
        assert http("POST", url, chat, headers={"authorization": "Bearer sk-generated-for-the-test"}).status == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
