"""The client-facing HTTP/1.1 server: an asyncio.Protocol fed by httptools' request parser.

Keep-alive, pipelined requests answered in order, size limits (413, 431), read and idle
timeouts, Expect: 100-continue, and write flow control handed to whoever produces the reply.
"""

import asyncio
from collections import deque
from time import perf_counter

import httptools

from .errors import error_body
from .http import CHUNK_END, JSON, close_delimited_head, response_head


class Request:
    # What the proxy learns while answering; class defaults, set only when known.
    rid = ""  # request id (the client's X-Request-ID, or made up)
    rid_made = False
    # Timings are time.perf_counter() values: uvloop's loop.time() only has milliseconds.
    t0 = 0.0  # the request was complete
    status = 0
    model: str | None = None  # the client's
    backend_model: str | None = None
    backend = ""
    t_sent = 0.0  # the backend got the request
    t_upstream_end = 0.0  # ... and finished its reply
    t_first = 0.0  # first byte of a stream to the client
    bytes_out = 0
    usage: tuple[int, int] | None = None  # (prompt, completion) tokens

    def __init__(self, method, path, query, headers, body, keep_alive, http11, client):
        self.method: bytes = method
        self.path: str = path
        self.query: bytes = query
        self.headers: list[tuple[bytes, bytes]] = headers  # names lower-cased
        self.body: bytes = body
        self.keep_alive: bool = keep_alive
        self.http11: bool = http11
        self.client: str = client

    def header(self, name: bytes) -> bytes | None:
        for k, v in self.headers:
            if k == name:
                return v
        return None


class _Refusal:
    """A request the parser refused; answered in its turn, then the connection closes."""

    __slots__ = ("status", "message", "code")

    def __init__(self, status: int, message: str, code: str) -> None:
        self.status = status
        self.message = message
        self.code = code


class _Reject(Exception):
    def __init__(self, status: int, message: str, code: str) -> None:
        self.refusal = _Refusal(status, message, code)


class Limits:
    __slots__ = ("max_body", "max_header", "header_timeout", "body_timeout", "keepalive_timeout", "max_pipeline", "request_timeout")

    def __init__(self, server_config, max_body: int) -> None:
        self.max_body = max_body
        self.max_header = server_config.max_header_bytes
        self.header_timeout = server_config.header_timeout
        self.body_timeout = server_config.body_timeout
        self.keepalive_timeout = server_config.keepalive_timeout
        self.max_pipeline = server_config.max_pipeline
        self.request_timeout = server_config.request_timeout


