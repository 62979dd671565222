"""The load LLM serving really is: many concurrent streams, each paced like a busy vLLM
(`--frames` frames `--gap` seconds apart), K streams started over one second, through nothing
(direct), nginx, a Python byte relay (bench.floor: the floor of any Python proxy on uvloop)
and the proxy in both dialects. Each frame carries the backend's send time
(CLOCK_MONOTONIC, shared by the processes), so the client sees how late every token arrives.

Prints per target: first frame after the request (p50 / p99 / max, ms), each frame's delay
from the backend's write to the client's read (p50 / p99 / max, ms), the relay's CPU per
frame (µs) and RSS per open stream (KB). `--big` runs large agent requests (50, 200, 500 KB
histories) at a steady rate instead. `make bench-paced` runs it.
"""

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import uvloop

from bench.compare import cpu_and_rss, free_port, start_floors, start_nginx_proxy, wait_port, workers_of

MODEL = b"mistralai/Devstral-Small-2507"
_SENT = re.compile(rb'"content":"t(\d+) ')
_LENGTH = re.compile(rb"content-length:\s*(\d+)", re.I)
_CHUNK = b'data: {"id":"chatcmpl-p","object":"chat.completion.chunk","created":1,"model":"%s","choices":[{"index":0,'
_FRAME = _CHUNK + b'"delta":{"content":"t%d "},"finish_reason":null}]}\n\n'
_LAST = _CHUNK + b'"delta":{},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n'


# ---- the paced backend (its own process: `--serve PORT`)
class PacedBackend(asyncio.Protocol):
    """Answers each POST with `frames` SSE chunks `gap` seconds apart, each stamped with the
    time it is written; GET answers 200 (health checks, /v1/models)."""

    frames = 60
    gap = 0.04

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.buf = b""
        self.loop = asyncio.get_running_loop()

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            m = _LENGTH.search(self.buf, 0, end)
            length = int(m.group(1)) if m else 0
            if len(self.buf) < end + 4 + length:
                return
            head, self.buf = self.buf[:end], self.buf[end + 4 + length :]
            if head.startswith(b"GET"):
                self.transport.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}")
                continue
            self.transport.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
            self.sent = 0
            self.start = self.loop.time()
            self.tick()

    def tick(self) -> None:
        if self.transport.is_closing():
            return
        frame = _FRAME % (MODEL, time.monotonic_ns())
        self.sent += 1
        if self.sent >= self.frames:
            frame += _LAST % MODEL
            self.transport.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(frame), frame))
            return
        self.transport.write(b"%x\r\n%s\r\n" % (len(frame), frame))
        self.loop.call_at(self.start + self.sent * self.gap, self.tick)


def serve(port: int, frames: int, gap: float) -> None:
    PacedBackend.frames, PacedBackend.gap = frames, gap

    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(PacedBackend, "127.0.0.1", port, backlog=8192)
        await server.serve_forever()

    uvloop.run(main())


# ---- the client
class Batch:
    """Streams of one run: their results, and a future done when the last has ended."""

    def __init__(self, n: int) -> None:
        self.left = n
        self.results: list = []
        self.failed = 0
        self.done = asyncio.get_running_loop().create_future()

    def ended(self, result) -> None:
        if result is not None:
            self.results.append(result)
        else:
            self.failed += 1
        self.left -= 1
        if self.left == 0 and not self.done.done():
            self.done.set_result(None)

    async def open(self, port: int, request: bytes) -> None:
        try:
            await asyncio.get_running_loop().create_connection(lambda: Stream(request, self), "127.0.0.1", port)
        except OSError:
            self.ended(None)


class Stream(asyncio.Protocol):
    __slots__ = ("request", "batch", "transport", "t0", "first", "delays", "tail")

    def __init__(self, request: bytes, batch: Batch) -> None:
        self.request = request
        self.batch = batch
        self.first = 0
        self.delays: list[int] = []
        self.tail = b""

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.t0 = time.monotonic_ns()
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        now = time.monotonic_ns()
        buf = self.tail + data if self.tail else data
        last = 0
        for m in _SENT.finditer(buf):
            if not self.first:
                self.first = now
            self.delays.append(now - int(m.group(1)))
            last = m.end()
        self.tail = buf[max(last, len(buf) - 48) :]
        if buf.endswith(b"0\r\n\r\n") and b"[DONE]" in buf[-200:]:
            self.transport.close()

    def connection_lost(self, exc) -> None:
        self.batch.ended((self.first - self.t0 if self.first else None, self.delays))


def request_bytes(body: bytes) -> bytes:
    return b"POST /v1/chat/completions HTTP/1.1\r\nhost: bench\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)


