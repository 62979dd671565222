"""Token usage in replies: reading `usage.total_tokens` from bodies and stream frames, and
asking a stream for usage on the client's behalf without the client seeing the extra chunk.

Used for tokens-per-minute limits; byte searches, no decode of the whole reply.
"""

import re

from msgspec import Raw

from .errors import RequestError
from .sse import FrameSplitter, WholeFrames
from .wire import decode_any, raw

_NUMBER = re.compile(rb"\s*:\s*(\d+)")


def _last_count(data: bytes, key: bytes) -> int | None:
    i = data.rfind(key)
    if i == -1:
        return None
    m = _NUMBER.match(data, i + len(key))
    return int(m.group(1)) if m else None


_COUNTS = re.compile(rb'"(prompt|completion|cached)_tokens"\s*:\s*(\d+)')
_USAGE_SPAN = 1024  # the usage object follows its key within this many bytes


def usage_counts(data: bytes) -> tuple[int, int, int] | None:
    """(prompt, completion, cached prompt) tokens of the last usage in a body or a block of
    frames (cached: vLLM's prompt_tokens_details.cached_tokens, the prefix cache's hits).
    One scan of the last `"usage"` object's bytes."""
    at = data.rfind(b'"usage"')
    counts = {kind: int(n) for kind, n in _COUNTS.findall(data, at, at + _USAGE_SPAN)} if at != -1 else {}
    prompt = counts.get(b"prompt")
    if prompt is None:  # no usage object, or the last one is null / far from its counts
        prompt = _last_count(data, b'"prompt_tokens"')
        if prompt is None:
            return None
        counts = {b"completion": _last_count(data, b'"completion_tokens"') or 0, b"cached": _last_count(data, b'"cached_tokens"') or 0}
    return prompt, counts.get(b"completion", 0), counts.get(b"cached", 0)


def request_usage(top: dict[str, Raw]) -> bool:
    """Make a streamed request report usage; True when the client had not asked for it."""
    options = top.get("stream_options")
    value = {}
    if options is not None:
        try:
            value = decode_any(options)
        except RequestError:  # bad bytes: the request is refused elsewhere
            return False
        if not isinstance(value, dict) or value.get("include_usage") is True:
            return False
    top["stream_options"] = raw({**value, "include_usage": True})
    return True


class HideUsage(WholeFrames):
    """Drops the usage-only chunk (`"choices":[]` with usage) the client did not ask for."""

    __slots__ = ("_inner",)

    def __init__(self, inner) -> None:
        super().__init__()
        self._inner = inner

    def feed(self, data: bytes) -> bytes:
        block = super().feed(self._inner.feed(data))
        if block.find(b'"usage"') == -1:
            return block
        kept = [f for f in FrameSplitter().feed(block) if not _usage_only(f)]
        return b"".join(kept)

    def close(self) -> bytes:
        return super().close() + self._inner.close()

    def error(self, status: int, message: str, code: str | None = None) -> bytes:
        return self._inner.error(status, message, code)


def _usage_only(frame: bytes) -> bool:
    if b'"usage"' not in frame or not frame.startswith(b"data:"):
        return False
    try:
        doc = decode_any(Raw(frame[5:].strip()))
    except RequestError:
        return False
    return isinstance(doc, dict) and doc.get("choices") == [] and isinstance(doc.get("usage"), dict)
