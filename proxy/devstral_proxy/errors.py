"""The one failure type of the I/O half, and the error shapes it is answered in.

`Failure(status, message, code)` means "answer this request with that error"; every refusal
is one. Its body is in the caller's protocol: OpenAI's `{"error": {...}}` (what every OpenAI
SDK reads), Anthropic's `{"type": "error", ...}` on /v1/messages (`errors_for(route)`).
"""

import ssl

import msgspec

from devstral_translate.anthropic import error_body as anthropic_error
from devstral_translate.anthropic import from_openai
from devstral_translate.errors import error_body
from devstral_translate.wire import DECODE_ERRORS

_decode = msgspec.json.Decoder()


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


def unreachable_because(name: str, exc: BaseException | None) -> str:
    """Why a backend could not be connected to, in words an operator can act on."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"its certificate is not trusted ({exc.verify_message}): set backends.{name}.ca_file to the CA that signed it (or tls_verify = false)"
    if isinstance(exc, ssl.SSLError):
        return f"the TLS handshake failed ({exc.reason or exc}): is the URL's scheme (http/https) right?"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused: nothing listens there (is the backend running, the port right?)"
    if isinstance(exc, TimeoutError):
        return "no answer within connect_timeout"
    if isinstance(exc, OSError):
        return exc.strerror or str(exc) or exc.__class__.__name__
    return str(exc) if exc else "no connection"


def backend_failure(name: str, exc: OSError) -> Failure:
    """A backend that could not be reached or did not answer."""
    if isinstance(exc, TimeoutError):
        return Failure(504, f"Backend '{name}' did not answer in time.", "backend_timeout")
    return Failure(502, f"Cannot reach backend '{name}': {exc.strerror or exc}.", "backend_unreachable")


class OpenAIErrors:
    """Errors in OpenAI's shape (every route but Anthropic's)."""

    @staticmethod
    def failure(failure: Failure) -> bytes:
        return failure.body()

    @staticmethod
    def backend(status: int, body: bytes) -> bytes:
        return normalize_backend_error(status, body)


class AnthropicErrors:
    """Errors in Anthropic's shape, on /v1/messages (its SDK and Claude Code read these)."""

    @staticmethod
    def failure(failure: Failure) -> bytes:
        return anthropic_error(failure.status, failure.message)

    @staticmethod
    def backend(status: int, body: bytes) -> bytes:
        return from_openai(status, normalize_backend_error(status, body))


ErrorShape = type[OpenAIErrors] | type[AnthropicErrors]
ANTHROPIC_ROUTE = "/v1/messages"


def errors_for(route: str) -> ErrorShape:
    """The error shape of the protocol a route speaks: the one place that decides it."""
    return AnthropicErrors if route.startswith(ANTHROPIC_ROUTE) else OpenAIErrors
