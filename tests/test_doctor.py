"""`devstral-proxy doctor` against the simulated vLLM: one good backend, one that nothing
listens on; each check one line, a failure saying what to do, the exit status non-zero."""

import subprocess
import sys

from tests.support import free_port


def doctor(config_path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "devstral_proxy", "doctor", "--config", str(config_path)], capture_output=True, text=True, timeout=120)


def test_a_good_and_a_broken_backend(sim, tmp_path):
    sim.behavior.models = ["mistralai/Devstral-Small-2507"]
    gone = free_port()
    config = tmp_path / "c.toml"
    config.write_text(
        f'[server]\nport = {free_port()}\n[backends.good]\nurl = "{sim.url}"\ndialect = "mistral"\n[backends.gone]\nurl = "http://127.0.0.1:{gone}"\n'
    )
    done = doctor(config)
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert f"ok    backend good ({sim.url}) reachable" in lines
    assert "ok    backend good serves mistralai/Devstral-Small-2507" in lines
    assert "      mistralai/Devstral-Small-2507: Mistral tokenizer generation v11" in lines
    assert "ok    backend good: a request through the mistral dialect answered" in lines
    assert any(line.startswith(f"FAIL  backend gone (http://127.0.0.1:{gone}) reachable: connection refused: nothing listens there") for line in lines)
    assert lines[-1] == "1 check failed"
    assert sim.record.requests[-1]["max_tokens"] == 1  # the small request


def test_every_check_passes_and_a_config_that_does_not_load(sim, tmp_path):
    config = tmp_path / "c.toml"
    config.write_text(f'[server]\nport = {free_port()}\n[backends.good]\nurl = "{sim.url}"\n')
    done = doctor(config)
    assert done.returncode == 0 and done.stdout.splitlines()[-1] == "every check passed", done.stdout
    config.write_text('[server]\nprot = 1\n[backends.good]\nurl = "http://a:1"\n')
    bad = doctor(config)
    assert bad.returncode == 2 and "did you mean `port`?" in bad.stdout
