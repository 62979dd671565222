"""The control markers a Mistral-family model writes as text when the server does not parse
them (`[TOOL_CALLS]`, `[ARGS]`, `[CALL_ID]`, `[THINK]`), and the raw tool calls they frame.

Shared by every dialect and front protocol that reads a model's raw output.
"""

import json
import re

import msgspec

TOOL_CALLS = "[TOOL_CALLS]"
ARGS = "[ARGS]"
CALL_ID = "[CALL_ID]"
THINK = "[THINK]"
END_THINK = "[/THINK]"
CONTROL_TOKENS = (TOOL_CALLS, ARGS, CALL_ID, THINK, END_THINK)
_MARKERS = re.compile(b"|".join(re.escape(t.encode()) for t in CONTROL_TOKENS))  # one scan for all
_raw = json.JSONDecoder()  # raw_decode: one value, and where it ends


# A JSON string that ends with the start of a marker ("...[TOO"): the rest may come in the
# next delta, when a server detokenises a marker in pieces.
_STARTS = sorted({re.escape(t[1:k].encode()) for t in CONTROL_TOKENS for k in range(1, len(t))}, key=len, reverse=True)


# Either of the two in one scan (the stream's fast path asks both of every block).
_ANY = re.compile(rb"\[(?:" + b"|".join(re.escape(t[1:].encode()) for t in CONTROL_TOKENS) + b"|(?:" + b"|".join(_STARTS) + rb')")')


def has_markers(data: bytes) -> bool:
    return _MARKERS.search(data) is not None


def has_marker_or_start(data: bytes) -> bool:
    """has_markers(data) or has_partial_marker(data), in one scan."""
    return _ANY.search(data) is not None


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
    """The calls in the text after a `[TOOL_CALLS]` token: (id or None, name, arguments)."""
    return split_raw_calls(text)[0]


def split_raw_calls(text: str) -> tuple[list[tuple[str | None, str, str]] | None, str]:
    """The calls in the text after a `[TOOL_CALLS]` token, and the text after them.

    Both formats: `[{"name": ..., "arguments": {...}}]` (v3/v7) and `name[ARGS]{...}`, or
    `name[CALL_ID]id[ARGS]{...}`, one per `[TOOL_CALLS]` (v11+). Exactly one JSON value is
    read after `[ARGS]`: prose after it (`...{"q": 1}\n\nLet me search.`) is content, not
    arguments. (None, text) when it is neither format."""
    body = text.lstrip()
    if body.startswith(("[", "{")):
        try:
            doc, end = _raw.raw_decode(body)
        except ValueError:
            return None, text
        items = doc if isinstance(doc, list) else [doc]
        calls = []
        for item in items:
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                return None, text
            call_id = item.get("id") if isinstance(item.get("id"), str) else None
            calls.append((call_id, item["name"], arguments_text(item.get("arguments"))))
        return calls, body[end:]
    calls = []
    rest = []
    for part in text.split(TOOL_CALLS):
        if not part.strip():
            continue
        head, sep, args = part.partition(ARGS)
        if not sep:
            return None, text
        name, _, call_id = head.partition(CALL_ID)
        name = name.strip()
        if not name:
            return None, text
        value = args.lstrip()
        arguments, tail = value.strip() or "{}", ""
        if value[:1] in ("{", "["):
            try:
                end = _raw.raw_decode(value)[1]
                arguments, tail = value[:end], value[end:]
            except ValueError:
                pass  # not JSON: all of it is the (broken) arguments, as the model wrote them
        calls.append((call_id.strip() or None, name, arguments))
        rest.append(tail)
    return (calls, "".join(rest)) if calls else (None, text)


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
