"""Flow control of one transport: why its reading is paused (a set of reasons, so one party's
resume cannot undo another's pause), and whether its writing is paused.

Whoever attaches to a transport reads `write_paused` first: a handler that starts while the
peer is not reading starts paused (asyncio calls pause_writing once, not per handler).
"""

PIPELINE = 1  # enough requests are queued on the connection
OUTPUT = 2  # the peer does not read what is written to it (past the high-water mark)
BACKEND = 4  # the backend does not read what the proxy writes to it
STOPPED = 8  # no more requests will be read on this connection
ALL = PIPELINE | OUTPUT | BACKEND | STOPPED


class FlowControl:
    __slots__ = ("transport", "write_paused", "held")

    def __init__(self, transport) -> None:
        self.transport = transport
        self.write_paused = False
        self.held = 0  # the reasons reading is paused for

    def hold(self, reason: int) -> None:
        if not self.held and not self.transport.is_closing():
            self.transport.pause_reading()
        self.held |= reason

    def output(self, paused: bool) -> None:
        """The peer stopped (or resumed) reading what is written: reading stops with it."""
        self.write_paused = paused
        if paused:
            self.hold(OUTPUT)
        else:
            self.release(OUTPUT)

    def linger(self) -> None:
        """After a refusal that cut a request short, as nginx's lingering close: FIN sent, and
        what the client still sends read (and dropped by the reader, stopped) until it closes:
        closing at once would reset the connection (unread bytes), and the client could lose
        the answer it has not read yet."""
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.release(ALL)

    def release(self, reason: int) -> None:
        if self.held & reason:
            self.held &= ~reason
            if not self.held and not self.transport.is_closing():
                self.transport.resume_reading()
