"""When the GPUs are full: three API keys through the proxy over simulated continuous-batching
engines (fixed sequence slots, a waiting queue, a prefix cache), one key bursty at 10x the
others' rate, open-loop arrivals for a fixed time; engines, proxy and client are separate
processes. Compares no cap / cap + FIFO / cap + fair
queue, and round robin / least loaded / affinity / load-aware affinity under the cap. Prints
time to first token per key (p50, p99), throughput and the prefix-cache hit rate.
`make bench-routing` runs it after bench.routing.
"""

import argparse
import asyncio
import gc
import json
import random
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import aiohttp

from bench.wait import ready
from tests.support import free_port

KEYS = ("sk-burst", "sk-b", "sk-c")


async def one(session, url: str, key: str, conv: int, turn: int, ttfts: dict, done: list) -> None:
    system = f"You are agent {key}-{conv}. " + "Keep to the repository's conventions. " * 30
    messages = [{"role": "system", "content": system}, {"role": "user", "content": f"step {turn} " + "context " * 50}]
    body = {"model": "mistral-sim", "stream": True, "messages": messages}
    t0 = time.perf_counter()
    try:
        async with session.post(url, json=body, headers={"authorization": f"Bearer {key}"}) as r:
            if r.status != 200:
                ttfts.setdefault(key + ":refused", []).append(r.status)
                await r.read()
                return
            first = True
            async for line in r.content:
                if first and line.startswith(b"data: "):
                    ttfts.setdefault(key, []).append(time.perf_counter() - t0)
                    first = False
        done.append(time.perf_counter())
    except aiohttp.ClientError:
        ttfts.setdefault(key + ":error", []).append(0)


async def arrivals(session, url: str, key: str, rate: float, burst: int, seconds: float, rng: random.Random, ttfts: dict, done: list) -> None:
    """Open loop: `burst` requests at once, bursts at rate/burst per second (Poisson)."""
    tasks, end, n = [], time.perf_counter() + seconds, 0
    while time.perf_counter() < end:
        for _ in range(burst):
            tasks.append(asyncio.create_task(one(session, url, key, n % 8, n, ttfts, done)))
            n += 1
        await asyncio.sleep(rng.expovariate(rate / burst))
    await asyncio.gather(*tasks)


async def workload(url: str, args, with_burst: bool) -> tuple[dict, list, float]:
    gc.collect()
    gc.disable()  # the client measures: a collection pause of its own would count as the proxy's
    rng = random.Random(args.seed)
    ttfts: dict = {}
    done: list = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=300)) as session:
        # warm-up, not measured: every key's conversations once (connections, caches, first-use code)
        await asyncio.gather(*(one(session, url, k, conv, 0, {}, []) for k in KEYS for conv in range(8)))
        t0 = time.perf_counter()
        jobs = [arrivals(session, url, k, args.rate, 1, args.seconds, rng, ttfts, done) for k in KEYS[1:]]
        if with_burst:
            jobs.append(arrivals(session, url, KEYS[0], args.rate * 10, args.burst, args.seconds, rng, ttfts, done))
        await asyncio.gather(*jobs)
    gc.enable()
    return ttfts, done, time.perf_counter() - t0


def pct(values: list, q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * (len(values) - 1)))] * 1000 if values else float("nan")


def _toml(value) -> str:
    return json.dumps(value) if not isinstance(value, bool) else str(value).lower()


def start(argv: list[str], url: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, *argv], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if not ready(url, 20):
        proc.kill()
        raise RuntimeError(f"{argv} did not start")
    return proc


def run(name: str, args, cap: bool, fair: bool, strategy: str, load_aware: bool, share: float = 1.0, with_burst: bool = True, burst_share: float = 1.0) -> dict:
    """One setup; the engines and the proxy are processes of their own (no shared GIL)."""
    procs, ports = [], [free_port() for _ in range(args.backends)]
    reply = " ".join(["ok"] * args.tokens)
    for port in ports:
        sim = ["-m", "bench.simulator", "--port", str(port), "--slots", str(args.slots), "--token-delay", str(args.token_delay), "--reply", reply]
        sim += ["--prefix-cache-blocks", "2000", "--prefill-us", str(args.prefill_us), "--no-gc"]
        procs.append(start(sim, f"http://127.0.0.1:{port}/health"))
    port = free_port()
    lines = ["[server]", f"port = {port}", "[routing]", f'strategy = "{strategy}"', f"load_interval = {0.25 if load_aware else 0}", "max_engine_waiting = 2"]
    lines += ["[queue]", f"fair = {_toml(fair)}", "max_wait = 120", "max_queued = 100000", f"max_share = {share}"]
    if burst_share < 1:
        lines += [f'[queue.clients."{KEYS[0]}"]', f"max_share = {burst_share}"]
    lines += ["[authentication]", f"api_keys = {json.dumps(list(KEYS))}", "[logging]", "access = false", 'level = "WARNING"']
    for i, p in enumerate(ports):
        lines += [f"[backends.vllm{i}]", f'url = "http://127.0.0.1:{p}"'] + ([f"max_in_flight = {args.slots}"] if cap else [])
    config = Path(tempfile.mkdtemp()) / "proxy.toml"
    config.write_text("\n".join(lines) + "\n")
    procs.append(start(["-m", "devstral_proxy", "--config", str(config)], f"http://127.0.0.1:{port}/health"))
    try:
        ttfts, done, wall = asyncio.run(workload(f"http://127.0.0.1:{port}/v1/chat/completions", args, with_burst))
        stats = [json.loads(urllib.request.urlopen(f"http://127.0.0.1:{p}/sim/stats").read()) for p in ports]
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)
    prompt = sum(s["prompt_tokens"] for s in stats)
    cached = sum(s["cached_tokens"] for s in stats)
    row = {"name": name, "throughput": len(done) / wall, "hit": cached / prompt if prompt else 0.0}
    for key in KEYS:
        row[key] = (pct(ttfts.get(key, []), 0.5), pct(ttfts.get(key, []), 0.99))
    others = ttfts.get(KEYS[1], []) + ttfts.get(KEYS[2], [])
    row["others_p99"] = pct(others, 0.99)
    row["failed"] = sum(len(v) for k, v in ttfts.items() if ":" in k)
    return row


