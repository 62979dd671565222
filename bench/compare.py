"""Side-by-side benchmark: the same wrk load against the backend directly, nginx as a plain
reverse proxy, a Python byte relay on uvloop (bench/floor.py: the floor for any Python proxy),
and devstral-proxy with the openai and the mistral dialect, in one run.

The backend is nginx answering fixed vLLM-format bodies (it is never the bottleneck). Prints a
Markdown table: req/s, p50/p99 latency, latency added over direct, proxy CPU µs per request,
RSS, and ratios to nginx's figures from the same run. `make bench` runs it.
"""

import argparse
import http.client
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHAT_BODY = {
    "id": "chatcmpl-bench",
    "object": "chat.completion",
    "created": 1700000000,
    "model": "mistralai/Devstral-Small-2507",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hello! " * 40, "tool_calls": []},
            "logprobs": None,
            "finish_reason": "stop",
            "stop_reason": None,
        }
    ],
    "usage": {"prompt_tokens": 60, "total_tokens": 140, "completion_tokens": 80},
}


def sse_body(frames: int = 40) -> str:
    base = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1700000000, "model": "mistralai/Devstral-Small-2507"}
    out = []
    for i in range(frames):
        delta = {"content": f"word{i} "}
        out.append(
            "data: "
            + json.dumps(
                {**base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": None if i < frames - 1 else "stop"}]},
                separators=(",", ":"),
            )
            + "\n\n"
        )
    return "".join(out) + "data: [DONE]\n\n"


REQUEST = {
    "model": "gpt-4",
    "messages": [
        {"role": "system", "content": "You are a helpful assistant. " * 8},
        {"role": "user", "content": "Summarise the following text in one sentence: " + "lorem ipsum dolor sit amet " * 25},
    ],
    "temperature": 0.2,
    "max_tokens": 128,
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 10) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {port}")


def nginx_conf(work: Path, name: str, server_block: str, workers: int = 1, connections: int = 4096) -> Path:
    conf = work / f"{name}.conf"
    conf.write_text(
        f"""
worker_processes {workers};
daemon off;
pid {work}/{name}.pid;
error_log {work}/{name}.error.log warn;
worker_rlimit_nofile {connections * 2 + 64};
events {{ worker_connections {connections}; }}
http {{
  access_log off;
  keepalive_requests 1000000;
  keepalive_timeout 75s;
  client_body_temp_path {work}/{name}.body;
  client_body_buffer_size 2m;  # agent histories stay in memory (the workers may not write here)
  client_max_body_size 64m;
  proxy_temp_path {work}/{name}.proxy;
  {server_block}
}}
"""
    )
    return conf


def escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def wrk_script(path: Path, body: str, stream: bool = False) -> Path:
    """A wrk Lua script POSTing `body` as JSON; `stream` adds the header that makes the static
    backend answer with its SSE body."""
    stream_header = 'wrk.headers["X-Stream"] = "1"\n' if stream else ""
    path.write_text(f'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n{stream_header}wrk.body = "{escape(body)}"\n')
    return path


def cpu_and_rss(pids: list[int]) -> tuple[float, int]:
    """(user+system CPU seconds, RSS bytes) of processes, summed."""
    cpu, rss = 0.0, 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        cpu += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        rss += int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
    return cpu, rss


def proxy_config(backend_port: int, dialect: str, port: int, workers: int = 1, access_log: bool = False) -> dict:
    """devstral-proxy's config for a run: one backend, gpt-4 mapped to the backend's name,
    access lines off unless asked for (their cost is measured on its own)."""
    return {
        "server": {"host": "127.0.0.1", "port": port, "workers": workers},
        "backends": {"vllm": {"url": f"http://127.0.0.1:{backend_port}", "dialect": dialect}},
        "model_mapping": {"gpt-4": "mistralai/Devstral-Small-2507"},
        "logging": {"level": "INFO" if access_log else "WARNING"},
    }


def children(pid: int) -> list[int]:
    return [int(x) for x in subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False).stdout.split()]


