"""The control markers a Mistral-family model writes as text when the server does not parse
them (`[TOOL_CALLS]`, `[ARGS]`, `[CALL_ID]`, `[THINK]`), and the raw tool calls they frame.

Shared by every dialect and front protocol that reads a model's raw output.
"""

import re

import msgspec

from .wire import DECODE_ERRORS

TOOL_CALLS = "[TOOL_CALLS]"
ARGS = "[ARGS]"
CALL_ID = "[CALL_ID]"
THINK = "[THINK]"
END_THINK = "[/THINK]"
CONTROL_TOKENS = (TOOL_CALLS, ARGS, CALL_ID, THINK, END_THINK)
_MARKERS = re.compile(b"|".join(re.escape(t.encode()) for t in CONTROL_TOKENS))  # one scan for all
_json = msgspec.json.Decoder()


def has_markers(data: bytes) -> bool:
    return _MARKERS.search(data) is not None


def strip_control(text: str) -> str:
    for token in CONTROL_TOKENS:
        text = text.replace(token, "")
    return text


def arguments_text(value) -> str:
    """`arguments` as the JSON string OpenAI clients expect."""
    if isinstance(value, str):
        return value
    if value is None:
        return "{}"
    return msgspec.json.encode(value).decode()


def parse_raw_calls(text: str) -> list[tuple[str | None, str, str]] | None:
    """The calls in the text after a `[TOOL_CALLS]` token: (id or None, name, arguments).

    Both formats: `[{"name": ..., "arguments": {...}}]` (v3/v7) and `name[ARGS]{...}`, or
    `name[CALL_ID]id[ARGS]{...}`, one per `[TOOL_CALLS]` (v11+). None when it is neither."""
    body = text.strip()
    if body.startswith(("[", "{")):
        try:
            doc = _json.decode(body)
        except DECODE_ERRORS:
            return None
        items = doc if isinstance(doc, list) else [doc]
        calls = []
        for item in items:
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                return None
            call_id = item.get("id") if isinstance(item.get("id"), str) else None
            calls.append((call_id, item["name"], arguments_text(item.get("arguments"))))
        return calls
    calls = []
    for part in text.split(TOOL_CALLS):
        if not part.strip():
            continue
        head, sep, args = part.partition(ARGS)
        if not sep:
            return None
        name, _, call_id = head.partition(CALL_ID)
        name = name.strip()
        if not name:
            return None
        calls.append((call_id.strip() or None, name, args.strip() or "{}"))
    return calls or None


def split_think(text: str) -> tuple[str, str | None]:
    """(content, reasoning) of a text that may hold `[THINK]...[/THINK]`."""
    if THINK not in text and END_THINK not in text:
        return text, None
    reasoning = []
    content = []
    rest = text
    while rest:
        start = rest.find(THINK)
        if start == -1:
            end = rest.find(END_THINK)
            if end == -1:
                content.append(rest)
            else:  # a close without an open: what came before it was reasoning
                reasoning.append(rest[:end])
                content.append(rest[end + len(END_THINK) :])
            break
        content.append(rest[:start])
        rest = rest[start + len(THINK) :]
        end = rest.find(END_THINK)
        if end == -1:
            reasoning.append(rest)
            break
        reasoning.append(rest[:end])
        rest = rest[end + len(END_THINK) :]
    return "".join(content), "".join(reasoning)
