"""Decoding a request body into the few fields the proxy acts on.

The top level is decoded once into a dict of msgspec.Raw: every field the proxy does not
rewrite is re-emitted byte for byte, and only the fields it reads are decoded further.
"""

import re
from typing import Any

import msgspec
from msgspec import Raw

from .errors import RequestError

_object = msgspec.json.Decoder(dict[str, Raw])
# What decoding untrusted bytes can raise: msgspec's errors, and invalid UTF-8 inside a string
# (found only when that string is decoded, not when it is skipped as Raw).
# Deep nesting (thousands of levels) is refused by msgspec with RecursionError.
DECODE_ERRORS = (msgspec.DecodeError, UnicodeDecodeError, RecursionError)
_encode = msgspec.json.encode

# Field type -> (decoder, name used in error messages)
_DECODERS: dict[Any, tuple[msgspec.json.Decoder, str]] = {}


# An escaped backslash, a surrogate pair, or a lone surrogate escape (left to right, so a
# `\\` before a `u` is never read as an escape).
_SURROGATES = re.compile(rb"\\\\|\\u[dD][89abAB][0-9a-fA-F]{2}(?:\\u[dD][c-fC-F][0-9a-fA-F]{2})?|\\u[dD][c-fC-F][0-9a-fA-F]{2}")


def _lone_surrogate(m: re.Match) -> bytes:
    found = m.group(0)
    return found if len(found) in (2, 12) else b"\\ufffd"


def decode_object(body: bytes) -> dict[str, Raw]:
    """The body's top-level JSON object, values left encoded.

    A lone UTF-16 surrogate escape (`"\\ud83d"`: a JavaScript client cut a string mid-emoji)
    is valid JSON that vLLM accepts; msgspec refuses it, so those are read as U+FFFD. (A body
    passed on unchanged keeps them; one the proxy re-encodes carries U+FFFD.)"""
    try:
        top = _object.decode(body)
        body.decode()  # JSON is UTF-8; strings kept as Raw were not checked by the decoder
        return top
    except msgspec.ValidationError:
        raise RequestError("The request body must be a JSON object.") from None
    except DECODE_ERRORS as exc:
        if b"\\u" in body:
            repaired = _SURROGATES.sub(_lone_surrogate, body)
            if repaired != body:
                return decode_object(repaired)
        raise RequestError(f"The request body is not valid JSON: {exc}.") from None


def field(top: dict[str, Raw], name: str, kind: Any, type_name: str, *, required: bool = False, default: Any = None) -> Any:
    """Decode one top-level field as `kind`; 400 naming the field when missing or ill-typed."""
    raw = top.get(name)
    if raw is None:
        if required:
            raise RequestError(f"Missing required parameter: '{name}'.", param=name, code="missing_required_parameter")
        return default
    entry = _DECODERS.get(kind)
    if entry is None:
        entry = _DECODERS[kind] = (msgspec.json.Decoder(kind), type_name)
    try:
        return entry[0].decode(raw)
    except msgspec.ValidationError:
        raise RequestError(f"Invalid type for '{name}': expected {type_name}.", param=name, code="invalid_type") from None
    except UnicodeDecodeError:
        raise RequestError(f"Invalid UTF-8 in '{name}'.", param=name, code="invalid_value") from None


def encode_object(top: dict[str, Raw]) -> bytes:
    """Re-emit a top-level object; Raw values are copied through untouched."""
    return _encode(top)


def raw(value: Any) -> Raw:
    """A value encoded once, ready to be placed into a top-level object."""
    return Raw(_encode(value))


class FunctionIn(msgspec.Struct):
    name: str
    arguments: Any = None


class ToolCallIn(msgspec.Struct):
    function: FunctionIn
    id: Any = None


class MessageIn(msgspec.Struct):
    """A chat message as a client sends it. Only these keys are read; every other key
    (refusal, annotations, audio, reasoning, cache_control, index...) is dropped by the
    decoder, and ill-typed tool calls are refused by it, naming the message."""

    role: Any = None
    content: Raw = Raw(b"null")  # left encoded: most text goes on untouched
    name: Any = None
    tool_calls: list[ToolCallIn] | None = None
    tool_call_id: Any = None
    function_call: FunctionIn | None = None
    prefix: Any = None


_messages = msgspec.json.Decoder(list[MessageIn])
_any = msgspec.json.Decoder()


def decode_messages(raw_messages: Raw) -> list[MessageIn]:
    """The messages array; a non-object element is a 400 naming its index."""
    try:
        return _messages.decode(raw_messages)
    except msgspec.ValidationError as exc:
        text = str(exc)
        where = text.partition(" - at `$")[2].rstrip("`")
        index = where[1:].partition("]")[0] if where.startswith("[") else ""
        param = f"messages[{index}]" if index.isdigit() else "messages"
        raise RequestError(f"{param}: {text.partition(' - at')[0]}.", param=param) from None
    except UnicodeDecodeError:
        raise RequestError("messages: invalid UTF-8 in a string.", param="messages") from None


class _AnyObject(msgspec.Struct):
    """Matches any JSON object, keeping nothing: decoding it only validates."""


_object_check = msgspec.json.Decoder(_AnyObject)


def is_json_object(body: bytes) -> bool:
    try:
        _object_check.decode(body)
    except DECODE_ERRORS:
        return False
    return True


def decode_any(raw_value: Raw):
    """A part of the request decoded to Python values; bad bytes are the client's 400."""
    try:
        return _any.decode(raw_value)
    except DECODE_ERRORS:
        raise RequestError("The request body holds invalid UTF-8 or JSON.") from None
