"""A front protocol (Responses, Anthropic Messages) stacked on a dialect: the backend's chat
reply goes through the dialect's translator first (made OpenAI), then the front's.

Each front's reply translator has `body(bytes) -> bytes` and `stream()` whose streams have
`feed`, `close` and `error(status, message, code)` (a broken stream's last event, in its protocol).
"""


class FrontStream:
    __slots__ = ("front", "inner")

    def __init__(self, front, inner) -> None:
        self.front = front
        self.inner = inner  # the dialect's stream, or None when the backend's chat reply is OpenAI already

    def feed(self, data: bytes) -> bytes:
        if self.inner is not None:
            data = self.inner.feed(data)
        return self.front.feed(data) if data else b""

    def close(self) -> bytes:
        tail = self.inner.close() if self.inner is not None else b""
        return (self.front.feed(tail) if tail else b"") + self.front.close()

    def error(self, status: int, message: str, code: str | None = None) -> bytes:
        return self.front.error(status, message, code)


class FrontResponse:
    __slots__ = ("front", "inner")

    def __init__(self, front, inner) -> None:
        self.front = front
        self.inner = inner

    def body(self, data: bytes) -> bytes:
        if self.inner is not None:
            data = self.inner.body(data)
        return self.front.body(data)

    def stream(self) -> FrontStream:
        return FrontStream(self.front.stream(), self.inner.stream() if self.inner is not None else None)
