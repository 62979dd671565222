"""The upstream connection, the pool and the exchange driven with bytes: fake transports on
both sides, a manual clock, no sockets.

A pooled connection is always idle, reading and fully consumed; flow control reaches an
exchange that starts while the client is not reading; interim 1xx replies are skipped; a
backend's hostile reply (deep nesting, too big) gets the client an answer.
"""

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from devstral_proxy.relay import Exchange
from devstral_proxy.server import HttpProtocol
from devstral_proxy.upstream import Pool, UpstreamConnection
from devstral_translate.openai import renamer
from tests.unit.fakes import FakeApp, FakeLoop, FakeTransport, responses


class FakeRouter:
    def __init__(self) -> None:
        self.outcomes: list = []
        self.orphaned = 0
        self.freed_backends: list = []

    def freed(self, backend, client=None) -> None:
        self.freed_backends.append(backend)

    def outcome(self, backend, ok) -> None:
        self.outcomes.append(ok)

    def connected(self, backend, up) -> None:
        pass


class FakeBackend:
    name = "b"
    timeout = 30.0
    max_reply_bytes = 1 << 20
    origin = b"http://127.0.0.1:8000"
    max_in_flight = 0

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.outstanding = 0


class Rig:
    """A client connection whose handler relays every request to one backend connection."""

    def __init__(self, client_high: int = 64 * 1024, translator=None) -> None:
        self.loop = FakeLoop()
        self.pool = Pool("http://127.0.0.1:8000", 4.0, 5.0, loop=self.loop)
        self.backend = FakeBackend(self.pool)
        self.router = FakeRouter()
        self.up = UpstreamConnection(self.pool)
        self.ut = FakeTransport(self.up)
        self.up.connection_made(self.ut)
        self.pool.release(self.up)
        self.app = FakeApp()
        self.app.handle = self.relay
        self.conn = HttpProtocol(self.app, self.loop)
        self.ct = FakeTransport(self.conn, high=client_high)
        self.conn.connection_made(self.ct)
        self.translator = translator
        self.exchanges: list[Exchange] = []

    def relay(self, cycle) -> None:
        cycle.record.rid = "r"
        ex = Exchange(cycle, self.router, self.backend, b"POST /v1/x HTTP/1.1\r\n\r\n", b"{}", self.translator)
        self.exchanges.append(ex)
        ex.start()

    def request(self, n: int = 1) -> None:
        self.conn.data_received(b"POST /v1/x HTTP/1.1\r\nhost: p\r\ncontent-length: 2\r\n\r\n{}" * n)

    def reply(self, data: bytes) -> None:
        self.up.data_received(data)


def json_reply(body: bytes, status: bytes = b"200 OK") -> bytes:
    return b"HTTP/1.1 %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (status, len(body), body)


def test_a_big_reply_to_a_slow_client_leaves_no_paused_connection_in_the_pool():
    rig = Rig(client_high=4096)
    rig.backend.max_reply_bytes = 64 << 20
    rig.request()
    rig.reply(json_reply(json.dumps({"model": "m", "x": "y" * (8 << 20)}).encode()))
    assert rig.ct.write_paused  # the client is not reading
    up = rig.pool.acquire()
    assert up is None or (up is rig.up and rig.ut.reading)


STREAM_HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
EVENT = b'data: {"a": 1234}\n\n'
FRAME = b"%x\r\n%s\r\n" % (len(EVENT), EVENT)


def test_the_frames_of_one_read_reach_the_client_in_one_write():
    """A backend that is ahead (or a proxy that is behind) hands over several frames a read:
    one write (one syscall, one wake-up of the client) for all of them, and the last frames
    go out with the end of the stream."""
    rig = Rig()
    rig.request()
    rig.reply(STREAM_HEAD + FRAME)
    assert rig.ct.writes == 2  # the head, then the first frame at once
    rig.reply(FRAME * 3)
    assert rig.ct.writes == 3
    rig.reply(FRAME * 2 + b"0\r\n\r\n")
    assert rig.ct.writes == 4
    assert responses(rig.ct.drain(), [b"POST"]) == [(200, EVENT * 6)]  # h11 reads the chunks
    assert rig.pool.acquire() is rig.up


def test_a_request_behind_a_reply_the_client_has_not_read_waits_for_it():
    rig = Rig(client_high=64 * 1024)
    rig.app.handle = lambda cycle: cycle.respond(200, b"", b"a" * 100_000) if cycle.path == "/big" else rig.relay(cycle)
    rig.conn.data_received(b"GET /big HTTP/1.1\r\nhost: p\r\n\r\n" + b"POST /v1/x HTTP/1.1\r\nhost: p\r\ncontent-length: 2\r\n\r\n{}")
    assert rig.ct.write_paused and not rig.exchanges  # nothing asked of the backend yet
    rig.ct.drain()
    assert len(rig.exchanges) == 1 and rig.ut.reading and rig.ut.buffer.startswith(b"POST /v1/x")


def test_an_exchange_that_starts_while_the_client_is_paused_starts_paused():
    rig = Rig(client_high=64 * 1024)
    rig.app.handle = lambda cycle: (setattr(rig.conn.flow, "write_paused", True), rig.relay(cycle))
    rig.request()
    rig.reply(STREAM_HEAD + FRAME)
    assert not rig.ut.reading  # the backend is held back, not buffered in the proxy
    rig.conn.resume_writing()
    assert rig.ut.reading


