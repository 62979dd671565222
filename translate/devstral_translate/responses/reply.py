"""A chat completion turned into a Response object (whole replies), and the pieces the stream
state machine shares: the output items, the usage, the assistant turn kept for the next one.
"""

from typing import Any

import msgspec

from ..chat import Call, Reply, Usage, read_reply
from ..ids import new_id
from .request import ResponsesRequest
from .tools import CALL_ITEMS, ToolKinds, call_of_item, output_item

_encode = msgspec.json.encode

_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def item_id(prefix: str) -> str:
    return f"{prefix}_{new_id(24)}"


def message_item(iid: str, text: str, status: str = "completed") -> dict:
    content = [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]
    return {"type": "message", "id": iid, "status": status, "role": "assistant", "content": content}


def reasoning_item(iid: str, text: str) -> dict:
    return {"type": "reasoning", "id": iid, "summary": [], "content": [{"type": "reasoning_text", "text": text}]}


def call_item(iid: str, call: Call, kinds: ToolKinds, status: str = "completed") -> dict:
    """A chat tool call as the item of its tool's kind (function_call, custom_tool_call, ...)."""
    return output_item(iid, call.id or item_id("call"), call.name, call.arguments, kinds, status)


def usage_object(usage: Usage | None) -> dict | None:
    if usage is None:
        return None
    return {
        "input_tokens": usage.prompt,
        "input_tokens_details": {"cached_tokens": usage.cached},
        "output_tokens": usage.completion,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning},
        "total_tokens": usage.prompt + usage.completion,
    }


def assistant_turn(output: list[dict]) -> dict:
    """The output items as one chat assistant message (what the next turn's history holds)."""
    text: list[str] = []
    reasoning: list[str] = []
    calls: list[dict] = []
    for item in output:
        if item["type"] == "message":
            text.extend(part["text"] for part in item["content"])
        elif item["type"] == "reasoning":
            reasoning.extend(part["text"] for part in item["content"])
        elif item["type"] in CALL_ITEMS:
            calls.append(call_of_item(item, item["type"], "output"))
    msg: dict[str, Any] = {"role": "assistant", "content": "".join(text) if text or not calls else None}
    if calls:
        msg["tool_calls"] = calls
    if reasoning:
        msg["reasoning_content"] = "".join(reasoning)
    return msg


class ResponsesReply:
    """The reply translator of one Responses turn; `on_complete(response, assistant_message)`
    is called once the Response is complete (to store it)."""

    def __init__(self, req: ResponsesRequest, rid: str, created: int, on_complete=None) -> None:
        self.req = req
        self.rid = rid
        self.created = created
        self.on_complete = on_complete

    def response(self, status: str, output: list[dict], usage: Usage | None = None, finish: str | None = None, error: dict | None = None) -> dict:
        reason = _INCOMPLETE.get(finish or "")
        if reason is not None and status == "completed":
            status = "incomplete"
        echo = self.req.echo
        return {
            "id": self.rid,
            "object": "response",
            "created_at": self.created,
            "status": status,
            "error": error,
            "incomplete_details": {"reason": reason} if reason and status == "incomplete" else None,
            "instructions": echo["instructions"],
            "max_output_tokens": echo["max_output_tokens"],
            "model": self.req.model,
            "output": output,
            "parallel_tool_calls": echo["parallel_tool_calls"] is not False,
            "previous_response_id": echo["previous_response_id"],
            "reasoning": echo["reasoning"],
            "store": self.req.store,
            "temperature": echo["temperature"],
            "text": echo["text"],
            "tool_choice": echo["tool_choice"] or "auto",
            "tools": echo["tools"] or [],
            "top_p": echo["top_p"],
            "truncation": "disabled",
            "usage": usage_object(usage),
            "user": echo["user"],
            "metadata": echo["metadata"] or {},
        }

    def completed(self, response: dict) -> None:
        if self.on_complete is not None and response["status"] in ("completed", "incomplete"):
            self.on_complete(response, assistant_turn(response["output"]))

    def body(self, data: bytes) -> bytes:
        reply: Reply = read_reply(data)
        output = []
        if reply.reasoning:
            output.append(reasoning_item(item_id("rs"), reply.reasoning))
        if reply.text or not reply.calls:
            output.append(message_item(item_id("msg"), reply.text))
        output.extend(call_item(item_id("fc"), call, self.req.tools) for call in reply.calls)
        response = self.response("completed", output, reply.usage, reply.finish)
        self.completed(response)
        return _encode(response)
