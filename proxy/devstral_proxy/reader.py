"""Reading requests off one client connection: httptools' callbacks collect each request's
head and body under the size limits and hand the whole request to the connection.

Limits: 414/431 for the head, 413 for the body (before upload when Content-Length says so),
400 for malformed HTTP, 417 for an unknown expectation. A request the application screens out
at the end of its head (limits.screen) is refused before a byte of its body is kept.
"""

from typing import Final

import httptools

from .errors import Failure
from .parsed import Request
from .states import into, refused
from .target import canonical_path

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
UPGRADE = object()  # feed()'s answer to a request that asked to switch protocols


class Rx:
    """The reading side of a connection. IDLE -> HEAD -> BODY -> IDLE for each request;
    DONE (from any state) when no more requests will be read. Every change goes through
    RequestReader._to, checked against RX_NEXT. (Plain ints, not enum.Enum: an Enum member
    costs ~6x a class attribute to read, and these are read per request.)"""

    IDLE: Final = 0  # between requests
    HEAD: Final = 1  # reading a request line and headers
    BODY: Final = 2  # reading a body (and, for chunked bodies, trailers, which are dropped)
    DONE: Final = 3  # refused, half-closed, upgraded or draining: nothing more is read
    NAMES: Final = ("IDLE", "HEAD", "BODY", "DONE")


# state -> bit mask of the states it may go to
RX_NEXT = (
    1 << Rx.HEAD | 1 << Rx.DONE,  # IDLE
    1 << Rx.BODY | 1 << Rx.DONE,  # HEAD
    1 << Rx.IDLE | 1 << Rx.DONE,  # BODY
    1 << Rx.DONE,  # DONE (stop() again)
)
_HEAD, _BODY, _IDLE = Rx.HEAD, Rx.BODY, Rx.IDLE
_INTO_HEAD, _INTO_BODY, _INTO_IDLE = into(RX_NEXT, _HEAD), into(RX_NEXT, _BODY), into(RX_NEXT, _IDLE)


class _Stopped(Exception):
    """A request began after reading stopped (pipelined behind the last one): not read."""


class RequestReader:
    """The parser's callback object for one connection (`conn`): it sets the connection's
    read deadlines and calls `conn.received(request)` for each complete request."""

    __slots__ = ("conn", "limits", "parser", "screen", "continue_pending", "_url", "_headers", "_body", "_head_size", "_body_size", "rx")

    def __init__(self, conn, limits) -> None:
        self.conn = conn
        self.limits = limits
        self.parser = httptools.HttpRequestParser(self)
        # (method, url, headers) -> Failure | None, at the end of each head: a request refused
        # there (no valid key, a refused connection) is answered before its body is read
        self.screen = limits.screen
        self.continue_pending = False  # a 100 Continue to send once the answer before it is done
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

    def _to(self, new: int) -> None:
        if not RX_NEXT[self.rx] >> new & 1:
            refused("Rx", Rx.NAMES, self.rx, new)
        self.rx = new

    def feed(self, data: bytes):
        """Parse what the client sent: None, or why reading ends (a Failure, or UPGRADE)."""
        rx = self.rx
        if rx == Rx.DONE:
            return None
        try:
            self.parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            return self.failure(exc)  # None: reading had stopped (a request ended it)
        if rx != Rx.HEAD or self.rx != Rx.HEAD:
            return None
        return self.head_read(len(data))

    def failure(self, exc: Exception):
        """What a parser error means: a Failure that ends reading, UPGRADE, or None (reading
        had stopped)."""
        if isinstance(exc, httptools.HttpParserCallbackError):
            ctx = exc.__context__
            if isinstance(ctx, Failure):
                return ctx.with_traceback(None)  # its frames would hold this reader (a cycle)
            if isinstance(ctx, _Stopped):
                return None
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

    def release(self) -> None:
        """The connection is gone: let go of the parser (it holds this reader's callbacks) and
        of the connection, so that reference counting frees them all at once (no cycle left
        for the collector). Nothing is read after this."""
        del self.parser
        del self.conn
        self._body = []
        self._headers = []

    def stop(self) -> None:
        self._to(Rx.DONE)

    def partial(self) -> Request:
        """What is known of a request the reader refuses (its method and path once read),
        so that its refusal is logged and shaped like any other answer."""
        url = self._url
        method = b""
        try:
            method = self.parser.get_method() if url else b""
        except httptools.HttpParserError:
            pass
        path = url.partition(b"?")[0][:256]
        try:
            route = canonical_path(path) if path.startswith(b"/") else ""
        except Failure:
            route = ""
        return Request(method, route, b"", self._headers, b"", False, True, self.conn.client)

    # ---- httptools callbacks
    def on_message_begin(self) -> None:
        if self.rx == Rx.DONE:
            raise _Stopped
        self._url = b""
        self._headers = []
        self._body = []
        self._head_size = 0
        self._body_size = 0
        if not _INTO_HEAD >> self.rx & 1:  # _to, inline on the per-request path
            refused("Rx", Rx.NAMES, self.rx, _HEAD)
        self.rx = _HEAD
        conn = self.conn
        if conn.idle or not conn.deadline:  # a new request
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
        if not _INTO_BODY >> self.rx & 1:
            refused("Rx", Rx.NAMES, self.rx, _BODY)
        self.rx = _BODY
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
        if expect is not None and expect != b"100-continue":
            raise Failure(417, "Only 'Expect: 100-continue' is supported.", "expectation_failed")
        screen = self.screen
        if screen is not None:  # after the checks of the head itself, before any of the body
            refusal = screen(self.parser.get_method(), self._url, self._headers)
            if refusal is not None:
                raise refusal
        if expect is not None:
            self.continue_wanted()

    def continue_wanted(self) -> None:
        """Expect: 100-continue: the client waits for a word before it sends its body. Said
        now when nothing is answered on the connection, else when the answer before it is
        done (send_continue)."""
        if self.conn.idle:
            self.conn.transport.write(_CONTINUE)
        else:
            self.continue_pending = True

    def send_continue(self) -> None:
        self.continue_pending = False
        self.conn.transport.write(_CONTINUE)

    def on_body(self, body: bytes) -> None:
        self._body_size += len(body)
        if self._body_size > self.limits.max_body:
            raise Failure(413, f"Request body too large: the limit is {self.limits.max_body} bytes.", "request_too_large")
        self._body.append(body)

    def on_message_complete(self) -> None:
        if not _INTO_IDLE >> self.rx & 1:
            refused("Rx", Rx.NAMES, self.rx, _IDLE)
        self.rx = _IDLE
        self.continue_pending = False  # the body came without it
        parser = self.parser
        url = self._url
        q = url.find(b"?")
        path, query = (url, b"") if q < 0 else (url[:q], url[q + 1 :])
        body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        method = parser.get_method()
        route = canonical_path(path) if path.startswith(b"/") else path.decode("latin-1")
        self._body = []  # the request holds it now; the reader keeps nothing of a finished request
        request = Request(
            method,
            route,
            query,
            self._headers,
            body,
            # a request that switches protocols (Upgrade, CONNECT) is the connection's last
            parser.should_keep_alive() and not parser.should_upgrade(),
            parser.get_http_version() == "1.1",
            self.conn.client,
        )
        self.conn.received(request)