async def launch(port: int, body: bytes, n: int, rate: float) -> tuple[Batch, list]:
    """n requests started evenly, `rate` a second; (their batch, the tasks opening them)."""
    loop = asyncio.get_running_loop()
    batch = Batch(n)
    request = request_bytes(body)
    start = loop.time()
    tasks = []
    for i in range(n):
        delay = start + i / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(loop.create_task(batch.open(port, request)))
    return batch, tasks


async def run_streams(port: int, k: int, body: bytes, sample_rss) -> tuple[list, int]:
    """K streams started evenly over one second; (results, RSS while all were open)."""
    batch, _tasks = await launch(port, body, k, k)
    await asyncio.sleep(0.3)  # every stream open and streaming (each lasts frames x gap)
    rss = sample_rss()
    await asyncio.wait_for(batch.done, 180)
    return batch.results, rss


def pct(values: list, q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * (len(values) - 1)))] if values else float("nan")


def summary(results: list) -> dict:
    firsts = [r[0] / 1e6 for r in results if r[0] is not None]
    delays = [d / 1e6 for r in results for d in r[1]]
    return {
        "streams": len(firsts),
        "frames": len(delays),
        "first": (pct(firsts, 0.5), pct(firsts, 0.99), max(firsts) if firsts else float("nan")),
        "delay": (pct(delays, 0.5), pct(delays, 0.99), max(delays) if delays else float("nan")),
    }


def median_row(rows: list[dict]) -> dict:
    """Each figure's median over repeated runs (streams ok: the fewest)."""
    out = {"streams": min(r["streams"] for r in rows)}
    for key in ("first", "delay"):
        out[key] = tuple(statistics.median(r[key][i] for r in rows) for i in range(3))
    for key in ("cpu_us_per_frame", "rss_kb_per_stream"):
        out[key] = statistics.median(r[key] for r in rows)
    return out


def chat_body(size: int) -> bytes:
    """A chat request of about `size` bytes: a coding agent's long history."""
    messages = [{"role": "system", "content": "You are a coding agent."}]
    chunk = "def f(x):\n    return x + 1\n" * 40
    while len(json.dumps(messages)) < size:
        messages.append({"role": "user", "content": "Read this file:\n" + chunk})
        messages.append({"role": "assistant", "content": "I read it; next step."})
    messages.append({"role": "user", "content": "Now fix the bug."})
    return json.dumps({"model": "gpt-4", "stream": True, "messages": messages}).encode()


def start_targets(which: list[str], backend_port: int, workers: int, work: Path, procs: list) -> dict:
    """{target: (port, pids to measure)}."""
    work.mkdir(parents=True, exist_ok=True)
    targets = {"direct": (backend_port, [])}
    if "nginx" in which:
        port = free_port()
        nginx = start_nginx_proxy(work, backend_port, port, workers, procs, connections=12000)
        wait_port(port)
        time.sleep(0.3)
        targets["nginx"] = (
            port,
            [int(p) for p in subprocess.run(["pgrep", "-P", str(nginx.pid)], capture_output=True, text=True).stdout.split()] or [nginx.pid],
        )
    if "floor" in which:  # a Python byte relay on uvloop, parsing nothing: what any Python proxy pays
        port = free_port()
        floors = start_floors(port, backend_port, workers, procs)
        wait_port(port)
        time.sleep(0.3)
        targets["floor"] = (port, [f.pid for f in floors])
    for dialect in ("openai", "mistral"):
        if f"proxy-{dialect}" not in which:
            continue
        port = free_port()
        config = work / f"{dialect}.toml"
        lines = ["[server]", f"port = {port}", f"workers = {workers}", "max_connections = 20000", "backlog = 8192"]
        lines += ["[backends.vllm]", f'url = "http://127.0.0.1:{backend_port}"', f'dialect = "{dialect}"']
        lines += ["[model_mapping]", '"gpt-4" = "mistralai/Devstral-Small-2507"', "[logging]", 'level = "WARNING"', "access = false"]
        lines += ["[routing]", "load_interval = 0"]
        config.write_text("\n".join(lines) + "\n")
        proc = subprocess.Popen([sys.executable, "-m", "devstral_proxy", "--config", str(config)], stderr=subprocess.DEVNULL)
        procs.append(proc)
        wait_port(port)
        time.sleep(0.5 if workers == 1 else 1.5)
        targets[f"proxy-{dialect}"] = (port, workers_of(proc.pid, workers))
    return targets


