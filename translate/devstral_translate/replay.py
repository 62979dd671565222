"""A chat completion kept to be answered again (the response cache): a complete SSE stream of
`chat.completion.chunk` frames gathered into the whole `chat.completion` it makes, and a whole
completion played back as such a stream. Backend terms both ways: the request's own reply
translator then makes of it what the client's route expects.
"""

from typing import Any

import msgspec

from .sse import FrameSplitter, data_payload
from .wire import DECODE_ERRORS

_decode = msgspec.json.Decoder()
_encode = msgspec.json.encode


def assemble(stream: bytes) -> bytes | None:
    """The whole completion of a finished stream (one choice, ended by `[DONE]`), or None."""
    content: list[str] = []
    reasoning: list[str] = []
    calls: dict[int, dict] = {}
    top: dict[str, Any] = {}
    finish = None
    done = False
    for frame in FrameSplitter().feed(stream):
        span = data_payload(frame)
        if span is None:
            continue
        payload = frame[span[0] : span[1]]
        if payload.strip() == b"[DONE]":
            done = True
            continue
        try:
            chunk = _decode.decode(payload)
        except DECODE_ERRORS:
            return None
        if not isinstance(chunk, dict) or "error" in chunk:
            return None
        for name in ("id", "created", "model", "system_fingerprint"):
            if name in chunk and name not in top:
                top[name] = chunk[name]
        if isinstance(chunk.get("usage"), dict):
            top["usage"] = chunk["usage"]
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                return None  # n > 1: not kept
            delta = choice.get("delta") or {}
            if isinstance(delta.get("content"), str):
                content.append(delta["content"])
            if isinstance(delta.get("reasoning_content"), str):
                reasoning.append(delta["reasoning_content"])
            for call in delta.get("tool_calls") or ():
                _merge_call(calls, call)
            finish = choice.get("finish_reason") or finish
    if not done or finish is None:
        return None
    message: dict[str, Any] = {"role": "assistant", "content": "".join(content) if content or not calls else None}
    if reasoning:
        message["reasoning_content"] = "".join(reasoning)
    if calls:
        message["tool_calls"] = [calls[k] for k in sorted(calls)]
    whole = {"id": top.get("id", ""), "object": "chat.completion", "created": top.get("created", 0), "model": top.get("model", "")}
    whole["choices"] = [{"index": 0, "message": message, "finish_reason": finish}]
    if "usage" in top:
        whole["usage"] = top["usage"]
    return _encode(whole)


def _merge_call(calls: dict[int, dict], delta: Any) -> None:
    if not isinstance(delta, dict):
        return
    index = delta.get("index", len(calls))
    call = calls.setdefault(index, {"id": "", "type": "function", "function": {"name": "", "arguments": ""}})
    if isinstance(delta.get("id"), str):
        call["id"] = delta["id"]
    fn = delta.get("function") or {}
    if isinstance(fn.get("name"), str):
        call["function"]["name"] += fn["name"]
    if isinstance(fn.get("arguments"), str):
        call["function"]["arguments"] += fn["arguments"]


def finish_reason(whole: bytes) -> str | None:
    try:
        doc = _decode.decode(whole)
        return doc["choices"][0]["finish_reason"]
    except (*DECODE_ERRORS, KeyError, IndexError, TypeError):
        return None


def as_stream(whole: bytes, usage: bool) -> bytes:
    """A whole completion as the SSE stream a backend would have sent: the role, the text,
    each tool call, the finish reason, the usage (when `usage`), then `[DONE]`."""
    doc = _decode.decode(whole)
    choice = doc["choices"][0]
    message = choice.get("message") or {}
    head = {"id": doc.get("id", ""), "object": "chat.completion.chunk", "created": doc.get("created", 0), "model": doc.get("model", "")}

    def frame(delta: dict, finish: Any = None, **extra: Any) -> bytes:
        chunk = {**head, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}
        return b"data: " + _encode(chunk) + b"\n\n"

    out = [frame({"role": "assistant", "content": ""})]
    if message.get("reasoning_content"):
        out.append(frame({"reasoning_content": message["reasoning_content"]}))
    if message.get("content"):
        out.append(frame({"content": message["content"]}))
    for k, call in enumerate(message.get("tool_calls") or ()):
        out.append(frame({"tool_calls": [{"index": k, **call}]}))
    out.append(frame({}, choice.get("finish_reason") or "stop"))
    if usage and isinstance(doc.get("usage"), dict):
        out.append(b"data: " + _encode({**head, "choices": [], "usage": doc["usage"]}) + b"\n\n")
    out.append(b"data: [DONE]\n\n")
    return b"".join(out)
