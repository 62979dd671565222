"""The client-facing HTTP/1.1 connection: keep-alive, pipelined requests answered in order,
read and idle deadlines, flow control; one cycle.Cycle per request carries its answer.

Requests are read by reader.RequestReader; what to answer is the application's business
(the `Application` protocol below), so this module imports no handler.
"""

import asyncio
import weakref
from collections import deque
from collections.abc import Callable
from time import perf_counter
from typing import Protocol

from . import flow
from .cycle import Cycle
from .errors import Failure
from .flow import FlowControl
from .parsed import Request
from .reader import UPGRADE, RequestReader, Rx
from .record import Record

__all__ = ["Application", "Cycle", "HttpProtocol", "Limits", "Request"]
LINGER = 5.0  # seconds a refused request's remaining upload is read and dropped before the close


class Application(Protocol):
    """What a connection needs from the application serving it."""

    connections: set
    handshaking: weakref.WeakSet  # accepted, handshake under way (TLS): freed without a word if it fails
    limits: "Limits"

    def admit(self, conn: "HttpProtocol") -> Failure | None: ...

    def handle(self, cycle: Cycle) -> None: ...

    def finished(self, record: Record, now: float) -> None: ...

    def log_error(self, what: str, exc: BaseException) -> None: ...


Screen = Callable[[bytes, bytes, list[tuple[bytes, bytes]]], Failure | None]


class Limits:
    __slots__ = (
        "max_body",
        "max_header",
        "header_timeout",
        "body_timeout",
        "keepalive_timeout",
        "max_pipeline",
        "request_timeout",
        "eof_aborts",
        "screen",
        "tls",
    )

    def __init__(self, server_config, max_body: int) -> None:
        self.max_body = max_body
        self.max_header = server_config.max_header_bytes
        self.header_timeout = server_config.header_timeout
        self.body_timeout = server_config.body_timeout
        self.keepalive_timeout = server_config.keepalive_timeout
        self.max_pipeline = server_config.max_pipeline
        self.request_timeout = server_config.request_timeout
        self.eof_aborts = server_config.half_close == "abort"
        self.screen: Screen | None = None  # the application's check of each request's head
        self.tls = False  # HTTPS: a connection is made (accepted) before its handshake ends