def workers_of(pid: int, count: int) -> list[int]:
    """The processes serving: the process itself, or its worker children."""
    return [pid] if count == 1 else children(pid)


def start_nginx_proxy(work: Path, backend_port: int, port: int, workers: int, procs: list, connections: int = 4096) -> subprocess.Popen:
    """nginx as a plain reverse proxy to the backend: upstream keepalive, no buffering."""
    conf = nginx_conf(
        work,
        "proxy",
        f"""upstream vllm {{ server 127.0.0.1:{backend_port}; keepalive 512; }}
  server {{
    listen 127.0.0.1:{port} reuseport;
    location / {{ proxy_pass http://vllm; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_buffering off; }}
  }}""",
        workers,
        connections,
    )
    proc = subprocess.Popen(["nginx", "-c", str(conf), "-p", str(work)])
    procs.append(proc)
    return proc


def start_floors(port: int, backend_port: int, workers: int, procs: list) -> list[subprocess.Popen]:
    """The floor: a Python byte relay on uvloop (bench/floor.py), one process per worker
    (they share the port)."""
    floors = [subprocess.Popen([sys.executable, "-m", "bench.floor", "--port", str(port), "--upstream", f"127.0.0.1:{backend_port}"]) for _ in range(workers)]
    procs.extend(floors)
    return floors


def parse_wrk(out: str) -> dict:
    def latency(label: str) -> float:
        m = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        value, unit = float(m.group(1)), m.group(2)
        return value * {"us": 1, "ms": 1000, "s": 1_000_000}[unit]

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": rps, "p50": latency("50"), "p99": latency("99"), "requests": total, "errors": int(errors.group(1)) if errors else 0}


def stop_all(procs: list, work: Path) -> None:
    """SIGTERM every process started for a run (kill what does not stop), remove its files."""
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
    shutil.rmtree(work, ignore_errors=True)


def median_run(runs: list[dict]) -> dict:
    """Each figure's median over repeated runs."""
    out = {}
    for key in runs[0]:
        values = [r[key] for r in runs if r[key] is not None]
        out[key] = statistics.median(values) if values else None
    return out


