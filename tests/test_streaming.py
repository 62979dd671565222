"""Streams go through as they are produced, with the backend stopped when the client leaves."""

import json
import socket
import time

from devstral_proxy import flow
from tests.support import eventually, http

STREAM = {"model": "gpt-4", "stream": True, "messages": [{"role": "user", "content": "hi"}]}


def open_stream(port: int, body: dict) -> socket.socket:
    data = json.dumps(body).encode()
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(data), data))
    return s


def read_until(s: socket.socket, marker: bytes) -> bytes:
    parts = []
    tail = b""
    while marker not in tail:
        chunk = s.recv(65536)
        if not chunk:
            break
        parts.append(chunk)
        tail = tail[-len(marker) :] + chunk
    return b"".join(parts)


def test_first_frame_arrives_long_before_the_backend_finishes(proxy, sim):
    sim.behavior.token_delay = 0.05  # 20 frames: about a second in all
    t0 = time.monotonic()
    with open_stream(proxy.port, STREAM) as s:
        first = read_until(s, b"\n\n")
        t_first = time.monotonic() - t0
        rest = read_until(s, b"data: [DONE]")
        t_all = time.monotonic() - t0
    assert b'"model":"gpt-4"' in first
    assert t_all > 0.8
    assert t_first < t_all / 4, (t_first, t_all)  # as it comes, not once the backend is done
    assert b"data: [DONE]" in rest


def test_frames_arrive_one_by_one(proxy, sim):
    sim.behavior.token_delay = 0.03
    with open_stream(proxy.port, STREAM) as s:
        arrivals = []
        buf = b""
        while b"[DONE]" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
            arrivals.append((time.monotonic(), chunk.count(b"data: ")))
    assert sum(n for _, n in arrivals) >= 20
    assert len(arrivals) >= 15  # not gathered into a few big writes


def test_client_disconnect_closes_the_backend_connection_at_once(proxy, sim):
    sim.behavior.token_delay = 0.01
    sim.behavior.reply = " ".join(["word"] * 2000)  # a long generation
    s = open_stream(proxy.port, STREAM)
    read_until(s, b"word")
    s.close()
    closed_at = time.monotonic()
    deadline = closed_at + 2
    while not sim.record.disconnects and time.monotonic() < deadline:
        time.sleep(0.005)
    assert sim.record.disconnects, "the backend never saw the disconnect"
    assert sim.record.disconnects[0] - closed_at < 0.1
    # and the proxy keeps serving
    sim.behavior.reply = "ok"
    assert http("POST", proxy.url + "/v1/chat/completions", {**STREAM, "stream": False}).status == 200


def test_slow_reader_pauses_the_backend_not_the_proxy_memory(proxy, sim):
    """Flow control: a client that does not read makes the proxy stop reading the backend."""
    sim.behavior.reply = " ".join(["x" * 200] * 20000)  # ~4 MB of frames
    s = open_stream(proxy.port, STREAM)
    conns = eventually(lambda: [c for c in proxy.proxy.connections if c.flow.write_paused and c.cycle is not None], what="the client's writes pausing")
    eventually(lambda: not conns[0].cycle.handler.up.transport.is_reading(), what="the backend held back")
    buffered = conns[0].transport.get_write_buffer_size()
    assert buffered < 1 << 20, buffered
    got = read_until(s, b"data: [DONE]")  # reading resumes the flow to the end
    assert got.count(b"data: ") > 1000
    s.close()


def test_backend_not_reading_pauses_reading_from_the_client(start_proxy):
    """Flow control the other way: a backend that does not read holds the client back."""
    import asyncio

    from tests.support import RawBackend

    reading = asyncio.Event()

    async def serve(reader, writer):
        await reading.wait()
        head = await reader.readuntil(b"\r\n\r\n")
        length = int([h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")][0].split(b":")[1])
        await reader.readexactly(length)
        body = b'{"id":"x","object":"chat.completion","model":"m","choices":[]}'
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()

    backend = RawBackend(serve)
    p = start_proxy(f"http://127.0.0.1:{backend.port}", server={"max_body_bytes": 64 << 20})
    big = json.dumps({"model": "m", "messages": [{"role": "user", "content": "x" * (24 << 20)}]}).encode()
    s = socket.create_connection(("127.0.0.1", p.port), timeout=10)
    s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(big), big))
    conn = eventually(lambda: next((c for c in p.proxy.connections if c.flow.held & flow.BACKEND), None), what="the client held back")
    assert not conn.transport.is_reading()
    backend.loop.loop.call_soon_threadsafe(reading.set)
    assert read_until(s, b'"choices":[]}').startswith(b"HTTP/1.1 200 ")
    assert not conn.flow.held & flow.BACKEND
    s.close()
    backend.stop()
