"""The value of conversation affinity, without GPUs: a multi-turn agent workload through the
proxy over 4 simulated vLLM backends with a prefix-cache latency model, once per strategy
(round robin, least loaded, affinity). Prints mean and p99 time to first token, cache hit rate
and how evenly the load spread. `make bench-routing` runs it.
"""

import argparse
import asyncio
import random
import statistics
import time

import aiohttp

from bench.simulator import Behavior
from tests.support import ProxyThread, SimThread

STRATEGIES = ("round_robin", "least_loaded", "affinity")


async def conversation(session: aiohttp.ClientSession, url: str, n: int, turns: int, rng: random.Random, ttfts: list) -> None:
    system = f"You are coding agent #{n}. " + "Follow the repository's conventions and explain each change. " * 40
    history = [{"role": "system", "content": system}, {"role": "user", "content": f"Task {n}: fix the failing test in module_{n}.py"}]
    await asyncio.sleep(rng.random() * 0.5)  # conversations start at different moments
    for turn in range(turns):
        body = {"model": "mistral-sim", "stream": True, "messages": history}
        t0 = time.perf_counter()
        async with session.post(url, json=body) as r:
            first = True
            async for line in r.content:
                if first and line.startswith(b"data: "):
                    ttfts.append(time.perf_counter() - t0)
                    first = False
        history.append({"role": "assistant", "content": f"Step {turn}: reading module_{n}_{turn}.py"})
        history.append({"role": "user", "content": f"(file contents {n}.{turn}) " + "def f(x):\n    return x + 1\n" * 30})


async def workload(url: str, conversations: int, turns: int, seed: int) -> list[float]:
    rng = random.Random(seed)
    ttfts: list[float] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=conversations)) as session:
        await asyncio.gather(*(conversation(session, url, n, turns, rng, ttfts) for n in range(conversations)))
    return ttfts


def run(strategy: str, args) -> dict:
    behavior = dict(prefix_cache_blocks=args.cache_blocks, prefill_per_token=args.prefill_us / 1e6, token_delay=0.004, reply=" ".join(["ok"] * 20))
    sims = [SimThread(Behavior(**behavior)) for _ in range(args.backends)]
    proxy = ProxyThread(backends={f"vllm{i}": {"url": s.url} for i, s in enumerate(sims)}, routing={"strategy": strategy}, logging={"access": False})
    try:
        ttfts = asyncio.run(workload(proxy.url + "/v1/chat/completions", args.conversations, args.turns, args.seed))
    finally:
        proxy.stop()
    prompt = sum(s.sim.cache.prompt_tokens for s in sims)
    cached = sum(s.sim.cache.cached_tokens for s in sims)
    counts = [len(s.record.requests) for s in sims]
    for s in sims:
        s.stop()
    ttfts.sort()
    return {
        "strategy": strategy,
        "requests": len(ttfts),
        "mean": statistics.mean(ttfts) * 1000,
        "p99": ttfts[int(0.99 * (len(ttfts) - 1))] * 1000,
        "hit": cached / prompt if prompt else 0.0,
        "spread": max(counts) / statistics.mean(counts),
    }


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--backends", type=int, default=4)
    p.add_argument("--conversations", type=int, default=48)
    p.add_argument("--turns", type=int, default=8)
    p.add_argument("--cache-blocks", type=int, default=4000, help="prefix cache per backend, in 16-token blocks")
    p.add_argument("--prefill-us", type=float, default=40.0, help="prefill time per uncached prompt token, µs")
    p.add_argument("--seed", type=int, default=7)
    args = p.parse_args(argv)
    print(
        f"{args.backends} backends, {args.conversations} concurrent conversations x {args.turns} turns; "
        f"cache {args.cache_blocks} blocks/backend; prefill {args.prefill_us:g} µs/token\n"
    )
    print("| strategy | requests | mean TTFT ms | p99 TTFT ms | prefix-cache hit rate | busiest backend / mean |")
    print("|---|---|---|---|---|---|")
    for strategy in STRATEGIES:
        r = run(strategy, args)
        print(f"| {r['strategy']} | {r['requests']} | {r['mean']:.1f} | {r['p99']:.1f} | {r['hit']:.0%} | {r['spread']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
