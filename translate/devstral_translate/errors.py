"""The one error translate/ raises (a request the proxy must refuse with a 400, naming the
offending field so the client can fix it), and OpenAI's error body, which every SDK reads.
"""

import msgspec

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    408: "timeout_error",
    413: "invalid_request_error",
    414: "invalid_request_error",
    417: "invalid_request_error",
    429: "rate_limit_error",
    431: "invalid_request_error",
}


def error_type(status: int) -> str:
    return _TYPES.get(status, "server_error" if status < 502 else "api_error")


def error_body(status: int, message: str, code: str | None = None, param: str | None = None) -> bytes:
    """`{"error": {"message", "type", "param", "code"}}`: OpenAI's shape."""
    return msgspec.json.encode({"error": {"message": message, "type": error_type(status), "param": param, "code": code}})


class RequestError(ValueError):
    """A client request that cannot be sent on; becomes an OpenAI-style 400."""

    def __init__(self, message: str, param: str | None = None, code: str = "invalid_request") -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code


def invalid(message: str, param: str, code: str = "invalid_value") -> RequestError:
    """A RequestError naming the field at fault (the front protocols' readers raise these)."""
    return RequestError(message, param=param, code=code)


class TranslationError(RequestError):
    """A conversation that cannot be made valid for the backend's dialect."""

    def __init__(self, index: int | None, reason: str) -> None:
        where = f"messages[{index}]" if index is not None else None
        text = f"{where}: {reason}" if where else reason
        super().__init__(text, param=where, code="invalid_conversation")
        self.index = index
        self.reason = reason


MAX_ITEMS = 100_000  # messages (or input items) and their content blocks in one request, by default


def bounded(items: list, limit: int, where: str) -> None:
    """A 400 before any per-item work when `items` and their content blocks number more than
    `limit` (the count stops as soon as it is passed)."""
    total = len(items)
    if total <= limit:
        for item in items:
            content = item.get("content") if isinstance(item, dict) else None
            if isinstance(content, list):
                total += len(content)
                if total > limit:
                    break
    if total > limit:
        raise RequestError(f"'{where}': more than {limit} messages and content blocks in one request (request.max_items).", where, "too_many_items")
