"""The backend down, slow, restarted, or closing pooled connections: defined answers."""

import json

import openai
import pytest

from tests.support import RawBackend, SimThread, eventually, free_port, http

CHAT = {"model": "gpt-4", "messages": [{"role": "user", "content": "hi"}]}


def test_backend_down_is_502_json(start_proxy):
    p = start_proxy(f"http://127.0.0.1:{free_port()}")
    r = http("POST", p.url + "/v1/chat/completions", CHAT)
    assert r.status == 502
    err = r.json()["error"]
    assert err["code"] == "backend_unreachable" and err["message"]
    assert http("GET", p.url + "/v1/models").status == 502
    h = http("GET", p.url + "/health")
    assert h.status == 503 and h.json()["status"] == "unhealthy"


def test_health_answers_from_the_monitors_state_without_probing(sim, start_proxy):
    """A flood of GET /health (no key needed) is not a flood of backend probes and connections."""
    from concurrent.futures import ThreadPoolExecutor

    p = start_proxy(sim.url, routing={"health_interval": 300})
    checks = sim.record.health_checks  # the first check, before serving
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda _: http("GET", p.url + "/health").status, range(100)))
    assert statuses == [200] * 100 and sim.record.health_checks == checks == 1


def test_model_lists_are_fetched_once_for_many_callers_and_kept_bounded(sim, start_proxy):
    """#25: 8 GETs of a 100,000-model list each fetched and decoded it. One fetch now serves
    every caller (and is kept LIST_TTL), and a backend's list is cut at MAX_MODELS."""
    from concurrent.futures import ThreadPoolExecutor

    from devstral_proxy.monitor import MAX_MODELS

    sim.behavior.models = [f"m{i}" for i in range(MAX_MODELS + 500)]
    p = start_proxy(sim.url, routing={"health_interval": 300})
    before = sim.record.model_lists
    with ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(lambda _: http("GET", p.url + "/v1/models"), range(8)))
    assert [r.status for r in replies] == [200] * 8
    ids = [m["id"] for m in replies[0].json()["data"] if m["owned_by"] == "vllm"]
    assert ids == [f"m{i}" for i in range(MAX_MODELS)] and all(r.body == replies[0].body for r in replies)
    assert sim.record.model_lists - before == 1


def test_a_hung_backend_does_not_hold_the_model_list(sim, start_proxy, monkeypatch):
    """Against a hung backend a client waited backend.timeout for /v1/models. What was listed
    is answered (its refresh runs behind it); a backend never listed is waited for only
    routing.health_timeout."""
    import threading

    from devstral_proxy import catalog

    monkeypatch.setattr(catalog, "LIST_TTL", 0.0)  # every list is stale: each call starts a refresh
    backends = {"primary": {"url": sim.url, "timeout": 120}}
    p = start_proxy(backends=backends, routing={"health_interval": 300, "health_timeout": 0.5})
    assert http("GET", p.url + "/v1/models").json()["data"][0]["id"] == "mistral-sim"
    sim.behavior.gate = threading.Event()  # the backend hangs from here
    try:
        for _ in range(3):  # each would wait 120 s if it asked the backend (the client gives up at 10)
            r = http("GET", p.url + "/v1/models")
            assert r.status == 200 and r.json()["data"][0]["id"] == "mistral-sim"
        fresh = start_proxy(backends=backends, routing={"health_interval": 300, "health_timeout": 0.5})
        r = http("GET", fresh.url + "/v1/models")
        assert r.status == 504 and r.json()["error"]["code"] == "backend_timeout"
    finally:
        sim.behavior.gate.set()
    eventually(lambda: sim.record.model_lists >= 3, what="the held lists answered")
    assert sim.record.model_lists == 3  # the first, one refresh of each proxy: never one a call


def test_backend_slower_than_timeout_is_504_json(sim, start_proxy):
    p = start_proxy(backends={"primary": {"url": sim.url, "timeout": 0.3}})
    sim.behavior.first_token_delay = 2.0
    r = http("POST", p.url + "/v1/chat/completions", CHAT)
    assert r.status == 504 and r.json()["error"]["code"] == "backend_timeout"


def test_backend_stalling_mid_stream_ends_stream_with_error_event(sim, start_proxy):
    p = start_proxy(backends={"primary": {"url": sim.url, "timeout": 0.3}})
    sim.behavior.token_delay = 1.0
    client = openai.OpenAI(base_url=p.url + "/v1", api_key="x", max_retries=0)
    stream = client.chat.completions.create(**CHAT, stream=True)
    with pytest.raises(openai.APIError) as err:
        for _ in stream:
            pass
    assert "did not answer" in str(err.value)


def test_backend_restarted_between_requests(start_proxy):
    port = free_port()
    sim = SimThread(port=port)
    p = start_proxy(sim.url)
    assert http("POST", p.url + "/v1/chat/completions", CHAT).status == 200
    sim.stop()
    sim = SimThread(port=port)
    try:
        assert http("POST", p.url + "/v1/chat/completions", CHAT).status == 200
    finally:
        sim.stop()


class ClosingBackend:
    """Answers the first request on each connection, then closes when the next one arrives,
    without answering: what a backend's idle-timeout close looks like when it crosses our write."""

    def __init__(self) -> None:
        self.connections = 0
        self.raw = RawBackend(self._serve)
        self.port = self.raw.port

    async def _serve(self, reader, writer) -> None:
        self.connections += 1
        await reader.readuntil(b"\r\n\r\n")
        body = json.dumps({"id": "x", "object": "chat.completion", "created": 0, "model": "mistral-sim", "choices": []}).encode()
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()
        await reader.read(1)  # the next request's first byte
        writer.transport.abort()


def test_pooled_connection_closed_by_backend_is_retried_on_a_fresh_one(start_proxy):
    backend = ClosingBackend()
    p = start_proxy(f"http://127.0.0.1:{backend.port}")
    before = backend.connections  # the startup health check's, pooled like any
    for _ in range(3):
        r = http("POST", p.url + "/v1/chat/completions", CHAT)
        assert r.status == 200, r.body
        assert r.json()["model"] == "gpt-4"
    assert backend.connections == before + 3  # each pooled one found closed: one fresh each
    backend.raw.stop()


def test_backend_error_status_and_body_are_passed_on(proxy):
    r = http("POST", proxy.url + "/v1/chat/completions", {**CHAT, "model": "unknown"})
    assert r.status == 404
    err = r.json()["error"]
    assert "unknown" in err["message"] and err["type"]


def test_a_backend_that_never_accepts_times_out_at_connect_timeout(start_proxy):
    """Its listen queue is full, so a new connection is never established: the request is
    answered 504 after connect_timeout, not after the whole request timeout."""
    import select
    import socket
    import time

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(4):  # fill the accept queue: later SYNs are dropped
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        fillers.append(s)
    eventually(lambda: select.select([], fillers, [], 0)[1], what="the accept queue filling")  # the first handshakes done
    try:
        p = start_proxy(backends={"b": {"url": f"http://127.0.0.1:{port}", "connect_timeout": 0.3}}, routing={"load_interval": 0})
        t0 = time.monotonic()
        r = http("POST", p.url + "/v1/chat/completions", CHAT, timeout=10)
        assert r.status == 504 and r.json()["error"]["code"] == "backend_timeout"
        assert time.monotonic() - t0 < 5  # connect_timeout, not the request's 600 s
    finally:
        for s in fillers:
            s.close()
        listener.close()
