"""The two ways a backend's reply body goes back to the client: gathered whole (`Buffered`: a
JSON reply to translate, or an error) or passed on as it comes (`Passing`: SSE frames through
the stream translator, or a relayed body as it is).

The exchange (relay.py) picks one when the reply's head arrives and hands it each piece.
"""

from time import perf_counter
from typing import Any, Protocol

from devstral_translate.dialect import ResponseTranslator, StreamTranslator
from devstral_translate.sse import WholeFrames
from devstral_translate.usage import HideUsage, usage_counts
from devstral_translate.wire import is_json_object

from .errors import Failure


class Source(Protocol):
    """What a reply body needs of its exchange (relay.Exchange)."""

    reply: Any  # the request's cycle
    record: Any
    backend: Any
    up: Any  # the upstream connection: its read_size, and `held` to gather a read's pieces
    status: int
    raw: bool
    hide_usage: bool
    translator: ResponseTranslator | None
    on_tokens: Any  # called with a reply's total tokens, or None
    resend: Any  # (status, body) -> True when the request was sent again, or None
    failover: Any  # (backend) -> None: try another backend, or None

    def detach(self) -> None: ...

    def fail(self, failure: Failure) -> None: ...


MAX_FINISH = 8  # distinct finish reasons a traced request keeps


def note_finish(record, data: bytes) -> None:
    """The finish reasons a reply (or a stream's piece) states, for the request's trace."""
    at = data.find(b'"finish_reason":"')
    while at != -1 and len(record.finish) < MAX_FINISH:  # a backend's reply: at most a few distinct reasons kept
        end = data.find(b'"', at + 17)
        if end == -1 or end - at > 64:
            return
        reason = data[at + 17 : end].decode("ascii", "replace")
        if reason not in record.finish:
            record.finish = (*record.finish, reason)
        at = data.find(b'"finish_reason":"', end)


def count(exchange: Source, data: bytes) -> None:
    """Note the usage a reply reports in the request's record (and the caller's tokens)."""
    usage = usage_counts(data)
    if usage is not None:
        exchange.record.usage = usage
        if exchange.on_tokens is not None:
            exchange.on_tokens(usage[0] + usage[1])


CHUNK_FRAMING = 16  # bytes of a read around one chunk's data: its size line and CRLFs, or the body's end


def begin(exchange: Source, status: int, headers: bytes, ctype: bytes) -> "Buffered | Passing":
    """How a reply whose head has come goes back: an SSE stream through the translator, a
    relayed body as it is (both begin the client's reply now), or whole."""
    reply = exchange.reply
    if status < 300 and ctype.startswith(b"text/event-stream"):
        stream = exchange.translator.stream() if exchange.translator is not None else WholeFrames()
        reply.start_stream(status, headers)
        return Passing(exchange, HideUsage(stream) if exchange.hide_usage else stream)
    if exchange.raw and status < 400:
        reply.start_stream(status, headers)
        return Passing(exchange, None)
    return Buffered(exchange, headers)


def not_json(backend: str) -> Failure:
    return Failure(502, f"Backend '{backend}' sent a reply that is not a JSON object.", "bad_backend_response")


class Buffered:
    """A reply gathered whole (up to the backend's max_reply_bytes), then answered at once."""

    __slots__ = ("exchange", "headers", "parts", "size")

    def __init__(self, exchange: Source, headers: bytes) -> None:
        self.exchange = exchange
        self.headers = headers  # the backend's, for the client
        self.parts: list[bytes] = []
        self.size = 0

    def feed(self, data: bytes) -> None:
        self.size += len(data)
        ex = self.exchange
        limit = ex.backend.max_reply_bytes
        if self.size > limit:
            ex.detach()
            ex.fail(Failure(502, f"Backend '{ex.backend.name}' sent a reply over {limit} bytes (max_reply_bytes).", "reply_too_large"))
            return
        self.parts.append(data)

    def flush(self) -> None:
        pass

    def end(self) -> None:
        """Answer with the backend's whole reply: its error, or its translated JSON."""
        ex = self.exchange
        reply = ex.reply
        body = b"".join(self.parts)
        status = ex.status
        if status >= 400:
            if ex.resend is not None and ex.resend(status, body):
                return  # sent again (a refusal the dialect learnt from): that exchange answers
            if status == 503 and ex.failover is not None:
                ex.failover(ex.backend)  # the engine refused to queue it (vLLM's max-num-queued-reqs): nothing generated
                return
            reply.fail_backend(status, body)
        elif not ex.raw and not is_json_object(body):
            reply.fail(not_json(ex.backend.name))
        else:
            ex.record.t_upstream_end = perf_counter()
            count(ex, body)
            if ex.record.trace is not None:
                note_finish(ex.record, body)
            if ex.translator is not None and status == 200:
                try:
                    body = ex.translator.body(body)
                except Exception:  # a reply the dialect cannot read is the backend's fault
                    reply.fail(not_json(ex.backend.name))
                    return
            reply.respond(status, self.headers, body)

    def broken(self, failure: Failure) -> None:
        self.exchange.reply.fail(failure)


class Passing:
    """A reply passed on as it comes: through `stream` (SSE frames, whole ones only), or as it
    is (`stream` None: a relayed body). The pieces of one read go out in one write."""

    __slots__ = ("exchange", "stream", "parts")

    def __init__(self, exchange: Source, stream: StreamTranslator | None) -> None:
        self.exchange = exchange
        self.stream = stream
        self.parts: list[bytes] = []

    def feed(self, data: bytes) -> None:
        ex = self.exchange
        if data.find(b'"prompt_tokens"') != -1:  # (find: `bytes in bytes` costs ~2x on 3.11)
            count(ex, data)
        if ex.record.trace is not None:
            note_finish(ex.record, data)
        size = len(data)
        if self.stream is not None:
            data = self.stream.feed(data)
            if not data:
                return
        parts = self.parts
        up = ex.up
        if parts or up.read_size - size > CHUNK_FRAMING:
            # more of this read may follow (several frames a read: the backend is ahead, or
            # the proxy behind): gathered, and written at the read's end in one write
            parts.append(data)
            up.held = True
        else:
            ex.reply.write_chunk(data)

    def flush(self) -> None:
        """The read is parsed: what it held goes out in one write."""
        parts = self.parts
        if parts:
            self.exchange.reply.write_chunk(parts[0] if len(parts) == 1 else b"".join(parts))
            parts.clear()

    def end(self) -> None:
        if self.stream is not None:
            self.parts.append(self.stream.close())
        self.exchange.reply.end_stream(b"".join(self.parts))  # the last frames and the end in one write

    def broken(self, failure: Failure) -> None:
        """The backend failed mid-reply: a stream ends with its protocol's error event after
        the frames read before the break; a relayed body cannot say so, the connection drops."""
        reply = self.exchange.reply
        reply.record.error = f"{failure.code}: {failure.message}"
        if self.stream is not None:
            self.parts.append(self.stream.error(failure.status, failure.message, failure.code))
            reply.end_stream(b"".join(self.parts))
        else:
            reply.abort()
