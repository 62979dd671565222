"""The one error translate/ raises: a request the proxy must refuse with a 400.

It names the offending field (`param`) or message index so the client can fix its request.
"""


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
