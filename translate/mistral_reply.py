"""The Mistral dialect, reply half for whole bodies: the client's model name and tool names
back, raw `[TOOL_CALLS]` / `[THINK]` text turned into tool calls and reasoning.

Bodies with nothing to fix take the byte-splice path of modelname.set_model.
"""

import re
import secrets

import msgspec

from .modelname import set_model
from .toolcalls import CONTROL_TOKENS, TOOL_CALLS, VALID_ID, NameMap, parse_raw_calls, split_think
from .wire import DECODE_ERRORS

_decode = msgspec.json.Decoder()
_encode = msgspec.json.encode
_MARKERS = re.compile(b"|".join(re.escape(t.encode()) for t in CONTROL_TOKENS))  # one scan for all
_ALNUM = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def new_call_id() -> str:
    return "".join(secrets.choice(_ALNUM) for _ in range(9))


def strip_control(text: str) -> str:
    for token in CONTROL_TOKENS:
        text = text.replace(token, "")
    return text


def has_markers(data: bytes) -> bool:
    return _MARKERS.search(data) is not None


def tool_call(call_id: str | None, name: str, arguments: str, names: NameMap) -> dict:
    return {
        "id": call_id if call_id and VALID_ID.fullmatch(call_id) else new_call_id(),
        "type": "function",
        "function": {"name": names.client(name), "arguments": arguments},
    }


def fix_message(choice: dict, names: NameMap) -> None:
    """Turn one non-streamed choice into what an OpenAI client expects."""
    msg = choice.get("message")
    if not isinstance(msg, dict):
        return
    calls = msg.get("tool_calls") or []
    for call in calls:
        fn = call.get("function") if isinstance(call, dict) else None
        if isinstance(fn, dict) and isinstance(fn.get("name"), str):
            fn["name"] = names.client(fn["name"])
    content = msg.get("content")
    if isinstance(content, str):
        text, reasoning = split_think(content)
        if reasoning is not None:
            msg["reasoning_content"] = (msg.get("reasoning_content") or "") + reasoning
        pos = text.find(TOOL_CALLS)
        if pos != -1:
            parsed = parse_raw_calls(text[pos + len(TOOL_CALLS) :])
            if parsed:
                calls = calls + [tool_call(i, n, a, names) for i, n, a in parsed]
                text = text[:pos]
        text = strip_control(text)
        msg["content"] = text if text.strip() else (None if calls else text)
    if calls:
        msg["tool_calls"] = calls
        if choice.get("finish_reason") in ("stop", None):
            choice["finish_reason"] = "tool_calls"


class MistralResponse:
    """Reply translator for one Mistral-dialect chat request."""

    __slots__ = ("model", "backend_model", "names")

    def __init__(self, model: bytes, backend_model: bytes, names: NameMap) -> None:
        self.model = model  # the client's model name, JSON-encoded
        self.backend_model = backend_model  # the name sent to the backend, JSON-encoded
        self.names = names

    def body(self, data: bytes) -> bytes:
        # An unescaped "name" key only appears in a reply inside a tool call.
        if not has_markers(data) and not (self.names.renamed and b'"name"' in data):
            return set_model(data, self.model)
        try:
            doc = _decode.decode(data)
        except DECODE_ERRORS:
            return data
        if not isinstance(doc, dict):
            return data
        for choice in doc.get("choices") or ():
            if isinstance(choice, dict):
                fix_message(choice, self.names)
        if "model" in doc:
            doc["model"] = msgspec.Raw(self.model)
        return _encode(doc)

    def stream(self):
        from .stream import MistralStream

        return MistralStream(self.model, self.backend_model, self.names)
