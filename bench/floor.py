"""The floor for any proxy written in Python on uvloop: a byte relay that pairs each client
connection with its own backend connection and forwards whatever arrives, parsing nothing.

Run: `python -m bench.floor --port 9100 --upstream 127.0.0.1:8000 [--spin-us 20]`. No HTTP is
understood: it is a measuring stick, not a proxy (bench/compare.py runs it beside the others).
`--spin-us` burns that much CPU per client read, to see what a given cost per request allows.
"""

import argparse
import asyncio
import time

import uvloop


class _Side(asyncio.Protocol):
    """One end of a pair: what it receives is written to the other end."""

    def __init__(self) -> None:
        self.transport = None
        self.peer: _Side | None = None
        self.pending: list[bytes] = []

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        peer = self.peer
        if peer is None or peer.transport is None:
            self.pending.append(data)
        elif not peer.transport.is_closing():
            peer.transport.write(data)

    def connection_lost(self, exc) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.close()


class _Client(_Side):
    spin = 0.0  # seconds of busy work per read

    def __init__(self, loop, host: str, port: int) -> None:
        super().__init__()
        self.loop = loop
        self.host, self.port = host, port

    def data_received(self, data: bytes) -> None:
        if self.spin:
            end = time.perf_counter() + self.spin
            while time.perf_counter() < end:
                pass
        super().data_received(data)

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self.loop.create_task(self._connect())

    async def _connect(self) -> None:
        try:
            _, backend = await self.loop.create_connection(_Side, self.host, self.port)
        except OSError:
            self.transport.close()
            return
        backend.peer, self.peer = self, backend
        for data in self.pending:
            backend.transport.write(data)
        self.pending.clear()


async def start(port: int, upstream: str, backlog: int = 4096) -> asyncio.AbstractServer:
    """Listening; the backlog takes a burst of new connections (bench.paced starts 1500 a second)."""
    host, _, up_port = upstream.rpartition(":")
    loop = asyncio.get_running_loop()
    return await loop.create_server(lambda: _Client(loop, host, int(up_port)), "127.0.0.1", port, reuse_port=True, backlog=backlog)


async def serve(port: int, upstream: str) -> None:
    server = await start(port, upstream)
    async with server:
        await server.serve_forever()


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--upstream", required=True, help="host:port")
    p.add_argument("--spin-us", type=float, default=0.0, help="busy CPU per client read, in µs")
    args = p.parse_args(argv)
    _Client.spin = args.spin_us / 1e6
    uvloop.run(serve(args.port, args.upstream))


if __name__ == "__main__":
    main()
