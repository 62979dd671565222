"""Rewriting the top-level "model" value of a JSON object, and nothing else in it.

Fast path: one regex match proves the key is top-level (only plain members before it) and
splices the value; otherwise a decode of the top level as Raw values.
"""

import re
from functools import lru_cache

import msgspec
from msgspec import Raw

from .wire import DECODE_ERRORS

_object = msgspec.json.Decoder(dict[str, Raw])
_encode = msgspec.json.encode


# The top-level "model" string, reachable by a byte match when every member before it is a
# plain string or scalar (no nesting, no escapes): group 1 is the value's quoted span.
_TOP_MODEL = re.compile(rb'\s*+\{\s*+(?:(?!"model"\s*:)"[^"\\]*+"\s*+:\s*+(?:"[^"\\]*+"|[^"\\{}\[\],\s]++)\s*+,\s*+)*+"model"\s*+:\s*+("[^"\\]*+")')


def _splice(payload: bytes, value: bytes) -> bytes | None:
    m = _TOP_MODEL.match(payload)
    if m is None:
        return None
    start, end = m.span(1)
    return b"".join((payload[:start], value, payload[end:]))


def set_model(payload: bytes, value: bytes) -> bytes:
    """`payload` with its top-level "model" set to `value` (a JSON-encoded string).

    A payload that is not a JSON object, or has no top-level "model", comes back unchanged.
    """
    spliced = _splice(payload, value)
    if spliced is not None:
        return spliced
    try:
        top = _object.decode(payload)
    except DECODE_ERRORS:
        return payload
    if "model" not in top:
        return payload
    top["model"] = Raw(value)
    return _encode(top)


@lru_cache(maxsize=1024)
def encoded_name(name: str) -> bytes:
    """A model name as the JSON string to splice in."""
    return _encode(name)