def first_frames(port: int, body: bytes, count: int) -> dict:
    """Time from sending a streamed request to reading its first SSE frame, one keep-alive
    connection, `count` requests one after another (http.client: the same client cost for
    every target, so differences are the targets')."""
    conn = http.client.HTTPConnection("127.0.0.1", port)
    headers = {"Content-Type": "application/json", "X-Stream": "1"}
    times = []
    for _ in range(count):
        start = time.perf_counter()
        conn.request("POST", "/v1/chat/completions", body, headers)
        reply = conn.getresponse()
        first = reply.read1(65536)
        times.append(time.perf_counter() - start)
        if not first.startswith(b"data:"):
            raise RuntimeError(f"port {port}: the stream did not start with a frame: {first[:80]!r}")
        reply.read()
    conn.close()
    times.sort()
    return {"p50": times[len(times) // 2] * 1e6, "p99": times[int(len(times) * 0.99)] * 1e6}


def measure(port: int, conns: int, seconds: float, script: Path, pids: list[int] | None) -> dict:
    """One wrk run against a target, with its processes' CPU per request and RSS."""
    before = cpu_and_rss(pids) if pids else (0.0, 0)
    r = run_wrk(f"http://127.0.0.1:{port}/v1/chat/completions", conns, seconds, script)
    after = cpu_and_rss(pids) if pids else (0.0, 0)
    r["cpu_us"] = (after[0] - before[0]) / max(r["requests"], 1) * 1e6 if pids else None
    r["rss"] = after[1]
    return r


def run_wrk(url: str, conns: int, seconds: float, script: Path) -> dict:
    threads = 1 if conns < 4 else 2
    cmd = ["wrk", "-t", str(threads), "-c", str(conns), "-d", f"{seconds:g}s", "--latency", "-s", str(script), url]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return parse_wrk(out)


def start_backend(work: Path, port: int, procs: list) -> tuple[str, str]:
    """nginx answering POST /v1/chat/completions with a fixed vLLM-format body, or with a
    40-frame SSE body when the request has an X-Stream header. Returns both bodies."""
    chat = json.dumps(CHAT_BODY, separators=(",", ":"))
    stream = sse_body()
    # nginx's return takes one parameter of at most 4 KB: build the stream from pieces
    pieces = [stream[i : i + 3000] for i in range(0, len(stream), 3000)]
    sets = " ".join(f'set $s{i} "{escape(piece)}";' for i, piece in enumerate(pieces))
    backend = nginx_conf(
        work,
        "backend",
        f"""server {{
    listen 127.0.0.1:{port} reuseport;
    location /v1/chat/completions {{
      if ($http_x_stream) {{ rewrite ^ /stream last; }}
      default_type application/json;
      return 200 "{escape(chat)}";
    }}
    location = /stream {{
      default_type text/event-stream;
      {sets}
      return 200 "{"".join(f"$s{i}" for i in range(len(pieces)))}";
    }}
  }}""",
    )
    procs.append(subprocess.Popen(["nginx", "-c", str(backend), "-p", str(work)]))
    return chat, stream


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--repeat", type=int, default=3, help="runs per cell; medians are reported")
    p.add_argument("--conns", default="1,50,256")
    p.add_argument("--workers", type=int, default=1, help="worker processes of devstral-proxy and of the nginx reference")
    p.add_argument("--only", default="", help="comma-separated target name parts to run (e.g. 'nginx,openai')")
    p.add_argument("--no-stream", action="store_true", help="skip the streaming load")
    p.add_argument("--access-log", action="store_true", help="devstral-proxy writes its JSON access lines (to a file)")
    p.add_argument("--agent", action="store_true", help="also a 201-message, 92 KiB agent conversation at 1 connection")
    p.add_argument(
        "--pin", action="store_true", help="one worker only: the proxies (nginx, relay, devstral-proxy) on CPU 0; wrk, the backend and this script on CPU 1"
    )
    args = p.parse_args(argv)
    if args.pin:
        if args.workers != 1 or os.cpu_count() < 2:
            sys.exit("--pin needs --workers 1 and two CPUs")
        os.sched_setaffinity(0, {1})  # inherited by everything started from here on
    for tool in ("nginx", "wrk"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is needed: apt-get install {tool}")
    work = Path(tempfile.mkdtemp(prefix="devstral-bench-"))
    procs: list[subprocess.Popen] = []
    try:
        backend_port, nginx_port, openai_port, mistral_port, floor_port = (free_port() for _ in range(5))
        chat, stream = start_backend(work, backend_port, procs)
        nginx = start_nginx_proxy(work, backend_port, nginx_port, args.workers, procs)
        proxies = {}
        for name, port, dialect in (("devstral-proxy openai", openai_port, "openai"), ("devstral-proxy mistral", mistral_port, "mistral")):
            cfg = work / f"{dialect}.json"
            cfg.write_text(json.dumps(proxy_config(backend_port, dialect, port, args.workers, args.access_log)))
            log = open(work / f"{dialect}.log", "w")
            proc = subprocess.Popen([sys.executable, "-m", "devstral_proxy", "--config", str(cfg)], stderr=log)
            procs.append(proc)
            proxies[name] = (port, proc)
        floors = start_floors(floor_port, backend_port, args.workers, procs)
        for port in (backend_port, nginx_port, openai_port, mistral_port, floor_port):
            wait_port(port)
        nginx_workers = children(nginx.pid)

        body = json.dumps(REQUEST)
        script = wrk_script(work / "chat.lua", body)
        stream_script = wrk_script(work / "stream.lua", json.dumps({**REQUEST, "stream": True}), stream=True)

        time.sleep(0.5)  # workers up
        targets = [
            ("direct to backend", backend_port, None),
            ("nginx pass-through", nginx_port, nginx_workers),
            ("python byte relay (floor)", floor_port, [f.pid for f in floors]),
        ]
        targets += [(name, port, workers_of(proc.pid, args.workers)) for name, (port, proc) in proxies.items()]
        if args.pin:
            for _, _, pids in targets[1:]:
                for pid in pids:
                    os.sched_setaffinity(pid, {0})
        conns = [int(c) for c in args.conns.split(",")]
        loads = [(f"chat, {c} conn", c, script) for c in conns] + ([] if args.no_stream else [("stream (40 frames), 50 conn", 50, stream_script)])
        if args.agent:
            from tests.conversations import READ, WRITE, agent_history

            agent_body = json.dumps({"model": "gpt-4", "messages": agent_history(100), "tools": [READ, WRITE]})
            agent = wrk_script(work / "agent.lua", agent_body)
            loads.append((f"agent history {len(agent_body) // 1024} KiB, 1 conn", 1, agent))
        if args.only:
            keep = ["direct", "nginx", "floor", *args.only.split(",")]
            targets = [t for t in targets if any(k in t[0] for k in keep)]
        print(
            f"request body {len(body)} bytes; reply {len(chat)} bytes; stream {len(stream)} bytes; "
            f"median of {args.repeat} runs of {args.seconds:g} s per cell; {args.workers} worker(s)"
            f"{'; proxies pinned to CPU 0, wrk and backend to CPU 1' if args.pin else ''}\n"
        )
        print("| load | target | req/s | p50 µs | p99 µs | added p50 µs | proxy CPU µs/req | RSS MB | req/s vs nginx | added p50 vs nginx |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for label, c, scr in loads:
            runs: dict[str, list[dict]] = {name: [] for name, _, _ in targets}
            for round_ in range(args.repeat):  # targets interleaved, so noise hits them alike
                for name, port, pid in targets:
                    if round_ == 0:
                        measure(port, c, 1, scr, None)  # warm up
                    runs[name].append(measure(port, c, args.seconds, scr, pid))
            results = {name: median_run(rs) for name, rs in runs.items()}
            direct, ngx = results["direct to backend"], results["nginx pass-through"]
            for name, r in results.items():
                added = r["p50"] - direct["p50"]
                nginx_added = ngx["p50"] - direct["p50"]
                cpu = f"{r['cpu_us']:.0f}" if r["cpu_us"] is not None else "-"
                rss = f"{r['rss'] / 1e6:.0f}" if r["rss"] else "-"
                ratio = f"{r['rps'] / ngx['rps']:.2f}x"
                added_ratio = f"{added / nginx_added:.2f}x" if name != "direct to backend" and nginx_added > 0 else "-"
                errs = f" ({r['errors']} errors)" if r["errors"] else ""
                print(
                    f"| {label} | {name}{errs} | {r['rps']:.0f} | {r['p50']:.0f} | {r['p99']:.0f} | {added:.0f} | {cpu} | {rss} | {ratio} | {added_ratio} |",
                    flush=True,
                )
        if not args.no_stream:
            stream_body = json.dumps({**REQUEST, "stream": True}).encode()
            runs = {name: [] for name, _, _ in targets}
            for _ in range(args.repeat):
                for name, port, _ in targets:
                    first_frames(port, stream_body, 200)  # warm up
                    runs[name].append(first_frames(port, stream_body, 2000))
            results = {name: median_run(rs) for name, rs in runs.items()}
            direct, ngx = results["direct to backend"], results["nginx pass-through"]
            print("\n| first SSE frame, 1 conn (http.client) | p50 µs | p99 µs | added p50 µs | added p50 vs nginx |")
            print("|---|---|---|---|---|")
            for name, r in results.items():
                added, nginx_added = r["p50"] - direct["p50"], ngx["p50"] - direct["p50"]
                ratio = f"{added / nginx_added:.2f}x" if name != "direct to backend" and nginx_added > 0 else "-"
                print(f"| {name} | {r['p50']:.0f} | {r['p99']:.0f} | {added:.0f} | {ratio} |", flush=True)
    finally:
        stop_all(procs, work)


if __name__ == "__main__":
    main()
