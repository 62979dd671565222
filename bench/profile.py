"""Where the proxy's CPU goes under load: devstral-proxy in this process under cProfile, the
static nginx backend of bench/compare.py behind it, wrk in front; prints the top entries.

Run: `python -m bench.profile --dialect mistral --conns 50 --seconds 5 [--stream]`.
"""

import argparse
import asyncio
import cProfile
import json
import pstats
import subprocess
import tempfile
import threading
from pathlib import Path

import uvloop

from bench.compare import REQUEST, free_port, proxy_config, start_backend, stop_all, wait_port, wrk_script
from devstral_proxy.app import Proxy
from devstral_proxy.config import build


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--dialect", default="openai", choices=("openai", "mistral"))
    p.add_argument("--conns", type=int, default=50)
    p.add_argument("--seconds", type=float, default=5)
    p.add_argument("--stream", action="store_true")
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--sort", default="tottime", help="pstats sort key: tottime, ncalls, cumulative")
    args = p.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="devstral-profile-"))
    procs: list = []
    try:
        backend_port, port = free_port(), free_port()
        start_backend(work, backend_port, procs)
        wait_port(backend_port)
        config = build(proxy_config(backend_port, args.dialect, port), env={})
        script = wrk_script(work / "load.lua", json.dumps({**REQUEST, "stream": args.stream}), stream=args.stream)
        profiler = cProfile.Profile()

        async def serve() -> None:
            proxy = Proxy(config)
            await proxy.start()
            loop = asyncio.get_running_loop()
            done = loop.create_future()
            cmd = [
                "wrk",
                "-t",
                "2",
                "-c",
                str(args.conns),
                "-d",
                f"{args.seconds:g}s",
                "--latency",
                "-s",
                str(script),
                f"http://127.0.0.1:{port}/v1/chat/completions",
            ]
            threading.Thread(
                target=lambda: loop.call_soon_threadsafe(done.set_result, subprocess.run(cmd, capture_output=True, text=True).stdout), daemon=True
            ).start()
            profiler.enable()
            out = await done
            profiler.disable()
            await proxy.close()
            print(out)

        uvloop.run(serve())
        pstats.Stats(profiler).sort_stats(args.sort).print_stats(args.top)
    finally:
        stop_all(procs, work)


if __name__ == "__main__":
    main()