class HttpProtocol(asyncio.Protocol):
    """One client connection. Each request read becomes a Cycle that `app.handle(cycle)` answers;
    its handler (while it has one) follows the connection: cancel(), pause(), resume(), expire().
    Requests read while one is answered wait in `queue`; the next starts only when the client
    reads what was written (flow.OUTPUT), so no producer can outrun a slow reader."""

    transport: asyncio.Transport  # set by connection_made, as are `flow` and `reader`
    flow: FlowControl
    reader: RequestReader

    def __init__(self, app: Application, loop: asyncio.AbstractEventLoop) -> None:
        self.app = app
        self.limits: Limits = app.limits  # the limits in force when the connection opened
        self.loop = loop
        if self.limits.tls:  # counted from accept, while its handshake runs (connection_made follows it)
            app.handshaking.add(self)
        self.client = ""
        self.linger = False  # a refusal cut a request short: its client may still be sending
        self.cycle: Cycle | None = None  # the request being answered
        self.queue: deque[Cycle] = deque()  # requests read, waiting for their turn
        self.closed = self.draining = False  # draining: answer the request being read, then close
        self.deadline = 0.0  # one at a time, checked by the sweep: head, body, keep-alive, linger

    @property
    def idle(self) -> bool:
        """No request being answered or waiting to be."""
        return self.cycle is None and not self.queue

    # ---- asyncio.Protocol
    def connection_made(self, transport) -> None:
        self.reader = RequestReader(self, self.limits)  # made here: it and the connection point at each other
        self.transport = transport
        self.flow = FlowControl(transport)
        self.deadline = self.loop.time() + self.limits.header_timeout
        peer = transport.get_extra_info("peername")
        self.client = peer[0] if peer else ""
        if self.limits.tls:
            self.app.handshaking.discard(self)
        self.app.connections.add(self)
        refusal = self.app.admit(self)
        if refusal is not None:  # every request on this connection gets it, at the end of its head
            self.reader.screen = lambda method, url, headers: refusal

    def connection_lost(self, exc) -> None:
        self.closed, self.deadline = True, 0.0
        self.app.connections.discard(self)
        self.queue.clear()
        cycle, self.cycle = self.cycle, None
        if cycle is not None:  # the client left before its answer was complete
            cycle.lost()
            self.app.finished(cycle.record, perf_counter())
        self.reader.release()  # no reference cycle outlives the connection

    def data_received(self, data: bytes) -> None:
        failure = self.reader.feed(data)
        if failure is None:
            return
        if failure is UPGRADE:  # h2c, websocket, CONNECT: answered over HTTP/1.1, then the close
            self._no_more_requests()
        else:
            self._refuse(failure)

    def eof_received(self) -> bool:
        """The client closed its side: gone (half_close = "abort"), or answer what it sent, then close."""
        handler = self.cycle.handler if self.cycle is not None else None
        if self.reader.parsing:  # a request cut short by the close
            self._refuse(Failure(400, "The client closed its side in the middle of a request.", "bad_request"))
        elif self.limits.eof_aborts and handler is not None and handler.abandonable:
            return False  # gone (nginx's reading): the transport closes, the handler is cancelled
        else:
            self._no_more_requests()
        return True  # keep the transport open for writing

    def pause_writing(self) -> None:
        self.flow.output(paused=True)
        cycle = self.cycle
        if cycle is not None and cycle.handler is not None:
            cycle.handler.pause()

    def resume_writing(self) -> None:
        self.flow.output(paused=False)
        cycle = self.cycle
        if cycle is not None:
            if cycle.handler is not None:
                cycle.handler.resume()
        elif self.queue:
            self._next()

    # ---- from the reader
    def received(self, request: Request) -> None:
        self.deadline = 0.0
        cycle = Cycle(self, request)
        if self.draining:
            cycle.keep_alive = False
            self._no_more_requests(close_if_idle=False)
        if self.cycle is None and not self.queue and not self.flow.write_paused:
            self._start(cycle)
            return
        self.queue.append(cycle)
        if len(self.queue) >= self.limits.max_pipeline:
            self.flow.hold(flow.PIPELINE)

    # ---- answering (the cycle calls keeps(), answered(), abort())
    def _start(self, cycle: Cycle) -> None:
        self.cycle = cycle
        cycle.begin()
        try:
            self.app.handle(cycle)
        except Exception as exc:  # a bug must not take the connection down without an answer
            self.app.log_error("handler failed", exc)
            if cycle.handler is None and cycle.waiting:
                cycle.fail(Failure(500, "The proxy failed to handle the request.", "internal_error"))

    def keeps(self, cycle: Cycle) -> bool:
        """Whether the connection stays open after this reply (answers queued behind it keep it)."""
        return cycle.keep_alive and (self.reader.rx != Rx.DONE or bool(self.queue))

    def answered(self, cycle: Cycle) -> None:
        self.app.finished(cycle.record, perf_counter())
        self.cycle = None
        if self.flow.held:
            self.flow.release(flow.BACKEND)
        if self.closed:
            return
        if not cycle.keep_alive:
            self._close()
            return
        if self.queue:
            if not self.flow.write_paused:  # else resume_writing starts it
                self._next()
            return
        if self.reader.rx == Rx.DONE:
            self._close()
            return
        if self.reader.continue_pending:
            self.reader.send_continue()
        if self.reader.rx == Rx.IDLE:  # not in the middle of reading the next request
            self.deadline = self.loop.time() + self.limits.keepalive_timeout

    def abort(self) -> None:
        """Drop the connection (a reply under way cannot be completed; a drain's end)."""
        if not self.closed:
            self.closed = True
            self.transport.abort()

    def _next(self) -> None:
        if len(self.queue) <= self.limits.max_pipeline:
            self.flow.release(flow.PIPELINE)
        self._start(self.queue.popleft())

    # ---- reading, deadlines
    def _refuse(self, failure: Failure) -> None:
        """The reader refuses what it reads: a request of its own, answered like all, then the close."""
        self._no_more_requests(close_if_idle=False)
        self.deadline = 0.0
        self.linger = True
        cycle = Cycle(self, self.reader.partial(), failure)
        cycle.keep_alive = False
        if self.idle:
            self._start(cycle)
        else:
            self.queue.append(cycle)

    def _no_more_requests(self, close_if_idle: bool = True) -> None:
        self.reader.stop()
        self.flow.hold(flow.STOPPED)
        if close_if_idle and self.idle:
            self._close()

    def _close(self) -> None:
        if self.closed:
            return
        if self.linger:  # a refusal cut a request short: a lingering close (flow.linger), bounded
            self.linger = False
            self.flow.linger()
            self.deadline = self.loop.time() + LINGER
            return
        self.closed = True
        self.transport.close()

    def expire(self, now: float) -> None:
        """Called by the server's sweep: act on a deadline that has passed (the handler's, then ours)."""
        cycle = self.cycle
        if cycle is not None and cycle.handler is not None:
            cycle.handler.expire(now)
        if now < self.deadline or not self.deadline or self.closed:
            return
        self.deadline = 0.0
        if self.reader.parsing:
            self._refuse(Failure(408, "Timed out reading the request.", "request_timeout"))
        elif self.idle:
            self._close()  # idle keep-alive, or a connection that never sent a request

    def shutdown(self) -> None:
        """Drain: close now if idle; else answer what is being read or answered, then close."""
        self.draining = True
        if self.reader.parsing:
            return  # received() answers it with Connection: close
        self._no_more_requests()
