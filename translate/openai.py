"""The pass-through dialect: only the model name changes, both ways; other bytes are untouched.

Its reply translators are reused by other dialects for the model-name half of their work.
"""

from .dialect import Prepared
from .modelname import encoded_name, set_model
from .request import read_inference
from .sse import FrameSplitter, data_payload
from .wire import encode_object


class RenameStream:
    """Sets "model" in every `data:` frame; holds back only an incomplete frame."""

    __slots__ = ("_value", "_frames")

    def __init__(self, value: bytes) -> None:
        self._value = value
        self._frames = FrameSplitter()

    def feed(self, data: bytes) -> bytes:
        frames = self._frames.feed(data)
        if not frames:
            return b""
        value = self._value
        out = []
        for frame in frames:
            span = data_payload(frame)
            if span is not None and frame[span[0] : span[0] + 1] == b"{":
                start, end = span
                frame = b"".join((frame[:start], set_model(frame[start:end], value), frame[end:]))
            out.append(frame)
        return b"".join(out)

    def close(self) -> bytes:
        return self._frames.flush()


class RenameResponse:
    """Gives the client back the model name it asked for."""

    __slots__ = ("_value",)

    def __init__(self, client_model: str) -> None:
        self._value = encoded_name(client_model)

    def body(self, data: bytes) -> bytes:
        return set_model(data, self._value)

    def stream(self) -> RenameStream:
        return RenameStream(self._value)


def prepare(path: str, body: bytes, model_map: dict[str, str]) -> Prepared:
    """Map the model; send the original bytes when nothing changed."""
    req = read_inference(path, body, model_map)
    if not req.changed:
        return Prepared(body, req.stream, req.client_model, req.backend_model, None)
    return Prepared(encode_object(req.top), req.stream, req.client_model, req.backend_model, RenameResponse(req.client_model))


class OpenAIDialect:
    """Backends that speak OpenAI's format already (vLLM with HF templates, LM Studio, llama.cpp)."""

    def prepare(self, path: str, body: bytes, model_map: dict[str, str]) -> Prepared:
        return prepare(path, body, model_map)
