"""The client connection driven with bytes: a fake transport, a manual clock, no sockets.

Pipelining, flow control of local replies, head accounting across reads, trailers, upgrades,
draining during an upload, deadlines; and arbitrary splits of pipelined traffic.
"""

from hypothesis import given, settings
from hypothesis import strategies as st

from devstral_proxy.errors import Failure
from devstral_proxy.server import LINGER, HttpProtocol
from tests.unit.fakes import FakeApp, FakeLoop, FakeTransport, responses


def connect(app: FakeApp, **transport) -> tuple[HttpProtocol, FakeTransport, FakeLoop]:
    loop = FakeLoop()
    conn = HttpProtocol(app, loop)
    t = FakeTransport(conn, **transport)
    conn.connection_made(t)
    return conn, t, loop


def get(path: str = "/a", extra: bytes = b"") -> bytes:
    return b"GET %s HTTP/1.1\r\nhost: x\r\n%s\r\n" % (path.encode(), extra)


def post(path: str, body: bytes, extra: bytes = b"") -> bytes:
    return b"POST %s HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\n%s\r\n%s" % (path.encode(), len(body), extra, body)


def test_pipelined_local_replies_stop_while_the_client_does_not_read():
    app = FakeApp()
    big = b"x" * 100_000
    app.handlers["/big"] = lambda cycle: cycle.respond(200, b"", big)
    conn, t, _ = connect(app, high=64 * 1024)
    for _ in range(30):  # 3,000 pipelined requests, 100 per read
        conn.data_received(get("/big") * 100)
    # one reply fills the buffer past its high-water mark: nothing more is answered or read
    assert len(t.buffer) <= 2 * len(big) + 4096
    assert not t.reading
    # the client reads: the answers go on, in order, whole
    total = 0
    for _ in range(10_000):
        out = t.drain()
        total += out.count(b"HTTP/1.1 200")
        if not out:
            break
    assert total >= 16


def test_reading_pauses_when_output_passes_the_high_water_mark():
    app = FakeApp()
    app.handlers["/big"] = lambda cycle: cycle.respond(200, b"", b"y" * 200_000)
    conn, t, _ = connect(app, high=64 * 1024)
    conn.data_received(get("/big"))
    assert t.write_paused and not t.reading
    t.drain()
    assert t.reading


def test_a_read_that_ends_inside_the_next_head_is_not_a_431():
    app = FakeApp(max_header_bytes=64 * 1024, max_body_bytes=1 << 20)
    conn, t, _ = connect(app)
    first = post("/a", b"z" * 150_000)
    second = get("/b", b"user-agent: a-client-of-some-length/1.0\r\n")
    conn.data_received(first + second[:30])
    conn.data_received(second[30:])
    assert [s for s, _ in responses(bytes(t.drain()), [b"POST", b"GET"])] == [200, 200]


def test_a_giant_header_still_in_progress_is_refused():
    app = FakeApp(max_header_bytes=8 * 1024)
    conn, t, _ = connect(app)
    conn.data_received(b"GET / HTTP/1.1\r\nx-big: ")
    for _ in range(10):
        conn.data_received(b"a" * 4096)
    assert b"431" in t.drain().split(b"\r\n")[0]


def test_trailers_of_a_chunked_request_are_dropped():
    app = FakeApp()
    conn, t, _ = connect(app)
    conn.data_received(b"POST /a HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nauthorization: Bearer k\r\nx-trailer: 1\r\n\r\n")
    (req,) = app.seen
    assert req.body == b"abc"
    names = {k for k, _ in req.headers}
    assert b"authorization" not in names and b"x-trailer" not in names


def test_an_upgrade_request_is_answered_and_the_connection_closes():
    app = FakeApp()
    conn, t, _ = connect(app)
    conn.data_received(b"GET /a HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n")
    assert t.closed
    assert b"connection: close" in t.drain()


def test_a_connect_request_is_answered_and_the_connection_closes():
    app = FakeApp()
    conn, t, _ = connect(app)
    conn.data_received(b"CONNECT example.com:443 HTTP/1.1\r\nhost: example.com:443\r\n\r\n")
    out = t.drain()
    assert out.startswith(b"HTTP/1.1 ") and t.closed


def test_shutdown_during_an_upload_still_answers_it():
    app = FakeApp()
    conn, t, _ = connect(app)
    body = b"q" * 10_000
    request = post("/a", body)
    conn.data_received(request[:500])
    conn.shutdown()  # SIGTERM: drain
    conn.data_received(request[500:])
    out = t.drain()
    assert out.startswith(b"HTTP/1.1 200") or out.startswith(b"HTTP/1.1 503")
    assert b"connection: close" in out
    assert t.closed


def keyed(app: FakeApp) -> FakeApp:
    """The application screens heads: no authorization header, a 401 before the body."""
    app.limits.screen = lambda method, url, headers: None if any(k == b"authorization" for k, _ in headers) else Failure(401, "no key", "invalid_api_key")
    return app


