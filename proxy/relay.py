"""Moving one request to a backend and its reply back: whole bodies, SSE streams with flow
control, retries on a stale pooled connection, timeouts, and the client going away.

Driven by upstream callbacks; a task is only created when a new connection must be opened.
The exchange is handed what it needs: the request's cycle (where the answer is written and
the record kept), and a feedback sink for what it learns of the backend.
"""

from time import perf_counter

from devstral_translate.sse import WholeFrames
from devstral_translate.usage import HideUsage, usage_counts
from devstral_translate.wire import is_json_object

from .errors import Failure, backend_failure
from .http import HOP_BY_HOP, relay_headers
from .states import moved
from .tasks import background

_SKIP_REPLY = HOP_BY_HOP | {b"date", b"server", b"x-request-id"}
CHUNK_FRAMING = 16  # bytes of a read around one chunk's data: its size line and CRLFs, or the body's end


class Ex:
    """An exchange's states. CONNECTING -> SENT -> BUFFERING | STREAMING | RAW -> DONE;
    any state -> DONE (client gone, timeout, failure). A stale pooled connection sends it
    back to CONNECTING once."""

    CONNECTING = 0  # waiting for a connection to the backend
    SENT = 1  # the request is written; no reply head yet
    BUFFERING = 2  # a whole reply gathered (JSON to translate, or an error)
    STREAMING = 3  # SSE frames passed on as they come, through the dialect
    RAW = 4  # a relayed body passed on as it comes
    DONE = 5
    NAMES = ("CONNECTING", "SENT", "BUFFERING", "STREAMING", "RAW", "DONE")


# state -> bit mask of the states it may go to
EX_NEXT = (
    1 << Ex.SENT | 1 << Ex.DONE,  # CONNECTING
    1 << Ex.CONNECTING | 1 << Ex.BUFFERING | 1 << Ex.STREAMING | 1 << Ex.RAW | 1 << Ex.DONE,  # SENT
    1 << Ex.DONE,  # BUFFERING
    1 << Ex.DONE,  # STREAMING
    1 << Ex.DONE,  # RAW
    0,  # DONE
)


def reply_headers(headers: list[tuple[bytes, bytes]], origin: bytes = b"") -> bytes:
    """The backend's headers for the client; a Location naming the backend's own address
    (a framework's trailing-slash redirect) becomes a path on the proxy."""
    out = relay_headers(headers, _SKIP_REPLY)
    if origin and origin in out:
        out = out.replace(b"location: " + origin + b"/", b"location: /").replace(b"location: " + origin + b"\r\n", b"location: /\r\n")
    return out


def _not_json(backend: str) -> Failure:
    return Failure(502, f"Backend '{backend}' sent a reply that is not a JSON object.", "bad_backend_response")


