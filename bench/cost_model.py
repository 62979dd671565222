"""What a given CPU cost per request allows on this machine: the Python byte relay (bench/floor.py)
burning 0, 10, 20, 30 µs per request, beside nginx, under the same wrk load as bench/compare.py.

Run: `python -m bench.cost_model [--spins 0,10,20,30] [--repeat 3]`. Prints req/s and the relay's
CPU per request: how far a proxy's own work per request is from a throughput ratio to nginx.
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.compare import REQUEST, children, free_port, measure, median_run, start_backend, start_nginx_proxy, stop_all, wait_port, wrk_script


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--spins", default="0,10,20,30", help="µs of busy CPU per request, comma-separated")
    p.add_argument("--conns", type=int, default=50)
    p.add_argument("--seconds", type=float, default=4)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="devstral-cost-"))
    procs: list[subprocess.Popen] = []
    try:
        backend_port, nginx_port = free_port(), free_port()
        start_backend(work, backend_port, procs)
        nginx = start_nginx_proxy(work, backend_port, nginx_port, 1, procs)
        targets = []
        for spin in (float(s) for s in args.spins.split(",")):
            port = free_port()
            proc = subprocess.Popen(
                [sys.executable, "-m", "bench.floor", "--port", str(port), "--upstream", f"127.0.0.1:{backend_port}", "--spin-us", str(spin)]
            )
            procs.append(proc)
            targets.append((f"byte relay + {spin:g} µs/request", port, [proc.pid]))
        for port in (backend_port, nginx_port, *(t[1] for t in targets)):
            wait_port(port)
        time.sleep(0.5)
        targets.insert(0, ("nginx pass-through", nginx_port, children(nginx.pid)))
        script = wrk_script(work / "chat.lua", json.dumps(REQUEST))
        runs: dict[str, list[dict]] = {name: [] for name, _, _ in targets}
        for round_ in range(args.repeat):
            for name, port, pids in targets:
                if round_ == 0:
                    measure(port, args.conns, 1, script, None)  # warm up
                runs[name].append(measure(port, args.conns, args.seconds, script, pids))
        results = {name: median_run(rs) for name, rs in runs.items()}
        ngx = results["nginx pass-through"]
        print(f"{args.conns} connections, median of {args.repeat} runs of {args.seconds:g} s\n")
        print("| target | req/s | CPU µs/req | req/s vs nginx |")
        print("|---|---|---|---|")
        for name, r in results.items():
            print(f"| {name} | {r['rps']:.0f} | {r['cpu_us']:.1f} | {r['rps'] / ngx['rps']:.2f}x |")
    finally:
        stop_all(procs, work)


if __name__ == "__main__":
    main()
