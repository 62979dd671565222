"""Keep-alive connections to one backend: an asyncio.Protocol per connection, parsed with
httptools, handing the reply to a sink by callbacks, and a LIFO pool of idle ones.

Idle connections retire before the backend's own keep-alive timeout would close them.
"""

import asyncio
from typing import Final, cast
from typing import Protocol as _Protocol
from urllib.parse import urlsplit

import httptools

from .states import into, refused


class Sink(_Protocol):
    """Who receives one reply. Exactly one of on_end / on_lost ends the exchange."""

    def on_head(self, status: int, headers: list[tuple[bytes, bytes]]) -> None: ...

    def on_body(self, data: bytes) -> None: ...

    def on_read(self) -> None:
        """The read is parsed, and the sink had set `held` on its connection: pass on what
        it held back, in one write (only a sink that sets `held` is called)."""

    def on_end(self) -> None: ...

    def on_lost(self, conn: "UpstreamConnection", exc: BaseException | None) -> None: ...

    def hold_client(self, held: bool) -> None:
        """The backend stopped (True) or resumed (False) reading what is written to it."""


class Up:
    """An upstream connection's states; every change goes through UpstreamConnection._to,
    checked against UP_NEXT.

    IDLE -> SENT (send) -> BODY (a final head; 1xx heads are skipped) -> IDLE (reply read
    whole, kept alive) -> SENT ...; any state -> CLOSED. Only an IDLE connection that is
    reading is pooled."""

    IDLE: Final = 0  # no request on it: pooled, or about to be
    SENT: Final = 1  # a request is written; no final reply head yet
    BODY: Final = 2  # the sink has the head; the body is coming
    CLOSED: Final = 3
    NAMES: Final = ("IDLE", "SENT", "BODY", "CLOSED")


# state -> bit mask of the states it may go to
UP_NEXT = (1 << Up.SENT | 1 << Up.CLOSED, 1 << Up.BODY | 1 << Up.CLOSED, 1 << Up.IDLE | 1 << Up.CLOSED, 0)
_SENT, _BODY, _IDLE = Up.SENT, Up.BODY, Up.IDLE
_INTO_SENT, _INTO_BODY, _INTO_IDLE = into(UP_NEXT, _SENT), into(UP_NEXT, _BODY), into(UP_NEXT, _IDLE)


_GONE = httptools.HttpResponseParser(None)  # a closed connection's parser: nothing is fed to it


