"""A chat completion turned into an Anthropic Message: thinking, text and tool_use blocks, the
stop reason (end_turn, tool_use, max_tokens, stop_sequence) and usage.
"""

import msgspec

from ..chat import Reply, Usage, read_reply
from ..ids import new_id
from ..wire import DECODE_ERRORS

_encode = msgspec.json.encode
_decode = msgspec.json.decode


def tool_input(arguments: str) -> dict:
    """A call's arguments as the object Anthropic's tool_use.input is ({} when they are not one)."""
    try:
        value = _decode(arguments) if arguments.strip() else {}
    except DECODE_ERRORS:
        return {}
    return value if isinstance(value, dict) else {}


def usage_object(usage: Usage | None) -> dict:
    usage = usage or Usage()
    return {"input_tokens": usage.prompt, "output_tokens": usage.completion, "cache_read_input_tokens": usage.cached, "cache_creation_input_tokens": 0}


class AnthropicReply:
    """The reply translator of one Messages request."""

    def __init__(self, model: str, stops: list[str] | None = None) -> None:
        self.model = model
        self.stops = stops or []
        self.id = f"msg_{new_id(24)}"

    def stop(self, finish: str | None, stop_reason: object, calls: bool) -> tuple[str, str | None]:
        """(stop_reason, stop_sequence) of a chat finish_reason (and vLLM's stop_reason)."""
        if finish == "tool_calls" or (calls and finish in ("stop", None)):
            return "tool_use", None
        if finish == "length":
            return "max_tokens", None
        if finish == "content_filter":
            return "refusal", None
        if isinstance(stop_reason, str) and stop_reason in self.stops:
            return "stop_sequence", stop_reason
        return "end_turn", None

    def message(self, content: list[dict], stop: tuple[str | None, str | None], usage: Usage | None) -> dict:
        return {
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": content,
            "stop_reason": stop[0],
            "stop_sequence": stop[1],
            "usage": usage_object(usage),
        }

    def body(self, data: bytes) -> bytes:
        reply: Reply = read_reply(data)
        content: list[dict] = []
        if reply.reasoning:
            content.append({"type": "thinking", "thinking": reply.reasoning, "signature": ""})
        if reply.text:
            content.append({"type": "text", "text": reply.text})
        for call in reply.calls:
            content.append({"type": "tool_use", "id": call.id or f"toolu_{new_id(24)}", "name": call.name, "input": tool_input(call.arguments)})
        return _encode(self.message(content, self.stop(reply.finish, reply.stop_reason, bool(reply.calls)), reply.usage))
