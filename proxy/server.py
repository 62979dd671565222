"""The client-facing HTTP/1.1 connection: keep-alive, pipelined requests answered in order,
read and idle deadlines, and the reply channel a handler writes its answer through.

Requests are read by reader.RequestReader; what to answer is the application's business
(the `Application` protocol below), so this module imports no handler.
"""

import asyncio
from collections import deque
from time import perf_counter
from typing import Protocol

import httptools

from . import flow
from .errors import Failure
from .flow import FlowControl
from .reader import UPGRADE, Request, RequestReader, Rx
from .record import Record
from .reply import ReplyChannel, Tx

__all__ = ["Application", "HttpProtocol", "Limits", "Request", "Tx"]
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class Application(Protocol):
    """What a connection needs from the application serving it."""

    connections: set
    limits: "Limits"

    def admit(self, conn: "HttpProtocol") -> Failure | None: ...

    def handle(self, conn: "HttpProtocol", request: Request) -> None: ...

    def finished(self, record: Record, now: float) -> None: ...

    def log_error(self, what: str, exc: BaseException) -> None: ...


class Limits:
    __slots__ = ("max_body", "max_header", "header_timeout", "body_timeout", "keepalive_timeout", "max_pipeline", "request_timeout", "eof_aborts")

    def __init__(self, server_config, max_body: int) -> None:
        self.max_body = max_body
        self.max_header = server_config.max_header_bytes
        self.header_timeout = server_config.header_timeout
        self.body_timeout = server_config.body_timeout
        self.keepalive_timeout = server_config.keepalive_timeout
        self.max_pipeline = server_config.max_pipeline
        self.request_timeout = server_config.request_timeout
        self.eof_aborts = server_config.half_close == "abort"


