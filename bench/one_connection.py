"""One client connection, one request at a time: where a relay's time goes when every request
is its own wake-up. Per target: round trip p50/p99, added p50 against direct, the relay's CPU
per request split into user and system time and, with `--callgrind`, its user-space
instructions per request (valgrind; Python relays only) and so the time each instruction takes.

Run: `python -m bench.one_connection [--requests 20000] [--callgrind]` (`make bench-one`).
The backend is nginx with a fixed reply (bench.compare's), the client a plain blocking socket.
"""

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.compare import REQUEST, free_port, proxy_config, start_backend, start_nginx_proxy, stop_all, wait_port

_TICK = os.sysconf("SC_CLK_TCK")


def user_system(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / _TICK, int(fields[12]) / _TICK


def request_bytes() -> bytes:
    body = json.dumps(REQUEST).encode()
    head = b"POST /v1/chat/completions HTTP/1.1\r\nhost: bench\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
    return head % len(body) + body


def round_trips(port: int, n: int) -> list[float]:
    """n requests on one keep-alive connection; each round trip in µs."""
    request = request_bytes()
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    times = []
    buf = b""
    try:
        for _ in range(n):
            t0 = time.perf_counter()
            sock.sendall(request)
            while (end := buf.find(b"\r\n\r\n")) < 0:
                buf += sock.recv(65536)
            head = buf[:end].lower()
            at = head.find(b"content-length:")
            if not head.startswith(b"http/1.1 200") or at < 0:
                raise RuntimeError(f"unexpected reply: {buf[:200]!r}")
            total = end + 4 + int(head[at + 15 :].split(b"\r\n", 1)[0])
            while len(buf) < total:
                buf += sock.recv(65536)
            buf = buf[total:]
            times.append((time.perf_counter() - t0) * 1e6)
    finally:
        sock.close()
    return times


def instructions(command: list[str], port: int, work: Path, counts=(300, 1300)) -> float:
    """User-space instructions per request of a relay under callgrind (the difference of two
    runs, so start-up cancels out)."""
    got = []
    for n in counts:
        out = work / f"callgrind.{port}.{n}"
        proc = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *command], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_port(port, 120)
            round_trips(port, n)
        finally:
            proc.send_signal(2)
            proc.wait(120)
        summary = next(line for line in out.read_text().splitlines() if line.startswith(("summary:", "totals:")))
        got.append(int(summary.split()[1]))
    return (got[1] - got[0]) / (counts[1] - counts[0])


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--requests", type=int, default=20000)
    p.add_argument("--callgrind", action="store_true", help="also count the Python relays' instructions per request")
    args = p.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="one-conn-"))
    procs: list = []
    backend = free_port()
    start_backend(work, backend, procs)
    wait_port(backend)
    commands = {"floor": lambda port: [sys.executable, "-m", "bench.floor", "--port", str(port), "--upstream", f"127.0.0.1:{backend}"]}
    for dialect in ("openai", "mistral"):
        config = work / f"{dialect}.json"

        def proxy(port, config=config, dialect=dialect):
            config.write_text(json.dumps(proxy_config(backend, dialect, port)))
            return [sys.executable, "-m", "devstral_proxy", "--config", str(config)]

        commands[f"proxy-{dialect}"] = proxy
    try:
        targets = {"direct": (backend, None)}
        nginx = free_port()
        targets["nginx"] = (nginx, start_nginx_proxy(work, backend, nginx, 1, procs))
        for name, command in commands.items():
            port = free_port()
            proc = subprocess.Popen(command(port), stderr=subprocess.DEVNULL)
            procs.append(proc)
            targets[name] = (port, proc)
        for port, _ in targets.values():
            wait_port(port)
        time.sleep(1.0)
        print(
            "| target | round trip p50 / p99 µs | added p50 µs | relay CPU µs/request (user + system) | user instructions/request | ns per instruction (user) |"
        )
        print("|---|---|---|---|---|---|")
        direct_p50 = None
        for name, (port, proc) in targets.items():
            round_trips(port, 1000)  # warm: pools, caches
            pids = (
                []
                if proc is None
                else (
                    [int(x) for x in subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()]
                    if name == "nginx"
                    else [proc.pid]
                )
            )
            before = [user_system(pid) for pid in pids]
            times = round_trips(port, args.requests)
            after = [user_system(pid) for pid in pids]
            p50 = statistics.median(times)
            p99 = sorted(times)[int(0.99 * (len(times) - 1))]
            direct_p50 = p50 if direct_p50 is None else direct_p50
            user = sum(a[0] - b[0] for a, b in zip(after, before)) / args.requests * 1e6
            system = sum(a[1] - b[1] for a, b in zip(after, before)) / args.requests * 1e6
            cpu = f"{user + system:.0f} ({user:.0f} + {system:.0f})" if pids else "-"
            count = per = "-"
            if args.callgrind and name in commands:
                port2 = free_port()
                n = instructions(commands[name](port2), port2, work)
                count, per = f"{n / 1000:.1f}k", f"{user * 1000 / n:.2f}"
            print(f"| {name} | {p50:.0f} / {p99:.0f} | {p50 - direct_p50:+.0f} | {cpu} | {count} | {per} |", flush=True)
    finally:
        stop_all(procs, work)


if __name__ == "__main__":
    main()
