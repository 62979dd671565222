"""A backend that misbehaves in every way a socket allows: the client always gets a defined,
OpenAI-shaped outcome within the configured timeout, and the proxy keeps serving."""

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest

from tests.support import RawBackend, http

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
STREAM_HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
FRAME = b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":null}]}\n\n'


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


# mode -> what the backend writes after reading a request head (None: stall there)
FAULTS = {
    "closes before answering": [],
    "closes mid-body": [b'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{"id": "x"'],
    "sends garbage": [b"\x00\x01 this is not HTTP at all\r\n\r\n"],
    "partial chunk then stall": [b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhel", None],
    "500 with HTML": [b"HTTP/1.1 500 Internal Server Error\r\ncontent-type: text/html\r\ncontent-length: 39\r\n\r\n<html><h1>Upstream exploded</h1></html>"],
    "200 with invalid JSON": [b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 9\r\n\r\n{not json"],
    "stream cut mid-frame": [STREAM_HEAD + chunk(FRAME) + chunk(FRAME[:40])],
    "stream stalls": [STREAM_HEAD + chunk(FRAME), None],
    "stream sends garbage frames": [STREAM_HEAD + chunk(FRAME) + chunk(b"data: {broken\n\n") + chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n"],
    "hop-by-hop reply headers": [
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: keep-alive, x-hop\r\nkeep-alive: timeout=5\r\n"
        b"x-hop: 1\r\nproxy-authenticate: Basic\r\nupgrade: h2c\r\nx-end-to-end: kept\r\ncontent-length: 2\r\n\r\n{}"
    ],
}
EXPECTED = {  # non-streaming request: status and error code
    "closes before answering": (502, "backend_disconnected"),
    "closes mid-body": (502, "backend_disconnected"),
    "sends garbage": (502, "backend_disconnected"),
    "partial chunk then stall": (504, "backend_timeout"),
    "500 with HTML": (500, "backend_error"),
    "200 with invalid JSON": (502, "bad_backend_response"),
}


class FaultyBackend:
    def __init__(self) -> None:
        self.mode = ""
        self.raw = RawBackend(self._serve)
        self.port = self.raw.port

    async def _serve(self, reader, writer) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            for step in FAULTS[self.mode]:
                if step is None:
                    await asyncio.sleep(30)
                writer.write(step)
                await writer.drain()
                await asyncio.sleep(0.05)
        finally:
            writer.transport.abort()


@pytest.fixture(scope="module")
def faulty():
    b = FaultyBackend()
    yield b
    b.raw.stop()


@pytest.fixture
def proxy_to_faulty(faulty, start_proxy):
    return start_proxy(backends={"bad": {"url": f"http://127.0.0.1:{faulty.port}", "timeout": 0.5}})


@pytest.mark.parametrize("mode", list(EXPECTED))
def test_whole_replies(faulty, proxy_to_faulty, sim, mode):
    faulty.mode = mode
    r = http("POST", proxy_to_faulty.url + "/v1/chat/completions", CHAT, timeout=5)
    status, code = EXPECTED[mode]
    assert r.status == status, r.body
    err = r.json()["error"]
    assert err["code"] == code and err["message"] and err["type"]
    if mode == "500 with HTML":
        assert "Upstream exploded" in err["message"]
    faulty.mode = "500 with HTML"  # and it keeps serving
    assert http("POST", proxy_to_faulty.url + "/v1/chat/completions", CHAT, timeout=5).status == 500


@pytest.mark.parametrize("mode", ["stream cut mid-frame", "stream stalls"])
def test_broken_streams_end_with_an_error_event(faulty, proxy_to_faulty, mode):
    faulty.mode = mode
    client = openai.OpenAI(base_url=proxy_to_faulty.url + "/v1", api_key="x", max_retries=0, timeout=5)
    got = []
    with pytest.raises(openai.APIError) as err:
        for c in client.chat.completions.create(**CHAT, stream=True):
            got.append(c.choices[0].delta.content)
    assert got == ["hi"]
    assert "backend" in str(err.value).lower()


def test_garbage_frames_pass_and_the_stream_still_ends(faulty, proxy_to_faulty):
    faulty.mode = "stream sends garbage frames"
    r = http("POST", proxy_to_faulty.url + "/v1/chat/completions", {**CHAT, "stream": True}, timeout=5)
    assert r.status == 200
    assert r.body.endswith(b"data: [DONE]\n\n")
    assert json.loads(r.body.split(b"\n\n")[0][6:])["choices"][0]["delta"]["content"] == "hi"


def test_hop_by_hop_reply_headers_stay_on_their_hop(faulty, proxy_to_faulty):
    faulty.mode = "hop-by-hop reply headers"
    r = http("POST", proxy_to_faulty.url + "/v1/chat/completions", CHAT, timeout=5)
    assert r.status == 200 and r.headers["x-end-to-end"] == "kept"
    for gone in ("x-hop", "keep-alive", "proxy-authenticate", "upgrade"):
        assert gone not in r.headers, gone
    assert r.headers.get("connection") in (None, "close")


def test_a_reply_nobody_asked_for_retires_the_connection(start_proxy):
    """A backend that answers one request with two replies: the second is never given to a
    later request, and the connection that carried it is not pooled (twice) again."""
    connections = []

    def reply(text: str) -> bytes:
        body = json.dumps(
            {"id": "x", "object": "chat.completion", "model": "m", "choices": [{"index": 0, "message": {"role": "assistant", "content": text}}]}
        ).encode()
        return b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)

    async def serve(reader, writer) -> None:
        connections.append(writer)
        answered = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                await reader.readexactly(length)
                answered += 1
                extra = reply("extra") if answered == 1 and len(connections) == 1 else b""
                writer.write(reply(f"answer {answered}") + extra)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.transport.abort()

    backend = RawBackend(serve)
    try:
        # (no engine-load reads: the count of requests per connection is the point)
        proxy = start_proxy(backends={"b": {"url": f"http://127.0.0.1:{backend.port}", "timeout": 2}}, routing={"load_interval": 0})
        first = http("POST", proxy.url + "/v1/chat/completions", CHAT, timeout=5)
        assert first.status == 200 and first.json()["choices"][0]["message"]["content"] == "answer 1"
        with ThreadPoolExecutor(4) as pool:
            replies = list(pool.map(lambda _: http("POST", proxy.url + "/v1/chat/completions", CHAT, timeout=5), range(4)))
        contents = [r.json()["choices"][0]["message"]["content"] for r in replies]
        assert all(r.status == 200 for r in replies)
        assert "extra" not in contents and all(c.startswith("answer ") for c in contents)
    finally:
        backend.stop()


def test_the_proxys_own_requests_read_a_bounded_reply(start_proxy):
    """A backend answering the proxy's own request (here its engine metrics) with more than
    MAX_REPLY bytes: the read fails like a dead backend's, nothing is kept."""
    import asyncio

    from devstral_proxy.fetch import MAX_REPLY, fetch

    async def serve(reader, writer) -> None:
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                size = MAX_REPLY + (1 << 20)
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % size)
                for _ in range(size // 65536):
                    writer.write(b"x" * 65536)
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass

    backend = RawBackend(serve)
    try:
        proxy = start_proxy(f"http://127.0.0.1:{backend.port}", routing={"load_interval": 0})
        b = proxy.proxy.router.backends[0]
        with pytest.raises(OSError, match="reply over"):
            proxy.loop.call(lambda: fetch(b, b"GET", "/metrics", 10), timeout=30)
    finally:
        backend.stop()
