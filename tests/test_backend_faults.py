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
