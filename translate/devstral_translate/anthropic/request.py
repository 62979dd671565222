"""An Anthropic Messages request (`POST /v1/messages`, what Claude Code and the Anthropic SDKs
send) read into a chat-completions request: system (top level and `role: "system"` turns),
text / image / tool_use / tool_result / thinking blocks, tools (tools.py), tool_choice,
stop_sequences, thinking and effort.

What a local model cannot use (context_management, cache_control, metadata beyond the user, the
thinking budget) is ignored on purpose; server tools are dropped (tools.py); documents are a 400.
"""

from typing import Any

import msgspec

from ..errors import MAX_ITEMS, bounded
from ..errors import invalid as _bad
from ..request import MAX_MODEL_NAME
from ..wire import decode_any, decode_object
from .tools import read_tools

_encode = msgspec.json.encode


def _image(block: dict, where: str) -> dict:
    source = block.get("source")
    if isinstance(source, dict) and source.get("type") == "base64" and isinstance(source.get("data"), str):
        media = source.get("media_type") if isinstance(source.get("media_type"), str) else "image/png"
        return {"type": "image_url", "image_url": {"url": f"data:{media};base64,{source['data']}"}}
    if isinstance(source, dict) and source.get("type") == "url" and isinstance(source.get("url"), str):
        return {"type": "image_url", "image_url": {"url": source["url"]}}
    raise _bad(f"'{where}.source' must be a base64 or url image source.", f"{where}.source")


def _blocks(content: Any, where: str) -> list[dict]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise _bad(f"'{where}' must be a string or an array of content blocks.", where, "invalid_type")
    for k, block in enumerate(content):
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise _bad(f"'{where}[{k}]' must be a content block with a type.", f"{where}[{k}]", "invalid_type")
    return content


def _parts(blocks: list[dict], where: str) -> str | list[dict]:
    """Text and image blocks as chat content: a plain string when it is only text."""
    parts: list[dict] = []
    for k, block in enumerate(blocks):
        kind = block["type"]
        if kind == "text" and isinstance(block.get("text"), str):
            parts.append({"type": "text", "text": block["text"]})
        elif kind == "image":
            parts.append(_image(block, f"{where}[{k}]"))
        else:
            raise _bad(f"'{where}[{k}]': blocks of type {kind!r} are not supported here (text and image are).", f"{where}[{k}].type")
    if all(p["type"] == "text" for p in parts):
        return "".join(p["text"] for p in parts)
    return parts


def _only_text(content: Any) -> str | None:
    """The text of content made of text blocks only (at least one), else None."""
    if not isinstance(content, list) or not content:
        return None
    texts = []
    for block in content:
        text = block.get("text") if isinstance(block, dict) and block.get("type") == "text" else None
        if not isinstance(text, str):
            return None
        texts.append(text)
    return texts[0] if len(texts) == 1 else "".join(texts)


def _user(blocks: list[dict], where: str, out: list[dict]) -> None:
    """A user turn: its tool_result blocks become tool messages (first, as they answer the
    turn before), the rest one user message."""
    rest = []
    for k, block in enumerate(blocks):
        if block["type"] != "tool_result":
            rest.append(block)
            continue
        tid = block.get("tool_use_id")
        if not isinstance(tid, str):
            raise _bad(f"'{where}[{k}].tool_use_id' must be a string.", f"{where}[{k}].tool_use_id", "invalid_type")
        content = _parts(_blocks(block.get("content", ""), f"{where}[{k}].content"), f"{where}[{k}].content")
        if block.get("is_error") is True:
            content = "Error: " + content if isinstance(content, str) else [{"type": "text", "text": "Error:"}, *content]
        out.append({"role": "tool", "tool_call_id": tid, "content": content})
    if rest:
        out.append({"role": "user", "content": _parts(rest, where)})


def _assistant(blocks: list[dict], where: str, out: list[dict]) -> None:
    text, reasoning, calls = [], [], []
    for k, block in enumerate(blocks):
        kind = block["type"]
        if kind == "text" and isinstance(block.get("text"), str):
            text.append(block["text"])
        elif kind == "thinking" and isinstance(block.get("thinking"), str):
            reasoning.append(block["thinking"])
        elif kind == "redacted_thinking":
            continue  # encrypted by another provider: nothing a local model can read
        elif kind == "tool_use":
            tid, name = block.get("id"), block.get("name")
            if not isinstance(tid, str) or not isinstance(name, str):
                raise _bad(f"'{where}[{k}]' needs an id and a name.", f"{where}[{k}]", "invalid_type")
            calls.append({"id": tid, "type": "function", "function": {"name": name, "arguments": _encode(block.get("input") or {}).decode()}})
        else:
            raise _bad(f"'{where}[{k}]': blocks of type {kind!r} are not supported in an assistant turn.", f"{where}[{k}].type")
    msg: dict[str, Any] = {"role": "assistant", "content": "".join(text) if text or not calls else None}
    if calls:
        msg["tool_calls"] = calls
    if reasoning:
        msg["reasoning_content"] = "".join(reasoning)
    out.append(msg)


