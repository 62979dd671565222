"""Anthropic's error shape, `{"type": "error", "error": {"type", "message"}}`, and the
OpenAI-shaped errors of the rest of the proxy turned into it.
"""

import msgspec

from ..wire import DECODE_ERRORS

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    408: "timeout_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    529: "overloaded_error",
}


def error_type(status: int) -> str:
    return _TYPES.get(status, "invalid_request_error" if status < 500 else "api_error")


def error_body(status: int, message: str) -> bytes:
    return msgspec.json.encode({"type": "error", "error": {"type": error_type(status), "message": message}})


def from_openai(status: int, body: bytes) -> bytes:
    """An OpenAI-shaped error body (`{"error": {"message", ...}}`) in Anthropic's shape."""
    try:
        doc = msgspec.json.decode(body)
        message = doc["error"]["message"]
    except (*DECODE_ERRORS, KeyError, TypeError):
        message = body[:500].decode("utf-8", "replace")
    return error_body(status, message if isinstance(message, str) else str(message))
