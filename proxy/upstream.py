"""Keep-alive connections to one backend: an asyncio.Protocol per connection, parsed with
httptools, handing the reply to a sink by callbacks, and a LIFO pool of idle ones.

Idle connections retire before the backend's own keep-alive timeout would close them.
"""

import asyncio
from typing import Protocol as _Protocol
from urllib.parse import urlsplit

import httptools


class Sink(_Protocol):
    """Who receives one reply. Exactly one of on_end / on_lost ends the exchange."""

    def on_head(self, status: int, headers: list[tuple[bytes, bytes]]) -> None: ...

    def on_body(self, data: bytes) -> None: ...

    def on_end(self) -> None: ...

    def on_lost(self, conn: "UpstreamConnection", exc: Exception | None) -> None: ...

    def hold_client(self, held: bool) -> None:
        """The backend stopped (True) or resumed (False) reading what is written to it."""


class UpstreamConnection(asyncio.Protocol):
    __slots__ = (
        "pool",
        "transport",
        "parser",
        "sink",
        "closed",
        "idle_since",
        "received",
        "uses",
        "_headers",
        "_framed",
        "_in_body",
    )

    def __init__(self, pool: "Pool") -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.sink: Sink | None = None
        self.closed = False
        self.idle_since = 0.0
        self.received = 0  # bytes of the current reply
        self.uses = 0
        self._headers: list[tuple[bytes, bytes]] = []
        self._framed = False
        self._in_body = False

    # -- asyncio.Protocol
    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.sink is None:  # bytes nobody asked for: the connection cannot be trusted
            self.abort()
            return
        self.received += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            sink, self.sink = self.sink, None
            self.abort()
            if sink is not None:
                sink.on_lost(self, exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        sink, self.sink = self.sink, None
        if sink is None:
            return
        if self._in_body and not self._framed:  # a reply delimited by the close itself
            sink.on_end()
        else:
            sink.on_lost(self, exc)

    def pause_writing(self) -> None:
        if self.sink is not None:
            self.sink.hold_client(True)

    def resume_writing(self) -> None:
        if self.sink is not None:
            self.sink.hold_client(False)

    # -- httptools callbacks
    def on_message_begin(self) -> None:
        self._headers = []
        self._framed = False
        self._in_body = False

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        self._headers.append((name, value))
        # a body without Content-Length or chunked framing ends with the connection
        if name == b"content-length" or (name == b"transfer-encoding" and b"chunked" in value.lower()):
            self._framed = True

    def on_headers_complete(self) -> None:
        self._in_body = True
        if self.sink is not None:
            self.sink.on_head(self.parser.get_status_code(), self._headers)

    def on_body(self, body: bytes) -> None:
        if self.sink is not None:
            self.sink.on_body(body)

    def on_message_complete(self) -> None:
        self._in_body = False
        sink, self.sink = self.sink, None
        if sink is None:  # a second reply in the same read: nobody asked for it
            self.abort()
        elif self.parser.should_keep_alive() and not self.closed:
            self.pool.release(self)
        else:
            self.close()
        if sink is not None:
            sink.on_end()

    # -- used by the exchange
    def stale(self) -> bool:
        """Reused from the pool and gone before any reply byte: the backend had closed it, so
        the request never reached the backend and may be sent again."""
        return self.received == 0 and self.uses > 1

    def send(self, sink: Sink, head: bytes, body: bytes) -> None:
        self.sink = sink
        self.received = 0
        self.uses += 1
        if body:
            self.transport.writelines((head, body))
        else:
            self.transport.write(head)

    def pause(self) -> None:
        if not self.closed:
            self.transport.pause_reading()

    def resume(self) -> None:
        if not self.closed:
            self.transport.resume_reading()

    def detach(self) -> None:
        """The exchange is over early (client gone, timeout): the connection cannot be reused."""
        self.sink = None
        self.abort()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


class Pool:
    """Idle connections to one backend, most recently used first."""

    def __init__(self, url: str, idle_seconds: float, connect_timeout: float) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname
        self.port = parts.port or 80
        self.base_path = parts.path.rstrip("/")
        self.host_header = parts.netloc.encode()
        self.idle_seconds = idle_seconds
        self.connect_timeout = connect_timeout
        self.idle: list[UpstreamConnection] = []
        self.closed = False  # retired: connections in use close when their reply ends
        self.loop = asyncio.get_running_loop()
        self._sweeper = self.loop.call_later(idle_seconds / 2, self._sweep)

    def acquire(self) -> UpstreamConnection | None:
        """A live idle connection, or None when a new one must be opened."""
        if not self.idle:
            return None
        limit = self.loop.time() - self.idle_seconds
        while self.idle:
            conn = self.idle.pop()
            if conn.closed:
                continue
            if conn.idle_since < limit:
                conn.close()
                continue
            return conn
        return None

    async def connect(self) -> UpstreamConnection:
        _, conn = await asyncio.wait_for(
            self.loop.create_connection(lambda: UpstreamConnection(self), self.host, self.port),
            self.connect_timeout,
        )
        return conn

    def release(self, conn: UpstreamConnection) -> None:
        if self.closed:
            conn.close()
            return
        conn.idle_since = self.loop.time()
        self.idle.append(conn)

    def _sweep(self) -> None:
        limit = self.loop.time() - self.idle_seconds
        keep = []
        for conn in self.idle:
            if conn.closed:
                continue
            if conn.idle_since < limit:
                conn.close()
            else:
                keep.append(conn)
        self.idle = keep
        self._sweeper = self.loop.call_later(self.idle_seconds / 2, self._sweep)

    def close(self) -> None:
        self.closed = True
        self._sweeper.cancel()
        for conn in self.idle:
            conn.close()
        self.idle.clear()
