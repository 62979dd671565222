"""A Responses API request (`POST /v1/responses`) read and turned into chat-completions terms:
input items become chat messages, function tools chat tools, text.format a response_format.

Tools of every kind are read by tools.py; hosted tools are dropped (or refused by setting).
What cannot be honoured (background, stored prompts) is a 400 naming the field.
"""

from dataclasses import dataclass, field
from typing import Any

from ..errors import MAX_ITEMS, bounded
from ..errors import invalid as _bad
from ..request import MAX_MODEL_NAME
from ..wire import decode_any, decode_object
from .tools import CALL_ITEMS, HOSTED_ITEMS, OUTPUT_ITEMS, ToolKinds, call_of_item, chat_name, note_dropped, output_of_item, read_tools, searched_tools

# Fields answered with a 400: the proxy cannot do what they ask.
_REFUSED = {
    "background": "background responses are not supported; send the request and wait for it",
    "conversation": "conversation objects are not supported; use previous_response_id",
    "prompt": "stored prompt templates are not supported; send the input itself",
    "max_tool_calls": "max_tool_calls is not supported",
}
# Other fields (include, metadata, service_tier, prompt_cache_key, safety_identifier,
# truncation, stream_options, top_logprobs, user) are accepted and change nothing a local model does.
# Fields the Response object repeats back.
_ECHOED = (
    "instructions",
    "max_output_tokens",
    "parallel_tool_calls",
    "previous_response_id",
    "temperature",
    "top_p",
    "tool_choice",
    "tools",
    "metadata",
    "user",
)


@dataclass(slots=True)
class ResponsesRequest:
    model: str
    stream: bool
    store: bool
    previous_response_id: str | None
    instructions: str | None
    messages: list[dict]  # this turn's input as chat messages
    chat: dict[str, Any]  # the chat request's other fields
    echo: dict[str, Any] = field(default_factory=dict)
    tools: ToolKinds = field(default_factory=ToolKinds)  # what each chat function stands for
    dropped: list[str] = field(default_factory=list)  # hosted tools and items left out, by kind


def _text_of(parts: Any, param: str) -> str:
    """The text of an assistant's content (a string, or output_text / refusal parts)."""
    if isinstance(parts, str):
        return parts
    if not isinstance(parts, list):
        raise _bad(f"'{param}' must be a string or an array of content parts.", param, "invalid_type")
    if len(parts) == 1 and isinstance(parts[0], dict) and isinstance(parts[0].get("text"), str):
        return parts[0]["text"]  # the usual one output_text part
    out = []
    for k, part in enumerate(parts):
        if not isinstance(part, dict):
            raise _bad(f"'{param}[{k}]' must be an object.", f"{param}[{k}]", "invalid_type")
        text = part.get("text", part.get("refusal"))
        if not isinstance(text, str):
            raise _bad(f"'{param}[{k}]' of type {part.get('type')!r} is not supported here; use output_text.", f"{param}[{k}].type")
        out.append(text)
    return "".join(out)


def _user_content(parts: Any, param: str) -> str | list[dict]:
    """A user/system turn's content: a string, or input_text / input_image parts."""
    if isinstance(parts, str):
        return parts
    if not isinstance(parts, list):
        raise _bad(f"'{param}' must be a string or an array of content parts.", param, "invalid_type")
    out: list[dict] = []
    for k, part in enumerate(parts):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text", "text") and isinstance(part.get("text"), str):
            out.append({"type": "text", "text": part["text"]})
            continue
        where = f"{param}[{k}]"
        if kind == "input_image":
            url = part.get("image_url")
            if not isinstance(url, str):
                raise _bad(f"'{where}': images by file_id are not supported; send image_url (a URL or a data: URL).", f"{where}.image_url")
            image: dict[str, Any] = {"url": url}
            if part.get("detail") in ("low", "high", "auto"):
                image["detail"] = part["detail"]
            out.append({"type": "image_url", "image_url": image})
        else:
            raise _bad(f"'{where}': content of type {kind!r} is not supported (input_text and input_image are).", f"{where}.type")
    return out


def _output_text(output: Any, param: str) -> str | list[dict]:
    """A function_call_output's output: a string, or text/image parts."""
    return output if isinstance(output, str) else _user_content(output, param)


