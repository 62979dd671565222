"""`make run` as a new user meets it: the config file's port is kept, a busy simulator port
gets a clear message instead of a traceback, and the simulator names what it lacks."""

import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def make(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "-C", str(ROOT), *args], capture_output=True, text=True, timeout=timeout)


def test_a_config_files_port_is_kept_unless_port_is_given():
    dry = make("-n", "run", "CONFIG=config.yaml")
    line = next(ln for ln in dry.stdout.splitlines() if "-m devstral_proxy" in ln)
    assert "--config config.yaml" in line and "--port" not in line
    line = next(ln for ln in make("-n", "run", "CONFIG=config.yaml", "PORT=9100").stdout.splitlines() if "-m devstral_proxy" in ln)
    assert "--port 9100" in line


def test_a_busy_simulator_port_is_said_not_a_traceback():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = make("run", f"SIM_PORT={port}", "PORT=0")
    assert r.returncode != 0
    assert f"Port {port} is in use" in r.stdout and "UPSTREAM=" in r.stdout
    assert "Traceback" not in r.stdout + r.stderr


def test_the_strict_simulator_names_the_missing_judge():
    code = "import sys; sys.modules['mistral_common'] = None; from bench.simulator import main; main(['--strict-mistral'])"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert r.returncode == 2 and "mistral-common" in r.stderr and "pip install" in r.stderr


def test_wait_helper_sees_a_busy_port():
    from bench.wait import port_free

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        assert not port_free(busy.getsockname()[1])
