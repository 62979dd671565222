"""Reading the fields every dialect needs from an inference request, and mapping its model.

One decode of the top level; the body is re-encoded only when a field actually changes.
"""

from dataclasses import dataclass

from msgspec import Raw

from .dialect import ROUTES
from .errors import RequestError
from .rewrites import Rewrites
from .usage import request_usage
from .wire import decode_object, field, raw

# What the route's required field must start with (its JSON type), checked without a parse.
_REQUIRED_TYPES: dict[str, tuple[bytes, str]] = {
    "messages": (b"[", "an array"),
    "prompt": (b'"[', "a string or an array"),
    "input": (b'"[', "a string or an array"),
}


MAX_MODEL_NAME = 256  # a model name longer than this is refused (it becomes a label and a log field)


@dataclass(slots=True)
class Inference:
    top: dict[str, Raw]
    client_model: str
    backend_model: str
    stream: bool
    changed: bool  # whether `top` differs from the body it came from
    usage_added: bool = False


def note_inference(req: Inference, notes: Rewrites) -> None:
    """The rewrites every dialect makes: the model's name, and usage asked of a stream."""
    if req.client_model != req.backend_model:
        notes.note("model mapped", f"{req.client_model} -> {req.backend_model}")
    if req.usage_added:
        notes.note("stream_options.include_usage asked of the backend (its usage frame is not passed on)")


def read_inference(path: str, body: bytes, model_map: dict[str, str], want_usage: bool = False) -> Inference:
    """Decode and check an inference request; set its model to the backend's name."""
    top = decode_object(body)
    model = field(top, "model", str, "a string", required=True)
    if not model:
        raise RequestError("'model' must be a non-empty string.", param="model", code="invalid_value")
    if len(model) > MAX_MODEL_NAME:
        raise RequestError(f"'model' is longer than {MAX_MODEL_NAME} characters.", param="model", code="invalid_value")
    required = ROUTES.get(path)
    if required is not None:
        value = top.get(required)
        if value is None:
            raise RequestError(f"Missing required parameter: '{required}'.", param=required, code="missing_required_parameter")
        starts, type_name = _REQUIRED_TYPES[required]
        if memoryview(value)[0] not in starts:
            raise RequestError(f"Invalid type for '{required}': expected {type_name}.", param=required, code="invalid_type")
    stream = bool(field(top, "stream", bool | None, "a boolean", default=False))
    target = model_map.get(model, model)
    changed = target != model
    if changed:
        top["model"] = raw(target)
    usage_added = want_usage and stream and request_usage(top)
    return Inference(top, model, target, stream, changed or usage_added, usage_added)
