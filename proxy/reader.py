"""Reading requests off one client connection: httptools' callbacks collect each request's
head and body under the size limits and hand the whole request to the connection.

Limits: 414/431 for the head, 413 for the body (before upload when Content-Length says so),
400 for malformed HTTP, 417 for an unknown expectation.
"""

from time import perf_counter

import httptools
import msgspec

from .errors import Failure
from .record import Record
from .target import canonical_path

UPGRADE = object()  # feed()'s answer to a request that asked to switch protocols


class Rx:
    """The reading side of a connection. IDLE -> HEAD -> BODY -> IDLE for each request;
    DONE (from any state) when no more requests will be read. (Plain ints, not enum.Enum:
    an Enum member costs ~6x a class attribute to read, and these are read per request.)"""

    IDLE = 0  # between requests
    HEAD = 1  # reading a request line and headers
    BODY = 2  # reading a body (and, for chunked bodies, trailers, which are dropped)
    DONE = 3  # refused, half-closed, upgraded or draining: nothing more is read


class Request(msgspec.Struct, gc=False):
    """One parsed request, as the handlers read it (a msgspec Struct: made in C, untracked by
    the GC: what it holds cannot point back to it)."""

    method: bytes
    path: str
    query: bytes
    headers: list[tuple[bytes, bytes]]  # names lower-cased
    body: bytes
    keep_alive: bool
    http11: bool
    client: str
    record: Record
    forwarded_for: bytes = b""  # X-Forwarded-For to send on (admission sets it)
    front: object = None  # a front protocol's request (fronts.Front): its route, body, reply translator
    fit: int = 0  # after the backend refused max_tokens for the context length: the max_tokens sent (once)

    def header(self, name: bytes) -> bytes | None:
        for k, v in self.headers:
            if k == name:
                return v
        return None


class RequestReader:
    """The parser's callback object for one connection (`conn`): it sets the connection's
    read deadlines and calls `conn.received(request)` for each complete request."""

    __slots__ = ("conn", "limits", "parser", "_url", "_headers", "_body", "_head_size", "_body_size", "rx")

    def __init__(self, conn, limits) -> None:
        self.conn = conn
        self.limits = limits
        self.parser = httptools.HttpRequestParser(self)
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self._head_size = 0
        self._body_size = 0
        self.rx = Rx.IDLE

    @property
    def parsing(self) -> bool:
        """Inside a request (its head or its body)."""
        return Rx.IDLE < self.rx < Rx.DONE

    def failure(self, exc: Exception):
        """What a parser error means: a Failure that ends reading, or UPGRADE."""
        if isinstance(exc, httptools.HttpParserCallbackError):
            ctx = exc.__context__
            if isinstance(ctx, Failure):
                return ctx
            self.conn.app.log_error("request parser callback failed", ctx or exc)
            return Failure(500, "The proxy failed to read the request.", "internal_error")
        if isinstance(exc, httptools.HttpParserUpgrade):
            return UPGRADE
        return Failure(400, f"Malformed HTTP request: {str(exc) or 'malformed request'}.", "bad_request")

    def head_read(self, size: int) -> Failure | None:
        """A read that began and ended inside one head is all head: a giant header value that
        httptools is still accumulating must not grow without bound. (A read in which the
        head began also holds the request before it: not counted.)"""
        self._head_size += size
        if self._head_size > self.limits.max_header * 2:
            return Failure(431, "Request header fields too large.", "headers_too_large")
        return None

    def stop(self) -> None:
        self.rx = Rx.DONE

    # ---- httptools callbacks
    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = []
        self._body = []
        self._head_size = 0
        self._body_size = 0
        self.rx = Rx.HEAD
        conn = self.conn
        if conn.tx == 0 and not conn.queue or not conn.deadline:  # Tx.IDLE: a new request
            conn.deadline = conn.loop.time() + self.limits.header_timeout

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._head_size += len(url)
        if self._head_size > self.limits.max_header:
            raise Failure(414 if len(self._url) > self.limits.max_header else 431, "Request line or headers too large.", "headers_too_large")

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.rx != Rx.HEAD:
            return  # a trailer of a chunked body: never merged into the headers
        self._head_size += len(name) + len(value) + 4
        if self._head_size > self.limits.max_header:
            raise Failure(431, "Request header fields too large.", "headers_too_large")
        self._headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        self.rx = Rx.BODY
        limits = self.limits
        self.conn.deadline = self.conn.loop.time() + limits.body_timeout
        expect = None
        for name, value in self._headers:
            if name == b"content-length":
                try:
                    size = int(value)
                except ValueError:
                    raise Failure(400, "Invalid Content-Length.", "bad_request") from None
                if size > limits.max_body:
                    raise Failure(413, f"Request body too large: {size} bytes, the limit is {limits.max_body}.", "request_too_large")
            elif name == b"expect":
                expect = value.lower()
        if expect is not None:
            if expect != b"100-continue":
                raise Failure(417, "Only 'Expect: 100-continue' is supported.", "expectation_failed")
            self.conn.continue_wanted()

    def on_body(self, body: bytes) -> None:
        self._body_size += len(body)
        if self._body_size > self.limits.max_body:
            raise Failure(413, f"Request body too large: the limit is {self.limits.max_body} bytes.", "request_too_large")
        self._body.append(body)

    def on_message_complete(self) -> None:
        self.rx = Rx.IDLE
        parser = self.parser
        url = self._url
        q = url.find(b"?")
        path, query = (url, b"") if q < 0 else (url[:q], url[q + 1 :])
        body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        method = parser.get_method()
        route = canonical_path(path) if path.startswith(b"/") else path.decode("latin-1")
        client = self.conn.client
        request = Request(
            method,
            route,
            query,
            self._headers,
            body,
            # a request that switches protocols (Upgrade, CONNECT) is the connection's last
            parser.should_keep_alive() and not parser.should_upgrade(),
            parser.get_http_version() == "1.1",
            client,
            Record(method, route, client, len(body)),
        )
        request.record.t0 = perf_counter()
        self.conn.received(request)