def _reasoning_text(item: dict) -> str:
    parts = item.get("content") or item.get("summary") or []
    return "".join(p["text"] for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str)) if isinstance(parts, list) else ""


def input_messages(items: Any, dropped: list[str] | None = None) -> list[dict]:
    """The `input` as chat messages: a string is one user turn; items map one to one, except
    that consecutive call items (and the assistant text before them) form one assistant turn,
    and a reasoning item rides on the assistant turn after it. Hosted tools' items are left
    out (their kinds added to `dropped`)."""
    if isinstance(items, str):
        return [{"role": "user", "content": items}]
    if not isinstance(items, list):
        raise _bad("'input' must be a string or an array of items.", "input", "invalid_type")
    out: list[dict] = []
    reasoning = ""
    calls_open = False  # whether the last message is an assistant turn that calls may join
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise _bad(f"'input[{i}]' must be an object.", f"input[{i}]", "invalid_type")
        kind = item.get("type") or ("message" if "role" in item else None)
        if kind == "message":
            role, content = item.get("role"), item.get("content")
            if isinstance(content, str) and (role == "user" or role == "system"):
                out.append({"role": role, "content": content})  # the plainest turn is a chat message as it is
                calls_open = False
                continue
        where = f"input[{i}]"
        if kind == "message":
            if role == "assistant":
                msg: dict[str, Any] = {"role": "assistant", "content": _text_of(item.get("content"), f"{where}.content")}
                if reasoning:
                    msg["reasoning_content"], reasoning = reasoning, ""
                out.append(msg)
                calls_open = True
                continue
            if role not in ("user", "system", "developer"):
                raise _bad(f"'{where}.role' must be user, system, developer or assistant.", f"{where}.role")
            out.append({"role": "system" if role == "developer" else role, "content": _user_content(item.get("content"), f"{where}.content")})
        elif kind in CALL_ITEMS:
            call = call_of_item(item, kind, where)
            if calls_open:
                out[-1].setdefault("tool_calls", []).append(call)
            else:
                msg = {"role": "assistant", "content": None, "tool_calls": [call]}
                if reasoning:
                    msg["reasoning_content"], reasoning = reasoning, ""
                out.append(msg)
                calls_open = True
            continue
        elif kind in OUTPUT_ITEMS:
            out.append(output_of_item(item, kind, where, _output_text))
        elif kind == "reasoning":
            reasoning += _reasoning_text(item)
            continue  # an assistant turn follows it
        elif kind in HOSTED_ITEMS:
            if dropped is not None:
                note_dropped(dropped, kind)
            continue
        elif kind == "item_reference":
            raise _bad(f"'{where}': item references are not supported; send the item itself or use previous_response_id.", f"{where}.type")
        else:
            raise _bad(f"'{where}': items of type {kind!r} are not supported (message, function_call, function_call_output, reasoning are).", f"{where}.type")
        calls_open = False
    return out


def _tool_choice(choice: Any, kinds: ToolKinds) -> Any:
    """The chat tool_choice: a named function, custom or built-in tool by its chat name; a
    hosted tool that was dropped leaves the choice to the model; allowed_tools by its mode."""
    if choice in ("auto", "none", "required"):
        return choice
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind in ("function", "custom") and isinstance(choice.get("name"), str):
        ns = choice.get("namespace") if isinstance(choice.get("namespace"), str) else None
        return {"type": "function", "function": {"name": chat_name(kind, choice["name"], ns)}}
    if kind == "allowed_tools":
        return "required" if choice.get("mode") == "required" else "auto"
    if isinstance(kind, str) and chat_name(kind, kind) in kinds.by_chat_name:
        return {"type": "function", "function": {"name": kind}}
    if isinstance(kind, str):
        return "auto"
    raise _bad('\'tool_choice\' must be auto, none, required or {"type": "function", "name": ...}.', "tool_choice")


def _response_format(text: Any) -> dict | None:
    fmt = text.get("format") if isinstance(text, dict) else None
    if fmt is None or not isinstance(fmt, dict) or fmt.get("type") == "text":
        return None
    if fmt.get("type") == "json_object":
        return {"type": "json_object"}
    if fmt.get("type") == "json_schema" and isinstance(fmt.get("schema"), dict):
        schema: dict[str, Any] = {"name": fmt.get("name") or "output", "schema": fmt["schema"]}
        if isinstance(fmt.get("strict"), bool):
            schema["strict"] = fmt["strict"]
        return {"type": "json_schema", "json_schema": schema}
    raise _bad("'text.format' must be text, json_object or json_schema with a schema.", "text.format")


