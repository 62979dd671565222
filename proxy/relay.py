"""Moving one request to a backend and its reply back: whole bodies, SSE streams with flow
control, retries on a stale pooled connection, timeouts, and the client going away.

Driven by upstream callbacks; a task is only created when a new connection must be opened.
"""

import asyncio
from time import perf_counter

import msgspec
from devstral_translate.sse import WholeFrames
from devstral_translate.usage import HideUsage, usage_counts
from devstral_translate.wire import DECODE_ERRORS, is_json_object

from .errors import backend_failure, error_body, normalize_backend_error
from .http import HOP_BY_HOP, JSON, relay_headers

_SKIP_REPLY = HOP_BY_HOP | {b"date", b"server", b"x-request-id"}
_BUFFER, _STREAM, _RAW = 0, 1, 2


def reply_headers(headers: list[tuple[bytes, bytes]]) -> bytes:
    return relay_headers(headers, _SKIP_REPLY)


def stream_error_event(status: int, message: str, code: str) -> bytes:
    return b"data: " + error_body(status, message, code) + b"\n\n"


class Exchange:
    """One client request relayed to one backend. It is the upstream connection's sink, and
    the client connection's `active` handler (cancel, pause, resume)."""

    __slots__ = (
        "client",
        "backend",
        "head",
        "body",
        "translator",
        "timeout",
        "raw",
        "loop",
        "up",
        "status",
        "mode",
        "parts",
        "stream",
        "headers",
        "done",
        "retried",
        "last",
        "task",
        "deadline",
        "on_tokens",
        "hide_usage",
        "req",
        "failover",
    )

    def __init__(
        self, client, backend, head: bytes, body: bytes, translator, timeout: float, raw: bool = False, on_tokens=None, hide_usage: bool = False
    ) -> None:
        self.client = client
        self.backend = backend
        self.head = head
        self.body = body
        self.translator = translator
        self.timeout = timeout
        self.raw = raw  # relay any successful reply as it comes (pass-through routes)
        self.loop = client.loop
        self.up = None
        self.status = 0
        self.mode = _BUFFER
        self.parts: list[bytes] = []
        self.stream = None
        self.headers = b""
        self.done = False
        self.retried = False
        self.last = 0.0
        self.task = None
        self.deadline = self.loop.time() + client.limits.request_timeout
        self.on_tokens = on_tokens  # called with usage.total_tokens when the reply reports it
        self.hide_usage = hide_usage  # the usage chunk was asked for by the proxy, not the client
        self.req = client.current  # the request answered, where timings and usage are noted
        self.failover = None  # called with this backend when it cannot be reached: try another

    def start(self) -> None:
        self.client.active = self
        self.backend.outstanding += 1
        up = self.backend.pool.acquire()
        if up is None:
            self.task = self.loop.create_task(self._open())
        else:
            self._send(up)

    async def _open(self) -> None:
        backend = self.backend
        try:
            up = await backend.pool.connect()
        except OSError as exc:  # refused, unreachable, or TimeoutError
            self.client.app.metrics.backend_up[backend.name] = 0
            self.client.app.router.outcome(backend, False)
            if self.failover is not None and not self.done:  # nothing was written: try another
                self._end()
                self.failover(backend)
                return
            self._fail(*backend_failure(backend.name, exc))
            return
        finally:
            self.task = None
        self.client.app.metrics.backend_up[backend.name] = 1
        if self.done:
            backend.pool.release(up)
        else:
            self._send(up)

    def _send(self, up) -> None:
        self.up = up
        self.last = self.loop.time()
        self.req.t_sent = perf_counter()
        up.send(self, self.head, self.body)

    # ---- upstream sink
    def on_head(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        self.last = self.loop.time()
        self.status = status
        self.client.app.router.outcome(self.backend, status < 500)
        if self.req.method == b"HEAD":
            # No body follows, whatever Content-Length says; httptools cannot be told so, so
            # the connection is not reused.
            self._end()
            self.up.detach()
            length = next((v for k, v in headers if k == b"content-length"), b"")
            self.client.respond(status, reply_headers(headers), b"", int(length) if length.isdigit() else 0)
            return
        ctype = b""
        for k, v in headers:
            if k == b"content-type":
                ctype = v
                break
        if status < 300 and ctype.startswith(b"text/event-stream"):
            self.mode = _STREAM
            self.stream = self.translator.stream() if self.translator is not None else WholeFrames()
            if self.hide_usage:
                self.stream = HideUsage(self.stream)
            self.client.start_stream(status, reply_headers(headers))
        elif self.raw and status < 400:
            self.mode = _RAW
            self.client.start_stream(status, reply_headers(headers))
        else:
            self.headers = reply_headers(headers)

    def on_body(self, data: bytes) -> None:
        self.last = self.loop.time()
        if self.mode == _BUFFER:
            self.parts.append(data)
            return
        if b'"prompt_tokens"' in data:
            self._count(data)
        if self.stream is not None:
            out = self.stream.feed(data)
            if out:
                self.client.write_chunk(out)
        else:
            self.client.write_chunk(data)

    def on_end(self) -> None:
        if self.done:
            return
        self._end()
        client = self.client
        if self.mode == _BUFFER:
            body = b"".join(self.parts)
            status = self.status
            if status >= 400:
                client.respond(status, JSON, normalize_backend_error(status, body))
            elif not self.raw and not is_json_object(body):
                client.respond_error(502, f"Backend '{self.backend.name}' sent a reply that is not a JSON object.", "bad_backend_response")
            else:
                self.req.t_upstream_end = perf_counter()
                self._count(body)
                if self.translator is not None and status == 200:
                    body = self.translator.body(body)
                client.respond(status, self.headers, body)
            return
        if self.stream is not None:
            client.write_chunk(self.stream.close())
        client.end_stream()

    def on_lost(self, up, exc: Exception | None) -> None:
        if self.done:
            return
        if up.stale() and not self.retried:
            # A pooled connection the backend had closed: nothing reached it, so send again.
            self.retried = True
            self.up = None
            self.task = self.loop.create_task(self._open())
            return
        if self.status == 0:
            self.client.app.router.outcome(self.backend, False)
        reason = f"Backend '{self.backend.name}' closed the connection" + (f" ({exc})" if exc else "")
        self._broken(502, reason + ".", "backend_disconnected")

    def _count(self, data: bytes) -> None:
        usage = usage_counts(data)
        if usage is not None:
            self.req.usage = usage
            if self.on_tokens is not None:
                self.on_tokens(usage[0] + usage[1])

    def hold_client(self, held: bool) -> None:
        self.client.hold_reading(held)

    # ---- client side
    def cancel(self) -> None:
        """The client went away: stop the backend's work at once."""
        if self.done:
            return
        self._end()
        if self.task is not None:
            self.task.cancel()
        if self.up is not None:
            self.up.detach()

    def pause(self) -> None:
        if self.up is not None:
            self.up.pause()

    def resume(self) -> None:
        if self.up is not None:
            self.up.resume()

    # ---- endings
    def expire(self, now: float) -> None:
        """Called by the server's sweep: no byte from the backend within `timeout`."""
        if self.done or self.up is None:
            return
        if now >= self.deadline:
            self.up.detach()
            self._broken(504, f"The request did not finish within {self.client.limits.request_timeout:g} s.", "request_timeout")
        elif now >= self.last + self.timeout:
            self.client.app.router.outcome(self.backend, False)
            self.up.detach()
            self._broken(504, f"Backend '{self.backend.name}' did not answer within {self.timeout:g} s.", "backend_timeout")

    def _broken(self, status: int, message: str, code: str) -> None:
        """The backend failed: answer with an error if nothing was sent yet, else end what was."""
        if self.mode == _BUFFER:
            self._fail(status, message, code)
            return
        self._end()
        if self.mode == _STREAM:
            self.client.write_chunk(stream_error_event(status, message, code))
            self.client.end_stream()
        else:
            self.client.abort()

    def _fail(self, status: int, message: str, code: str) -> None:
        if self.done:
            return
        self._end()
        self.client.respond_error(status, message, code)

    def _end(self) -> None:
        if not self.done:
            self.done = True
            self.backend.outstanding -= 1


class _Collect:
    """A sink that gathers a whole reply for the proxy's own use (models list, health)."""

    __slots__ = ("future", "status", "headers", "parts")

    def __init__(self, future: asyncio.Future) -> None:
        self.future = future
        self.status = 0
        self.headers: list = []
        self.parts: list[bytes] = []

    def on_head(self, status, headers) -> None:
        self.status = status
        self.headers = headers

    def on_body(self, data) -> None:
        self.parts.append(data)

    def on_end(self) -> None:
        if not self.future.done():
            self.future.set_result((self.status, self.headers, b"".join(self.parts)))

    def on_lost(self, up, exc) -> None:
        if not self.future.done():
            self.future.set_exception(_Stale() if up.stale() else ConnectionError(str(exc or "connection closed")))

    def hold_client(self, held: bool) -> None:
        pass


class _Stale(Exception):
    pass


async def fetch(backend, method: bytes, path: str, timeout: float) -> tuple[int, list, bytes]:
    """A small request of the proxy's own to a backend, over its pool.

    Raises OSError (TimeoutError included) when the backend cannot answer."""
    head = backend.request_head(method, path.encode(), b"", 0)
    loop = asyncio.get_running_loop()
    for attempt in (0, 1):
        up = backend.pool.acquire() or await backend.pool.connect()
        sink = _Collect(loop.create_future())
        up.send(sink, head, b"")
        try:
            return await asyncio.wait_for(sink.future, timeout)
        except _Stale:
            if attempt:
                raise ConnectionError("backend closed the connection") from None
        except BaseException:
            up.detach()
            raise
    raise AssertionError("unreachable")


def decode_json(body: bytes):
    try:
        return msgspec.json.decode(body)
    except DECODE_ERRORS:
        return None
