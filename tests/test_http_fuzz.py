"""Fuzzing the HTTP layer over raw sockets: malformed request lines, bad and huge headers, NUL
bytes, wrong and huge chunk sizes, truncated bodies, pipelined garbage. Each case gets
400/408/413/414/417/431 (or a plain close); a well-formed client on another connection is
served throughout, and the proxy logs no failure."""

import json
import logging
import random
import socket

import pytest

from tests.support import read_to_close

CHAT = json.dumps({"model": "gpt-4", "messages": [{"role": "user", "content": "hi"}]}).encode()
VALID = [
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(CHAT), CHAT),
    b"GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n",
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (len(CHAT), CHAT),
    b"GET /health HTTP/1.0\r\n\r\n",
]
ALLOWED = {200, 400, 404, 405, 408, 413, 414, 417, 431}


def mutate(rng: random.Random) -> bytes:
    base = rng.choice(VALID)
    kind = rng.randrange(12)
    if kind == 0:
        return base[: rng.randrange(1, len(base))]  # truncated anywhere
    if kind == 1:
        i = rng.randrange(len(base))
        return base[:i] + b"\x00" * rng.randint(1, 3) + base[i:]
    if kind == 2:
        i = rng.randrange(len(base))
        return base[:i] + bytes([rng.randrange(256)]) + base[i + 1 :]
    if kind == 3:
        return base.replace(b"Host: x", b"Host: x\r\nX-Big: " + b"a" * rng.choice([3000, 70000]), 1)
    if kind == 4:
        return base.replace(b"Host: x", b"Host: x" + b"".join(b"\r\nX-%d: v" % i for i in range(rng.choice([50, 900]))), 1)
    if kind == 5:
        size = rng.choice([b"zz", b"ffffffffffffffffff", b"-1", b"1;ext=\x01", b"99999999", b""])
        return b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n%s\r\nabc\r\n0\r\n\r\n" % size
    if kind == 6:
        return b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\nabcdefg"
    if kind == 7:
        return b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    if kind == 8:
        line = rng.choice(
            [
                b"GET",
                b"G\x00T /",
                b"GET / HTTP/9.9",
                b"GET  HTTP/1.1",
                b"\r\n\r\nGET / HTTP/1.1",
                b"POST /v1/" + b"a" * 70000 + b" HTTP/1.1",
                b"BREW /v1/models HTTP/1.1",
            ]
        )
        return line + b"\r\nHost: x\r\n\r\n"
    if kind == 9:
        return base + bytes(rng.randrange(256) for _ in range(rng.randint(1, 40))) + base
    if kind == 10:
        return bytes(rng.randrange(256) for _ in range(rng.randint(1, 200)))
    return base.replace(b"Content-Length: %d" % len(CHAT), b"Content-Length: %d" % (len(CHAT) + rng.randint(1, 50)))  # body shorter than said


def statuses(data: bytes) -> list[int]:
    """The statuses of the responses in a byte stream, walking each response's framing."""
    out = []
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        assert sep and head.startswith(b"HTTP/1.1 "), data[:120]
        out.append(int(head[9:12]))
        lines = head.lower().split(b"\r\n")
        length = [int(h.split(b":")[1]) for h in lines if h.startswith(b"content-length:")]
        if length:
            data = rest[length[0] :]
        elif any(h.startswith(b"transfer-encoding: chunked") for h in lines):
            data = rest.partition(b"0\r\n\r\n")[2]
        else:
            data = b""
    return out


def exchange(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the proxy refused early and closed: fine
        return read_to_close(s)


@pytest.fixture
def fuzz_proxy(sim, start_proxy):
    return start_proxy(sim.url, server={"max_body_bytes": 4096, "max_header_bytes": 8192, "header_timeout": 1, "body_timeout": 1})


def test_fuzzed_requests(fuzz_proxy, caplog):
    caplog.set_level(logging.ERROR, logger="devstral_proxy")
    rng = random.Random(20261125)
    good = socket.create_connection(("127.0.0.1", fuzz_proxy.port), timeout=5)
    seen: dict[int, int] = {}
    for i in range(2500):
        data = mutate(rng)
        got = exchange(fuzz_proxy.port, data)
        for status in statuses(got):
            assert status in ALLOWED, (status, data[:200], got[:300])
            seen[status] = seen.get(status, 0) + 1
        if i % 250 == 0:
            good.sendall(VALID[1])
            reply = b""
            while not reply.endswith(b"]}"):
                reply += good.recv(65536)
            assert reply.startswith(b"HTTP/1.1 200 ")
    good.close()
    assert not [r for r in caplog.records if r.name == "devstral_proxy"], caplog.records[:3]
    assert seen.get(400, 0) > 200 and seen.get(200, 0) > 100 and seen.get(431, 0) > 10, seen


SPELLINGS = [b"%63", b"%2F", b"%2f", b"/./", b"/x/../", b"//", b";x", b"#x", b"/", b"%2E", b"%2e%2e/", b"%7E", b"?q=1"]


@pytest.mark.parametrize("seed", range(3))
def test_spellings_of_the_inference_route_are_never_relayed_unlimited_or_unmapped(sim, start_proxy, seed):
    """Random spellings of /v1/chat/completions: each is the route itself (limited, model
    mapped), or the proxy's own 400/404/405/429; the backend never sees an unmapped model."""
    rng = random.Random(seed)
    p = start_proxy(sim.url, rate_limit={"requests_per_minute": 10})
    for _ in range(25):
        path = bytearray(b"/v1/chat/completions")
        for _ in range(rng.randint(1, 3)):
            at = rng.choice([i for i, c in enumerate(path) if c == ord("/")] + [len(path)])
            path[at:at] = rng.choice(SPELLINGS)
        request = b"POST %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s" % (bytes(path), len(CHAT), CHAT)
        with socket.create_connection(("127.0.0.1", p.port), timeout=5) as s:
            s.sendall(request)
            status = int(read_to_close(s).split(b" ", 2)[1])
        assert status in (200, 400, 404, 405, 429), (bytes(path), status)  # 405: POST / (a GET route)
    assert all(r.get("model") == "mistral-sim" for r in sim.record.requests)
    assert len(sim.record.requests) <= 10  # the limit held whatever the spelling


def test_deep_nesting_anywhere_in_a_body_is_a_400(proxy):
    for depth in (2000, 20000):  # past what the JSON decoder follows (a few hundred levels are valid JSON)
        for where in (b'{"model": "gpt-4", "messages": %s}', b'{"model": "gpt-4", "messages": [{"role": "user", "content": %s}]}', b"%s"):
            nested = b"[" * depth + b"]" * depth
            body = where % nested if b"%s" in where else nested
            request = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
            with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as s:
                s.sendall(request)
                out = read_to_close(s)
            assert out.startswith(b"HTTP/1.1 400"), (depth, where, out[:200])
