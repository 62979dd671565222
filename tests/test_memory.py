"""Nothing of a finished connection stays: a closed connection (answered, refused or cut short)
is freed by reference counting alone, checked with the collector switched off."""

import gc
import socket

from devstral_proxy.reader import RequestReader
from devstral_proxy.server import HttpProtocol
from tests.support import eventually, http

CHAT = {"model": "gpt-4", "messages": [{"role": "user", "content": "x" * 10000}]}


def _alive(kind) -> int:
    return sum(1 for o in gc.get_objects() if type(o) is kind)


def test_closed_connections_are_freed_without_the_collector(sim, start_proxy):
    p = start_proxy(sim.url, authentication={"api_keys": ["sk-a"]})
    assert http("POST", p.url + "/v1/chat/completions", CHAT, {"authorization": "Bearer sk-a"}).status == 200
    eventually(lambda: not p.proxy.connections, what="the first connection closing")
    gc.collect()
    gc.disable()
    try:
        for i in range(10):
            key = "sk-a" if i % 2 else "wrong"  # answered, and refused 401 with a body
            assert http("POST", p.url + "/v1/chat/completions", CHAT, {"authorization": f"Bearer {key}"}).status in (200, 401)
        cut = socket.create_connection(("127.0.0.1", p.port))  # one cut short in its body
        cut.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + b"x" * 5000)
        eventually(lambda: p.proxy.connections, what="the cut connection accepted")
        cut.close()
        eventually(lambda: not p.proxy.connections, what="every connection closing")
        assert _alive(HttpProtocol) == 0 and _alive(RequestReader) == 0
    finally:
        gc.enable()
