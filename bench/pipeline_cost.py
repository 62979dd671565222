"""The proxy's own CPU per request, without sockets: request bytes fed to the server protocol,
the backend's reply bytes fed to the upstream connection, writes caught by stand-in transports.

Run: `python -m bench.pipeline_cost [--requests 20000] [--repeat 5] [--profile]`. Syscalls and
the event loop are left out, so the figure is stable enough to compare code changes with.
"""

import argparse
import asyncio
import cProfile
import json
import logging
import pstats
import statistics
import time

import uvloop

from bench.compare import CHAT_BODY, REQUEST, free_port, proxy_config, sse_body
from devstral_proxy.app import Proxy
from devstral_proxy.config import build
from devstral_proxy.server import HttpProtocol
from devstral_proxy.upstream import UpstreamConnection


class _Transport:
    """Just enough of asyncio.Transport: writes are counted, nothing is sent."""

    def __init__(self) -> None:
        self.written = 0
        self.last_head = b""  # the status line of the last reply written

    def write(self, data: bytes) -> None:
        self.written += len(data)
        if data.startswith(b"HTTP/1.1 "):
            self.last_head = data[:12]

    def writelines(self, parts) -> None:
        for part in parts:
            self.write(part)

    def get_extra_info(self, name, default=None):
        return ("127.0.0.1", 40000) if name == "peername" else default

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def close(self) -> None:
        pass

    def is_closing(self) -> bool:
        return False

    def abort(self) -> None:
        pass


def _request(stream: bool) -> bytes:
    body = json.dumps({**REQUEST, "stream": stream}).encode()
    return b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


SHAPES = {"json": "JSON", "stream": "stream, 40 frames in one read", "frames": "stream, one frame per read (as vLLM sends)"}


def _reply(shape: str) -> list[bytes]:
    """The backend's reply, as the reads the proxy gets."""
    head = b"HTTP/1.1 200 OK\r\ndate: Wed, 25 Nov 2026 10:00:00 GMT\r\nserver: uvicorn\r\ncontent-type: %s\r\n"
    if shape == "json":
        body = json.dumps(CHAT_BODY, separators=(",", ":")).encode()
        return [head % b"application/json" + b"content-length: %d\r\n\r\n%s" % (len(body), body)]
    body = sse_body().encode()
    if shape == "stream":
        return [head % b"text/event-stream" + b"content-length: %d\r\n\r\n%s" % (len(body), body)]
    frames = [f + b"\n\n" for f in body.split(b"\n\n") if f]
    return [head % b"text/event-stream" + b"transfer-encoding: chunked\r\n\r\n"] + [b"%x\r\n%s\r\n" % (len(f), f) for f in frames] + [b"0\r\n\r\n"]


async def _run(dialect: str, shape: str, requests: int, repeat: int, profile: bool, tracing: str | None = None) -> list[float]:
    doc = proxy_config(9, dialect, free_port())
    if tracing:
        doc["tracing"] = {"otlp_endpoint": tracing, "max_queue": 1 << 20}  # every span exported: its whole cost counted
    config = build(doc, env={})  # the backend is never dialled
    logger = logging.getLogger("devstral_proxy")
    level = logger.level
    logger.setLevel(logging.ERROR)  # its "cannot connect" is the point, not news
    try:
        return await _measure(config, shape, requests, repeat, profile)
    finally:
        logger.setLevel(level)  # as it was: the test suite runs this in its own process


async def _measure(config, shape: str, requests: int, repeat: int, profile: bool) -> list[float]:
    proxy = Proxy(config)
    await proxy.start()  # listens; nothing connects to it
    loop = asyncio.get_running_loop()
    backend = proxy.router.backends[0]
    up = UpstreamConnection(backend.pool)
    up.connection_made(_Transport())
    client = HttpProtocol(proxy, loop)
    out = _Transport()
    client.connection_made(out)
    backend.pool.release(up)
    request, reads = _request(shape != "json"), _reply(shape)
    profiler = cProfile.Profile() if profile else None
    per_request = []
    for _ in range(repeat):
        if profiler is not None:
            profiler.enable()
        start = time.process_time()
        for _ in range(requests):
            client.data_received(request)  # the connection is back in the pool after each reply
            for data in reads:
                up.data_received(data)
        per_request.append((time.process_time() - start) / requests * 1e6)
        if profiler is not None:
            profiler.disable()
    if out.last_head != b"HTTP/1.1 200" or client.cycle is not None:
        raise RuntimeError(f"the request was not answered with a 200: {out.last_head!r}")
    await proxy.close()
    if profiler is not None:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(30)
    return per_request


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--requests", type=int, default=20000)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--profile", action="store_true", help="print cProfile's top entries (slows everything)")
    p.add_argument("--shapes", default=",".join(SHAPES), help="replies to run: " + ", ".join(SHAPES))
    p.add_argument("--tracing", action="store_true", help="trace every request to an OTLP sink in another process (its export thread's CPU counted)")
    args = p.parse_args(argv)
    sink = _otlp_sink() if args.tracing else None
    print("| dialect | reply | µs per request (median) | min |")
    print("|---|---|---|---|")
    for dialect in ("openai", "mistral"):
        for shape in args.shapes.split(","):
            runs = uvloop.run(_run(dialect, shape, args.requests, args.repeat, args.profile, sink[1] if sink else None))
            print(f"| {dialect} | {SHAPES[shape]} | {statistics.median(runs):.1f} | {min(runs):.1f} |", flush=True)
    if sink is not None:
        sink[0].kill()


_SINK = """
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers["content-length"]))
        self.send_response(200); self.send_header("content-length", "0"); self.end_headers()
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


def _otlp_sink():
    """An OTLP/HTTP endpoint that takes every export and keeps nothing, in a process of its own."""
    import subprocess
    import sys

    from bench.compare import wait_port

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", _SINK, str(port)])
    wait_port(port)
    return proc, f"http://127.0.0.1:{port}/v1/traces"


if __name__ == "__main__":
    main()
