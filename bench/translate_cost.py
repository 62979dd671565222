"""CPU cost of translating one request: a 200-message, ~100 KB coding-agent history through the
Mistral dialect, and the same body through the pass-through dialect; median of many runs.

Run: `python -m bench.translate_cost` (prints a Markdown table row per case).
"""

import json
import statistics
import time

from devstral_translate.ids import derive_id
from devstral_translate.mistral import MistralDialect
from devstral_translate.openai import OpenAIDialect
from tests.conversations import READ, WRITE, agent_history


def measure(fn, runs: int = 300) -> float:
    for _ in range(20):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.process_time_ns()
        fn()
        times.append(time.process_time_ns() - t0)
    return statistics.median(times) / 1000.0


def main() -> None:
    history = agent_history(100)
    body = json.dumps({"model": "gpt-4", "messages": history, "tools": [READ, WRITE], "stream": True}).encode()
    mapping = {"gpt-4": "mistralai/Devstral-Small-2507"}
    mistral, openai = MistralDialect(), OpenAIDialect()
    reply = mistral.prepare("/v1/chat/completions", body, mapping).response
    frame = (
        b'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"mistralai/Devstral-Small-2507",'
        b'"choices":[{"index":0,"delta":{"content":"word"},"logprobs":null,"finish_reason":null}]}\n\n'
    )
    stream = reply.stream()
    print(f"request: {len(history)} messages, {len(body) / 1024:.0f} KiB\n")
    print("| case | median CPU time |")
    print("|---|---|")

    def cold():
        derive_id.cache_clear()
        mistral.prepare("/v1/chat/completions", body, mapping)

    print(f"| Mistral dialect, whole request, id cache cold | {measure(cold):.0f} µs |")
    print(f"| Mistral dialect, whole request, ids seen last turn | {measure(lambda: mistral.prepare('/v1/chat/completions', body, mapping)):.0f} µs |")
    print(f"| pass-through dialect (model mapped) | {measure(lambda: openai.prepare('/v1/chat/completions', body, mapping)):.0f} µs |")
    print(f"| Mistral dialect, one plain SSE frame | {measure(lambda: stream.feed(frame), 5000):.2f} µs |")


if __name__ == "__main__":
    main()
