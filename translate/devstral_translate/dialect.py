"""The shape every dialect has: a request in, bytes to send and a translator for the reply out.

`Prepared.response` is None when the reply can be relayed byte for byte.
"""

from dataclasses import dataclass
from typing import Protocol


class StreamTranslator(Protocol):
    """Turns the backend's SSE bytes into the client's, chunk by chunk."""

    def feed(self, data: bytes) -> bytes: ...

    def close(self) -> bytes: ...

    def error(self, status: int, message: str, code: str | None = None) -> bytes:
        """The last event of a stream the relay broke (backend gone, timeout), in the client's protocol."""
        ...


class ResponseTranslator(Protocol):
    """Turns one backend reply into the client's: a whole JSON body, or a stream."""

    def body(self, data: bytes) -> bytes: ...

    def stream(self) -> StreamTranslator: ...


@dataclass(slots=True)
class Prepared:
    body: bytes
    stream: bool
    client_model: str
    backend_model: str
    response: ResponseTranslator | None
    usage_added: bool = False  # the proxy asked the stream for usage; hide it from the client
    retry: object = None  # (status, body) -> bool: the backend refused what a resend would fix


# Routes the dialects know, with the field each one requires besides "model".
ROUTES = {
    "/v1/chat/completions": "messages",
    "/v1/completions": "prompt",
    "/v1/embeddings": "input",
}
