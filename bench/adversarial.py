"""Histories built to be slow to translate: every rule of the Mistral dialect must stay
linear in the size of the conversation, since the event loop serves everyone meanwhile.

Run: `python -m bench.adversarial [--size 1048576] [--repeat 5]`: the translation time of
each ~1 MiB shape (target: under 50 ms each).
"""

import argparse
import json
import statistics
import time

from devstral_translate.mistral import MistralDialect, MistralOptions

TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}


def repeated_ids(n: int) -> dict:
    """n calls in one turn sharing one id, and n results naming it."""
    calls = [{"id": "same", "type": "function", "function": {"name": "f", "arguments": "{}"}} for _ in range(n)]
    results = [{"role": "tool", "tool_call_id": "same", "content": f"r{k}"} for k in range(n)]
    return {"messages": [{"role": "user", "content": "go"}, {"role": "assistant", "tool_calls": calls}, *results], "tools": [TOOL]}


def unmatched_ids(n: int) -> dict:
    """n calls and n results whose ids never match: every result pairs by position."""
    calls = [{"id": f"call_{k}", "type": "function", "function": {"name": "f", "arguments": "{}"}} for k in range(n)]
    results = [{"role": "tool", "tool_call_id": f"other_{k}", "content": f"r{k}"} for k in range(n)]
    return {"messages": [{"role": "user", "content": "go"}, {"role": "assistant", "tool_calls": calls}, *results], "tools": [TOOL]}


def colliding_names(n: int) -> dict:
    """n tools whose names sanitise to one 64-character name."""
    tools = [{"type": "function", "function": {"name": "n" * 64 + f".{k}", "parameters": {"type": "object", "properties": {}}}} for k in range(n)]
    return {"messages": [{"role": "user", "content": "go"}], "tools": tools}


def tiny_messages(n: int) -> dict:
    """n one-word messages, user and assistant in turn."""
    return {"messages": [{"role": ("user", "assistant")[k % 2], "content": "w"} for k in range(n)] + [{"role": "user", "content": "end"}]}


SHAPES = {"repeated ids": repeated_ids, "unmatched ids": unmatched_ids, "colliding tool names": colliding_names, "tiny messages": tiny_messages}


def sized(shape, size: int) -> bytes:
    """The shape with as many items as fit in `size` bytes."""
    one = len(json.dumps(shape(1000))) / 1000
    return json.dumps({"model": "m", **shape(int(size / one))}).encode()


def translate(body: bytes, generation: str | None = None):
    return MistralDialect(MistralOptions(generation=generation)).prepare("/v1/chat/completions", body, {})


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--size", type=int, default=1 << 20)
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args(argv)
    print("| shape | body | items | translation (median CPU time) |")
    print("|---|---|---|---|")
    for name, shape in SHAPES.items():
        body = sized(shape, args.size)
        times = []
        for _ in range(args.repeat):
            start = time.process_time()
            translate(body)
            times.append(time.process_time() - start)
        items = len(json.loads(body)["messages"]) + len(json.loads(body).get("tools") or [])
        print(f"| {name} | {len(body) / 1024:.0f} KiB | {items} | {statistics.median(times) * 1000:.1f} ms |", flush=True)


if __name__ == "__main__":
    main()