def _system(system: Any) -> str | None:
    if system is None or isinstance(system, str):
        return system or None
    blocks = _blocks(system, "system")
    for k, block in enumerate(blocks):
        if block["type"] != "text" or not isinstance(block.get("text"), str):
            raise _bad(f"'system[{k}]' must be a text block.", f"system[{k}]")
    return "\n\n".join(b["text"] for b in blocks) or None


def _tool_choice(choice: Any, chat: dict) -> None:
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind == "auto":
        chat["tool_choice"] = "auto"
    elif kind == "any":
        chat["tool_choice"] = "required"
    elif kind == "none":
        chat["tool_choice"] = "none"
    elif kind == "tool" and isinstance(choice.get("name"), str):
        offered = any(t["function"]["name"] == choice["name"] for t in chat["tools"])
        chat["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}} if offered else "auto"  # a dropped server tool
    else:
        raise _bad("'tool_choice.type' must be auto, any, tool or none.", "tool_choice.type")
    if choice.get("disable_parallel_tool_use") is True:
        chat["parallel_tool_calls"] = False


def _number(top: dict, name: str) -> Any:
    value = top.get(name)
    if value is not None and (not isinstance(value, int | float) or isinstance(value, bool)):
        raise _bad(f"'{name}' must be a number.", name, "invalid_type")
    return value


def read_request(
    body: bytes, counting: bool = False, server_tools: str = "drop", dropped: list[str] | None = None, max_items: int = MAX_ITEMS
) -> dict[str, Any]:
    """The chat-completions request of an Anthropic Messages request (`counting`: of a
    count_tokens request, which has no max_tokens); server tools left out are added to
    `dropped` by type ("refuse": a 400)."""
    top = {k: decode_any(v) for k, v in decode_object(body).items()}
    model = top.get("model")
    if not isinstance(model, str) or not model or len(model) > MAX_MODEL_NAME:
        raise _bad(f"model: must be a non-empty string of at most {MAX_MODEL_NAME} characters.", "model")
    messages = top.get("messages")
    if not isinstance(messages, list):
        raise _bad("messages: Field required (an array of messages).", "messages", "missing_required_parameter")
    bounded(messages, max_items, "messages")
    out: list[dict] = []
    system = _system(top.get("system"))
    if system:
        out.append({"role": "system", "content": system})
    for i, msg in enumerate(messages):
        role = msg.get("role") if isinstance(msg, dict) else None
        content = msg.get("content") if role is not None else None
        if role == "user" or role == "assistant":  # the plainest turns: text only, a chat message as it is
            text = content if isinstance(content, str) else _only_text(content)
            if text is not None:
                out.append({"role": role, "content": text})
                continue
        where = f"messages[{i}]"
        if role == "system":  # mid-conversation system turns (a beta Claude Code uses): the dialect places them
            text = _system(msg.get("content"))
            if text:
                out.append({"role": "system", "content": text})
            continue
        if role not in ("user", "assistant"):
            raise _bad(f"messages.{i}.role: Unexpected role {role!r}; input message role must be 'user', 'assistant' or 'system'.", f"{where}.role")
        blocks = _blocks(content, f"{where}.content")
        (_user if role == "user" else _assistant)(blocks, f"{where}.content", out)
    chat: dict[str, Any] = {"model": model, "messages": out}
    return _options(top, chat, counting, server_tools, dropped if dropped is not None else [])


_EFFORTS = {"low": "low", "medium": "medium", "high": "high", "max": "high", "xhigh": "high"}


def _effort(top: dict) -> str | None:
    """The reasoning effort asked: output_config.effort, else thinking enabled (high) or
    adaptive (the model's own choice: none asked); the budget itself has no chat equivalent."""
    config = top.get("output_config")
    effort = config.get("effort") if isinstance(config, dict) else None
    if isinstance(effort, str) and effort in _EFFORTS:
        return _EFFORTS[effort]
    thinking = top.get("thinking")
    return "high" if isinstance(thinking, dict) and thinking.get("type") == "enabled" else None


def _options(top: dict, chat: dict, counting: bool, server_tools: str, dropped: list[str]) -> dict:
    """max_tokens, sampling, stop sequences, tools, effort and streaming."""
    max_tokens = top.get("max_tokens")
    if max_tokens is None and not counting:
        raise _bad("max_tokens: Field required.", "max_tokens", "missing_required_parameter")
    if max_tokens is not None:
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
            raise _bad("max_tokens: must be a positive integer.", "max_tokens")
        chat["max_tokens"] = max_tokens
    for name in ("temperature", "top_p", "top_k"):
        if _number(top, name) is not None:
            chat[name] = top[name]
    stops = top.get("stop_sequences")
    if stops is not None:
        if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
            raise _bad("stop_sequences: must be an array of strings.", "stop_sequences", "invalid_type")
        if stops:
            chat["stop"] = stops
    if top.get("tools"):
        tools = read_tools(top["tools"], server_tools, dropped)
        if tools:
            chat["tools"] = tools
    if top.get("tool_choice") is not None and chat.get("tools"):
        _tool_choice(top["tool_choice"], chat)
    effort = _effort(top)
    if effort is not None:
        chat["reasoning_effort"] = effort
    metadata = top.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("user_id"), str):
        chat["user"] = metadata["user_id"]
    if top.get("stream") is True:
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    return chat
