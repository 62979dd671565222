"""The process under an operator: systemd's notify protocol, and SIGTERM's graceful drain."""

import json
import signal
import socket
import subprocess
import sys
import time

import pytest

from tests.support import eventually, free_port, http, proxy_process

STREAM = json.dumps({"model": "mistral-sim", "stream": True, "messages": [{"role": "user", "content": "hi"}]}).encode()


def start(sim, port: int, *extra: str, env: dict | None = None) -> subprocess.Popen:
    return proxy_process(port, "--upstream", sim.url, "--log-level", "WARNING", *extra, env=env)


def test_sigterm_lets_a_stream_finish_refuses_new_connections_and_exits_0(sim):
    sim.behavior.token_delay = 0.05  # ~1 s of frames
    port = free_port()
    proc = start(sim, port)
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(STREAM), STREAM))
    assert s.recv(65536).startswith(b"HTTP/1.1 200 ")
    proc.send_signal(signal.SIGTERM)

    def refused() -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return False
        except (ConnectionRefusedError, ConnectionResetError):  # reset: it was in the backlog of the listener closing
            return True

    eventually(refused, what="the listening socket closing")
    got = b""
    while chunk := s.recv(65536):
        got += chunk
    assert got.rstrip().endswith(b"0")  # the chunked stream's last chunk
    assert b"data: [DONE]" in got and b'"error"' not in got
    assert proc.wait(10) == 0


def test_drain_deadline_cuts_what_is_still_running(sim, tmp_path):
    sim.behavior.token_delay = 0.2  # 4 s of frames, drain allows 0.5 s
    port = free_port()
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[server]\ndrain_timeout = 0.5\n[backends.b]\nurl = "{sim.url}"\n')
    proc = subprocess.Popen([sys.executable, "-m", "devstral_proxy", "--config", str(cfg), "--port", str(port), "--log-level", "WARNING"])
    deadline = time.time() + 15
    while True:
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            break
        except OSError:
            assert time.time() < deadline
            time.sleep(0.05)
    s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(STREAM), STREAM))
    s.recv(65536)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0
    assert time.monotonic() - t0 < 3


@pytest.mark.parametrize("workers", [1, 2])
def test_notify_protocol(sim, tmp_path, workers):
    path = str(tmp_path / "notify.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(path)
    listener.settimeout(10)
    port = free_port()
    env = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "200000"}
    proc = start(sim, port, "--workers", str(workers), env=env)
    try:
        messages = []
        while "READY=1" not in messages:
            messages.append(listener.recv(4096).decode())
        while "WATCHDOG=1" not in messages:
            messages.append(listener.recv(4096).decode())
        assert http("GET", f"http://127.0.0.1:{port}/health").status == 200
        proc.send_signal(signal.SIGTERM)
        while "STOPPING=1" not in messages:
            messages.append(listener.recv(4096).decode())
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        listener.close()
