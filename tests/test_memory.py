"""Nothing of a finished connection stays: a closed connection (answered, refused or cut short)
is freed by reference counting alone, checked with the collector switched off."""

import gc
import socket
import threading

from devstral_proxy.reader import RequestReader
from devstral_proxy.server import HttpProtocol
from devstral_proxy.upstream import UpstreamConnection
from tests.support import eventually, free_port, http, proxy_process, read_to_close

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

        async def close_pools() -> None:
            p.proxy.router.close()

        p.loop.call(close_pools)  # the backend side: its connections closed, then freed as well
        eventually(lambda: _alive(UpstreamConnection) == 0, timeout=10, what="the backend connections freed")
    finally:
        gc.enable()


def _memory(pid: int) -> tuple[int, int]:
    """The process's resident memory now and at its peak, in MiB."""
    fields = dict(line.split(":", 1) for line in open(f"/proc/{pid}/status"))
    return int(fields["VmRSS"].split()[0]) >> 10, int(fields["VmHWM"].split()[0]) >> 10


def _post(port: int, head: bytes, body: bytes, out: list) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        try:
            s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nconnection: close\r\n%scontent-length: %d\r\n\r\n" % (head, len(body)) + body)
        except OSError as exc:  # the answer came first and the proxy closed: still read it
            out.append(repr(exc))
        out.append(read_to_close(s).split(b"\r\n", 1)[0])


def test_large_bodies_without_a_key_are_never_read_and_memory_comes_back_after_those_with_one(sim, tmp_path):
    """#25: 60 unauthenticated 31 MiB POSTs took RSS from 30 to 1,924 MiB. Refused at the end
    of their heads now: each client reads its 401 (a lingering close, not a reset) and the
    peak stays flat. Bodies that are read (with a key) are given back once answered."""
    port = free_port()
    config = tmp_path / "c.toml"
    config.write_text(f'[backends.b]\nurl = "{sim.url}"\n[authentication]\napi_keys = ["sk-a"]\n[server]\nmax_body_bytes = 33554432\n')
    proc = proxy_process(port, "--config", str(config), "--log-level", "WARNING")
    try:
        body = b"x" * (31 << 20)
        start, _ = _memory(proc.pid)
        for head, status in ((b"", b"HTTP/1.1 401 Unauthorized"), (b"authorization: Bearer sk-a\r\n", b"HTTP/1.1 400 Bad Request")):
            out: list = []
            clients = [threading.Thread(target=_post, args=(port, head, body, out)) for _ in range(12)]
            for c in clients:
                c.start()
            for c in clients:
                c.join()
            assert [o for o in out if isinstance(o, bytes)] == [status] * 12, out
            if not head:
                assert _memory(proc.pid)[1] < start + 40  # the peak: no body was kept
        eventually(lambda: _memory(proc.pid)[0] < start + 40, what="memory given back after the bodies read with a key")
    finally:
        proc.terminate()
        proc.wait(30)
