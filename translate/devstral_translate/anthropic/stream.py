"""A chat stream turned into Anthropic's event sequence: message_start, ping, per content block
start / deltas (thinking_delta, text_delta, input_json_delta) / stop, message_delta with the
stop reason and usage, message_stop; a broken stream ends with an `error` event.
"""

from ..chat import Delta, DeltaStream, Usage, error_message, sse_event
from ..ids import new_id
from .errors import error_type
from .reply import AnthropicReply

_THINKING, _TEXT, _TOOL = range(3)
_START = {_THINKING: {"type": "thinking", "thinking": "", "signature": ""}, _TEXT: {"type": "text", "text": ""}}


class AnthropicStream(DeltaStream):
    __slots__ = ("reply", "blocks", "kind", "calls", "finish", "stop_reason", "usage")

    def __init__(self, reply: AnthropicReply) -> None:
        super().__init__()
        self.reply = reply
        self.blocks = 0  # content blocks opened so far
        self.kind: int | None = None  # the open block's kind
        self.calls: dict[int, int] = {}  # chat tool-call index -> its block index
        self.finish: str | None = None
        self.stop_reason: object = None
        self.usage: Usage | None = None

    def _start(self, out: list[bytes]) -> None:
        out.append(sse_event("message_start", {"type": "message_start", "message": self.reply.message([], (None, None), None)}))
        out.append(sse_event("ping", {"type": "ping"}))

    def _broken(self, out: list[bytes], status: int, message: str) -> None:
        self.finished = True
        out.append(sse_event("error", {"type": "error", "error": {"type": error_type(status), "message": message}}))

    def _delta(self, d: Delta, out: list[bytes]) -> None:
        if self.finished:
            return
        if d.error is not None:
            self.finished = True
            out.append(sse_event("error", {"type": "error", "error": {"type": "api_error", "message": error_message(d.error)}}))
            return
        if d.reasoning:
            self._open(_THINKING, out)
            self._block_delta(out, {"type": "thinking_delta", "thinking": d.reasoning})
        if d.text:
            self._open(_TEXT, out)
            self._block_delta(out, {"type": "text_delta", "text": d.text})
        for c in d.calls:
            block = self.calls.get(c.index)
            if block is None:
                self._close(out)
                block = self.calls[c.index] = self.blocks
                self.blocks += 1
                self.kind = _TOOL
                start = {"type": "tool_use", "id": c.id or f"toolu_{new_id(24)}", "name": c.name, "input": {}}
                out.append(sse_event("content_block_start", {"type": "content_block_start", "index": block, "content_block": start}))
            if c.arguments:
                delta = {"type": "input_json_delta", "partial_json": c.arguments}
                out.append(sse_event("content_block_delta", {"type": "content_block_delta", "index": block, "delta": delta}))
        if d.finish is not None:
            self.finish = d.finish
            self.stop_reason = d.stop_reason
        if d.usage is not None:
            self.usage = d.usage
        if d.done:
            self._complete(out)

    def _open(self, kind: int, out: list[bytes]) -> None:
        if self.kind == kind:
            return
        self._close(out)
        self.kind = kind
        self.blocks += 1
        out.append(sse_event("content_block_start", {"type": "content_block_start", "index": self.blocks - 1, "content_block": dict(_START[kind])}))

    def _block_delta(self, out: list[bytes], delta: dict) -> None:
        out.append(sse_event("content_block_delta", {"type": "content_block_delta", "index": self.blocks - 1, "delta": delta}))

    def _close(self, out: list[bytes]) -> None:
        if self.kind is not None:
            out.append(sse_event("content_block_stop", {"type": "content_block_stop", "index": self.blocks - 1}))
            self.kind = None

    def _complete(self, out: list[bytes]) -> None:
        self._close(out)
        self.finished = True
        stop_reason, sequence = self.reply.stop(self.finish, self.stop_reason, bool(self.calls))
        usage = self.usage or Usage()
        delta = {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": sequence},
            "usage": {"input_tokens": usage.prompt, "output_tokens": usage.completion},
        }
        out.append(sse_event("message_delta", delta))
        out.append(sse_event("message_stop", {"type": "message_stop"}))
