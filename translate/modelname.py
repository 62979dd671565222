"""Rewriting the top-level "model" value of a JSON object, and nothing else in it.

Fast path: a byte splice when the bytes before the key prove it is the top-level key (no
escapes, no nesting, outside any string); otherwise a decode of the top level as Raw values.
"""

import msgspec
from msgspec import Raw

from .wire import DECODE_ERRORS

_KEY = b'"model":'
_object = msgspec.json.Decoder(dict[str, Raw])
_encode = msgspec.json.encode


def _splice(payload: bytes, value: bytes) -> bytes | None:
    i = payload.find(_KEY)
    if i <= 0:
        return None
    prefix = payload[:i]
    if (
        prefix.count(b"{") != 1
        or b"\\" in prefix
        or b"[" in prefix
        or b"}" in prefix
        or prefix.count(b'"') % 2
        or not prefix.lstrip().startswith(b"{")
    ):
        return None
    start = i + len(_KEY)
    if payload[start : start + 1] != b'"':
        return None
    end = payload.find(b'"', start + 1)
    if end == -1 or payload.find(b"\\", start, end) != -1:
        return None
    return b"".join((payload[:start], value, payload[end + 1 :]))


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


def encoded_name(name: str) -> bytes:
    """A model name as the JSON string to splice in."""
    return _encode(name)
