"""The Mistral dialect's streaming state machine: SSE payload bytes in, SSE bytes out.

Plain text passes at once; after `[TOOL_CALLS]` it emits OpenAI tool-call deltas (first one
with index, id, type, name; then argument pieces), holding back only a call's name.
"""

import msgspec

from ..markers import ARGS, CALL_ID, END_THINK, THINK, TOOL_CALLS, has_marker_or_start, split_raw_calls, strip_control
from ..modelname import set_model
from ..openai import RenameStream
from ..sse import FrameSplitter, data_payload
from ..wire import DECODE_ERRORS
from .names import NameMap, client_call

_decode = msgspec.json.Decoder()
_encode = msgspec.json.encode

_TEXT, _THINK, _START, _NAME, _CALL_ID, _ARGS, _JSON = range(7)


_MAX_NAME = 256  # a "name" longer than this before [ARGS] is not a call: it goes on as text
_MAX_RAW_JSON = 1 << 20  # v3/v7 raw calls: a JSON array longer than this is not read as calls


class _Choice:
    """What one choice of the stream is in the middle of."""

    __slots__ = ("mode", "buf", "name", "call_id", "calls", "held", "depth", "in_string", "escape", "started", "plain_args")

    def __init__(self) -> None:
        self.mode = _TEXT
        self.buf = ""
        self.name = ""
        self.call_id: str | None = None
        self.calls = 0  # tool calls emitted so far (their indexes)
        self.held = ""  # the end of a piece that may be the start of a marker split across deltas
        # reading one JSON value of arguments: nesting depth, inside a string, after a backslash
        self.depth = 0
        self.in_string = False
        self.escape = False
        self.started = False
        self.plain_args = False  # arguments that are not a JSON object: they run to the next marker


def _marker_tail(text: str, tokens: tuple[str, ...]) -> int:
    """Where the longest end of `text` that could begin a marker starts (len(text): none)."""
    start = text.rfind("[", max(0, len(text) - 11))
    while start != -1:
        tail = text[start:]
        if any(t.startswith(tail) for t in tokens):
            return start
        start = text.rfind("[", max(0, len(text) - 11), start)
    return len(text)


def _json_end(state: "_Choice", text: str) -> int | None:
    """Where the JSON value of the arguments ends in `text` (-1: not yet); None when the
    arguments are not a JSON object or array."""
    i = 0
    if not state.started:
        stripped = text.lstrip()
        if not stripped:
            return -1
        if stripped[0] not in "{[":
            return None
        state.started = True
        i = len(text) - len(stripped)
    for j in range(i, len(text)):
        ch = text[j]
        if state.in_string:
            if state.escape:
                state.escape = False
            elif ch == "\\":
                state.escape = True
            elif ch == '"':
                state.in_string = False
        elif ch == '"':
            state.in_string = True
        elif ch == "{" or ch == "[":
            state.depth += 1
        elif ch == "}" or ch == "]":
            state.depth -= 1
            if state.depth == 0:
                return j + 1
    return -1


def _earliest(text: str, tokens: tuple[str, ...]) -> tuple[int, str]:
    best, found = -1, ""
    for t in tokens:
        pos = text.find(t)
        if pos != -1 and (best == -1 or pos < best):
            best, found = pos, t
    return best, found


