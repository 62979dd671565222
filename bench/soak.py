"""Soak: full wrk load on devstral-proxy for several minutes, RSS sampled as it runs, to show
that memory does not grow. Uses the static nginx backend of bench/compare.py.

Run: `python -m bench.soak --minutes 5 --dialect mistral`.
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.compare import REQUEST, cpu_and_rss, free_port, parse_wrk, proxy_config, start_backend, stop_all, wait_port, wrk_script


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--minutes", type=float, default=5.0)
    p.add_argument("--conns", type=int, default=50)
    p.add_argument("--dialect", default="mistral")
    p.add_argument("--every", type=float, default=30.0, help="seconds between RSS samples")
    args = p.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="devstral-soak-"))
    procs: list = []
    try:
        backend_port, port = free_port(), free_port()
        start_backend(work, backend_port, procs)
        cfg = work / "proxy.json"
        cfg.write_text(json.dumps(proxy_config(backend_port, args.dialect, port)))
        proxy = subprocess.Popen([sys.executable, "-m", "devstral_proxy", "--config", str(cfg)])
        procs.append(proxy)
        wait_port(backend_port)
        wait_port(port)
        script = wrk_script(work / "chat.lua", json.dumps(REQUEST))
        seconds = int(args.minutes * 60)
        wrk = subprocess.Popen(
            ["wrk", "-t", "2", "-c", str(args.conns), "-d", f"{seconds}s", "--latency", "-s", str(script), f"http://127.0.0.1:{port}/v1/chat/completions"],
            stdout=subprocess.PIPE,
            text=True,
        )
        print("| elapsed s | proxy RSS MB |\n|---|---|")
        start = time.time()
        while wrk.poll() is None:
            print(f"| {time.time() - start:.0f} | {cpu_and_rss([proxy.pid])[1] / 1e6:.1f} |", flush=True)
            time.sleep(args.every)
        r = parse_wrk(wrk.stdout.read())
        print(f"| end | {cpu_and_rss([proxy.pid])[1] / 1e6:.1f} |")
        print(f"\n{r['requests']} requests, {r['rps']:.0f} req/s, p50 {r['p50']:.0f} µs, p99 {r['p99']:.0f} µs, {r['errors']} non-2xx")
    finally:
        stop_all(procs, work)


if __name__ == "__main__":
    main()
