"""Reading a chat-completions reply as the other front protocols need it: a whole reply's
first choice, a stream's chunks as typed deltas, and the SSE event those protocols write.

Shared by the Responses and Anthropic translators; it reads what a dialect already made OpenAI.
"""

from dataclasses import dataclass, field

import msgspec

from .sse import FrameSplitter, data_payload
from .wire import DECODE_ERRORS

_decode = msgspec.json.decode
_encode = msgspec.json.encode


def sse_event(name: str, payload: dict) -> bytes:
    """One named SSE event (`event:` line, one-line JSON `data:`)."""
    return b"event: %s\ndata: %s\n\n" % (name.encode(), _encode(payload))


@dataclass(slots=True)
class Usage:
    prompt: int = 0
    completion: int = 0
    cached: int = 0
    reasoning: int = 0

    @classmethod
    def read(cls, usage: object) -> "Usage":
        if not isinstance(usage, dict):
            return cls()
        details = usage.get("prompt_tokens_details")
        out = usage.get("completion_tokens_details")
        return cls(
            _int(usage.get("prompt_tokens")),
            _int(usage.get("completion_tokens")),
            _int(details.get("cached_tokens")) if isinstance(details, dict) else 0,
            _int(out.get("reasoning_tokens")) if isinstance(out, dict) else 0,
        )


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


@dataclass(slots=True)
class Call:
    id: str
    name: str
    arguments: str


@dataclass(slots=True)
class Reply:
    """A whole reply's first choice, as the fronts read it."""

    text: str = ""
    reasoning: str = ""
    calls: list[Call] = field(default_factory=list)
    finish: str | None = None
    stop_reason: object = None  # vLLM: the stop string (or token id) that ended the text
    usage: Usage = field(default_factory=Usage)


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


def read_reply(body: bytes) -> Reply:
    """The first choice of a chat completion (a ValueError when the body is not one)."""
    try:
        doc = _decode(body)
    except DECODE_ERRORS as exc:
        raise ValueError("not JSON") from exc
    if not isinstance(doc, dict):
        raise ValueError("not an object")
    choices = doc.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
    msg = choice.get("message")
    msg = msg if isinstance(msg, dict) else {}
    calls = []
    for call in msg.get("tool_calls") or ():
        if isinstance(call, dict) and isinstance(call.get("function"), dict):
            fn = call["function"]
            calls.append(Call(_str(call.get("id")), _str(fn.get("name")), _str(fn.get("arguments"))))
    reasoning = _str(msg.get("reasoning_content")) or _str(msg.get("reasoning"))
    return Reply(_str(msg.get("content")), reasoning, calls, choice.get("finish_reason"), choice.get("stop_reason"), Usage.read(doc.get("usage")))


@dataclass(slots=True)
class CallDelta:
    index: int
    id: str
    name: str
    arguments: str


@dataclass(slots=True)
class Delta:
    """What one chunk (or an error frame) of a chat stream adds."""

    text: str = ""
    reasoning: str = ""
    calls: list[CallDelta] = field(default_factory=list)
    finish: str | None = None
    stop_reason: object = None
    usage: Usage | None = None
    error: dict | None = None  # a backend's error frame mid-stream
    done: bool = False  # `data: [DONE]`


def read_delta(doc: object) -> Delta:
    """The delta of one decoded chunk."""
    out = Delta()
    if not isinstance(doc, dict):
        return out
    if isinstance(doc.get("error"), dict):
        out.error = doc["error"]
        return out
    if doc.get("usage") is not None:
        out.usage = Usage.read(doc["usage"])
    choices = doc.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return out
    choice = choices[0]
    delta = choice.get("delta")
    if isinstance(delta, dict):
        out.text = _str(delta.get("content"))
        out.reasoning = _str(delta.get("reasoning_content")) or _str(delta.get("reasoning"))
        for call in delta.get("tool_calls") or ():
            if not isinstance(call, dict):
                continue
            fn = call.get("function")
            if not isinstance(fn, dict):
                fn = {}
            index = call.get("index")
            out.calls.append(CallDelta(index if isinstance(index, int) else 0, _str(call.get("id")), _str(fn.get("name")), _str(fn.get("arguments"))))
    out.finish = choice.get("finish_reason")
    out.stop_reason = choice.get("stop_reason")
    return out


class ChunkReader:
    """Cuts a chat stream's bytes into deltas; frames that are not JSON are skipped."""

    __slots__ = ("_frames",)

    def __init__(self) -> None:
        self._frames = FrameSplitter()

    def feed(self, data: bytes) -> list[Delta]:
        out = []
        for frame in self._frames.feed(data):
            span = data_payload(frame)
            if span is None:
                continue
            payload = frame[span[0] : span[1]]
            if payload == b"[DONE]":
                out.append(Delta(done=True))
                continue
            try:
                out.append(read_delta(_decode(payload)))
            except DECODE_ERRORS:
                continue
        return out

    def close(self) -> list[Delta]:
        tail = self._frames.flush()
        return self.feed(tail + b"\n\n") if tail.strip() else []


class DeltaStream:
    """A front protocol's stream machine, driven by the chat deltas of the bytes fed: its
    opening events once (`_start`), an event list per delta (`_delta`), the closing events
    (`_complete`) when the chat stream ends, and `_broken` when the relay breaks it."""

    __slots__ = ("chunks", "started", "finished")

    def __init__(self) -> None:
        self.chunks = ChunkReader()
        self.started = False
        self.finished = False

    def _start(self, out: list[bytes]) -> None:
        raise NotImplementedError

    def _delta(self, d: Delta, out: list[bytes]) -> None:
        raise NotImplementedError

    def _complete(self, out: list[bytes]) -> None:
        raise NotImplementedError

    def _broken(self, out: list[bytes], status: int, message: str) -> None:
        raise NotImplementedError

    def _opened(self) -> list[bytes]:
        out: list[bytes] = []
        if not self.started:
            self.started = True
            self._start(out)
        return out

    def feed(self, data: bytes) -> bytes:
        out = self._opened()
        for delta in self.chunks.feed(data):
            self._delta(delta, out)
        return b"".join(out)

    def close(self) -> bytes:
        out = self._opened()
        for delta in self.chunks.close():
            self._delta(delta, out)
        if not self.finished:
            self._complete(out)
        return b"".join(out)

    def error(self, status: int, message: str, code: str | None = None) -> bytes:
        """The relay broke the stream (backend gone, timeout): the protocol's own last event."""
        out = self._opened()
        if not self.finished:
            self._broken(out, status, message)
        return b"".join(out)


def error_message(error: dict) -> str:
    message = error.get("message")
    return message if isinstance(message, str) else "The backend failed while generating."
