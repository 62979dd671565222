"""What reading one very long conversation costs on each route, in the event loop's time: the
chat path (pass-through, Mistral) beside the front readers (/v1/messages, /v1/responses).

`python -m bench.front_cost [--messages N]`: medians of 5 runs, in ms, for string content and
for one text block a message (the front read includes encoding the chat request it makes),
with the collector tuned as the serving process tunes it.
"""

import argparse
import gc
import statistics
import time

import msgspec

from devstral_translate import anthropic, openai, responses
from devstral_translate.mistral import MistralDialect

_encode = msgspec.json.encode
_CHAT = "/v1/chat/completions"


def _median_ms(fn, runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def bodies(n: int, blocks: bool) -> tuple[bytes, bytes, bytes]:
    """The same conversation as a chat, a Messages and a Responses request."""
    roles = ["user" if i % 2 == 0 else "assistant" for i in range(n)]
    text = [{"type": "text", "text": "hi"}]
    chat = [{"role": r, "content": text if blocks and r == "user" else "hi"} for r in roles]
    messages = [{"role": r, "content": text if blocks else "hi"} for r in roles]
    kind = {"user": "input_text", "assistant": "output_text"}
    items = [{"type": "message", "role": r, "content": [{"type": kind[r], "text": "hi"}] if blocks else "hi"} for r in roles]
    return (
        _encode({"model": "m", "messages": chat}),
        _encode({"model": "m", "max_tokens": 10, "messages": messages}),
        _encode({"model": "m", "input": items}),
    )


def measure(n: int, blocks: bool) -> dict[str, float]:
    chat, messages, items = bodies(n, blocks)
    mistral = MistralDialect()
    return {
        "chat, pass-through": _median_ms(lambda: openai.prepare(_CHAT, chat, {})),
        "chat, Mistral": _median_ms(lambda: mistral.prepare(_CHAT, chat, {})),
        "/v1/messages read": _median_ms(lambda: _encode(anthropic.read_request(messages))),
        "/v1/responses read": _median_ms(lambda: _encode(responses.read_request(items).messages)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=49_000, help="messages in the conversation (with their blocks, at most request.max_items)")
    args = parser.parse_args()
    gc.collect()
    gc.freeze()
    gc.set_threshold(7000, 10, 10)  # as the serving process runs (cli.serve)
    for blocks in (False, True):
        shape = "one text block a message" if blocks else "string content"
        row = measure(args.messages, blocks)
        print(f"{args.messages} messages, {shape}: " + " | ".join(f"{k} {v:.0f} ms" for k, v in row.items()))


if __name__ == "__main__":
    main()
