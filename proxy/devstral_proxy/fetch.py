"""Small requests of the proxy's own to a backend (health checks, model lists), over the
backend's keep-alive pool, awaited as a whole reply.
"""

import asyncio

import msgspec

from devstral_translate.wire import DECODE_ERRORS


class _Collect:
    """A sink that gathers a whole reply for the proxy's own use."""

    __slots__ = ("future", "status", "headers", "parts", "size")

    def __init__(self, future: asyncio.Future) -> None:
        self.future = future
        self.status = 0
        self.headers: list = []
        self.parts: list[bytes] = []
        self.size = 0

    def on_head(self, status, headers) -> None:
        self.status = status
        self.headers = headers

    def on_body(self, data) -> None:
        self.size += len(data)
        if self.size > MAX_REPLY:  # the caller detaches the connection
            if not self.future.done():
                self.future.set_exception(ConnectionError(f"reply over {MAX_REPLY} bytes"))
            return
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


MAX_REPLY = 16 << 20  # the proxy's own requests (health, models, engine metrics, tokenize) read no more


async def fetch(backend, method: bytes, path: str, timeout: float, body: bytes = b"") -> tuple[int, list, bytes]:
    """(status, headers, body) of a request to `backend` (a `body` is sent as JSON).

    Raises OSError (TimeoutError included) when the backend cannot answer."""
    head = backend.request_head(method, path.encode(), b"content-type: application/json\r\n" if body else b"", len(body))
    loop = asyncio.get_running_loop()
    for attempt in (0, 1):
        up = backend.pool.acquire() or await backend.pool.connect()
        sink = _Collect(loop.create_future())
        up.send(sink, head, body)
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