def measure(target: str, port: int, pids: list, k: int, body: bytes) -> dict:
    before_cpu, before_rss = cpu_and_rss(pids) if pids else (0.0, 0)
    results, rss = uvloop.run(run_streams(port, k, body, lambda: cpu_and_rss(pids)[1] if pids else 0))
    after_cpu, _ = cpu_and_rss(pids) if pids else (0.0, 0)
    row = summary(results)
    row["cpu_us_per_frame"] = (after_cpu - before_cpu) / row["frames"] * 1e6 if pids and row["frames"] else float("nan")
    row["rss_kb_per_stream"] = (rss - before_rss) / k / 1024 if pids else float("nan")
    return row


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    p.add_argument("--streams", default="500,1500,2000,5000", help="K: concurrent streams per run")
    p.add_argument("--frames", type=int, default=60)
    p.add_argument("--gap", type=float, default=0.04, help="seconds between a stream's frames (0.04: 25 tokens/s)")
    p.add_argument("--targets", default="direct,nginx,floor,proxy-openai,proxy-mistral", help="floor: bench.floor, a Python byte relay")
    p.add_argument("--workers", type=int, default=1, help="proxy workers and nginx worker_processes")
    p.add_argument("--repeat", type=int, default=1, help="runs per row; each figure is the median over them")
    p.add_argument("--big", action="store_true", help="large agent requests (50, 200, 500 KB) instead")
    args = p.parse_args(argv)
    if args.serve:
        serve(args.serve, args.frames, args.gap)
        return
    backend_port = free_port()
    procs: list = []
    work = Path(tempfile.mkdtemp(prefix="paced-"))
    frames = 5 if args.big else args.frames
    procs.append(subprocess.Popen([sys.executable, "-m", "bench.paced", "--serve", str(backend_port), "--frames", str(frames), "--gap", str(args.gap)]))
    try:
        wait_port(backend_port)
        print(f"{os.cpu_count()} CPUs; streams of {frames} frames {args.gap * 1000:g} ms apart, K started over 1 s; workers {args.workers}\n")
        if args.big:
            big(start_targets(args.targets.split(","), backend_port, args.workers, work, procs), args)
            return
        print("| K | target | first frame p50 / p99 / max ms | frame delay p50 / p99 / max ms | relay CPU µs/frame | RSS KB/stream | streams ok |")
        print("|---|---|---|---|---|---|---|")
        body = json.dumps({"model": "gpt-4", "stream": True, "messages": [{"role": "user", "content": "Write the function."}]}).encode()
        for k in [int(x) for x in args.streams.split(",")]:
            fresh: list = []  # new relays for each K: their RSS growth is this run's
            targets = start_targets(args.targets.split(","), backend_port, args.workers, work / str(k), fresh)
            procs.extend(fresh)
            for target, (port, pids) in targets.items():
                r = median_row([measure(target, port, pids, k, body) for _ in range(args.repeat)])
                f, d = r["first"], r["delay"]
                print(
                    f"| {k} | {target} | {f[0]:.1f} / {f[1]:.1f} / {f[2]:.0f} | {d[0]:.2f} / {d[1]:.1f} / {d[2]:.0f} | "
                    f"{r['cpu_us_per_frame']:.1f} | {r['rss_kb_per_stream']:.1f} | {r['streams']} |",
                    flush=True,
                )
                time.sleep(0.5)
            for proc in fresh:
                proc.terminate()
                proc.wait(10)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(10)


def big(targets: dict, args) -> None:
    """Large histories, 4 requests a second for 10 s each size: time to the first frame."""
    print("| request | target | first frame p50 / p99 ms | added p50 / p99 ms vs direct |")
    print("|---|---|---|---|")
    for size in (50_000, 200_000, 500_000):
        body = chat_body(size)
        direct = None
        for target, (port, _) in targets.items():
            results, _ = uvloop.run(paced_requests(port, body, 4.0, 10.0))
            firsts = [r[0] / 1e6 for r in results if r[0] is not None]
            p50, p99 = pct(firsts, 0.5), pct(firsts, 0.99)
            if target == "direct":
                direct = (p50, p99)
            added = f"{p50 - direct[0]:+.1f} / {p99 - direct[1]:+.1f}" if direct else "-"
            print(f"| {len(body) // 1000} KB | {target} | {p50:.1f} / {p99:.1f} | {added} |", flush=True)


async def paced_requests(port: int, body: bytes, rate: float, seconds: float) -> tuple[list, int]:
    batch, _tasks = await launch(port, body, int(rate * seconds), rate)
    await asyncio.wait_for(batch.done, 180)
    return batch.results, 0


if __name__ == "__main__":
    main()
