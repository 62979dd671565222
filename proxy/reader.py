"""Reading requests off one client connection: httptools' callbacks collect each request's
head and body under the size limits and hand the whole request to the connection.

Limits: 414/431 for the head, 413 for the body (before upload when Content-Length says so),
400 for malformed HTTP, 417 for an unknown expectation.
"""

from enum import IntEnum
from time import perf_counter

import httptools

from .errors import Failure
from .record import Record

UPGRADE = object()  # feed()'s answer to a request that asked to switch protocols


class Rx(IntEnum):
    """The reading side of a connection. IDLE -> HEAD -> BODY -> IDLE for each request;
    DONE (from any state) when no more requests will be read."""

    IDLE = 0  # between requests
    HEAD = 1  # reading a request line and headers
    BODY = 2  # reading a body (and, for chunked bodies, trailers, which are dropped)
    DONE = 3  # refused, half-closed, upgraded or draining: nothing more is read


class Request:
    """One parsed request, as the handlers read it."""

    __slots__ = ("method", "path", "query", "headers", "body", "keep_alive", "http11", "client", "record")

    def __init__(self, method, path, query, headers, body, keep_alive, http11, client) -> None:
        self.method: bytes = method
        self.path: str = path
        self.query: bytes = query
        self.headers: list[tuple[bytes, bytes]] = headers  # names lower-cased
        self.body: bytes = body
        self.keep_alive: bool = keep_alive
        self.http11: bool = http11
        self.client: str = client
        self.record = Record(method, path, client, len(body))

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
        return self.rx == Rx.HEAD or self.rx == Rx.BODY

    def feed(self, data: bytes):
        """None, a Failure that ends reading, or UPGRADE."""
        inside_head = self.rx == Rx.HEAD  # every byte of this read is head, if it stays so
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            ctx = exc.__context__
            if isinstance(ctx, Failure):
                return ctx
            self.conn.app.log_error("request parser callback failed", ctx or exc)
            return Failure(500, "The proxy failed to read the request.", "internal_error")
        except httptools.HttpParserUpgrade:
            return UPGRADE
        except httptools.HttpParserError as exc:
            return Failure(400, f"Malformed HTTP request: {str(exc) or 'malformed request'}.", "bad_request")
        if inside_head and self.rx == Rx.HEAD:
            # A read that began and ended inside one head is all head: a giant header value
            # that httptools is still accumulating must not grow without bound. (A read in
            # which the head began also holds the request before it: not counted here.)
            self._head_size += len(data)
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
        self.conn.reading_started()

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
        request = Request(
            parser.get_method(),
            path.decode("latin-1"),
            query,
            self._headers,
            body,
            # a request that switches protocols (Upgrade, CONNECT) is the connection's last
            parser.should_keep_alive() and not parser.should_upgrade(),
            parser.get_http_version() == "1.1",
            self.conn.client,
        )
        request.record.t0 = perf_counter()
        self.conn.received(request)
