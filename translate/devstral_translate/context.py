"""A request's max_tokens against the model's context length: vLLM's refusal read for its
numbers (both wordings it has used), the max_tokens that fits, and the request body with it.

Clients such as Claude Code ask for 32000 tokens whatever the prompt; vLLM refuses when the
prompt plus max_tokens exceeds `max_model_len`. The proxy sends the request again with what fits.
"""

import re

from .errors import RequestError
from .wire import decode_object, encode_object, raw

# vLLM >= 0.8: "'max_tokens' or 'max_completion_tokens' is too large: 32000. This model's
# maximum context length is 32768 tokens and your request has 3090 input tokens (32000 > 32768 - 3090)."
_NEW = re.compile(rb"maximum context length is (\d{1,9}) tokens and your request has (\d{1,9}) input tokens")
# older: "This model's maximum context length is 32768 tokens. However, you requested 35090
# tokens (3090 in the messages, 32000 in the completion)."
_OLD = re.compile(rb"maximum context length is (\d{1,9}) tokens\. However, you requested \d{1,9} tokens \((\d{1,9}) in the messages")
_SCAN = 4096  # the numbers are near the start of the message: no regex over a huge body


def refused_for_length(status: int, body: bytes) -> tuple[int, int] | None:
    """(max_model_len, prompt tokens) when the backend refused a request for its length."""
    if status != 400:
        return None
    head = body[:_SCAN]
    found = _NEW.search(head) or _OLD.search(head)
    return (int(found.group(1)), int(found.group(2))) if found else None


def fitting(status: int, body: bytes) -> int | None:
    """The max_tokens that fits, from a length refusal (None: not one, or no room at all)."""
    numbers = refused_for_length(status, body)
    if numbers is None:
        return None
    room = numbers[0] - numbers[1]
    return room if room >= 1 else None


def requested(body: bytes) -> int | None:
    """The request's max_tokens (or max_completion_tokens), when it names one."""
    try:
        top = decode_object(body)
    except RequestError:
        return None
    for key in ("max_completion_tokens", "max_tokens"):
        value = top.get(key)
        if value is not None and bytes(value).isdigit():
            return int(bytes(value))
    return None


def with_max_tokens(body: bytes, limit: int) -> bytes:
    """The request with max_tokens (and max_completion_tokens, when sent) set to `limit`."""
    top = decode_object(body)
    value = raw(limit)
    top["max_tokens"] = value
    if "max_completion_tokens" in top:
        top["max_completion_tokens"] = value
    return encode_object(top)


def clamped(body: bytes, max_model_len: int) -> bytes:
    """The request with a max_tokens that alone fills the context (it can never fit) cut to the
    context less an estimate of the prompt (4 bytes of the request a token); the refusal retry
    corrects an estimate that was short."""
    asked = requested(body)
    if asked is None or asked < max_model_len:
        return body
    return with_max_tokens(body, max(1, max_model_len - len(body) // 4))