def test_an_interim_100_continue_is_skipped_and_the_connection_not_pooled_early():
    rig = Rig()
    rig.request()
    rig.reply(b"HTTP/1.1 100 Continue\r\n\r\n")
    assert rig.pool.acquire() is None  # the real reply is still coming
    assert rig.ct.drain() == b""
    rig.reply(json_reply(b'{"ok": true}'))
    assert responses(rig.ct.drain(), [b"POST"]) == [(200, b'{"ok": true}')]
    assert rig.pool.acquire() is rig.up


def test_103_early_hints_then_the_reply_in_one_read():
    rig = Rig()
    rig.request()
    rig.reply(b"HTTP/1.1 103 Early Hints\r\nlink: </a>; rel=preload\r\n\r\n" + json_reply(b'{"ok": 1}'))
    assert responses(rig.ct.drain(), [b"POST"]) == [(200, b'{"ok": 1}')]


def test_deeply_nested_json_from_a_backend_gets_the_client_an_answer():
    rig = Rig(translator=renamer("client-model", "backend-model"))
    rig.request()
    deep = b'{"model": "backend-model", "a": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    rig.reply(json_reply(deep))
    got = responses(rig.ct.drain(), [b"POST"])
    assert len(got) == 1 and got[0][0] in (200, 502)
    assert rig.app.finished_records and rig.backend.outstanding == 0


def test_a_reply_over_the_size_limit_is_a_502():
    rig = Rig()
    rig.backend.max_reply_bytes = 1000
    rig.request()
    rig.reply(json_reply(b'{"x": "' + b"y" * 5000 + b'"}'))
    (status, body) = responses(rig.ct.drain(), [b"POST"])[0]
    assert status == 502 and b"reply_too_large" in body
    assert rig.pool.acquire() is None  # the rest of that reply was never read: not reusable


def test_the_pool_never_hands_out_a_paused_connection():
    rig = Rig()
    up = rig.pool.acquire()
    up.pause()
    rig.pool.release(up)
    got = rig.pool.acquire()
    assert got is None or rig.ut.reading


def test_bytes_nobody_asked_for_drop_the_connection():
    rig = Rig()
    up = rig.pool.acquire()
    rig.pool.release(up)
    rig.reply(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
    assert rig.ut.aborted and rig.pool.acquire() is None


def test_pipelined_exchanges_never_cross():
    rig = Rig()
    rig.request(3)
    for n in range(3):
        rig.reply(json_reply(b'{"n": %d}' % n))
        rig.pool.acquire() and rig.pool.release(rig.up)
    assert [b for _, b in responses(rig.ct.drain(), [b"POST"] * 3)] == [b'{"n": 0}', b'{"n": 1}', b'{"n": 2}']


class Backend2:
    """Two client connections relaying through one pool of upstream connections to a backend
    that answers each request with its own path, in reads cut wherever the test says."""

    def __init__(self, upstreams: int) -> None:
        self.loop = FakeLoop()
        self.pool = Pool("http://127.0.0.1:8000", 4.0, 5.0, loop=self.loop)
        self.backend = FakeBackend(self.pool)
        self.router = FakeRouter()
        self.ups = []
        for _ in range(upstreams):
            up = UpstreamConnection(self.pool)
            up.connection_made(FakeTransport(up))
            self.pool.release(up)
            self.ups.append(up)
        self.clients = []
        for _ in range(2):
            app = FakeApp()
            app.handle = self.relay
            conn = HttpProtocol(app, self.loop)
            conn.connection_made(FakeTransport(conn))
            self.clients.append(conn)
        self.pending: list[tuple] = []  # (upstream, reply bytes not yet delivered)

    def relay(self, cycle) -> None:
        head = b"POST %s HTTP/1.1\r\n\r\n" % cycle.path.encode()
        Exchange(cycle, self.router, self.backend, head, b"", None).start()

    def answer(self) -> None:
        """The backend answers every request written to it so far."""
        for up in self.ups:
            sent = bytes(up.transport.buffer)
            up.transport.buffer.clear()
            for line in sent.split(b"\r\n\r\n"):
                if line.startswith(b"POST "):
                    path = line.split(b" ")[1]
                    body = b'{"path": "%s"}' % path
                    self.pending.append((up, b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1), st.integers(0, 99)), min_size=1, max_size=10), st.data())
def test_replies_never_cross_clients_over_a_shared_pool(requests, data):
    rig = Backend2(upstreams=data.draw(st.integers(2, 3)))  # one busy exchange per client at most
    wanted: list[list[bytes]] = [[], []]
    for client, n in requests:
        path = b"/v1/c%d-%d" % (client, n)
        wanted[client].append(path)
        rig.clients[client].data_received(b"POST %s HTTP/1.1\r\nhost: p\r\ncontent-length: 2\r\n\r\n{}" % path)
    for _ in range(200):  # deliver replies in pieces, in an order the test draws
        rig.answer()
        if not rig.pending:
            break
        up, reply = rig.pending.pop(data.draw(st.integers(0, len(rig.pending) - 1)))
        cut = data.draw(st.integers(0, len(reply)))
        for piece in (reply[:cut], reply[cut:]):
            if piece:
                up.data_received(piece)
        assert not rig.loop.tasks  # the pool always had an idle connection
    for client in (0, 1):
        got = responses(rig.clients[client].transport.drain(), [b"POST"] * len(wanted[client]))
        paths = [b'{"path": "%s"}' % p for p in wanted[client]]
        assert [b for _, b in got] == paths[: len(got)]  # each client its own, in order
