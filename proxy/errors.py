"""The one failure type of the I/O half, and OpenAI-shaped error bodies.

`Failure(status, message, code)` means "answer this request with that error"; every refusal
is one. `{"error": {"message", "type", "param", "code"}}` is what every OpenAI SDK reads.
"""

import msgspec

from devstral_translate.wire import DECODE_ERRORS

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    408: "timeout_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    431: "invalid_request_error",
}
_decode = msgspec.json.Decoder()
_encode = msgspec.json.encode


class Failure(Exception):
    """Answer the request with status `status`, error code `code` and `message`; `param`
    names the offending field, `headers` (pre-joined lines) go on the reply."""

    def __init__(self, status: int, message: str, code: str | None = None, param: str | None = None, headers: bytes = b"") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.headers = headers

    def body(self) -> bytes:
        return error_body(self.status, self.message, self.code, self.param)


def error_type(status: int) -> str:
    return _TYPES.get(status, "server_error" if status < 502 else "api_error")


def error_body(status: int, message: str, code: str | None = None, param: str | None = None) -> bytes:
    return _encode({"error": {"message": message, "type": error_type(status), "param": param, "code": code}})


def normalize_backend_error(status: int, body: bytes) -> bytes:
    """A backend's error reply in OpenAI's shape, its message kept.

    vLLM answers `{"error": {...}}` (new) or `{"object": "error", "message": ...}` (old);
    other servers may answer HTML or plain text.
    """
    try:
        doc = _decode.decode(body)
    except DECODE_ERRORS:
        doc = None
    if isinstance(doc, dict):
        err = doc.get("error")
        if isinstance(err, dict) and "message" in err:
            if "type" in err and "code" in err and (err["code"] is None or isinstance(err["code"], str)):
                return body  # OpenAI's shape already (vLLM's integer codes are made strings)
            return error_body(status, str(err["message"]), _code(err.get("code")), err.get("param"))
        if isinstance(err, str):
            return error_body(status, err, None, None)
        if "message" in doc:
            return error_body(status, str(doc["message"]), _code(doc.get("code")), doc.get("param"))
        if "detail" in doc:
            return error_body(status, str(doc["detail"]), None, None)
    text = body[:500].decode("utf-8", "replace").strip() or "(empty body)"
    return error_body(status, f"The backend answered {status}: {text}", "backend_error")


def _code(value: object) -> str | None:
    return None if value is None else str(value)


def backend_failure(name: str, exc: OSError) -> Failure:
    """A backend that could not be reached or did not answer."""
    if isinstance(exc, TimeoutError):
        return Failure(504, f"Backend '{name}' did not answer in time.", "backend_timeout")
    return Failure(502, f"Cannot reach backend '{name}': {exc.strerror or exc}.", "backend_unreachable")
