"""Moving one request to a backend and its reply back: whole bodies, SSE streams with flow
control, retries on a stale pooled connection, timeouts, and the client going away.

Driven by upstream callbacks; a task is only created when a new connection must be opened.
The exchange is handed what it needs: the request's cycle (where the answer is written and
the record kept), and a feedback sink for what it learns of the backend. How the reply's body
goes back (whole, or as it comes) is replies.py's.
"""

import asyncio
from collections.abc import Callable
from time import perf_counter
from typing import Any, Final, Protocol

from devstral_translate.dialect import ResponseTranslator

from .cycle import Cycle, Tx
from .errors import Failure, backend_failure
from .http import HOP_BY_HOP, relay_headers
from .replies import Buffered, Passing, begin
from .states import into, refused
from .tasks import background

_SKIP_REPLY = HOP_BY_HOP | {b"date", b"server", b"x-request-id"}


class Ex:
    """An exchange's states. CONNECTING -> SENT -> BUFFERING | STREAMING | RAW -> DONE;
    any state -> DONE (client gone, timeout, failure). A stale pooled connection sends it
    back to CONNECTING once."""

    CONNECTING: Final = 0  # waiting for a connection to the backend
    SENT: Final = 1  # the request is written; no reply head yet
    BUFFERING: Final = 2  # a whole reply gathered (JSON to translate, or an error)
    STREAMING: Final = 3  # SSE frames passed on as they come, through the dialect
    RAW: Final = 4  # a relayed body passed on as it comes
    DONE: Final = 5
    NAMES: Final = ("CONNECTING", "SENT", "BUFFERING", "STREAMING", "RAW", "DONE")


# state -> bit mask of the states it may go to
EX_NEXT = (
    1 << Ex.SENT | 1 << Ex.DONE,  # CONNECTING
    1 << Ex.CONNECTING | 1 << Ex.BUFFERING | 1 << Ex.STREAMING | 1 << Ex.RAW | 1 << Ex.DONE,  # SENT
    1 << Ex.DONE,  # BUFFERING
    1 << Ex.DONE,  # STREAMING
    1 << Ex.DONE,  # RAW
    0,  # DONE
)
_SENT, _DONE = Ex.SENT, Ex.DONE
_CLOSED = Tx.CLOSED
_INTO_SENT, _INTO_DONE = into(EX_NEXT, _SENT), into(EX_NEXT, _DONE)


class Feedback(Protocol):
    """What an exchange tells about its backend (router.Router): how it went, and that a
    capped backend has room again."""

    orphaned: int  # backend requests found still running after their client left

    def outcome(self, backend: Any, ok: bool) -> None: ...

    def connected(self, backend: Any, up: bool, why: BaseException | None = None) -> None: ...

    def freed(self, backend: Any, client: str | None = None) -> None: ...


def _content_type(headers: list[tuple[bytes, bytes]]) -> bytes:
    for k, v in headers:
        if k == b"content-type":
            return v
    return b""


def reply_headers(headers: list[tuple[bytes, bytes]], origin: bytes = b"") -> bytes:
    """The backend's headers for the client; a Location naming the backend's own address
    (a framework's trailing-slash redirect) becomes a path on the proxy."""
    out = relay_headers(headers, _SKIP_REPLY)
    if origin and origin in out:
        out = out.replace(b"location: " + origin + b"/", b"location: /").replace(b"location: " + origin + b"\r\n", b"location: /\r\n")
    return out


def _head_only(exchange: "Exchange", status: int, headers: list[tuple[bytes, bytes]], origin: bytes) -> None:
    """The reply to a HEAD request: no body follows, whatever Content-Length says (httptools
    cannot be told so: the connection is not reused)."""
    exchange._end()
    exchange.detach()
    length = next((v for k, v in headers if k == b"content-length"), b"")
    exchange.reply.respond(status, reply_headers(headers, origin), b"", int(length) if length.isdigit() else 0)


