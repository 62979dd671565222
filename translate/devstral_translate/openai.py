"""The pass-through dialect: only the model name changes, both ways; other bytes are untouched.

Its reply translators are reused by other dialects for the model-name half of their work.
"""

from functools import lru_cache

from .dialect import Prepared
from .errors import RequestError
from .modelname import encoded_name, set_model
from .request import note_inference, read_inference
from .rewrites import Rewrites
from .sse import FrameSplitter, WholeFrames, data_payload
from .wire import decode_object, encode_object, field, raw


def rename_frames(block: bytes, old: bytes, new: bytes, value: bytes) -> bytes:
    """A block of whole SSE frames with "model" set to `value` in each data frame.

    `old` is `"model":"<backend's name>"`: four bare quotes, so it cannot occur inside a JSON
    string, where quotes are escaped. When every data frame holds it once, one C-level replace
    does the block; otherwise each frame is spliced on its own."""
    n = block.count(old)
    if n and n == block.count(b"data: {"):
        return block.replace(old, new)
    out = []
    for frame in FrameSplitter().feed(block):
        span = data_payload(frame)
        if span is not None and frame[span[0] : span[0] + 1] == b"{":
            start, end = span
            frame = b"".join((frame[:start], set_model(frame[start:end], value), frame[end:]))
        out.append(frame)
    return b"".join(out)


class RenameStream(WholeFrames):
    """Sets "model" in every `data:` frame; holds back only an incomplete frame."""

    __slots__ = ("_value", "_old", "_new")

    def __init__(self, value: bytes, backend_value: bytes) -> None:
        super().__init__()
        self._value = value
        self._old = b'"model":' + backend_value
        self._new = b'"model":' + value

    whole = WholeFrames.feed  # the frames complete so far (for subclasses that do more)

    def rename(self, block: bytes) -> bytes:
        return rename_frames(block, self._old, self._new, self._value)

    def feed(self, data: bytes) -> bytes:
        block = WholeFrames.feed(self, data)
        return rename_frames(block, self._old, self._new, self._value) if block else b""


class RenameResponse:
    """Gives the client back the model name it asked for."""

    __slots__ = ("_value", "_backend")

    def __init__(self, client_model: str, backend_model: str) -> None:
        self._value = encoded_name(client_model)
        self._backend = encoded_name(backend_model)

    def body(self, data: bytes) -> bytes:
        return set_model(data, self._value)

    def stream(self) -> RenameStream:
        return RenameStream(self._value, self._backend)


# It holds no state of a reply: one per pair of names serves every request.
renamer = lru_cache(maxsize=1024)(RenameResponse)


def prepare(path: str, body: bytes, model_map: dict[str, str], want_usage: bool = False, notes: Rewrites | None = None) -> Prepared:
    """Map the model; send the original bytes when nothing changed."""
    req = read_inference(path, body, model_map, want_usage)
    if notes is not None:
        note_inference(req, notes)
    if not req.changed:
        return Prepared(body, req.stream, req.client_model, req.backend_model, None)
    renamed = req.client_model != req.backend_model
    translator = renamer(req.client_model, req.backend_model) if renamed else None
    return Prepared(encode_object(req.top), req.stream, req.client_model, req.backend_model, translator, req.usage_added)


def map_model(body: bytes, model_map: dict[str, str]) -> tuple[bytes, str | None]:
    """A relayed JSON body with its top-level "model" mapped: (body, the client's model).
    Anything that is not a JSON object with a string model goes on as it is."""
    if not body.lstrip()[:1] == b"{":
        return body, None
    try:
        top = decode_object(body)
    except RequestError:
        return body, None
    model = top.get("model")
    if model is None or bytes(model)[:1] != b'"':
        return body, None
    try:
        name = field(top, "model", str, "a string")
    except RequestError:
        return body, None
    target = model_map.get(name)
    if target is None:
        return body, name
    top["model"] = raw(target)
    return encode_object(top), name


class OpenAIDialect:
    """Backends that speak OpenAI's format already (vLLM with HF templates, LM Studio, llama.cpp)."""

    def prepare(self, path: str, body: bytes, model_map: dict[str, str], want_usage: bool = False, notes: Rewrites | None = None) -> Prepared:
        return prepare(path, body, model_map, want_usage, notes)