class _Handler:
    """The exchange as its client connection's active handler (the client leaves, stops
    reading, reads again; the sweep's deadlines), the usage it notes, and the ways it ends."""

    __slots__ = ()
    abandonable = True  # the client's connection closing (EOF) means it left: cancel
    state: int
    up: object
    task: object
    record: object
    on_tokens: object

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

    def hold_client(self, held: bool) -> None:
        """The backend stopped (True) or resumed reading what is written to it."""
        self.reply.hold_reading(held)

    def _count(self, data: bytes) -> None:
        """Note the usage a reply reports in the request's record."""
        usage = usage_counts(data)
        if usage is not None:
            self.record.usage = usage
            if self.on_tokens is not None:
                self.on_tokens(usage[0] + usage[1])

    # ---- endings
    def expire(self, now: float) -> None:
        """Called by the server's sweep: no byte from the backend within `timeout`."""
        if self.state == Ex.DONE or self.up is None:
            return
        if now >= self.deadline:
            self.up.detach()
            self._broken(Failure(504, f"The request did not finish within {self.reply.limits.request_timeout:g} s.", "request_timeout"))
        elif now >= self.last + self.timeout:
            self.feedback.outcome(self.backend, False)
            self.up.detach()
            self._broken(Failure(504, f"Backend '{self.backend.name}' did not answer within {self.timeout:g} s.", "backend_timeout"))

    def _broken(self, failure: Failure) -> None:
        """The backend failed: answer with an error if nothing was sent yet, else end what was."""
        state = self.state
        if state == Ex.STREAMING or state == Ex.RAW:
            self.record.error = f"{failure.code}: {failure.message}"
        if state == Ex.STREAMING:
            self._end()
            self.parts.append(self.stream.error(failure.status, failure.message, failure.code))  # in the client's protocol
            self.reply.end_stream(b"".join(self.parts))  # the frames read before the break, then the error
        elif state == Ex.RAW:
            self._end()
            self.reply.abort()
        else:
            self._fail(failure)

    def _fail(self, failure: Failure) -> None:
        if self.state != Ex.DONE:
            self._end()
            self.reply.fail(failure)

    def _to(self, new: int) -> None:
        self.state = moved("Ex", Ex.NAMES, EX_NEXT, self.state, new)

    def _end(self) -> None:
        if self.state != Ex.DONE:
            self._to(Ex.DONE)
            backend = self.backend
            backend.outstanding -= 1
            if backend.max_in_flight:  # room for a queued request (after this callback returns)
                self.loop.call_soon(self.feedback.freed, backend, self.client)

    def _orphaned(self) -> None:
        """The client is gone while the backend still works for it (a path that did not
        cancel): counted, and stopped now. Callers check `reply.closed` first."""
        if self.state != Ex.DONE:
            self.feedback.orphaned += 1
            self.cancel()


