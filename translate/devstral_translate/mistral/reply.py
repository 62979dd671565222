"""The Mistral dialect, reply half for whole bodies: the client's model name and tool names
back, raw `[TOOL_CALLS]` / `[THINK]` text turned into tool calls and reasoning.

Bodies with nothing to fix take the byte-splice path of modelname.set_model.
"""

import msgspec

from ..markers import TOOL_CALLS, has_markers, split_raw_calls, split_think, strip_control
from ..modelname import set_model
from ..rewrites import Rewrites
from ..wire import DECODE_ERRORS
from .names import NameMap, client_call
from .stream import MistralStream

_decode = msgspec.json.Decoder()
_encode = msgspec.json.encode


def fix_message(choice: dict, names: NameMap, notes: Rewrites | None = None) -> None:
    """Turn one non-streamed choice into what an OpenAI client expects (`notes`: told what
    was changed)."""
    msg = choice.get("message")
    if not isinstance(msg, dict):
        return
    calls = msg.get("tool_calls") or []
    for call in calls:
        fn = call.get("function") if isinstance(call, dict) else None
        if isinstance(fn, dict) and isinstance(fn.get("name"), str):
            client = names.client(fn["name"])
            if notes is not None and client != fn["name"]:
                notes.note("tool name given back as the client wrote it", f"{fn['name']} -> {client}")
            fn["name"] = client
    content = msg.get("content")
    if isinstance(content, str):
        text, reasoning = split_think(content)
        if reasoning is not None:
            msg["reasoning_content"] = (msg.get("reasoning_content") or "") + reasoning
            if notes is not None:
                notes.note("[THINK] text given as reasoning_content")
        pos = text.find(TOOL_CALLS)
        if pos != -1:
            parsed, rest = split_raw_calls(text[pos + len(TOOL_CALLS) :])
            if parsed:
                calls = calls + [client_call(i, n, a, names) for i, n, a in parsed]
                text = text[:pos] + rest  # prose after the calls is content
                if notes is not None:
                    notes.note("raw [TOOL_CALLS] text given as tool calls", ", ".join(n for _, n, _ in parsed), len(parsed))
        stripped = strip_control(text)
        if notes is not None and stripped != text:
            notes.note("control tokens taken out of the text")
        msg["content"] = stripped if stripped.strip() else (None if calls else stripped)
    if calls:
        msg["tool_calls"] = calls
        if choice.get("finish_reason") in ("stop", None):
            choice["finish_reason"] = "tool_calls"
            if notes is not None:
                notes.note("finish_reason set to tool_calls")


class MistralResponse:
    """Reply translator for one Mistral-dialect chat request."""

    __slots__ = ("model", "backend_model", "names", "notes")

    def __init__(self, model: bytes, backend_model: bytes, names: NameMap) -> None:
        self.model = model  # the client's model name, JSON-encoded
        self.backend_model = backend_model  # the name sent to the backend, JSON-encoded
        self.names = names
        self.notes: Rewrites | None = None  # told what a whole reply's translation changed (devstral-proxy translate)

    def body(self, data: bytes) -> bytes:
        # An unescaped "name" key only appears in a reply inside a tool call.
        if not has_markers(data) and not (self.names.renamed and data.find(b'"name"') != -1):
            return set_model(data, self.model)
        try:
            doc = _decode.decode(data)
        except DECODE_ERRORS:
            return data
        if not isinstance(doc, dict):
            return data
        for choice in doc.get("choices") or ():
            if isinstance(choice, dict):
                fix_message(choice, self.names, self.notes)
        if "model" in doc:
            doc["model"] = msgspec.Raw(self.model)
        return _encode(doc)

    def stream(self) -> MistralStream:
        return MistralStream(self.model, self.backend_model, self.names)
