import pytest

from devstral_proxy.config import RELAY_PATHS
from tests.support import ProxyThread, SimThread

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
