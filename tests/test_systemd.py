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
    assert (UNIT.parent / "devstral-proxy.env").exists() and (UNIT.parent / "config.toml").exists()


def test_example_config_loads():
    import tomllib

    from devstral_proxy.config import build

    doc = tomllib.loads((UNIT.parent / "config.toml").read_text())
    doc["authentication"] = {}  # the key file lives on the server
    config = build(doc, env={})
    assert config.backend_list()[0].dialect == "mistral"
