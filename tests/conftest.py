import os
import shutil
import subprocess
import time

import pytest

from bench.simulator import Behavior
from devstral_proxy.config import RELAY_PATHS
from tests.support import ProxyThread, SimThread, free_port

MAPPING = {"gpt-4": "mistral-sim", "gpt-3.5-turbo": "mistral-sim"}


@pytest.fixture
def sim():
    s = SimThread()
    yield s
    s.stop()


@pytest.fixture
def start_proxy():
    started = []

    def start(upstream=None, **sections) -> ProxyThread:
        sections.setdefault("model_mapping", MAPPING)
        server = sections.setdefault("server", {})
        server.setdefault("relay_paths", [*RELAY_PATHS, "/v1/echo"])  # the simulator's test route
        p = ProxyThread(upstream, **sections)
        started.append(p)
        return p

    yield start
    for p in started:
        p.stop()


@pytest.fixture
def proxy(sim, start_proxy):
    return start_proxy(sim.url)


@pytest.fixture
def redis_url(tmp_path):
    server = shutil.which("redis-server")
    if server is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is missing: .ci/run installs it")
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    proc = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(tmp_path)], stdout=subprocess.DEVNULL
    )
    deadline = time.time() + 10
    while subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True).stdout.strip() != "PONG":
        assert time.time() < deadline, "redis-server did not start"
        time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(10)


# The strict Mistral backends the front-protocol suites (Responses, Messages) run against:
# three tokenizer generations, each with structured and raw `[TOOL_CALLS]` replies.
# generation judged -> the raw tool-call format that generation's models write
GENERATIONS = {"v7": "raw-v3", "v11": "raw-v11", "v13": "raw-v11"}


@pytest.fixture(scope="module", params=[(g, m) for g in GENERATIONS for m in ("structured", GENERATIONS[g])], ids=lambda p: f"{p[0]}-{p[1]}")
def front_strict_sim(request):
    generation, mode = request.param
    s = SimThread(Behavior(strict_mistral=True, generation=generation, models=["devstral-sim"], tool_mode=mode))
    yield s
    s.stop()


@pytest.fixture
def front_sim(front_strict_sim):
    """The front suites' (Responses, Messages) strict Mistral backend of the module, its behaviour restored and its record cleared per test."""
    saved = dict(front_strict_sim.behavior.__dict__)
    front_strict_sim.record.requests.clear()
    yield front_strict_sim
    front_strict_sim.behavior.__dict__.update(saved)
