"""Decoding a request body into the few fields the proxy acts on.

The top level is decoded once into a dict of msgspec.Raw: every field the proxy does not
rewrite is re-emitted byte for byte, and only the fields it reads are decoded further.
"""

from typing import Any

import msgspec
from msgspec import Raw

from .errors import RequestError

_object = msgspec.json.Decoder(dict[str, Raw])
_encode = msgspec.json.encode

# Field type -> (decoder, name used in error messages)
_DECODERS: dict[Any, tuple[msgspec.json.Decoder, str]] = {}


def decode_object(body: bytes) -> dict[str, Raw]:
    """The body's top-level JSON object, values left encoded."""
    try:
        return _object.decode(body)
    except msgspec.ValidationError:
        raise RequestError("The request body must be a JSON object.") from None
    except msgspec.DecodeError as exc:
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


def encode_object(top: dict[str, Raw]) -> bytes:
    """Re-emit a top-level object; Raw values are copied through untouched."""
    return _encode(top)


def raw(value: Any) -> Raw:
    """A value encoded once, ready to be placed into a top-level object."""
    return Raw(_encode(value))