def test_a_screened_request_is_answered_before_its_body_and_nothing_of_it_is_kept():
    app = keyed(FakeApp(max_body_bytes=64 << 20))
    conn, t, loop = connect(app)
    conn.data_received(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: 33554432\r\n\r\n" + b"x" * 1000)
    out = t.drain()
    assert out.startswith(b"HTTP/1.1 401") and b"connection: close" in out and not app.seen
    # a lingering close: FIN sent, the rest of the upload read and dropped, not a reset
    assert t.eof_written and t.reading and not t.closed
    for _ in range(100):
        conn.data_received(b"x" * 65536)
    assert conn.reader._body == [] and not t.drain() and not t.closed
    loop.now += LINGER - 0.1
    conn.expire(loop.now)
    assert not t.closed
    loop.now += 0.2
    conn.expire(loop.now)  # bounded in time
    assert t.closed and not t.aborted


def test_a_lingering_connection_closes_when_the_client_does():
    app = keyed(FakeApp())
    conn, t, _ = connect(app)
    conn.data_received(b"POST /a HTTP/1.1\r\nhost: x\r\ncontent-length: 100000\r\n\r\n")
    assert t.drain().startswith(b"HTTP/1.1 401") and not t.closed
    conn.eof_received()
    assert t.closed


def test_a_request_with_a_key_is_read_whole_and_the_screen_sees_its_head():
    app = keyed(FakeApp())
    conn, t, _ = connect(app)
    conn.data_received(post("/a", b"z" * 5000, b"authorization: Bearer k\r\n"))
    assert t.drain().startswith(b"HTTP/1.1 200") and app.seen[0].body == b"z" * 5000 and not t.eof_written


def test_a_refused_connection_is_answered_at_the_end_of_the_head():
    app = FakeApp()
    app.admit = lambda conn: Failure(503, "too many connections", "too_many_connections")
    conn, t, _ = connect(app)
    conn.data_received(b"POST /a HTTP/1.1\r\nhost: x\r\ncontent-length: 1000000\r\n\r\n" + b"x" * 10)
    assert t.drain().startswith(b"HTTP/1.1 503") and not app.seen and t.eof_written


def test_idle_keepalive_closes_on_the_manual_clock():
    app = FakeApp(keepalive_timeout=5.0)
    conn, t, loop = connect(app)
    conn.data_received(get())
    loop.now += 4.9
    conn.expire(loop.now)
    assert not t.closed
    loop.now += 0.2
    conn.expire(loop.now)
    assert t.closed


def test_a_slow_head_gets_408():
    app = FakeApp(header_timeout=2.0)
    conn, t, loop = connect(app)
    conn.data_received(b"GET / HTTP/1.1\r\nhost")
    loop.now += 2.5
    conn.expire(loop.now)
    assert t.drain().startswith(b"HTTP/1.1 408")


def test_a_reply_for_a_request_answered_later_keeps_its_place():
    app = FakeApp()
    waiting = []
    app.handlers["/slow"] = lambda cycle: waiting.append(cycle)
    conn, t, _ = connect(app)
    conn.data_received(get("/slow") + get("/fast"))
    assert t.drain() == b""
    waiting[0].respond(200, b"", b"slow")
    assert [b for _, b in responses(t.drain())] == [b"slow", b"/fast"]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["/a", "/bb", "/ccc", "/post"]), min_size=1, max_size=12), st.data())
def test_arbitrary_splits_of_pipelined_traffic_come_back_whole_and_in_order(paths, data):
    app = FakeApp()
    conn, t, _ = connect(app)
    wire = b"".join(post(p, p.encode() * 3) if p == "/post" else get(p) for p in paths)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=8)))
    pieces = [wire[a:b] for a, b in zip([0, *cuts], [*cuts, len(wire)])]
    for piece in pieces:
        if piece:
            conn.data_received(piece)
    got = responses(t.drain(), [b"POST" if p == "/post" else b"GET" for p in paths])
    assert got == [(200, p.encode()) for p in paths]
    assert not t.closed


def test_every_state_change_is_checked_against_its_table():
    """Rx, Tx, Up and Ex each change state through one `_to` checked against its table (on in
    production): a change outside the table is a StateError where it happens."""
    import pytest

    from devstral_proxy.cycle import Tx
    from devstral_proxy.relay import EX_NEXT, Ex, Exchange
    from devstral_proxy.states import StateError
    from devstral_proxy.upstream import Pool, Up, UpstreamConnection

    app = FakeApp()
    held = []
    app.handlers["/slow"] = lambda cycle: held.append(cycle)
    conn, t, _ = connect(app)
    conn.data_received(get("/slow"))
    cycle = held[0]
    assert cycle.tx == Tx.WAITING
    cycle.respond(200, b"", b"ok")
    assert cycle.tx == Tx.DONE
    with pytest.raises(StateError, match="Tx: DONE -> STREAMING"):
        cycle._to(Tx.STREAMING)
    with pytest.raises(StateError, match="Rx: IDLE -> BODY"):
        conn.reader._to(2)
    up = UpstreamConnection(Pool("http://127.0.0.1:8000", 4.0, 5.0, loop=FakeLoop()))  # made (not __new__): a compiled class runs its __init__
    assert up.state == Up.IDLE
    with pytest.raises(StateError, match="Up: IDLE -> BODY"):
        up._to(Up.BODY)
    ex = Exchange(cycle, None, None, b"", b"")  # type: ignore[arg-type]  # never started: only its state is driven
    ex.state = Ex.DONE
    with pytest.raises(StateError, match="Ex: DONE -> SENT"):
        ex._to(Ex.SENT)
    assert all(EX_NEXT[state] for state in range(Ex.DONE))  # every state but DONE leads somewhere