class MistralStream(RenameStream):
    """The pass-through renamer, plus the choices' state where frames need more than it."""

    __slots__ = ("names", "choices")

    def __init__(self, model: bytes, backend_model: bytes, names: NameMap) -> None:
        super().__init__(model, backend_model)
        self.names = names
        self.choices: dict[int, _Choice] = {}

    def feed(self, data: bytes) -> bytes:
        block = self.whole(data)
        if not block:
            return b""
        if self._plain(block):
            return self.rename(block)
        out = []
        for frame in FrameSplitter().feed(block):
            span = data_payload(frame)
            if span is None or frame[span[0] : span[0] + 1] != b"{":
                out.append(frame)  # [DONE], comments
                continue
            start, end = span
            payload = frame[start:end]
            fixed = set_model(payload, self._value) if self._plain(payload) else self._chunk(payload)
            if fixed is not None:
                out.append(b"".join((frame[:start], fixed, frame[end:])))
        return b"".join(out)

    def _plain(self, data: bytes) -> bool:
        """Nothing in these frames needs more than the model name."""
        if self.choices and any(c.mode != _TEXT or c.held for c in self.choices.values()):
            return False
        if has_marker_or_start(data):
            return False
        if self.names.renamed and data.find(b'"name"') != -1:  # a tool call's name to map back
            return False
        if self.choices and data.find(b'"finish_reason"') != -1 and any(c.calls for c in self.choices.values()):
            return False  # decided on the decoded value: frames need not be compact JSON
        return True

    def _chunk(self, payload: bytes) -> bytes | None:
        try:
            doc = _decode.decode(payload)
        except DECODE_ERRORS:
            return payload
        if not isinstance(doc, dict) or not isinstance(doc.get("choices"), list):
            return set_model(payload, self._value)
        kept = []
        for choice in doc["choices"]:
            if isinstance(choice, dict) and self._choice(choice):
                kept.append(choice)
        if not kept and not doc.get("usage") and doc["choices"]:
            return None  # everything in it is held back for now
        doc["choices"] = kept
        if "model" in doc:
            doc["model"] = msgspec.Raw(self._value)
        return _encode(doc)

    def _choice(self, choice: dict) -> bool:
        """Rewrite one choice's delta; False when nothing is left to send."""
        index = choice.get("index", 0)
        state = self.choices.get(index)
        if state is None:
            state = self.choices[index] = _Choice()
        delta = choice.get("delta")
        if not isinstance(delta, dict):
            delta = {}
        new: dict = {k: v for k, v in delta.items() if k not in ("content", "tool_calls")}
        calls = []
        for call in delta.get("tool_calls") or ():
            if isinstance(call, dict):
                fn = call.get("function")
                if isinstance(fn, dict) and isinstance(fn.get("name"), str):
                    fn["name"] = self.names.client(fn["name"])
                if call.get("id"):
                    state.calls += 1
                calls.append(call)
        text: list[str] = []
        reasoning: list[str] = []
        content = delta.get("content")
        if isinstance(content, str) and content:
            self._text(state, content, text, reasoning, calls)
        finish = choice.get("finish_reason")
        if finish is not None:
            self._finish(state, text, calls)
            if state.calls and finish == "stop":
                choice["finish_reason"] = "tool_calls"
        joined = "".join(text)
        if joined or content == "":  # the backend's own empty content (role and last frames) goes on
            new["content"] = joined
        if reasoning:
            new["reasoning_content"] = (new.get("reasoning_content") or "") + "".join(reasoning)
        if calls:
            new["tool_calls"] = calls
        choice["delta"] = new
        return bool(new) or finish is not None or choice.get("logprobs") is not None

    # ---- the text state machine
    def _start_call(self, state: _Choice, name: str, call_id: str | None, arguments: str, calls: list) -> None:
        call = client_call(call_id, name.strip(), arguments, self.names)
        call["index"] = state.calls
        calls.append(call)
        state.calls += 1
        state.depth = 0
        state.in_string = state.escape = state.started = state.plain_args = False

    def _args(self, state: _Choice, piece: str, calls: list) -> None:
        if piece:
            calls.append({"index": state.calls - 1, "function": {"arguments": piece}})

    def _text(self, state: _Choice, text: str, out: list, reasoning: list, calls: list) -> None:
        if state.held:  # a marker may have been cut between deltas (llama.cpp with some GGUFs)
            text, state.held = state.held + text, ""
        while text:
            mode = state.mode
            if mode == _TEXT:
                pos, token = _earliest(text, (TOOL_CALLS, THINK))
                if pos == -1:
                    cut = _marker_tail(text, (TOOL_CALLS, THINK))
                    out.append(strip_control(text[:cut]))
                    state.held = text[cut:]
                    return
                out.append(strip_control(text[:pos]))
                text = text[pos + len(token) :]
                state.mode = _START if token == TOOL_CALLS else _THINK
            elif mode == _THINK:
                pos = text.find(END_THINK)
                if pos == -1:
                    cut = _marker_tail(text, (END_THINK,))
                    reasoning.append(text[:cut])
                    state.held = text[cut:]
                    return
                reasoning.append(text[:pos])
                text = text[pos + len(END_THINK) :]
                state.mode = _TEXT
            elif mode == _START:
                stripped = text.lstrip()
                if not stripped:
                    return
                state.mode = _JSON if stripped[0] in "[{" else _NAME
                state.buf = ""
                text = stripped
            elif mode == _JSON:
                closes = "]" in text or "}" in text
                state.buf += text
                text = ""
                if len(state.buf) > _MAX_RAW_JSON:  # no call after all: it was text
                    out.append(strip_control(state.buf))
                    state.buf, state.mode = "", _TEXT
                    return
                parsed, rest = split_raw_calls(state.buf) if closes else (None, "")
                if parsed:
                    for call_id, name, args in parsed:
                        self._start_call(state, name, call_id, args, calls)
                    state.mode = _TEXT
                    state.buf = ""
                    text = rest  # prose after the calls is content
            elif mode == _NAME or mode == _CALL_ID:
                joined = state.buf + text
                pos, token = _earliest(joined, (ARGS, CALL_ID) if mode == _NAME else (ARGS,))
                if pos == -1:
                    if len(joined) > _MAX_NAME:  # no call after all: it was text
                        out.append(strip_control(joined))
                        state.buf, state.mode = "", _TEXT
                    else:
                        state.buf = joined
                    return
                state.buf, text = "", joined[pos + len(token) :]
                if mode == _NAME:
                    state.name = joined[:pos]
                    if token == CALL_ID:
                        state.mode = _CALL_ID
                        continue
                    call_id = None
                else:
                    call_id = joined[:pos].strip()
                self._start_call(state, state.name, call_id, "", calls)
                state.mode = _ARGS
            else:  # _ARGS: exactly one JSON value; what follows is content or the next call
                end = -1 if state.plain_args else _json_end(state, text)
                if end is None:
                    state.plain_args = True
                if state.plain_args:
                    pos = text.find(TOOL_CALLS)
                    if pos == -1:
                        cut = _marker_tail(text, (TOOL_CALLS,))
                        self._args(state, text[:cut], calls)
                        state.held = text[cut:]
                        return
                    self._args(state, text[:pos], calls)
                    text = text[pos + len(TOOL_CALLS) :]
                    state.mode = _START
                elif end == -1:
                    self._args(state, text, calls)
                    return
                else:
                    self._args(state, text[:end], calls)
                    text = text[end:]
                    state.mode = _TEXT

    def _finish(self, state: _Choice, out: list, calls: list) -> None:
        """The stream ends: whatever is held back goes out in the best shape it has."""
        if state.held:  # the start of a marker that never came
            if state.mode == _ARGS:
                self._args(state, state.held, calls)
            else:
                out.append(state.held)
            state.held = ""
        mode = state.mode
        if mode == _JSON:
            parsed, rest = split_raw_calls(state.buf)
            if parsed:
                for call_id, name, args in parsed:
                    self._start_call(state, name, call_id, args, calls)
                out.append(strip_control(rest))
            else:
                out.append(strip_control(state.buf))
        elif mode == _NAME and state.buf.strip():
            self._start_call(state, state.buf, None, "{}", calls)
        elif mode == _CALL_ID:
            self._start_call(state, state.name, state.buf.strip(), "{}", calls)
        state.mode = _TEXT
        state.buf = ""