SCENARIOS = (
    # name, cap, fair, strategy, load-aware, max_share
    ("no cap, least loaded", False, True, "least_loaded", False, 1.0),
    ("cap + FIFO, least loaded", True, False, "least_loaded", False, 1.0),
    ("cap + fair queue, least loaded", True, True, "least_loaded", False, 1.0),
    ("cap + fair queue, round robin", True, True, "round_robin", False, 1.0),
    ("cap + fair queue, affinity", True, True, "affinity", False, 1.0),
    ("cap + fair queue, load-aware affinity", True, True, "affinity", True, 1.0),
    ("cap + fair queue + max_share 0.75, least loaded", True, True, "least_loaded", False, 0.75),
    ("cap + fair queue + max_share 0.75, load-aware affinity", True, True, "affinity", True, 0.75),
    ("cap + fair queue + max_share 0.5, least loaded", True, True, "least_loaded", False, 0.5),
    ("cap + fair queue + max_share 0.5, load-aware affinity", True, True, "affinity", True, 0.5),
    ("cap + fair queue + the burst key's max_share 0.5, least loaded", True, True, "least_loaded", False, -0.5),
    ("cap + fair queue + the burst key's max_share 0.75, least loaded", True, True, "least_loaded", False, -0.75),
)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--backends", type=int, default=2)
    p.add_argument("--slots", type=int, default=4, help="sequences each engine runs at once")
    p.add_argument("--tokens", type=int, default=30, help="tokens a reply streams")
    p.add_argument("--token-delay", type=float, default=0.01)
    p.add_argument("--prefill-us", type=float, default=20.0)
    p.add_argument("--rate", type=float, default=2.0, help="requests/s of each steady key; the bursty key sends 10x")
    p.add_argument("--burst", type=int, default=10, help="the bursty key's requests per burst")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--only", default="", help="run the setups whose name contains this")
    args = p.parse_args(argv)
    capacity = args.backends * args.slots / (args.tokens * args.token_delay)
    offered = args.rate * 12
    print(f"{args.backends} engines x {args.slots} slots, {args.tokens} tokens at {args.token_delay * 1000:g} ms: capacity ~{capacity:.0f} req/s;")
    rates = f"{KEYS[0]} {args.rate * 10:g}/s in bursts of {args.burst}, {KEYS[1]} and {KEYS[2]} {args.rate:g}/s each"
    print(f"offered {offered:g} req/s ({rates}), {args.seconds:g} s\n")
    alone = run("steady keys alone", args, True, True, "least_loaded", False, with_burst=False)
    print(f"steady keys alone: p50 {alone[KEYS[1]][0]:.0f} ms, p99 {alone['others_p99']:.0f} ms\n")
    print("| setup | TTFT p50 / p99 ms: burst key | steady key b | steady key c | steady p99 vs alone | throughput req/s | prefix-cache hits | failed |")
    print("|---|---|---|---|---|---|---|---|")
    for name, cap, fair, strategy, load_aware, share in SCENARIOS:
        if args.only not in name:
            continue
        # a negative share: that share for the bursty key alone ([queue.clients."sk-burst"])
        r = run(name, args, cap, fair, strategy, load_aware, max(share, 1.0) if share < 0 else share, burst_share=-share if share < 0 else 1.0)
        cells = " | ".join(f"{r[k][0]:.0f} / {r[k][1]:.0f}" for k in KEYS)
        ratio = r["others_p99"] / alone["others_p99"] if alone["others_p99"] else float("nan")
        print(f"| {name} | {cells} | {ratio:.1f}x | {r['throughput']:.1f} | {r['hit']:.0%} | {r['failed']} |", flush=True)


if __name__ == "__main__":
    main()
