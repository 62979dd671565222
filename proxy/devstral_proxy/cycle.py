"""One request's cycle on its client connection: what the proxy knows of the request while it
answers it (record, caller, front, the handler in charge) and the answer written through it.

The server protocol makes one per request and hands it to the application; every handler
receives the cycle, never the connection. The connection keeps only connection concerns.
"""

from time import perf_counter
from typing import Any, Final, Protocol

from . import flow
from .caller import Caller
from .errors import ErrorShape, Failure, errors_for
from .http import CHUNK_END, CHUNK_TAIL_END, JSON, close_delimited_head, response_head
from .parsed import Request
from .record import Record
from .states import into, refused


class Tx:
    """The answering side of one request. QUEUED -> WAITING -> (STREAMING ->) DONE; any state
    but DONE -> CLOSED (the connection went away or was aborted). Every change goes through
    Cycle._to, checked against TX_NEXT (plain ints: a table lookup a transition)."""

    QUEUED: Final = 0  # read, behind an earlier request of its connection
    WAITING: Final = 1  # a handler has it; nothing written yet
    STREAMING: Final = 2  # the head is written; chunks follow
    DONE: Final = 3  # answered in full
    CLOSED: Final = 4  # the connection closed before the answer was complete
    NAMES: Final = ("QUEUED", "WAITING", "STREAMING", "DONE", "CLOSED")


# state -> bit mask of the states it may go to
TX_NEXT = (
    1 << Tx.WAITING | 1 << Tx.CLOSED,  # QUEUED
    1 << Tx.STREAMING | 1 << Tx.DONE | 1 << Tx.CLOSED,  # WAITING
    1 << Tx.DONE | 1 << Tx.CLOSED,  # STREAMING
    0,  # DONE
    0,  # CLOSED
)
_WAITING, _DONE = Tx.WAITING, Tx.DONE
_INTO_WAITING, _INTO_DONE = into(TX_NEXT, _WAITING), into(TX_NEXT, _DONE)


class Handler(Protocol):
    """What is in charge of a request while its answer is not complete (an exchange with a
    backend, a queued request, a task): it follows the client's connection."""

    abandonable: bool  # the client half-closing means it left (cancel)

    def cancel(self) -> None: ...

    def pause(self) -> None: ...

    def resume(self) -> None: ...

    def expire(self, now: float) -> None: ...


class Connection(Protocol):
    """What a cycle needs of its connection (server.HttpProtocol)."""

    loop: Any
    limits: Any
    transport: Any
    flow: Any

    def keeps(self, cycle: "Cycle") -> bool: ...

    def answered(self, cycle: "Cycle") -> None: ...

    def abort(self) -> None: ...