class UpstreamConnection(asyncio.Protocol):
    __slots__ = (
        "pool",
        "transport",
        "parser",
        "sink",
        "state",
        "paused",
        "idle_since",
        "received",
        "read_size",
        "held",
        "uses",
        "_headers",
        "_framed",
        "_interim",
    )

    def __init__(self, pool: "Pool") -> None:
        self.pool = pool
        self.transport: asyncio.Transport = None  # type: ignore[assignment]  # set by connection_made, before any use
        self.parser = httptools.HttpResponseParser(self)
        self.sink: Sink | None = None
        self.state = Up.IDLE
        self.paused = False  # reading paused by the sink (flow control)
        self.idle_since = 0.0
        self.received = 0  # bytes of the current reply
        self.read_size = 0  # bytes of the read being parsed: a body piece much smaller has more behind it
        self.held = False  # the sink held back body pieces of this read: on_read() when it is parsed
        self.uses = 0
        self._headers: list[tuple[bytes, bytes]] = []
        self._framed = False
        self._interim = False  # the message being parsed is a 1xx interim reply

    @property
    def closed(self) -> bool:
        return self.state == Up.CLOSED

    # -- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # a socket's: it reads and writes

    def data_received(self, data: bytes) -> None:
        if self.sink is None:  # bytes nobody asked for (a sink is set from SENT to the end of BODY)
            self.abort()
            return
        self.read_size = len(data)
        self.received += self.read_size
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            # malformed HTTP, or a sink's callback failed (its exception is the context)
            sink, self.sink = self.sink, None
            self.abort()
            if sink is not None:
                sink.on_lost(self, exc.__context__ if isinstance(exc, httptools.HttpParserCallbackError) and exc.__context__ else exc)
            return
        if self.held:
            self.held = False
            if self.sink is not None:
                self.sink.on_read()

    def _to(self, new: int) -> None:
        if not UP_NEXT[self.state] >> new & 1:
            refused("Up", Up.NAMES, self.state, new)
        self.state = new

    def connection_lost(self, exc: Exception | None) -> None:
        body = self.state == Up.BODY
        if self.state != Up.CLOSED:
            self._to(Up.CLOSED)
        self.parser = _GONE  # it holds this protocol's callbacks: a cycle only the collector would free
        sink, self.sink = self.sink, None
        if sink is None:
            return
        if body and not self._framed:  # a reply delimited by the close itself
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

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        self._headers.append((name, value))
        # a body without Content-Length or chunked framing ends with the connection
        if name == b"content-length" or (name == b"transfer-encoding" and b"chunked" in value.lower()):
            self._framed = True

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if status < 200 and status != 101:  # 100 Continue, 103 Early Hints: the reply follows
            self._interim = True
            return
        if not _INTO_BODY >> self.state & 1:  # _to, inline on the per-request path
            refused("Up", Up.NAMES, self.state, _BODY)
        self.state = _BODY
        if self.sink is not None:
            self.sink.on_head(status, self._headers)

    def on_body(self, body: bytes) -> None:
        if self.sink is not None:
            self.sink.on_body(body)

    def on_message_complete(self) -> None:
        if self._interim:
            self._interim = False
            return
        sink, self.sink = self.sink, None
        if sink is None:  # the exchange ended early (or a reply nobody asked for)
            self.abort()
            return
        if self.parser.should_keep_alive():
            # Read whole, so idle; reading again, whatever the sink had paused. The sink is
            # done before it answers its client, so it cannot pause this connection again.
            if not _INTO_IDLE >> self.state & 1:
                refused("Up", Up.NAMES, self.state, _IDLE)
            self.state = _IDLE
            if self.paused:
                self.resume()
            self.pool.release(self)
        else:
            self.close()
        sink.on_end()

    # -- used by the exchange
    def stale(self) -> bool:
        """Reused from the pool and gone before any reply byte: the backend had closed it, so
        the request never reached the backend and may be sent again."""
        return self.received == 0 and self.uses > 1

    def send(self, sink: Sink, head: bytes, body: bytes) -> None:
        if not _INTO_SENT >> self.state & 1:
            refused("Up", Up.NAMES, self.state, _SENT)
        self.state = _SENT
        self.sink = sink
        self.received = 0
        self.uses += 1
        if body:
            self.transport.writelines((head, body))
        else:
            self.transport.write(head)

    def pause(self) -> None:
        if self.state != Up.CLOSED and not self.paused:
            self.paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        if self.state != Up.CLOSED and self.paused:
            self.paused = False
            self.transport.resume_reading()

    def detach(self) -> None:
        """The exchange is over early (client gone, timeout): the connection cannot be reused."""
        self.sink = None
        self.abort()

    def close(self) -> None:
        if self.state != Up.CLOSED:
            self._to(Up.CLOSED)
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        if self.state != Up.CLOSED:
            self._to(Up.CLOSED)
        if self.transport is not None:
            self.transport.abort()


class Pool:
    """Idle connections to one backend, most recently used first."""

    def __init__(self, url: str, idle_seconds: float, connect_timeout: float, loop=None, ssl=None) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or ""  # config.py refuses a URL without one
        self.ssl = ssl  # an ssl.SSLContext for https:// backends (SNI: the URL's host)
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        # The path before the API version: `http://host:1234/v1` (how LM Studio shows its
        # base URL, LiteLLM's api_base) and `http://host:1234` reach the same routes.
        base = parts.path.rstrip("/")
        self.base_path = base[:-3] if base.endswith("/v1") else base
        self.host_header = parts.netloc.encode()
        self.origin = f"{parts.scheme}://{parts.netloc}".encode()
        self.idle_seconds = idle_seconds
        self.connect_timeout = connect_timeout
        self.idle: list[UpstreamConnection] = []
        self.closed = False  # retired: connections in use close when their reply ends
        self.loop = loop or asyncio.get_running_loop()
        self._sweeper = self.loop.call_later(idle_seconds / 2, self._sweep)

    def acquire(self) -> UpstreamConnection | None:
        """A live idle connection, or None when a new one must be opened."""
        if not self.idle:
            return None
        limit = self.loop.time() - self.idle_seconds
        while self.idle:
            conn = self.idle.pop()
            if conn.state != Up.IDLE or conn.paused:  # closed or paused while pooled
                conn.close()
                continue
            if conn.idle_since < limit:
                conn.close()
                continue
            return conn
        return None

    async def connect(self) -> UpstreamConnection:
        # asyncio.timeout, not wait_for: no second task for every new connection (a burst of
        # new streams opens one each)
        async with asyncio.timeout(self.connect_timeout):
            _, conn = await self.loop.create_connection(
                lambda: UpstreamConnection(self), self.host, self.port, ssl=self.ssl, server_hostname=self.host if self.ssl else None
            )
        return conn

    def release(self, conn: UpstreamConnection) -> None:
        """Take back a connection whose reply was read whole; anything else is closed."""
        if self.closed or conn.state != Up.IDLE or conn.paused:
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