def read_request(body: bytes, hosted_tools: str = "drop", max_items: int = MAX_ITEMS) -> ResponsesRequest:
    """Check a Responses request and read it into chat terms (`hosted_tools`: "drop" or
    "refuse" the tools a local model cannot run)."""
    top = {k: decode_any(v) for k, v in decode_object(body).items()}
    model = top.get("model")
    if not isinstance(model, str) or not model or len(model) > MAX_MODEL_NAME:
        raise _bad(f"'model' must be a non-empty string of at most {MAX_MODEL_NAME} characters.", "model")
    for name, why in _REFUSED.items():
        if top.get(name) not in (None, False):
            raise _bad(f"'{name}': {why}.", name, "unsupported_parameter")
    if "input" not in top and top.get("previous_response_id") is None:
        raise _bad("Missing required parameter: 'input'.", "input", "missing_required_parameter")
    if isinstance(top.get("input"), list):
        bounded(top["input"], max_items, "input")
    instructions = top.get("instructions")
    if instructions is not None and not isinstance(instructions, str):
        raise _bad("'instructions' must be a string.", "instructions", "invalid_type")
    previous = top.get("previous_response_id")
    if previous is not None and (not isinstance(previous, str) or not previous or len(previous) > 128):
        raise _bad("'previous_response_id' must be a response id.", "previous_response_id")
    chat: dict[str, Any] = {}
    for name in ("temperature", "top_p"):
        if top.get(name) is not None:
            if not isinstance(top[name], int | float) or isinstance(top[name], bool):
                raise _bad(f"'{name}' must be a number.", name, "invalid_type")
            chat[name] = top[name]
    if top.get("max_output_tokens") is not None:
        if not isinstance(top["max_output_tokens"], int) or top["max_output_tokens"] < 1:
            raise _bad("'max_output_tokens' must be a positive integer.", "max_output_tokens")
        chat["max_tokens"] = top["max_output_tokens"]
    kinds = ToolKinds()
    offered = top.get("tools") or []
    found = searched_tools(top.get("input"))  # deferred tools a client-run tool_search brought in
    if offered or found:
        functions, kinds = read_tools(offered + found if isinstance(offered, list) else offered, hosted_tools)
        if functions:
            chat["tools"] = functions
            if top.get("tool_choice") is not None:
                chat["tool_choice"] = _tool_choice(top["tool_choice"], kinds)
            if isinstance(top.get("parallel_tool_calls"), bool):
                chat["parallel_tool_calls"] = top["parallel_tool_calls"]
    fmt = _response_format(top.get("text"))
    if fmt is not None:
        chat["response_format"] = fmt
    reasoning = top.get("reasoning")
    if isinstance(reasoning, dict) and isinstance(reasoning.get("effort"), str):
        chat["reasoning_effort"] = reasoning["effort"]
    stream = top.get("stream") is True
    echo = {name: top.get(name) for name in _ECHOED}
    echo["text"] = top.get("text") or {"format": {"type": "text"}}
    echo["reasoning"] = reasoning if isinstance(reasoning, dict) else {"effort": None, "summary": None}
    store = top.get("store") is not False
    dropped = list(kinds.dropped)
    messages = input_messages(top.get("input", []), dropped)
    return ResponsesRequest(model, stream, store, previous, instructions, messages, chat, echo, kinds, dropped)


def chat_request(req: ResponsesRequest, history: list[dict]) -> dict[str, Any]:
    """The chat-completions request of a turn: instructions, the stored history, this input."""
    messages = ([{"role": "system", "content": req.instructions}] if req.instructions else []) + history + req.messages
    if not messages:
        raise _bad("The request has no input.", "input", "missing_required_parameter")
    doc: dict[str, Any] = {"model": req.model, "messages": messages, **req.chat}
    if req.stream:
        doc["stream"] = True
        doc["stream_options"] = {"include_usage": True}
    return doc