class HttpProtocol(asyncio.Protocol):
    """One client connection. `app.handle(self, request)` produces each reply through
    respond() or start_stream()/write_chunk()/end_stream(); the handler in progress sets
    `active` (an object with cancel(), pause(), resume(), expire()) to follow the connection's
    fate."""

    def __init__(self, app, loop: asyncio.AbstractEventLoop) -> None:
        self.app = app
        self.limits: Limits = app.limits  # the limits in force when the connection opened
        self.loop = loop
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.client = ""
        self.refusal: tuple[int, str, str] | None = None
        self.closed = False
        self.current: Request | None = None  # the request being answered
        self.active = None  # its handler, when the answer is not written yet
        self.queue: deque = deque()
        self.write_paused = False
        self._reading = True
        self._held = False  # the backend is not reading what the proxy writes to it
        self._dead = False  # the parser refused input: no more requests on this connection
        # One deadline at a time, checked by the server's sweep (no timer handle per request):
        # reading a request (header_timeout, then body_timeout) or idle (keepalive_timeout).
        self.deadline = 0.0
        self._idle = False
        self._continue_pending = False
        # the message being parsed
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self._head_size = 0
        self._body_size = 0
        self._in_headers = False
        self._parsing = False
        self._streaming = False  # the current reply is chunked / close-delimited

    # ---- asyncio.Protocol
    def connection_made(self, transport) -> None:
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.client = peer[0] if peer else ""
        self.app.connections.add(self)
        self.refusal = self.app.admit(self)  # (status, message, code) for every request, or None
        self.deadline = self.loop.time() + self.limits.header_timeout

    def connection_lost(self, exc) -> None:
        self.closed = True
        self.app.connections.discard(self)
        self.deadline = 0.0
        self.queue.clear()
        active, self.active = self.active, None
        request, self.current = self.current, None
        if active is not None:
            active.cancel()
        if request is not None:  # the client left before its answer was complete
            if not request.status or self._streaming:
                request.status = 499  # nginx's "client closed request"
            self.app.finished(request, perf_counter())

    def data_received(self, data: bytes) -> None:
        if self._dead:
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            ctx = exc.__context__
            if isinstance(ctx, _Reject):
                self._refuse(ctx.refusal)
            else:
                self.app.log_error("request parser callback failed", ctx or exc)
                self._refuse(_Refusal(500, "The proxy failed to read the request.", "internal_error"))
            return
        except httptools.HttpParserUpgrade:
            # Upgrade (h2c, websocket) is not offered: the request that asked for it is
            # answered over HTTP/1.1, and the connection closes after it.
            self._dead = True
            self._stop_reading()
            return
        except httptools.HttpParserError as exc:
            reason = str(exc) or "malformed request"
            self._refuse(_Refusal(400, f"Malformed HTTP request: {reason}.", "bad_request"))
            return
        if self._in_headers:
            # Everything fed while the head is incomplete is head: a giant header value that
            # httptools is still accumulating must not grow without bound.
            self._head_size += len(data)
            if self._head_size > self.limits.max_header * 2:
                self._refuse(_Refusal(431, "Request header fields too large.", "headers_too_large"))

    def eof_received(self) -> bool:
        """The client half-closed: answer what it sent, then close; no more requests."""
        self._dead = True
        if self._parsing:  # a request cut short by the close
            self._refuse(_Refusal(400, "The client closed its side in the middle of a request.", "bad_request"))
        elif self.current is None and not self.queue:
            self.closed = True
            self.transport.close()
        return True  # keep the transport open for writing

    def pause_writing(self) -> None:
        self.write_paused = True
        if self.active is not None:
            self.active.pause()

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.active is not None:
            self.active.resume()

    # ---- httptools callbacks
    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = []
        self._body = []
        self._head_size = 0
        self._body_size = 0
        self._in_headers = True
        self._parsing = True
        if self._idle or not self.deadline:
            self._idle = False
            self.deadline = self.loop.time() + self.limits.header_timeout

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._head_size += len(url)
        if self._head_size > self.limits.max_header:
            raise _Reject(414 if len(self._url) > self.limits.max_header else 431, "Request line or headers too large.", "headers_too_large")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_size += len(name) + len(value) + 4
        if self._head_size > self.limits.max_header:
            raise _Reject(431, "Request header fields too large.", "headers_too_large")
        self._headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        self._in_headers = False
        limits = self.limits
        self.deadline = self.loop.time() + limits.body_timeout
        expect = None
        for name, value in self._headers:
            if name == b"content-length":
                try:
                    size = int(value)
                except ValueError:
                    raise _Reject(400, "Invalid Content-Length.", "bad_request") from None
                if size > limits.max_body:
                    raise _Reject(413, f"Request body too large: {size} bytes, the limit is {limits.max_body}.", "request_too_large")
            elif name == b"expect":
                expect = value.lower()
        if expect is not None:
            if expect != b"100-continue":
                raise _Reject(417, "Only 'Expect: 100-continue' is supported.", "expectation_failed")
            if self.current is None and not self.queue:
                self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            else:
                self._continue_pending = True

    def on_body(self, body: bytes) -> None:
        self._body_size += len(body)
        if self._body_size > self.limits.max_body:
            raise _Reject(413, f"Request body too large: the limit is {self.limits.max_body} bytes.", "request_too_large")
        self._body.append(body)

    def on_message_complete(self) -> None:
        self._parsing = False
        self.deadline = 0.0
        self._continue_pending = False
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
            parser.should_keep_alive(),
            parser.get_http_version() == "1.1",
            self.client,
        )
        request.t0 = perf_counter()
        if self.current is None:
            self._start(request)
        else:
            self.queue.append(request)
            if len(self.queue) >= self.limits.max_pipeline:
                self._stop_reading()

    # ---- answering
    def _start(self, item) -> None:
        if isinstance(item, _Refusal):
            self.current = Request(b"", "", b"", [], b"", False, True, self.client)
            self.respond_error(item.status, item.message, item.code)
            return
        self.current = item
        try:
            self.app.handle(self, item)
        except Exception as exc:  # a bug must not take the connection down without an answer
            self.app.log_error("handler failed", exc)
            if self.current is item and self.active is None and not self._streaming:
                self.respond_error(500, "The proxy failed to handle the request.", "internal_error")

    def _finish(self) -> None:
        request = self.current
        if request is None:
            return
        self.app.finished(request, perf_counter())
        self.current = None
        self.active = None
        self._streaming = False
        if self._held:
            self.hold_reading(False)
        if self.closed:
            return
        if not request.keep_alive:
            self.transport.close()
            self.closed = True
            return
        if self.queue:
            if not self._reading and len(self.queue) < self.limits.max_pipeline and not self._dead:
                self._resume_reading()
            self._start(self.queue.popleft())
            return
        if self._dead:
            self.transport.close()
            self.closed = True
            return
        if self._continue_pending:
            self._continue_pending = False
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        if not self._parsing:  # not in the middle of reading the next request
            self._idle = True
            self.deadline = self.loop.time() + self.limits.keepalive_timeout

    def respond(self, status: int, headers: bytes, body: bytes, head_length: int | None = None) -> None:
        """A whole reply for the current request. `head_length`: for HEAD, the Content-Length
        the GET would have."""
        request = self.current
        if request is None or self.closed:
            return
        request.status = status
        request.bytes_out = len(body)
        if request.rid:
            headers = b"x-request-id: %s\r\n%s" % (request.rid.encode(), headers)
        head = response_head(status, headers, len(body) if head_length is None else head_length, self._keeps(request))
        if request.method == b"HEAD":
            self.transport.write(head)
        else:
            self.transport.writelines((head, body))
        self._finish()

    def _keeps(self, request: Request) -> bool:
        """Whether the connection stays open after this reply: answers still queued behind
        it keep it open even when reading has stopped for good."""
        return request.keep_alive and (not self._dead or bool(self.queue))

    def respond_error(self, status: int, message: str, code: str | None = None, param: str | None = None, headers: bytes = b"") -> None:
        self.respond(status, JSON + headers, error_body(status, message, code, param))

    def start_stream(self, status: int, headers: bytes) -> None:
        """Begin a reply whose body follows in write_chunk() calls."""
        request = self.current
        if request is None or self.closed:
            return
        self._streaming = True
        request.status = status
        if request.rid:
            headers = b"x-request-id: %s\r\n%s" % (request.rid.encode(), headers)
        if request.http11:
            self.transport.write(response_head(status, headers, None, self._keeps(request)))
        else:  # HTTP/1.0 has no chunked encoding: the close ends the body
            request.keep_alive = False
            self.transport.write(close_delimited_head(status, headers))

    def write_chunk(self, data: bytes) -> None:
        request = self.current
        if not data or self.closed or request is None:
            return
        if not request.t_first:
            request.t_first = perf_counter()
        request.bytes_out += len(data)
        if request.http11:
            self.transport.writelines((b"%x\r\n" % len(data), data, b"\r\n"))
        else:
            self.transport.write(data)

    def end_stream(self) -> None:
        if self.closed or self.current is None:
            return
        if self.current.http11:
            self.transport.write(CHUNK_END)
        self._finish()

    def abort(self) -> None:
        """Drop the connection: used when a reply already under way cannot be completed."""
        if not self.closed:
            self.closed = True
            self.transport.abort()

    # ---- reading, timers
    def _refuse(self, refusal: _Refusal) -> None:
        self._dead = True
        self._in_headers = self._parsing = False
        self._stop_reading()
        self.deadline = 0.0
        if self.current is None:
            self._start(refusal)
        else:
            self.queue.append(refusal)

    def _stop_reading(self) -> None:
        if self._reading and not self.closed:
            self._reading = False
            self.transport.pause_reading()

    def hold_reading(self, held: bool) -> None:
        """Stop reading this client while the backend does not read (flow control)."""
        self._held = held
        if held:
            self._stop_reading()
        elif not self._dead and len(self.queue) < self.limits.max_pipeline:
            self._resume_reading()

    def _resume_reading(self) -> None:
        if not self._reading and not self.closed and not self._held:
            self._reading = True
            self.transport.resume_reading()

    def expire(self, now: float) -> None:
        """Called by the server's sweep: act on a deadline that has passed."""
        if now < self.deadline or not self.deadline or self.closed:
            return
        self.deadline = 0.0
        if self._parsing:
            self._refuse(_Refusal(408, "Timed out reading the request.", "request_timeout"))
        elif self.current is None and not self.queue:
            self.closed = True  # idle keep-alive, or a connection that never sent a request
            self.transport.close()

    def shutdown(self) -> None:
        """Close now if idle; otherwise after the request in progress is answered."""
        if self.current is None and not self.queue and not self._parsing:
            if not self.closed:
                self.closed = True
                self.transport.close()
        else:
            self._dead = True