class Exchange:
    """One request relayed to one backend: the upstream connection's sink, its cycle's handler."""

    __slots__ = tuple(
        "reply backend head body translator raw loop up status state answer retried last task deadline"
        " on_tokens hide_usage record head_only feedback failover resend client ended".split()
    )
    abandonable = True  # the client's connection closing (EOF) means it left: cancel

    def __init__(self, reply: Cycle, feedback: Feedback, backend, head: bytes, body: bytes, translator=None, *, head_only=False, raw=False) -> None:
        self.reply, self.record = reply, reply.record  # the request's cycle (where the answer is written), its record (timings, usage)
        self.feedback, self.backend = feedback, backend
        self.head, self.body = head, body  # the request as the backend gets it
        self.translator: ResponseTranslator | None = translator
        self.head_only = head_only  # a HEAD request: no body follows the reply's head
        self.raw = raw  # relay any successful reply as it comes (pass-through routes)
        self.loop = reply.loop
        self.state = Ex.CONNECTING
        self.up: Any = None
        self.answer: Buffered | Passing | None = None  # how the reply's body goes back, from its head on
        self.status, self.retried, self.last = 0, False, 0.0  # the reply's; sent again after a stale pooled connection; the last byte's time
        self.task: asyncio.Task | None = None
        self.deadline = self.loop.time() + reply.limits.request_timeout
        self.on_tokens: Callable[[int], Any] | None = None  # called with usage.total_tokens when the reply reports it
        self.hide_usage = False  # the usage chunk was asked for by the proxy, not the client
        self.failover: Callable[[Any], None] | None = None  # called with this backend when it cannot be reached: try another
        self.resend: Callable[[int, bytes], bool] | None = None  # called with a refusal (status, body): True when it sent the request again
        self.client: str | None = None  # on a capped backend: whose slot this is (the queue's share per client)
        self.ended: Callable[[], Any] | None = None  # called soon after the exchange ends, however it ends

    def start(self) -> None:
        self.reply.attach(self)
        self.backend.outstanding += 1
        up = self.backend.pool.acquire()
        if up is None:
            self.task = background(self._open(), self.loop)
        else:
            self._send(up)

    async def _open(self) -> None:
        backend = self.backend
        try:
            up = await backend.pool.connect()
        except OSError as exc:  # refused, unreachable, or TimeoutError
            self.feedback.connected(backend, False, exc)
            self.feedback.outcome(backend, False)
            if self.failover is not None and self.state != Ex.DONE:  # nothing was written: try another
                self._end()
                self.failover(backend)
                return
            self.fail(backend_failure(backend.name, exc))
            return
        finally:
            self.task = None
        self.feedback.connected(backend, True)
        if self.state == Ex.DONE:
            backend.pool.release(up)
        else:
            self._send(up)

    def _send(self, up) -> None:
        self.up = up
        if not _INTO_SENT >> self.state & 1:  # _to, inline on the per-request path
            refused("Ex", Ex.NAMES, self.state, _SENT)
        self.state = _SENT
        self.last = self.loop.time()
        self.record.t_sent = perf_counter()
        if self.reply.write_paused:  # the client is not reading: neither does the backend
            up.pause()
        up.send(self, self.head, self.body)

    # ---- upstream sink
    def on_head(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        if self.reply.tx == _CLOSED:  # the client is gone (Cycle.closed, without the call)
            self._orphaned()
            return
        self.last = self.loop.time()
        self.status = status
        self.feedback.outcome(self.backend, status < 500)
        origin = self.backend.origin if 300 <= status < 400 or status == 201 else b""  # who may send a Location
        if self.head_only:
            _head_only(self, status, headers, origin)
            return
        answer = self.answer = begin(self, status, reply_headers(headers, origin), _content_type(headers))
        new = Ex.BUFFERING if isinstance(answer, Buffered) else Ex.STREAMING if answer.stream is not None else Ex.RAW
        if not EX_NEXT[self.state] >> new & 1:  # _to, inline on the per-request path
            refused("Ex", Ex.NAMES, self.state, new)
        self.state = new

    def on_body(self, data: bytes) -> None:
        self.last = self.loop.time()
        self.answer.feed(data)  # type: ignore[union-attr]  # a body follows its head

    def on_read(self) -> None:
        if self.answer is not None:
            self.answer.flush()

    def on_end(self) -> None:
        if self.state == Ex.DONE:
            return
        if self.reply.tx == _CLOSED:  # the client is gone (Cycle.closed, without the call)
            self._orphaned()
            return
        answer = self.answer
        self._end()
        answer.end()  # type: ignore[union-attr]  # the end follows a head

    def on_lost(self, up, exc: BaseException | None) -> None:
        if self.state == Ex.DONE:
            return
        if up.stale() and not self.retried:
            # A pooled connection the backend had closed: nothing reached it, so send again.
            self.retried = True
            self.up = None
            self._to(Ex.CONNECTING)
            self.task = background(self._open(), self.loop)
            return
        if self.status == 0:
            self.feedback.outcome(self.backend, False)
        reason = f"Backend '{self.backend.name}' closed the connection" + (f" ({exc})" if exc else "")
        self._broken(Failure(502, reason + ".", "backend_disconnected"))

    def hold_client(self, held: bool) -> None:
        """The backend stopped (True) or resumed reading what is written to it."""
        self.reply.hold_reading(held)

    # ---- as the cycle's handler
    def cancel(self) -> None:
        """The client went away: stop the backend's work at once."""
        if self.state == Ex.DONE:
            return
        self._end()
        if self.task is not None:
            self.task.cancel()
        if self.up is not None:
            self.up.detach()

    def pause(self) -> None:
        if self.up is not None and self.state != Ex.DONE:
            self.up.pause()

    def resume(self) -> None:
        if self.up is not None and self.state != Ex.DONE:
            self.up.resume()

    def expire(self, now: float) -> None:
        """Called by the server's sweep: no byte from the backend within `timeout`."""
        if self.state == Ex.DONE or self.up is None:
            return
        if now >= self.deadline:
            self.detach()
            self._broken(Failure(504, f"The request did not finish within {self.reply.limits.request_timeout:g} s.", "request_timeout"))
        elif now >= self.last + self.backend.timeout:
            self.feedback.outcome(self.backend, False)
            self.detach()
            self._broken(Failure(504, f"Backend '{self.backend.name}' did not answer within {self.backend.timeout:g} s.", "backend_timeout"))

    # ---- for the reply body (replies.Source)
    def detach(self) -> None:  # let go of the upstream connection early: it cannot be reused
        if self.up is not None:
            self.up.detach()

    def fail(self, failure: Failure) -> None:
        if self.state != Ex.DONE:
            self._end()
            self.reply.fail(failure)

    # ---- endings
    def _broken(self, failure: Failure) -> None:
        """The backend failed: answer with an error if nothing was sent yet, else end what was."""
        if self.state == Ex.STREAMING or self.state == Ex.RAW:
            answer = self.answer
            self._end()
            answer.broken(failure)  # type: ignore[union-attr]
        else:
            self.fail(failure)

    def _to(self, new: int) -> None:
        if not EX_NEXT[self.state] >> new & 1:
            refused("Ex", Ex.NAMES, self.state, new)
        self.state = new

    def _end(self) -> None:
        if self.state != _DONE:
            if not _INTO_DONE >> self.state & 1:  # _to, inline on the per-request path
                refused("Ex", Ex.NAMES, self.state, _DONE)
            self.state = _DONE
            self.answer = None  # it points back here: no cycle outlives the exchange
            if self.ended is not None:
                self.loop.call_soon(self.ended)
            backend = self.backend
            backend.outstanding -= 1
            if backend.max_in_flight:  # room for a queued request (after this callback returns)
                self.loop.call_soon(self.feedback.freed, backend, self.client)

    def _orphaned(self) -> None:
        """The client is gone while the backend still works for it: counted, stopped now."""
        if self.state != Ex.DONE:
            self.feedback.orphaned += 1
            self.cancel()
