"""Connection limits, the IP allow-list, the total request timeout, and slow clients."""

import socket
import statistics
import threading
import time

import openai
import pytest

from tests.support import eventually, http

CHAT = {"model": "gpt-4", "messages": [{"role": "user", "content": "hi"}]}


def test_connections_over_the_limit_get_503_and_the_rest_are_served(sim, start_proxy):
    p = start_proxy(sim.url, server={"max_connections": 20})
    held = [socket.create_connection(("127.0.0.1", p.port)) for _ in range(20)]
    try:
        eventually(lambda: len(p.proxy.connections) >= 20, what="20 connections accepted")
        r = http("POST", p.url + "/v1/chat/completions", CHAT)
        assert r.status == 503 and r.json()["error"]["code"] == "too_many_connections"
    finally:
        for s in held:
            s.close()
    eventually(lambda: len(p.proxy.connections) < 20, what="the held connections closing")
    assert http("POST", p.url + "/v1/chat/completions", CHAT).status == 200


@pytest.mark.parametrize("allow, status", [(["10.0.0.0/8"], 403), (["10.0.0.0/8", "127.0.0.0/8"], 200)])
def test_ip_allow_list(sim, start_proxy, allow, status):
    p = start_proxy(sim.url, server={"allow_ips": allow})
    r = http("POST", p.url + "/v1/chat/completions", CHAT)
    assert r.status == status
    if status == 403:
        assert r.json()["error"]["code"] == "ip_not_allowed"


def test_total_request_timeout_ends_a_long_stream(sim, start_proxy):
    p = start_proxy(sim.url, server={"request_timeout": 0.5})
    sim.behavior.token_delay = 0.1  # 20 frames: 2 s, each gap well under the backend timeout
    client = openai.OpenAI(base_url=p.url + "/v1", api_key="x", max_retries=0)
    t0 = time.monotonic()
    with pytest.raises(openai.APIError) as err:
        for _ in client.chat.completions.create(**CHAT, stream=True):
            pass
    assert time.monotonic() - t0 < 1.9  # before the stream's own end (2 s)
    assert "did not finish within" in str(err.value)


def test_slowloris_does_not_slow_a_normal_client(sim, start_proxy):
    p = start_proxy(sim.url)
    url = p.url + "/v1/chat/completions"

    def latencies(n: int) -> list[float]:
        out = []
        for _ in range(n):
            t0 = time.perf_counter()
            assert http("POST", url, CHAT).status == 200
            out.append(time.perf_counter() - t0)
        return out

    baseline = statistics.median(latencies(30))
    slow = []
    for _ in range(500):
        s = socket.create_connection(("127.0.0.1", p.port))
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        slow.append(s)
    stop = threading.Event()

    def drip() -> None:  # one byte a connection, every 0.2 s: headers that never end
        while not stop.is_set():
            for s in slow:
                try:
                    s.send(b"a")
                except OSError:
                    pass
            time.sleep(0.2)

    t = threading.Thread(target=drip)
    t.start()
    try:
        under_attack = statistics.median(latencies(30))
    finally:
        stop.set()
        t.join()
        for s in slow:
            s.close()
    assert under_attack < baseline * 3 + 0.005, (baseline, under_attack)