class Cycle:
    """A handler answers through respond() / fail() / fail_backend(), or start_stream(),
    write_chunk(), end_stream(); a handler that answers later attach()es itself first. A
    front protocol's request becomes a chat request with use_front() (path, query, body)."""

    __slots__ = ("conn", "req", "record", "tx", "handler", "caller", "front", "path", "query", "body", "keep_alive", "fit", "failure", "variant")

    def __init__(self, conn: Connection, req: Request, failure: Failure | None = None) -> None:
        self.conn = conn
        self.req = req
        self.record = Record(req.method, req.path, req.client, len(req.body), t0=perf_counter())
        self.tx = Tx.QUEUED
        self.handler: Handler | None = None
        self.caller: Caller | None = None  # resolved at admission
        self.front: Any = None  # a front protocol's request (fronts.Front)
        self.path = req.path  # what is sent on: the client's, or a front's chat request
        self.query = req.query
        self.body = req.body
        self.keep_alive = req.keep_alive
        self.fit = 0  # after the backend refused max_tokens for the context length: the max_tokens sent (once)
        self.failure = failure  # refused before any handler (the parser, the connection's admission)
        self.variant: Any = None  # split.Variant: the model of a weighted split this request goes to

    def _to(self, new: int) -> None:
        if not TX_NEXT[self.tx] >> new & 1:
            refused("Tx", Tx.NAMES, self.tx, new)
        self.tx = new

    # ---- for the connection
    def begin(self) -> None:
        if not _INTO_WAITING >> self.tx & 1:  # _to, inline on the per-request path
            refused("Tx", Tx.NAMES, self.tx, _WAITING)
        self.tx = _WAITING

    def lost(self) -> None:
        """The connection is gone before the answer was complete: its handler is cancelled."""
        streaming = self.tx == Tx.STREAMING
        if self.tx != Tx.CLOSED:
            self._to(Tx.CLOSED)
        handler, self.handler = self.handler, None
        if handler is not None:
            handler.cancel()
        if not self.record.status or streaming:
            self.record.status = 499  # nginx's "client closed request"

    # ---- for handlers
    @property
    def errors(self) -> ErrorShape:
        """The caller's protocol's error shape (Anthropic's on its route), read when failing."""
        return errors_for(self.record.route)

    @property
    def waiting(self) -> bool:
        """Still to be answered, and by whoever asks (nothing written yet)."""
        return self.tx == Tx.WAITING

    @property
    def closed(self) -> bool:
        return self.tx == Tx.CLOSED

    @property
    def loop(self) -> Any:
        return self.conn.loop

    @property
    def limits(self) -> Any:
        return self.conn.limits

    @property
    def write_paused(self) -> bool:
        return self.conn.flow.write_paused

    def attach(self, handler: Handler) -> None:
        """`handler` is in charge until the answer is complete (or another takes over)."""
        self.handler = handler

    def detach(self, handler: Handler) -> None:
        if self.handler is handler:
            self.handler = None

    def use_front(self, front, path: str, body: bytes) -> None:
        """A front protocol's request read into `body` for `path`; its query stays with it."""
        self.front = front
        self.path = path
        self.query = b""
        self.body = body

    def respond(self, status: int, headers: bytes, body: bytes, head_length: int | None = None) -> None:
        """A whole reply. `head_length`: for HEAD, the Content-Length the GET would have."""
        if self.tx != Tx.WAITING:
            return
        record = self.record
        record.status = status
        record.bytes_out = len(body)
        if record.rid:
            headers = b"x-request-id: %s\r\n%s%s" % (record.rid.encode(), record.extra, headers)
        head = response_head(status, headers, len(body) if head_length is None else head_length, self.conn.keeps(self))
        if self.req.method == b"HEAD":
            self.conn.transport.write(head)
        else:
            self.conn.transport.writelines((head, body))
        self._done()

    def fail(self, failure: Failure) -> None:
        """Answer with an error in the caller's protocol's shape."""
        self.respond(failure.status, JSON + failure.headers, self.errors.failure(failure))

    def fail_backend(self, status: int, body: bytes) -> None:
        """Answer with a backend's error reply, in the caller's protocol's shape."""
        self.respond(status, JSON, self.errors.backend(status, body))

    def start_stream(self, status: int, headers: bytes) -> None:
        """Begin a reply whose body follows in write_chunk() calls."""
        if self.tx != Tx.WAITING:
            return
        self._to(Tx.STREAMING)
        record = self.record
        record.status = status
        if record.rid:
            headers = b"x-request-id: %s\r\n%s%s" % (record.rid.encode(), record.extra, headers)
        if self.req.http11:
            self.conn.transport.write(response_head(status, headers, None, self.conn.keeps(self)))
        else:  # HTTP/1.0 has no chunked encoding: the close ends the body
            self.keep_alive = False
            self.conn.transport.write(close_delimited_head(status, headers))

    def write_chunk(self, data: bytes, tail: bytes = b"\r\n") -> None:
        """One piece of a streamed body; `tail` closes its chunk (end_stream's also ends the body)."""
        if not data or self.tx != Tx.STREAMING:
            return
        record = self.record
        if not record.t_first:
            record.t_first = perf_counter()
        record.bytes_out += len(data)
        if self.req.http11:
            self.conn.transport.writelines((b"%x\r\n" % len(data), data, tail))
        else:
            self.conn.transport.write(data)

    def end_stream(self, data: bytes = b"") -> None:
        """The end of a streamed body, after its last piece `data` (one write for both)."""
        if self.tx != Tx.STREAMING:
            return
        if data:
            self.write_chunk(data, CHUNK_TAIL_END)
        elif self.req.http11:
            self.conn.transport.write(CHUNK_END)
        self._done()

    def abort(self) -> None:
        """Drop the connection: a reply already under way cannot be completed."""
        if self.tx == Tx.WAITING or self.tx == Tx.STREAMING:
            self._to(Tx.CLOSED)
            self.conn.abort()

    def hold_reading(self, held: bool) -> None:
        """Stop reading this client while the backend does not read (flow control)."""
        if held:
            self.conn.flow.hold(flow.BACKEND)
        else:
            self.conn.flow.release(flow.BACKEND)

    def _done(self) -> None:
        if not _INTO_DONE >> self.tx & 1:
            refused("Tx", Tx.NAMES, self.tx, _DONE)
        self.tx = _DONE
        self.handler = None
        self.conn.answered(self)
