"""HTTP/1.1 framing of the proxy's server, checked with h11 as an independent peer and raw
sockets: keep-alive, pipelining, chunked bodies, limits, malformed input, Expect, close."""

import json
import socket
import threading

import h11
import pytest

from tests.support import http, raw_exchange, read_to_close

CHAT = json.dumps({"model": "gpt-4", "messages": [{"role": "user", "content": "hi"}]}).encode()


def request_bytes(path="/v1/chat/completions", body=CHAT, headers=None, chunked=False, method="POST") -> bytes:
    c = h11.Connection(h11.CLIENT)
    hdrs = [("host", "proxy"), ("content-type", "application/json")] + (headers or [])
    hdrs.append(("transfer-encoding", "chunked") if chunked else ("content-length", str(len(body))))
    out = c.send(h11.Request(method=method, target=path, headers=hdrs))
    if body:
        if chunked:
            for i in range(0, len(body), 7):
                out += c.send(h11.Data(data=body[i : i + 7]))
        else:
            out += c.send(h11.Data(data=body))
    out += c.send(h11.EndOfMessage())
    return out


class H11Reader:
    """Reads responses from a socket with an h11 client connection."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.conn = h11.Connection(h11.CLIENT)

    def _next(self):
        while True:
            event = self.conn.next_event()
            if event is h11.NEED_DATA:
                self.conn.receive_data(self.sock.recv(65536))
                continue
            return event

    def response(self, method="POST", target="/v1/chat/completions"):
        """(status, headers, body) of the next response; requests were sent raw already."""
        if self.conn.our_state is h11.DONE and self.conn.their_state is h11.DONE:
            self.conn.start_next_cycle()
        self.conn.send(h11.Request(method=method, target=target, headers=[("host", "x"), ("content-length", "0")]))
        self.conn.send(h11.EndOfMessage())
        head = self._next()
        while isinstance(head, h11.InformationalResponse):
            head = self._next()
        assert isinstance(head, h11.Response), head
        body = b""
        while True:
            event = self._next()
            if isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                break
            else:
                raise AssertionError(event)
        return head.status_code, {k.decode(): v.decode() for k, v in head.headers}, body


def connect(proxy) -> socket.socket:
    return socket.create_connection(("127.0.0.1", proxy.port), timeout=5)


def test_keep_alive_serves_many_requests_on_one_connection(proxy):
    with connect(proxy) as s:
        reader = H11Reader(s)
        for _ in range(5):
            s.sendall(request_bytes())
            status, headers, body = reader.response()
            assert status == 200 and json.loads(body)["model"] == "gpt-4"
            assert "connection" not in headers


def test_pipelined_requests_are_answered_in_order(proxy):
    paths = ["/v1/chat/completions", "/v1/models", "/nowhere", "/v1/completions", "/v1/chat/completions"]
    bodies = [CHAT, b"", b"", json.dumps({"model": "gpt-4", "prompt": "x"}).encode(), CHAT]
    methods = ["POST", "GET", "GET", "POST", "POST"]
    with connect(proxy) as s:
        s.sendall(b"".join(request_bytes(p, b, method=m) for p, b, m in zip(paths, bodies, methods)))
        reader = H11Reader(s)
        got = [reader.response(m, p) for p, m in zip(paths, methods)]
    assert [g[0] for g in got] == [200, 200, 404, 200, 200]
    assert json.loads(got[0][2])["object"] == "chat.completion"
    assert json.loads(got[1][2])["object"] == "list"
    assert json.loads(got[3][2])["object"] == "text_completion"


def test_chunked_request_body(proxy, sim):
    with connect(proxy) as s:
        s.sendall(request_bytes(chunked=True))
        status, _, body = H11Reader(s).response()
    assert status == 200 and json.loads(body)["model"] == "gpt-4"
    assert sim.record.requests[-1]["messages"][0]["content"] == "hi"


def test_body_over_limit_is_413_by_length_and_by_chunks(start_proxy, sim):
    p = start_proxy(sim.url, server={"max_body_bytes": 1000})
    big = json.dumps({"model": "m", "messages": [{"role": "user", "content": "x" * 2000}]}).encode()
    for chunked in (False, True):
        out = raw_exchange(p.port, request_bytes(body=big, chunked=chunked))
        assert out.startswith(b"HTTP/1.1 413 "), out[:100]
        assert b'"request_too_large"' in out
    assert http("POST", p.url + "/v1/chat/completions", CHAT).status == 200


def test_headers_over_limit_are_431(start_proxy, sim):
    p = start_proxy(sim.url, server={"max_header_bytes": 2048})
    out = raw_exchange(p.port, request_bytes(headers=[("x-big", "a" * 4000)]))
    assert out.startswith(b"HTTP/1.1 431 "), out[:100]
    many = [(f"x-h{i}", "v" * 50) for i in range(100)]
    assert raw_exchange(p.port, request_bytes(headers=many)).startswith(b"HTTP/1.1 431 ")
    assert http("POST", p.url + "/v1/chat/completions", CHAT).status == 200


def test_malformed_request_gets_400_while_another_connection_is_served(proxy):
    with connect(proxy) as good:
        reader = H11Reader(good)
        good.sendall(request_bytes())
        assert reader.response()[0] == 200
        for garbage in (
            b"GARBAGE\r\n\r\n",
            b"POST /v1/x HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nBad Header\r\n\r\n",
            b"\x00\x01\x02\r\n\r\n",
        ):
            out = raw_exchange(proxy.port, garbage)
            assert out.startswith(b"HTTP/1.1 400 "), (garbage, out[:80])
            assert b"connection: close" in out
            body = out.split(b"\r\n\r\n", 1)[1]
            assert json.loads(body)["error"]["type"] == "invalid_request_error"
        good.sendall(request_bytes())
        assert reader.response()[0] == 200


def test_expect_100_continue(proxy):
    with connect(proxy) as s:
        head, _, body = request_bytes(headers=[("expect", "100-continue")]).partition(b"\r\n\r\n")
        s.sendall(head + b"\r\n\r\n")
        interim = s.recv(1024)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        s.sendall(body)
        status, _, _ = H11Reader(s).response()
        assert status == 200


def test_expect_with_too_large_body_is_refused_before_upload(start_proxy, sim):
    p = start_proxy(sim.url, server={"max_body_bytes": 100})
    out = raw_exchange(p.port, b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 413 ")


def test_connection_close_is_honoured(proxy):
    out = raw_exchange(proxy.port, request_bytes(headers=[("connection", "close")]))
    assert out.startswith(b"HTTP/1.1 200 ")
    assert b"connection: close" in out.lower()


def test_http10_stream_is_close_delimited(proxy):
    body = json.dumps({"model": "gpt-4", "stream": True, "messages": [{"role": "user", "content": "hi"}]}).encode()
    out = raw_exchange(proxy.port, b"POST /v1/chat/completions HTTP/1.0\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    head, _, rest = out.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ") and b"chunked" not in head
    assert rest.rstrip().endswith(b"data: [DONE]")


def test_idle_connection_is_closed_after_keepalive_timeout(start_proxy, sim):
    p = start_proxy(sim.url, server={"keepalive_timeout": 0.3})
    with socket.create_connection(("127.0.0.1", p.port), timeout=3) as s:
        s.sendall(request_bytes())
        H11Reader(s).response()
        s.settimeout(3)
        rest = b""
        while True:  # the server closes it: recv returns b"" well before our timeout
            data = s.recv(1024)
            if not data:
                break
            rest += data
        assert rest == b""


def test_slow_header_sender_times_out_with_408(start_proxy, sim):
    p = start_proxy(sim.url, server={"header_timeout": 0.3})
    out = raw_exchange(p.port, b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")
    assert out.startswith(b"HTTP/1.1 408 ")


def test_concurrent_clients(proxy):
    errors = []

    def worker():
        try:
            for _ in range(20):
                assert http("POST", proxy.url + "/v1/chat/completions", CHAT).status == 200
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/embeddings"])
def test_head_and_body_framing_is_exact(proxy, path):
    body = CHAT if "chat" in path else json.dumps({"model": "gpt-4", "input": "x"}).encode()
    out = raw_exchange(proxy.port, request_bytes(path, body, headers=[("connection", "close")]))
    head, _, rest = out.partition(b"\r\n\r\n")
    length = int([line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")][0])
    assert len(rest) == length


def test_pipelined_requests_before_garbage_are_answered_then_the_connection_closes(proxy):
    with connect(proxy) as s:
        s.sendall(request_bytes() + request_bytes() + b"GARBAGE\r\n\r\n")
        data = read_to_close(s)
    heads = [part.split(b"\r\n\r\n")[0] for part in data.split(b"HTTP/1.1 ")[1:]]
    assert [h[:3] for h in heads] == [b"200", b"200", b"400"]
    assert [b"connection: close" in h for h in heads] == [False, False, True]


def test_request_then_half_close_is_still_answered(sim, start_proxy):
    """With half_close = "answer": both requests are answered, then the proxy closes; an
    answer written after the half-close was seen says `connection: close`. The first reply
    is held so that the half-close reaches the proxy before the second answer."""
    sim.behavior.first_token_delay = 0.3
    proxy = start_proxy(sim.url, server={"half_close": "answer"})
    with connect(proxy) as s:
        s.sendall(request_bytes() + request_bytes("/v1/models", b"", method="GET"))
        s.shutdown(socket.SHUT_WR)
        data = read_to_close(s)
    assert data.count(b"HTTP/1.1 200 OK") == 2
    assert data.split(b"HTTP/1.1 ")[-1].split(b"\r\n\r\n")[0].count(b"connection: close") == 1


def test_upgrade_request_is_answered_over_http11_then_closed(proxy):
    """curl --http2 on plain HTTP asks for h2c; the answer comes over HTTP/1.1."""
    req = b"GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n"
    out = raw_exchange(proxy.port, req)
    assert out.startswith(b"HTTP/1.1 200 ")
    assert b"connection: close" in out.split(b"\r\n\r\n")[0]
    assert json.loads(out.split(b"\r\n\r\n", 1)[1])["object"] == "list"


def test_head_on_a_relayed_route_ends_with_the_head_and_the_connection_goes_on(proxy):
    """The backend's HEAD reply says Content-Length but sends no body: the proxy must not wait
    for one, and the next request on the same connection is answered."""
    with connect(proxy) as s:
        s.settimeout(5)
        s.sendall(b"HEAD /v1/echo HTTP/1.1\r\nHost: x\r\n\r\n" + request_bytes("/v1/models", b"", method="GET"))
        data = b""
        while data.count(b"HTTP/1.1 200 OK") < 2 or not data.endswith(b"}"):
            chunk = s.recv(65536)
            assert chunk, data
            data += chunk
    head_reply, _, rest = data.partition(b"\r\n\r\n")
    assert head_reply.startswith(b"HTTP/1.1 200 OK")
    length = head_reply.lower().split(b"content-length: ")[1].split(b"\r\n")[0]
    assert int(length) > 100  # the backend's: the length of the echo a GET would get
    assert rest.startswith(b"HTTP/1.1 200 OK")  # no body bytes after the HEAD reply's head
    assert b'"object":"list"' in rest.replace(b" ", b"")


@pytest.mark.parametrize("named_first", [False, True])
def test_headers_the_clients_connection_names_stay_on_its_hop(proxy, named_first):
    """RFC 9110 7.6.1: what Connection names is hop-by-hop, wherever it stands in the head."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
    conn.putrequest("POST", "/v1/echo", skip_accept_encoding=True)
    pairs = [("X-Client-Hop", "1"), ("Connection", "keep-alive, X-Client-Hop, Keep-Alive"), ("Keep-Alive", "timeout=5"), ("X-End", "kept")]
    for name, value in pairs if named_first else pairs[1:] + pairs[:1]:
        conn.putheader(name, value)
    conn.putheader("Content-Length", "2")
    conn.endheaders(b"{}")
    r = conn.getresponse()
    doc = json.loads(r.read())
    conn.close()
    headers = {k.lower(): v for k, v in doc["headers"].items()}
    assert headers["x-end"] == "kept"
    assert "x-client-hop" not in headers and "keep-alive" not in headers
