"""A chat stream turned into the Responses API's event sequence: created, in_progress, then
per output item added / deltas / done, and completed (or incomplete, or failed), numbered.

Items open in the order the chat deltas bring them (reasoning, text, each tool call); a new
kind of delta closes the item before it. Text is gathered in lists and joined once (linear).
"""

from ..chat import Call, Delta, DeltaStream, Usage, error_message, sse_event
from .reply import ResponsesReply, call_item, item_id, message_item, reasoning_item

_REASONING, _MESSAGE, _CALL = range(3)


class _Item:
    __slots__ = ("kind", "id", "index", "parts", "call", "open", "function")

    def __init__(self, kind: int, iid: str, index: int, call: Call | None = None) -> None:
        self.kind = kind
        self.id = iid
        self.index = index  # output_index
        self.parts: list[str] = []
        self.call = call or Call("", "", "")  # a function_call item's call
        self.open = True
        self.function = True  # a function_call item (its arguments stream as deltas)


class ResponsesStream(DeltaStream):
    __slots__ = ("reply", "seq", "items", "current", "calls", "finish", "usage")

    def __init__(self, reply: ResponsesReply) -> None:
        super().__init__()
        self.reply = reply
        self.seq = 0
        self.items: list[_Item] = []
        self.current: _Item | None = None  # the open item deltas go to
        self.calls: dict[int, _Item] = {}  # chat tool-call index -> its item
        self.finish: str | None = None
        self.usage: Usage | None = None

    def _emit(self, out: list[bytes], name: str, payload: dict) -> None:
        payload = {"type": name, "sequence_number": self.seq, **payload}
        self.seq += 1
        out.append(sse_event(name, payload))

    def _start(self, out: list[bytes]) -> None:
        response = self.reply.response("in_progress", [])
        self._emit(out, "response.created", {"response": response})
        self._emit(out, "response.in_progress", {"response": response})

    def _broken(self, out: list[bytes], status: int, message: str) -> None:
        self._fail(out, {"code": "server_error" if status >= 500 else "invalid_request", "message": message})

    # ---- deltas
    def _delta(self, d: Delta, out: list[bytes]) -> None:
        if self.finished:
            return
        if d.error is not None:
            self._fail(out, {"code": "server_error", "message": error_message(d.error)})
            return
        if d.reasoning:
            item = self._open(_REASONING, out)
            item.parts.append(d.reasoning)
            self._emit(out, "response.reasoning_text.delta", {"item_id": item.id, "output_index": item.index, "content_index": 0, "delta": d.reasoning})
        if d.text:
            item = self._open(_MESSAGE, out)
            item.parts.append(d.text)
            self._emit(out, "response.output_text.delta", {"item_id": item.id, "output_index": item.index, "content_index": 0, "delta": d.text, "logprobs": []})
        for c in d.calls:
            call = self.calls.get(c.index)
            if call is None:
                call = self._new_call(c.index, Call(c.id, c.name, ""), out)
            elif c.name and not call.call.name:
                call.call.name = c.name
            if c.arguments:
                call.parts.append(c.arguments)
                if call.open and call.function:
                    self._emit(out, "response.function_call_arguments.delta", {"item_id": call.id, "output_index": call.index, "delta": c.arguments})
        if d.finish is not None:
            self.finish = d.finish
        if d.usage is not None:
            self.usage = d.usage
        if d.done:
            self._complete(out)

    def _open(self, kind: int, out: list[bytes]) -> _Item:
        item = self.current
        if item is not None and item.kind == kind:
            return item
        self._close_current(out)
        item = _Item(kind, item_id("rs" if kind == _REASONING else "msg"), len(self.items))
        self.items.append(item)
        self.current = item
        if kind == _REASONING:
            self._emit(out, "response.output_item.added", {"output_index": item.index, "item": {**reasoning_item(item.id, ""), "content": []}})
        else:
            added = message_item(item.id, "", "in_progress")
            added["content"] = []
            self._emit(out, "response.output_item.added", {"output_index": item.index, "item": added})
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            self._emit(out, "response.content_part.added", {"item_id": item.id, "output_index": item.index, "content_index": 0, "part": part})
        return item

    def _new_call(self, index: int, call: Call, out: list[bytes]) -> _Item:
        self._close_current(out)
        item = _Item(_CALL, item_id("fc"), len(self.items), call)
        self.items.append(item)
        self.calls[index] = item
        self.current = item
        added = call_item(item.id, call, self.reply.req.tools, "in_progress")
        call.id = added["call_id"]
        item.function = added["type"] == "function_call"  # other kinds are whole at their done event
        self._emit(out, "response.output_item.added", {"output_index": item.index, "item": added})
        return item

    def _close_current(self, out: list[bytes]) -> None:
        item = self.current
        if item is None:
            return
        self.current = None
        item.open = False
        text = "".join(item.parts)
        where = {"item_id": item.id, "output_index": item.index}
        if item.kind == _REASONING:
            done = reasoning_item(item.id, text)
            self._emit(out, "response.reasoning_text.done", {**where, "content_index": 0, "text": text})
        elif item.kind == _MESSAGE:
            done = message_item(item.id, text)
            self._emit(out, "response.output_text.done", {**where, "content_index": 0, "text": text, "logprobs": []})
            self._emit(out, "response.content_part.done", {**where, "content_index": 0, "part": done["content"][0]})
        else:
            call = item.call
            call.arguments = text
            done = call_item(item.id, call, self.reply.req.tools)
            if item.function:
                self._emit(out, "response.function_call_arguments.done", {**where, "name": done["name"], "arguments": text})
            elif done["type"] == "custom_tool_call":
                self._emit(out, "response.custom_tool_call_input.done", {**where, "input": done["input"]})
        self._emit(out, "response.output_item.done", {"output_index": item.index, "item": done})

    def _output(self) -> list[dict]:
        output = []
        for item in self.items:
            text = "".join(item.parts)
            if item.kind == _REASONING:
                output.append(reasoning_item(item.id, text))
            elif item.kind == _MESSAGE:
                output.append(message_item(item.id, text))
            else:
                item.call.arguments = text
                output.append(call_item(item.id, item.call, self.reply.req.tools))
        return output

    def _complete(self, out: list[bytes]) -> None:
        if not self.items:  # nothing generated: an empty message, as a whole reply has
            self._open(_MESSAGE, out)
        self._close_current(out)
        self.finished = True
        response = self.reply.response("completed", self._output(), self.usage, self.finish)
        name = "response.completed" if response["status"] == "completed" else "response.incomplete"
        self._emit(out, name, {"response": response})
        self.reply.completed(response)

    def _fail(self, out: list[bytes], error: dict) -> None:
        self._close_current(out)
        self.finished = True
        response = self.reply.response("failed", self._output(), self.usage, None, error)
        self._emit(out, "response.failed", {"response": response})
