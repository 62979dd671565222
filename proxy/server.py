"""The client-facing HTTP/1.1 connection: keep-alive, pipelined requests answered in order,
read and idle deadlines, and the reply channel a handler writes its answer through.

Requests are read by reader.RequestReader; what to answer is the application's business
(the `Application` protocol below), so this module imports no handler.
"""

import asyncio
from collections import deque
from time import perf_counter
from typing import Protocol

from .errors import Failure
from .http import CHUNK_END, JSON, close_delimited_head, response_head
from .reader import UPGRADE, Request, RequestReader
from .record import Record

__all__ = ["Application", "HttpProtocol", "Limits", "Request"]


class Application(Protocol):
    """What a connection needs from the application serving it."""

    connections: set
    limits: "Limits"

    def admit(self, conn: "HttpProtocol") -> Failure | None: ...

    def handle(self, conn: "HttpProtocol", request: Request) -> None: ...

    def finished(self, record: Record, now: float) -> None: ...

    def log_error(self, what: str, exc: BaseException) -> None: ...


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
    respond() / fail() or start_stream()/write_chunk()/end_stream(); the handler in progress
    sets `active` (an object with cancel(), pause(), resume(), expire()) to follow the
    connection's fate."""

    def __init__(self, app: Application, loop: asyncio.AbstractEventLoop) -> None:
        self.app = app
        self.limits: Limits = app.limits  # the limits in force when the connection opened
        self.loop = loop
        self.reader = RequestReader(self, self.limits)
        self.transport: asyncio.Transport | None = None
        self.client = ""
        self.refusal: Failure | None = None  # every request on this connection gets it
        self.closed = False
        self.current: Request | None = None  # the request being answered
        self.active = None  # its handler, when the answer is not written yet
        self.queue: deque = deque()  # requests (or a Failure) waiting for their turn
        self.write_paused = False
        self._reading = True
        self._held = False  # the backend is not reading what the proxy writes to it
        self._dead = False  # no more requests on this connection
        # One deadline at a time, checked by the server's sweep (no timer handle per request):
        # reading a request (header_timeout, then body_timeout) or idle (keepalive_timeout).
        self.deadline = 0.0
        self._idle = False
        self._continue_pending = False
        self._streaming = False  # the current reply is chunked / close-delimited

    # ---- asyncio.Protocol
    def connection_made(self, transport) -> None:
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.client = peer[0] if peer else ""
        self.app.connections.add(self)
        self.refusal = self.app.admit(self)
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
            record = request.record
            if not record.status or self._streaming:
                record.status = 499  # nginx's "client closed request"
            self.app.finished(record, perf_counter())

    def data_received(self, data: bytes) -> None:
        if self._dead:
            return
        failure = self.reader.feed(data)
        if failure is None:
            return
        if failure is UPGRADE:
            # Upgrade (h2c, websocket) is not offered: the request that asked for it is
            # answered over HTTP/1.1, and the connection closes after it.
            self._dead = True
            self._stop_reading()
        else:
            self._refuse(failure)

    def eof_received(self) -> bool:
        """The client half-closed: answer what it sent, then close; no more requests."""
        self._dead = True
        if self.reader.parsing:  # a request cut short by the close
            self._refuse(Failure(400, "The client closed its side in the middle of a request.", "bad_request"))
        elif self.current is None and not self.queue:
            self._close()
        return True  # keep the transport open for writing

    def pause_writing(self) -> None:
        self.write_paused = True
        if self.active is not None:
            self.active.pause()

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.active is not None:
            self.active.resume()

    # ---- from the reader
    def reading_started(self) -> None:
        if self._idle or not self.deadline:
            self._idle = False
            self.deadline = self.loop.time() + self.limits.header_timeout

    def continue_wanted(self) -> None:
        if self.current is None and not self.queue:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        else:
            self._continue_pending = True

    def received(self, request: Request) -> None:
        self.deadline = 0.0
        self._continue_pending = False
        if self.current is None:
            self._start(request)
        else:
            self.queue.append(request)
            if len(self.queue) >= self.limits.max_pipeline:
                self._stop_reading()

    # ---- answering
    def _start(self, item: Request | Failure) -> None:
        if isinstance(item, Failure):
            self.current = Request(b"", "", b"", [], b"", False, True, self.client)
            self.fail(item)
            return
        self.current = item
        try:
            self.app.handle(self, item)
        except Exception as exc:  # a bug must not take the connection down without an answer
            self.app.log_error("handler failed", exc)
            if self.current is item and self.active is None and not self._streaming:
                self.fail(Failure(500, "The proxy failed to handle the request.", "internal_error"))

    def _finish(self) -> None:
        request = self.current
        if request is None:
            return
        self.app.finished(request.record, perf_counter())
        self.current = None
        self.active = None
        self._streaming = False
        if self._held:
            self.hold_reading(False)
        if self.closed:
            return
        if not request.keep_alive:
            self._close()
            return
        if self.queue:
            if not self._reading and len(self.queue) < self.limits.max_pipeline and not self._dead:
                self._resume_reading()
            self._start(self.queue.popleft())
            return
        if self._dead:
            self._close()
            return
        if self._continue_pending:
            self._continue_pending = False
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        if not self.reader.parsing:  # not in the middle of reading the next request
            self._idle = True
            self.deadline = self.loop.time() + self.limits.keepalive_timeout

    def respond(self, status: int, headers: bytes, body: bytes, head_length: int | None = None) -> None:
        """A whole reply for the current request. `head_length`: for HEAD, the Content-Length
        the GET would have."""
        request = self.current
        if request is None or self.closed:
            return
        record = request.record
        record.status = status
        record.bytes_out = len(body)
        if record.rid:
            headers = b"x-request-id: %s\r\n%s" % (record.rid.encode(), headers)
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

    def fail(self, failure: Failure) -> None:
        """Answer the current request with an error in OpenAI's shape."""
        self.respond(failure.status, JSON + failure.headers, failure.body())

    def start_stream(self, status: int, headers: bytes) -> None:
        """Begin a reply whose body follows in write_chunk() calls."""
        request = self.current
        if request is None or self.closed:
            return
        self._streaming = True
        record = request.record
        record.status = status
        if record.rid:
            headers = b"x-request-id: %s\r\n%s" % (record.rid.encode(), headers)
        if request.http11:
            self.transport.write(response_head(status, headers, None, self._keeps(request)))
        else:  # HTTP/1.0 has no chunked encoding: the close ends the body
            request.keep_alive = False
            self.transport.write(close_delimited_head(status, headers))

    def write_chunk(self, data: bytes) -> None:
        request = self.current
        if not data or self.closed or request is None:
            return
        record = request.record
        if not record.t_first:
            record.t_first = perf_counter()
        record.bytes_out += len(data)
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

    # ---- reading, deadlines
    def _refuse(self, failure: Failure) -> None:
        self._dead = True
        self.reader.stop()
        self._stop_reading()
        self.deadline = 0.0
        if self.current is None:
            self._start(failure)
        else:
            self.queue.append(failure)

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

    def _close(self) -> None:
        if not self.closed:
            self.closed = True
            self.transport.close()

    def expire(self, now: float) -> None:
        """Called by the server's sweep: act on a deadline that has passed."""
        if now < self.deadline or not self.deadline or self.closed:
            return
        self.deadline = 0.0
        if self.reader.parsing:
            self._refuse(Failure(408, "Timed out reading the request.", "request_timeout"))
        elif self.current is None and not self.queue:
            self._close()  # idle keep-alive, or a connection that never sent a request

    def shutdown(self) -> None:
        """Close now if idle; otherwise after the request in progress is answered."""
        if self.current is None and not self.queue and not self.reader.parsing:
            self._close()
        else:
            self._dead = True
