"""The built wheel installs into a fresh virtualenv beside `proxy.py` and `translate` from
PyPI (two packages whose import names are `proxy` and `translate`), and all three work.

Needs the package index (as `make test`'s own install does); skipped when it cannot be reached.
"""

import subprocess
import sys
import time
import urllib.request

import pytest

from tests.support import free_port

ROOT = __import__("pathlib").Path(__file__).resolve().parent.parent


def run(*cmd, timeout=240, check=True, cwd="/"):
    """Run outside the checkout: its proxy/ and translate/ folders must not be importable."""
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, cwd=cwd)
    if check and r.returncode:
        raise AssertionError(f"{cmd}: {r.returncode}\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    return r


@pytest.mark.timeout(600)
def test_the_wheel_installs_beside_proxy_py_and_translate(tmp_path):
    dist = tmp_path / "dist"
    built = run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", dist, ROOT, check=False)
    if built.returncode:
        pytest.skip(f"cannot build the wheel here (no package index?): {built.stderr[-300:]}")
    (wheel,) = dist.glob("devstral_proxy-*.whl")
    names = run(sys.executable, "-m", "zipfile", "-l", wheel).stdout
    assert "devstral_proxy/cli.py" in names and "devstral_translate/mistral/stream.py" in names
    # every package of the source tree is in the wheel (a new subpackage must be listed)
    for init in sorted((ROOT / "translate" / "devstral_translate").rglob("__init__.py")):
        assert "devstral_translate/" + str(init.relative_to(ROOT / "translate" / "devstral_translate")) in names, init
    assert "bench/" not in names and "tests/" not in names and "\nproxy/" not in names
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv)
    py, pip = venv / "bin" / "python", venv / "bin" / "pip"
    # both orders: theirs after ours, and ours after theirs
    run(pip, "install", "-q", wheel)
    run(pip, "install", "-q", "proxy.py", "translate")
    run(pip, "install", "-q", "--force-reinstall", "--no-deps", wheel)
    assert "devstral-proxy 0.1.0" in run(venv / "bin" / "devstral-proxy", "--version").stdout
    assert "devstral-proxy" in run(py, "-m", "devstral_proxy", "--version").stdout
    run(py, "-c", "import proxy, translate; assert proxy.Proxy and proxy.entry_point; assert translate.Translator")
    run(venv / "bin" / "proxy", "--version")  # proxy.py's own command
    assert run(py, "-c", "import bench", check=False).returncode != 0
    assert run(py, "-c", "import aiohttp", check=False).returncode != 0  # an extra, not a dependency
    port = free_port()
    proc = subprocess.Popen([venv / "bin" / "devstral-proxy", "--upstream", "http://127.0.0.1:9", "--port", str(port)], stderr=subprocess.PIPE, cwd="/")
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=2)
            except urllib.error.HTTPError as exc:  # the backend is unreachable: the proxy says so
                assert exc.code == 502 and b"backend_unreachable" in exc.read()
                break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read()
                time.sleep(0.1)
    finally:
        proc.terminate()
        proc.wait(10)
    # uninstalling theirs leaves ours working
    run(pip, "uninstall", "-q", "-y", "proxy.py", "translate")
    run(py, "-c", "import devstral_proxy.app, devstral_translate.mistral")


def test_redis_without_its_extra_names_the_extra(tmp_path, monkeypatch):
    from devstral_proxy import config

    monkeypatch.setitem(sys.modules, "redis", None)  # as if the extra were not installed
    with pytest.raises(config.ConfigError, match=r"devstral-proxy\[redis\]"):
        config.build(
            {"rate_limit": {"requests_per_minute": 5, "redis_url": "redis://127.0.0.1:6379/0"}}, env={}, overrides={"upstream": "http://127.0.0.1:8000"}
        )


@pytest.mark.timeout(600)
def test_the_sdist_and_the_wheel_pass_twine_check(tmp_path):
    """What a package index would take: both distributions build, their metadata (the README
    as the long description, the license) passes `twine check --strict`."""
    dist = tmp_path / "dist"
    built = run(sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", dist, ROOT, check=False, cwd=tmp_path)
    if built.returncode:
        pytest.skip(f"cannot build here (no package index?): {built.stderr[-300:]}")
    files = sorted(dist.iterdir(), key=lambda f: f.suffix)  # the sdist (.tar.gz), then the wheel
    assert [f.suffix for f in files] == [".gz", ".whl"]
    checked = run(sys.executable, "-m", "twine", "check", "--strict", *files, check=False)
    assert checked.returncode == 0 and checked.stdout.count("PASSED") == 2, checked.stdout + checked.stderr
    sdist = run(sys.executable, "-c", f"import tarfile; print('\\n'.join(tarfile.open('{files[0]}').getnames()))").stdout
    assert "/LICENSE" in sdist and "/README.md" in sdist