class HttpProtocol(ReplyChannel, asyncio.Protocol):
    """One client connection. `app.handle(self, request)` answers each request through
    respond() / fail() or start_stream(), write_chunk(), end_stream(); the handler in
    progress sets `active` (cancel(), pause(), resume(), expire()) to follow the connection.
    Requests read while one is answered wait in `queue`; the next starts only when the
    client reads what was written (flow.OUTPUT), so no producer can outrun a slow reader."""

    def __init__(self, app: Application, loop: asyncio.AbstractEventLoop) -> None:
        self.app = app
        self.limits: Limits = app.limits  # the limits in force when the connection opened
        self.loop = loop
        self.reader = RequestReader(self, self.limits)
        self.transport: asyncio.Transport | None = None
        self.flow: FlowControl | None = None
        self.client = ""
        self.refusal: Failure | None = None  # every request on this connection gets it
        self.tx = Tx.IDLE
        self.current: Request | None = None  # the request being answered
        self.active = None  # its handler, while the answer is not complete
        self.queue: deque = deque()  # requests (or a Failure) waiting for their turn
        self.draining = False  # answer the request being read, then close
        # One deadline at a time, checked by the sweep: reading (header, body) or idle (keep-alive).
        self.deadline = 0.0
        self._continue_pending = False

    # ---- asyncio.Protocol
    def connection_made(self, transport) -> None:
        self.transport = transport
        self.flow = FlowControl(transport)
        peer = transport.get_extra_info("peername")
        self.client = peer[0] if peer else ""
        self.app.connections.add(self)
        self.refusal = self.app.admit(self)
        self.deadline = self.loop.time() + self.limits.header_timeout

    def connection_lost(self, exc) -> None:
        streaming = self.tx == Tx.STREAMING
        self.tx = Tx.CLOSED
        self.app.connections.discard(self)
        self.deadline = 0.0
        self.queue.clear()
        active, self.active = self.active, None
        request, self.current = self.current, None
        if active is not None:
            active.cancel()
        if request is not None:  # the client left before its answer was complete
            record = request.record
            if not record.status or streaming:
                record.status = 499  # nginx's "client closed request"
            self.app.finished(record, perf_counter())

    def data_received(self, data: bytes) -> None:
        reader = self.reader
        rx = reader.rx
        if rx == Rx.DONE:
            return
        try:
            reader.parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            failure = reader.failure(exc)
        else:
            if rx != Rx.HEAD or reader.rx != Rx.HEAD:
                return
            failure = reader.head_read(len(data))
            if failure is None:
                return
        if failure is UPGRADE:
            # Upgrade (h2c, websocket) and CONNECT are not offered: the request that asked is
            # answered over HTTP/1.1, and the connection closes after it.
            self._no_more_requests()
        else:
            self._refuse(failure)

    def eof_received(self) -> bool:
        """The client closed its side: gone, while a backend works for it (half_close = "abort");
        else answer what it sent, then close."""
        if self.reader.parsing:  # a request cut short by the close
            self._refuse(Failure(400, "The client closed its side in the middle of a request.", "bad_request"))
        elif self.limits.eof_aborts and getattr(self.active, "abandonable", False):
            return False  # gone (nginx's reading): the transport closes, the handler is cancelled
        else:
            self._no_more_requests()
        return True  # keep the transport open for writing

    def pause_writing(self) -> None:
        self.flow.write_paused = True
        self.flow.hold(flow.OUTPUT)
        if self.active is not None:
            self.active.pause()

    def resume_writing(self) -> None:
        self.flow.write_paused = False
        self.flow.release(flow.OUTPUT)
        if self.active is not None:
            self.active.resume()
        elif self.tx == Tx.IDLE and self.queue:
            self._next()

    # ---- from the reader
    def continue_wanted(self) -> None:
        if self.tx == Tx.IDLE and not self.queue:
            self.transport.write(_CONTINUE)
        else:
            self._continue_pending = True

    def received(self, request: Request) -> None:
        self.deadline = 0.0
        self._continue_pending = False
        if self.draining:
            request.keep_alive = False
            self._no_more_requests(close_if_idle=False)
        if self.tx == Tx.IDLE and not self.queue and not self.flow.write_paused:
            self._start(request)
            return
        self.queue.append(request)
        if len(self.queue) >= self.limits.max_pipeline:
            self.flow.hold(flow.PIPELINE)

    # ---- answering
    def _start(self, item: Request | Failure) -> None:
        self.tx = Tx.WAITING
        if isinstance(item, Failure):
            self.current = Request(b"", "", b"", [], b"", False, True, self.client, Record(b"", "", self.client, 0))
            self.fail(item)
            return
        self.current = item
        try:
            self.app.handle(self, item)
        except Exception as exc:  # a bug must not take the connection down without an answer
            self.app.log_error("handler failed", exc)
            if self.current is item and self.active is None and self.tx == Tx.WAITING:
                self.fail(Failure(500, "The proxy failed to handle the request.", "internal_error"))

    def _finish(self) -> None:
        request = self.current
        self.app.finished(request.record, perf_counter())
        self.current = None
        self.active = None
        if self.flow.held:
            self.flow.release(flow.BACKEND)
        if self.tx == Tx.CLOSED:
            return
        if not request.keep_alive:
            self._close()
            return
        self.tx = Tx.IDLE
        if self.queue:
            if not self.flow.write_paused:  # else resume_writing starts it
                self._next()
            return
        if self.reader.rx == Rx.DONE:
            self._close()
            return
        if self._continue_pending:
            self._continue_pending = False
            self.transport.write(_CONTINUE)
        if self.reader.rx == Rx.IDLE:  # not in the middle of reading the next request
            self.deadline = self.loop.time() + self.limits.keepalive_timeout

    def _next(self) -> None:
        if len(self.queue) <= self.limits.max_pipeline:
            self.flow.release(flow.PIPELINE)
        self._start(self.queue.popleft())

    # ---- reading, deadlines
    def _refuse(self, failure: Failure) -> None:
        self._no_more_requests(close_if_idle=False)
        self.deadline = 0.0
        if self.tx == Tx.IDLE and not self.queue:
            self._start(failure)
        else:
            self.queue.append(failure)

    def _no_more_requests(self, close_if_idle: bool = True) -> None:
        self.reader.stop()
        self.flow.hold(flow.STOPPED)
        if close_if_idle and self.tx == Tx.IDLE and not self.queue:
            self._close()

    def _close(self) -> None:
        if self.tx != Tx.CLOSED:
            self.tx = Tx.CLOSED
            self.transport.close()

    def expire(self, now: float) -> None:
        """Called by the server's sweep: act on a deadline that has passed."""
        if now < self.deadline or not self.deadline or self.tx == Tx.CLOSED:
            return
        self.deadline = 0.0
        if self.reader.parsing:
            self._refuse(Failure(408, "Timed out reading the request.", "request_timeout"))
        elif self.tx == Tx.IDLE and not self.queue:
            self._close()  # idle keep-alive, or a connection that never sent a request

    def shutdown(self) -> None:
        """Drain: close now if idle; else answer what is being read or answered, then close."""
        self.draining = True
        if self.reader.parsing:
            return  # received() answers it with Connection: close
        self._no_more_requests()
