"""Test helpers: run a server (the proxy, the simulated backend) on its own event loop in a
thread, on a loopback port, and stop it cleanly.
"""

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import uvloop

from bench.simulator import Behavior, Simulator
from devstral_proxy.app import Proxy
from devstral_proxy.config import build


class LoopThread:
    """An event loop running in a daemon thread; `call(coro_fn)` runs a coroutine there."""

    def __init__(self) -> None:
        self.loop = uvloop.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def call(self, fn: Callable[[], Awaitable], timeout: float = 10):
        return asyncio.run_coroutine_threadsafe(fn(), self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


class SimThread:
    """The simulated vLLM on a loopback port."""

    def __init__(self, behavior: Behavior | None = None, port: int = 0, ssl_context=None) -> None:
        self.sim = Simulator(behavior)
        self.loop = LoopThread()
        self.port = self.loop.call(lambda: self.sim.start("127.0.0.1", port, ssl_context))
        self.url = f"{'https' if ssl_context else 'http'}://127.0.0.1:{self.port}"

    @property
    def behavior(self) -> Behavior:
        return self.sim.behavior

    @property
    def record(self):
        return self.sim.record

    @property
    def running(self) -> int:
        """The engine's sequences running now (Behavior.slots)."""
        return self.sim.running

    @property
    def waiting(self) -> int:
        return self.sim.waiting

    def stop(self) -> None:
        self.loop.call(self.sim.stop)
        self.loop.stop()


class ProxyThread:
    """A Proxy server object on a loopback port, configured like the CLI would."""

    def __init__(self, upstream: str | None = None, **sections) -> None:
        """`sections` are config-file sections, e.g. server={"header_timeout": 1}."""
        self.config = build(sections, env={}, overrides={"upstream": upstream, "host": "127.0.0.1", "port": 0})
        self.proxy = Proxy(self.config)
        self.loop = LoopThread()
        self.host, self.port = self.loop.call(self.proxy.start)
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.loop.call(self.proxy.close)
        self.loop.stop()


def eventually(predicate, timeout: float = 30.0, what: str = "the condition", interval: float = 0.01):
    """Wait for `predicate()` to hold (returns its value): the way a test waits for something
    that takes real time. The bound is generous (a busy 2-core CI machine); never a fixed sleep."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout:g} s"
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def raw_exchange(port: int, data: bytes, timeout: float = 5.0, until_close: bool = True) -> bytes:
    """Send raw bytes, return everything read until the server closes (or the timeout)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
                if not until_close:
                    break
        except TimeoutError:
            pass
        return out


class Reply:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        import json

        return json.loads(self.body)


def http(method: str, url: str, body: bytes | dict | None = None, headers: dict[str, str] | None = None, timeout: float = 10) -> Reply:
    """One plain HTTP/1.1 request with the standard library (an independent client)."""
    import http.client
    import json
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    if isinstance(body, dict):
        body = json.dumps(body).encode()
        headers = {"content-type": "application/json", **(headers or {})}
    try:
        conn.request(method, parts.path + (f"?{parts.query}" if parts.query else ""), body=body, headers=headers or {})
        r = conn.getresponse()
        return Reply(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
    finally:
        conn.close()


class RawBackend:
    """A hand-written backend for fault tests: `serve(reader, writer)` per connection, on an
    asyncio server in its own loop thread."""

    def __init__(self, serve) -> None:
        self.loop = LoopThread()

        async def start() -> int:
            server = await asyncio.start_server(serve, "127.0.0.1", 0)
            return server.sockets[0].getsockname()[1]

        self.port = self.loop.call(start)

    def stop(self) -> None:
        self.loop.stop()


def read_to_close(sock: socket.socket) -> bytes:
    """Everything the peer sends until it closes (a reset counts as the close)."""
    parts = []
    try:
        while chunk := sock.recv(65536):
            parts.append(chunk)
    except ConnectionResetError:
        pass
    return b"".join(parts)


def proxy_process(port: int, *args: str, env: dict | None = None) -> subprocess.Popen:
    """`python -m devstral_proxy --port PORT ARGS...` in a process of its own, once it accepts."""
    proc = subprocess.Popen([sys.executable, "-m", "devstral_proxy", "--port", str(port), *args], env={**os.environ, **(env or {})})
    deadline = time.time() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            if time.time() > deadline or proc.poll() is not None:
                proc.kill()
                raise AssertionError("the proxy did not start") from None
            time.sleep(0.05)


def documentation() -> str:
    """The README and every page of docs/: where a test finds the snippets users copy."""
    root = Path(__file__).resolve().parent.parent
    return "\n".join(path.read_text() for path in [root / "README.md", *sorted((root / "docs").glob("*.md"))])


class TinyServer:
    """A threaded HTTP server on a loopback port for what a test plays (an identity provider, a
    trace collector): `respond(method, body) -> (status, content type, reply body)`."""

    def __init__(self, respond) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                status, ctype, body = respond(self.command, self.rfile.read(length) if length else b"")
                self.send_response(status)
                self.send_header("content-type", ctype)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