class Exchange(_Handler):
    """One client request relayed to one backend. It is the upstream connection's sink, and
    its cycle's handler (cancel, pause, resume, expire)."""

    __slots__ = tuple(
        "reply backend head body translator timeout raw loop up status state parts size stream headers retried last task deadline"
        " on_tokens hide_usage record head_only feedback failover resend client".split()
    )

    def __init__(self, reply, feedback, backend, head: bytes, body: bytes, translator=None, *, head_only=False, raw=False) -> None:
        self.reply = reply  # the request's cycle: where the answer is written
        self.record = reply.record  # where timings and usage are noted
        self.feedback = feedback  # outcome(backend, ok), connected(backend, up)
        self.backend = backend
        self.head = head
        self.body = body
        self.translator = translator
        self.head_only = head_only  # a HEAD request: no body follows the reply's head
        self.raw = raw  # relay any successful reply as it comes (pass-through routes)
        self.timeout = backend.timeout
        self.loop = reply.loop
        self.state = Ex.CONNECTING
        self.up = None
        self.status = 0
        self.parts: list[bytes] = []
        self.size = 0  # bytes of a buffered reply
        self.stream = None
        self.headers = b""
        self.retried = False
        self.last = 0.0
        self.task = None
        self.deadline = self.loop.time() + reply.limits.request_timeout
        self.on_tokens = None  # called with usage.total_tokens when the reply reports it
        self.hide_usage = False  # the usage chunk was asked for by the proxy, not the client
        self.failover = None  # called with this backend when it cannot be reached: try another
        self.resend = None  # called with a refusal (status, body): True when it sent the request again
        self.client = None  # on a capped backend: whose slot this is (the queue's share per client)

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
            self.feedback.connected(backend, False)
            self.feedback.outcome(backend, False)
            if self.failover is not None and self.state != Ex.DONE:  # nothing was written: try another
                self._end()
                self.failover(backend)
                return
            self._fail(backend_failure(backend.name, exc))
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
        self._to(Ex.SENT)
        self.last = self.loop.time()
        self.record.t_sent = perf_counter()
        if self.reply.write_paused:  # the client is not reading: neither does the backend
            up.pause()
        up.send(self, self.head, self.body)

    # ---- upstream sink
    def on_head(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        if self.reply.closed:
            self._orphaned()
            return
        self.last = self.loop.time()
        self.status = status
        self.feedback.outcome(self.backend, status < 500)
        origin = self.backend.origin if 300 <= status < 400 or status == 201 else b""  # who may send a Location
        if self.head_only:
            # No body follows, whatever Content-Length says; httptools cannot be told so, so
            # the connection is not reused.
            self._end()
            self.up.detach()
            length = next((v for k, v in headers if k == b"content-length"), b"")
            self.reply.respond(status, reply_headers(headers, origin), b"", int(length) if length.isdigit() else 0)
            return
        ctype = b""
        for k, v in headers:
            if k == b"content-type":
                ctype = v
                break
        if status < 300 and ctype.startswith(b"text/event-stream"):
            self._to(Ex.STREAMING)
            self.stream = self.translator.stream() if self.translator is not None else WholeFrames()
            if self.hide_usage:
                self.stream = HideUsage(self.stream)
            self.reply.start_stream(status, reply_headers(headers, origin))
        elif self.raw and status < 400:
            self._to(Ex.RAW)
            self.reply.start_stream(status, reply_headers(headers, origin))
        else:
            self._to(Ex.BUFFERING)
            self.headers = reply_headers(headers, origin)

    def on_body(self, data: bytes) -> None:
        self.last = self.loop.time()
        if self.state == Ex.BUFFERING:
            self.size += len(data)
            if self.size > self.backend.max_reply_bytes:
                self.up.detach()
                limit = self.backend.max_reply_bytes
                self._fail(Failure(502, f"Backend '{self.backend.name}' sent a reply over {limit} bytes (max_reply_bytes).", "reply_too_large"))
                return
            self.parts.append(data)
            return
        if data.find(b'"prompt_tokens"') != -1:  # (find: `bytes in bytes` costs ~2x on 3.11)
            self._count(data)
        size = len(data)
        if self.stream is not None:
            data = self.stream.feed(data)
            if not data:
                return
        parts = self.parts
        if parts or self.up.read_size - size > CHUNK_FRAMING:
            # more of this read may follow (several frames a read: the backend is ahead, or
            # the proxy behind): gathered, and written at the read's end in one write
            parts.append(data)
            self.up.held = True
        else:
            self.reply.write_chunk(data)

    def on_read(self) -> None:
        parts = self.parts
        if parts and (self.state == Ex.STREAMING or self.state == Ex.RAW):
            self.reply.write_chunk(parts[0] if len(parts) == 1 else b"".join(parts))
            parts.clear()

    def on_end(self) -> None:
        state = self.state
        if state == Ex.DONE:
            return
        if self.reply.closed:
            self._orphaned()
            return
        self._end()
        reply = self.reply
        if state == Ex.BUFFERING:
            self._whole(reply, b"".join(self.parts))
            return
        if self.stream is not None:
            self.parts.append(self.stream.close())
        reply.end_stream(b"".join(self.parts))  # the last frames and the end in one write

    def _whole(self, reply, body: bytes) -> None:
        """Answer with a whole reply of the backend: its error, or its translated JSON."""
        status = self.status
        if status >= 400:
            if self.resend is not None and self.resend(status, body):
                return  # sent again (a refusal the dialect learnt from): that exchange answers
            if status == 503 and self.failover is not None:
                self.failover(self.backend)  # the engine refused to queue it (vLLM's max-num-queued-reqs): nothing generated
                return
            reply.fail_backend(status, body)
        elif not self.raw and not is_json_object(body):
            reply.fail(_not_json(self.backend.name))
        else:
            self.record.t_upstream_end = perf_counter()
            self._count(body)
            if self.translator is not None and status == 200:
                try:
                    body = self.translator.body(body)
                except Exception:  # a reply the dialect cannot read is the backend's fault
                    reply.fail(_not_json(self.backend.name))
                    return
            reply.respond(status, self.headers, body)

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
