"""Stand-ins for the unit tier: a transport that keeps what is written and calls the
protocol's pause_writing / resume_writing like asyncio's does, a loop with a manual clock,
and a minimal application behind the server protocol. No sockets, no sleeps.
"""

import h11

from devstral_proxy.config import ServerConfig
from devstral_proxy.server import Limits


class FakeTransport:
    """asyncio.Transport as the protocols use it. `high`/`low`: write buffer water marks;
    nothing leaves the buffer until `drain()` (the peer reading)."""

    def __init__(self, protocol=None, high: int = 64 * 1024, low: int | None = None) -> None:
        self.protocol = protocol
        self.high = high
        self.low = high // 4 if low is None else low
        self.buffer = bytearray()
        self.sent = bytearray()  # everything the peer has read so far
        self.reading = True
        self.write_paused = False
        self.closed = False
        self.aborted = False
        self.eof_written = False
        self.pauses = 0  # calls to pause_reading
        self.writes = 0  # calls to write / writelines: the syscalls a real transport would make

    def write(self, data: bytes) -> None:
        self.writes += 1
        self._put(data)

    def writelines(self, parts) -> None:
        self.writes += 1
        for p in parts:
            self._put(p)

    def _put(self, data: bytes) -> None:
        if self.closed:
            return
        self.buffer += data
        if not self.write_paused and len(self.buffer) > self.high and self.protocol is not None:
            self.write_paused = True
            self.protocol.pause_writing()

    def drain(self, n: int | None = None) -> bytes:
        """The peer reads `n` bytes (all by default)."""
        n = len(self.buffer) if n is None else n
        out = bytes(self.buffer[:n])
        del self.buffer[:n]
        self.sent += out
        if self.write_paused and len(self.buffer) <= self.low and self.protocol is not None:
            self.write_paused = False
            self.protocol.resume_writing()
        return out

    def pause_reading(self) -> None:
        self.reading = False
        self.pauses += 1

    def resume_reading(self) -> None:
        self.reading = True

    def is_reading(self) -> bool:
        return self.reading

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.eof_written = True

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = self.aborted = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name, default=None):
        return ("127.0.0.1", 40000) if name == "peername" else default


class FakeLoop:
    """A loop with a clock that moves only when told to: its own, or a ManualClock shared with
    the parts given it (the loop's time is the proxy's monotonic clock)."""

    def __init__(self, clock: "ManualClock | None" = None) -> None:
        self.clock = clock if clock is not None else ManualClock()
        self.later: list = []
        self.tasks: list = []

    @property
    def now(self) -> float:
        return self.clock.now

    @now.setter
    def now(self, value: float) -> None:
        self.clock.now = value

    def time(self) -> float:
        return self.clock.now

    def call_later(self, delay, fn, *args):
        handle = _Handle()
        self.later.append((self.now + delay, fn, args, handle))
        return handle

    def create_task(self, coro):
        task = _Handle(coro)
        self.tasks.append(task)
        return task


class _Handle:
    """A timer handle, or a task that never runs (the coroutine is closed when cancelled)."""

    def __init__(self, coro=None) -> None:
        self.coro = coro
        self.callbacks: list = []

    def cancel(self) -> None:
        if self.coro is not None:
            self.coro.close()

    def add_done_callback(self, fn) -> None:
        self.callbacks.append(fn)


def limits(**overrides) -> Limits:
    cfg = ServerConfig(**overrides)
    return Limits(cfg, cfg.max_body_bytes)


class FakeApp:
    """server.Application with handlers chosen per path: `handlers[path](cycle)`; by
    default a 200 whose body names the path. Refusals (cycle.failure) are answered."""

    def __init__(self, **limit_overrides) -> None:
        self.connections: set = set()
        self.limits = limits(**limit_overrides)
        self.handlers: dict = {}
        self.seen: list = []  # requests handled
        self.finished_records: list = []
        self.errors: list = []

    def admit(self, conn):
        return None

    def handle(self, cycle) -> None:
        cycle.record.rid = "r"
        if cycle.failure is not None:
            cycle.fail(cycle.failure)
            return
        request = cycle.req
        self.seen.append(request)
        handler = self.handlers.get(request.path)
        if handler is not None:
            handler(cycle)
        else:
            cycle.respond(200, b"content-type: text/plain\r\n", request.path.encode())

    def finished(self, record, now) -> None:
        self.finished_records.append(record)

    def log_error(self, what, exc) -> None:
        self.errors.append((what, exc))


def responses(data: bytes, methods: list[bytes] | None = None) -> list[tuple[int, bytes]]:
    """(status, body) of every whole response in `data`, read by h11 as a client would."""
    client = h11.Connection(h11.CLIENT)
    out = []
    for method in methods or [b"GET"] * 10_000:
        try:
            client.send(h11.Request(method=method, target="/", headers=[("host", "x")]))
            client.send(h11.EndOfMessage())
        except h11.LocalProtocolError:
            break
        status, body = None, b""
        if data:
            client.receive_data(data)
            data = b""
        while True:
            event = client.next_event()
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return out
            if isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                out.append((status, body))
                break
            elif isinstance(event, h11.ConnectionClosed):
                return out
        if client.our_state is h11.MUST_CLOSE or client.their_state is h11.MUST_CLOSE:
            return out
        client.start_next_cycle()
    return out


class ManualClock:
    """clock.Clock moved by hand: `advance(seconds)`; monotonic and wall move together."""

    def __init__(self, start: float = 1000.0, wall: float = 1_700_000_000.0) -> None:
        self.now = start
        self.offset = wall - start

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        return self.now + self.offset

    def advance(self, seconds: float) -> None:
        self.now += seconds
