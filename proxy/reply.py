"""The reply channel of a client connection: the answer to the request being served, as a
whole reply or a stream of chunks (HTTP/1.1 chunked, or close-delimited for HTTP/1.0), and
the answering side's states.

Mixed into server.HttpProtocol: a handler writes through these methods and nothing else.
"""

from time import perf_counter

from devstral_translate.anthropic import error_body as anthropic_error
from devstral_translate.anthropic import from_openai

from . import flow
from .errors import Failure, normalize_backend_error
from .http import CHUNK_END, CHUNK_TAIL_END, JSON, close_delimited_head, response_head
from .reader import Request, Rx

ANTHROPIC_ROUTE = "/v1/messages"  # its errors are in Anthropic's shape


class Tx:
    """The answering side of a connection. Every assignment of `tx` follows TX_NEXT; the unit
    tier checks each one against it (free here: these are set on every request)."""

    IDLE = 0  # no request being answered
    WAITING = 1  # a handler has the request; nothing written yet
    STREAMING = 2  # the head is written; chunks follow
    CLOSED = 3
    NAMES = ("IDLE", "WAITING", "STREAMING", "CLOSED")


# state -> bit mask of the states it may go to
TX_NEXT = (
    1 << Tx.WAITING | 1 << Tx.CLOSED,  # IDLE
    1 << Tx.IDLE | 1 << Tx.STREAMING | 1 << Tx.CLOSED,  # WAITING
    1 << Tx.IDLE | 1 << Tx.CLOSED,  # STREAMING
    0,  # CLOSED
)


class ReplyChannel:
    """Needs from its host: `tx`, `current` (the request), `transport`, `reader`, `queue`,
    `flow` and `_finish()` (the reply is complete)."""

    tx: int

    @property
    def closed(self) -> bool:
        return self.tx == Tx.CLOSED

    def respond(self, status: int, headers: bytes, body: bytes, head_length: int | None = None) -> None:
        """A whole reply for the current request. `head_length`: for HEAD, the Content-Length
        the GET would have."""
        request = self.current
        if request is None or self.tx != Tx.WAITING:
            return
        record = request.record
        record.status = status
        record.bytes_out = len(body)
        if record.rid:
            headers = b"x-request-id: %s\r\n%s%s" % (record.rid.encode(), record.extra, headers)
        head = response_head(status, headers, len(body) if head_length is None else head_length, self._keeps(request))
        if request.method == b"HEAD":
            self.transport.write(head)
        else:
            self.transport.writelines((head, body))
        self._finish()

    def _keeps(self, request: Request) -> bool:
        """Whether the connection stays open after this reply: answers still queued behind
        it keep it open even when reading has stopped for good."""
        return request.keep_alive and (self.reader.rx != Rx.DONE or bool(self.queue))

    def fail(self, failure: Failure) -> None:
        """Answer the current request with an error in OpenAI's shape (Anthropic's on its route)."""
        request = self.current
        if request is not None and request.record.route.startswith(ANTHROPIC_ROUTE):
            self.respond(failure.status, JSON + failure.headers, anthropic_error(failure.status, failure.message))
        else:
            self.respond(failure.status, JSON + failure.headers, failure.body())

    def fail_backend(self, status: int, body: bytes) -> None:
        """Answer with a backend's error reply, in the caller's protocol's shape."""
        body = normalize_backend_error(status, body)
        request = self.current
        if request is not None and request.record.route.startswith(ANTHROPIC_ROUTE):
            body = from_openai(status, body)
        self.respond(status, JSON, body)

    def start_stream(self, status: int, headers: bytes) -> None:
        """Begin a reply whose body follows in write_chunk() calls."""
        request = self.current
        if request is None or self.tx != Tx.WAITING:
            return
        self.tx = Tx.STREAMING
        record = request.record
        record.status = status
        if record.rid:
            headers = b"x-request-id: %s\r\n%s%s" % (record.rid.encode(), record.extra, headers)
        if request.http11:
            self.transport.write(response_head(status, headers, None, self._keeps(request)))
        else:  # HTTP/1.0 has no chunked encoding: the close ends the body
            request.keep_alive = False
            self.transport.write(close_delimited_head(status, headers))

    def write_chunk(self, data: bytes, tail: bytes = b"\r\n") -> None:
        """One piece of a streamed body; `tail` closes its chunk (end_stream's also ends the body)."""
        request = self.current
        if not data or self.tx != Tx.STREAMING:
            return
        record = request.record
        if not record.t_first:
            record.t_first = perf_counter()
        record.bytes_out += len(data)
        if request.http11:
            self.transport.writelines((b"%x\r\n" % len(data), data, tail))
        else:
            self.transport.write(data)

    def end_stream(self, data: bytes = b"") -> None:
        """The end of a streamed body, after its last piece `data` (one write for both)."""
        if self.tx != Tx.STREAMING:
            return
        if data:
            self.write_chunk(data, CHUNK_TAIL_END)
        elif self.current.http11:
            self.transport.write(CHUNK_END)
        self._finish()

    def abort(self) -> None:
        """Drop the connection: used when a reply already under way cannot be completed."""
        if self.tx != Tx.CLOSED:
            self.tx = Tx.CLOSED
            self.transport.abort()

    def hold_reading(self, held: bool) -> None:
        """Stop reading this client while the backend does not read (flow control)."""
        if held:
            self.flow.hold(flow.BACKEND)
        else:
            self.flow.release(flow.BACKEND)
