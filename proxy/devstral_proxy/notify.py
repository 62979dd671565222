"""systemd's notify protocol: READY=1 once listening, STOPPING=1 when draining, WATCHDOG=1
every half of WatchdogSec; each a datagram to $NOTIFY_SOCKET. Does nothing outside systemd.
"""

import asyncio
import os
import socket


def notify(message: str) -> bool:
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return False
    if path.startswith("@"):  # an abstract socket
        path = "\0" + path[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.connect(path)
            s.sendall(message.encode())
    except OSError:
        return False
    return True


def watchdog_interval() -> float | None:
    """Seconds between WATCHDOG=1 pings when systemd asked for them (for this process)."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return int(usec) / 2e6
    except ValueError:
        return None


class Watchdog:
    """Pings WATCHDOG=1 on the event loop while the process serves."""

    def __init__(self, loop: asyncio.AbstractEventLoop, interval: float) -> None:
        self.loop = loop
        self.interval = interval
        self.handle = loop.call_soon(self._ping)

    def _ping(self) -> None:
        notify("WATCHDOG=1")
        self.handle = self.loop.call_later(self.interval, self._ping)

    def cancel(self) -> None:
        self.handle.cancel()


def start_watchdog(loop: asyncio.AbstractEventLoop) -> Watchdog | None:
    interval = watchdog_interval()
    return None if interval is None else Watchdog(loop, interval)
