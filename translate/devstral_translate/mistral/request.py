"""The Mistral dialect, request half: an OpenAI chat request made valid for vLLM serving a
Mistral-family model (mistral-common's strict models, validators and encoders), nothing lost.

Rules: ../shared/mistral-dialect.md. Every user, system and tool text reaches the model.
"""

from collections import deque
from typing import Any

from msgspec import Raw

from ..errors import RequestError, TranslationError
from ..markers import arguments_text
from ..rewrites import Rewrites
from ..wire import MessageIn, ToolCallIn, decode_any, raw
from .generation import MistralOptions
from .names import IdMap, NameMap


class _Call:
    __slots__ = ("original_id", "name", "arguments", "id")

    def __init__(self, original_id, name: str, arguments: str) -> None:
        self.original_id: str | None = original_id if original_id.__class__ is str and original_id else None
        self.name = name
        self.arguments = arguments
        self.id = ""


class _Msg:
    __slots__ = ("role", "content", "calls", "call_id", "name", "index", "prefix", "images")
    images: list[dict] | None  # a tool result's image parts (screenshots, view_image)

    def __init__(self, role: str, content, index: int, calls=(), call_id=None, name=None) -> None:
        self.role = role
        self.content = content
        self.index = index
        self.calls: list[_Call] = calls
        self.call_id: str | None = call_id  # callers pass a non-empty str or None
        self.name: str | None = name
        self.prefix = False
        self.images = None


# ---- content
_TEXT_PARTS = {"text", "input_text", "output_text", None}


def _part_text(part: Any, k: int, index: int, role: str) -> str | None:
    """The text of one content part; None for an image (user messages keep those)."""
    if isinstance(part, str):
        return part
    if not isinstance(part, dict):
        raise TranslationError(index, f"content[{k}] must be an object")
    kind = part.get("type")
    if kind in _TEXT_PARTS and isinstance(part.get("text"), str):
        return part["text"]
    if kind == "refusal" and isinstance(part.get("refusal"), str):
        return part["refusal"]
    if kind == "image_url" and role == "user":
        return None
    raise TranslationError(index, f"content[{k}]: a {role} message cannot hold a '{kind}' part for this backend")


_QUOTE, _NULL, _ARRAY = ord('"'), ord("n"), ord("[")


def _text(content: Raw, index: int, role: str) -> str | Raw:
    """A message's text: a JSON string stays encoded (Raw), parts are joined into a str."""
    first = memoryview(content)[0]
    if first == _QUOTE:
        return content
    if first == _NULL:
        return ""
    if first == _ARRAY:
        return "\n\n".join(_part_text(p, k, index, role) or "" for k, p in enumerate(decode_any(content)))
    raise TranslationError(index, "content must be a string, an array of content parts, or null")


def _str(text: str | Raw) -> str:
    return text if isinstance(text, str) else decode_any(text)


def _user_content(content: Raw, index: int, images: bool) -> str | Raw | list[dict]:
    if memoryview(content)[0] != _ARRAY:
        return _text(content, index, "user")
    parts: list[Any] = decode_any(content)
    texts = [_part_text(p, k, index, "user") for k, p in enumerate(parts)]
    if all(t is not None for t in texts):
        return "\n\n".join(t or "" for t in texts)
    if not images:
        raise TranslationError(index, "this backend's model does not take images")
    return [{"type": "text", "text": text} if text is not None else _image_chunk(part, k, index) for k, (part, text) in enumerate(zip(parts, texts))]


_IMAGE_PARTS = ("image_url", "input_image")


def _image_chunk(part: dict, k: int, index: int) -> dict:
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str):
        raise TranslationError(index, f"content[{k}].image_url.url must be a string")
    return {"type": "image_url", "image_url": {"url": url}}


def _tool_content(content: Raw, index: int, images: bool) -> tuple[str | Raw, list[dict] | None]:
    """A tool result's text, and its images (Codex `view_image`, screenshot tools) apart."""
    if memoryview(content)[0] != _ARRAY:
        return _text(content, index, "tool"), None
    parts: list[Any] = decode_any(content)
    found = [k for k, p in enumerate(parts) if isinstance(p, dict) and p.get("type") in _IMAGE_PARTS]
    if not found:
        return _text(content, index, "tool"), None
    if not images:
        raise TranslationError(index, "this backend's model does not take images")
    images_at = set(found)
    texts = [_part_text(p, k, index, "tool") or "" for k, p in enumerate(parts) if k not in images_at]
    return "\n\n".join(texts), [_image_chunk(parts[k], k, index) for k in found]


# ---- messages
def _calls(m: MessageIn, index: int, names: NameMap) -> list[_Call]:
    raw_calls = m.tool_calls or []
    if m.function_call is not None:  # the pre-tools API
        raw_calls = [*raw_calls, ToolCallIn(m.function_call)]
    calls = []
    backend = names.backend
    for k, call in enumerate(raw_calls):
        fn = call.function
        if not fn.name:
            raise TranslationError(index, f"tool_calls[{k}].function.name must not be empty")
        args = fn.arguments
        calls.append(_Call(call.id, backend(fn.name), args if args.__class__ is str else arguments_text(args)))
    return calls


def _normalize(m: MessageIn, index: int, names: NameMap, opts: MistralOptions) -> _Msg | None:
    """One message in the proxy's own shape, or None when it carries nothing."""
    role = m.role
    if role == "tool" or role == "function":
        name = m.name
        name = names.backend(name) if name.__class__ is str and name else None
        call_id = m.tool_call_id
        text, images = _tool_content(m.content, index, opts.images)
        msg = _Msg("tool", text, index, (), call_id if call_id.__class__ is str and call_id else None, name)
        msg.images = images
        return msg
    if role in ("system", "developer"):
        text = _str(_text(m.content, index, "system"))
        return _Msg("system", text, index) if text.strip() else None
    if role == "user":
        return _Msg("user", _user_content(m.content, index, opts.images), index)
    if role == "assistant":
        text = _str(_text(m.content, index, "assistant"))
        calls = _calls(m, index, names) if m.tool_calls or m.function_call is not None else ()
        msg = _Msg("assistant", text if text.strip() else None, index, calls)
        msg.prefix = m.prefix is True
        return msg if msg.content is not None or calls else None
    if not isinstance(role, str):
        raise TranslationError(index, "role must be a string")
    raise TranslationError(index, f"unknown role '{role}'")


class _Builder:
    """Emits messages in an order every generation accepts, fixing roles as it goes.

    v3 (and an unknown generation) refuses assistant text beside tool calls, and merges
    neighbouring assistant turns: text said with or just before calls is held (`held`) and
    goes on as an assistant turn right after the calls' results. Nothing is dropped."""

    def __init__(self, opts: MistralOptions, generation: str | None, bridge: bool = True, notes: Rewrites | None = None) -> None:
        self.notes = notes
        self.out: list[dict] = []
        self.opts = opts
        self.bridge = bridge  # an assistant turn between a tool result and a user turn
        self.bridgeable = False  # a user turn follows a tool result somewhere
        self.content_with_calls = generation not in (None, "v3")
        self.held: list[str] = []  # assistant text waiting for the results of its calls

    def emit(self, msg: dict) -> None:
        out = self.out
        prev = out[-1]["role"] if out else None
        role = msg["role"]
        calls = role == "assistant" and "tool_calls" in msg
        notes = self.notes
        if calls and prev == "assistant" and not self.content_with_calls and "tool_calls" not in out[-1]:
            self.held.append(_str(out.pop()["content"]))  # said just before the calls: after their results
            prev = out[-1]["role"] if out else None
            if notes is not None:
                notes.note("assistant text said before tool calls moved after their results")
        if role == "assistant" and not calls and prev == "assistant" and "tool_calls" not in out[-1]:
            out[-1]["content"] = f"{_str(out[-1]['content'])}\n\n{_str(msg['content'])}"  # one turn of text
            if notes is not None:
                notes.note("consecutive assistant turns merged into one")
            return
        if calls and prev is None:
            # validators skip the first message when they pair calls with results
            out.append({"role": "user", "content": ""})
            if notes is not None:
                notes.note("empty user turn put before the first tool calls")
        if role == "system" and prev in ("assistant", "tool"):
            msg = {"role": "user", "content": msg["content"]}  # "Unexpected role 'system' after ..."
            role = "user"
            if notes is not None:
                notes.note(f"system message after {'an' if prev == 'assistant' else 'a'} {prev} turn sent as a user message")
        if role == "user" and prev == "tool":
            self.bridgeable = True
            if self.bridge:
                out.append({"role": "assistant", "content": self.opts.bridge_text})
                if notes is not None:
                    notes.note("assistant turn put between a tool result and a user turn", repr(self.opts.bridge_text))
        out.append(msg)

    def assistant(self, m: _Msg) -> None:
        msg: dict = {"role": "assistant"}
        beside = None
        if m.content is not None:
            if not m.calls or self.content_with_calls:
                msg["content"] = m.content
            else:
                beside = _str(m.content)
        if m.calls:
            msg["tool_calls"] = [{"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}} for c in m.calls]
        self.emit(msg)
        if beside is not None:
            self.held.append(beside)
            if self.notes is not None:
                self.notes.note("assistant text beside tool calls moved after their results")

    def release(self) -> None:
        """After a call's results: the assistant text held back from beside or before it."""
        if self.held:
            text, self.held = "\n\n".join(self.held), []
            self.emit({"role": "assistant", "content": text})

    def orphan(self, m: _Msg) -> None:
        """A tool result that answers no call: its text (and images) go on as the user's."""
        label = f"Result of tool {m.name}" if m.name else "Tool result"
        text = f"{label}:\n{_str(m.content)}"
        if self.notes is not None:
            self.notes.note("tool result without its call sent as a user message", label)
        self.emit({"role": "user", "content": [{"type": "text", "text": text}, *m.images] if m.images else text})


def _match(calls: list[_Call], results: list[_Msg]) -> tuple[list[_Msg | None], list[_Msg]]:
    """Pair results with calls: by id, then by position (same name first). Returns the
    answer for each call and the results that answer none. Linear in calls + results."""
    if len(results) == len(calls):
        for c, r in zip(calls, results):
            if r.call_id is None or r.call_id != c.original_id:
                break
        else:
            return list[_Msg | None](results), []  # the usual case: every call answered, in order
    answers: list[_Msg | None] = [None] * len(calls)
    by_id: dict[str, deque[int]] = {}
    for k, c in enumerate(calls):
        if c.original_id is not None:
            by_id.setdefault(c.original_id, deque()).append(k)
    unmatched = []
    for r in results:
        waiting = by_id.get(r.call_id) if r.call_id is not None else None
        if waiting:
            answers[waiting.popleft()] = r
        else:
            unmatched.append(r)
    if not unmatched:
        return answers, []
    free_by_name: dict[str, deque[int]] = {}
    for k, c in enumerate(calls):
        if answers[k] is None:
            free_by_name.setdefault(c.name, deque()).append(k)
    leftovers: list[_Msg] = []
    first_free = 0  # every call before it is answered
    for r in unmatched:
        same = free_by_name.get(r.name or "")
        while same and answers[same[0]] is not None:
            same.popleft()
        if same:
            pick = same.popleft()
        else:
            while first_free < len(calls) and answers[first_free] is not None:
                first_free += 1
            if first_free == len(calls):
                leftovers.append(r)
                continue
            pick = first_free
        answers[pick] = r
    return answers, leftovers


def _merge_parallel(msgs: list[_Msg]) -> list[_Msg]:
    """Agents that run tools in parallel may send one assistant message per call, then all
    the results: consecutive tool-call-only assistant messages are one turn with all calls."""
    out: list[_Msg] = []
    for m in msgs:
        prev = out[-1] if out else None
        if prev is not None and m.role == "assistant" and m.calls and m.content is None and prev.role == "assistant" and prev.calls:
            prev.calls = [*prev.calls, *m.calls]
            continue
        out.append(m)
    return out


def translate_messages(
    messages: list[MessageIn], opts: MistralOptions, generation: str | None, names: NameMap, bridge: bool = True, notes: Rewrites | None = None
) -> tuple[list[dict], bool]:
    """The messages of one request, valid for `generation` (None: for every generation), and
    whether a user turn followed a tool result somewhere. `bridge`: put an assistant turn
    between those two (mistral-common before 1.11.1 refuses that order). `notes`: what was
    changed, reported as it is changed."""
    kept = [n for n in (_normalize(m, i, names, opts) for i, m in enumerate(messages)) if n is not None]
    msgs = _merge_parallel(kept)
    if notes is not None:
        _note_read(messages, kept, msgs, notes)
    ids = IdMap()
    b = _Builder(opts, generation, bridge, notes)
    i, count = 0, len(msgs)
    while i < count:
        m = msgs[i]
        if m.role == "assistant" and m.calls:
            j = i + 1
            while j < count and msgs[j].role != "assistant":
                j += 1
            window = msgs[i + 1 : j]
            for k, c in enumerate(m.calls):
                c.id = ids.assign(c.original_id, f"call:{m.index}:{k}")
                if notes is not None and c.id != c.original_id:
                    notes.note("tool call id rewritten to 9 letters and digits", f"{c.original_id or '(none)'} -> {c.id}")
            results = [w for w in window if w.role == "tool"]
            answers, leftovers = _match(m.calls, results)
            b.assistant(m)
            out = b.out  # tool results right after their call: no role rule applies to them
            shown: list[dict] = []  # images of the results, for generations that refuse them there
            for c, r in zip(m.calls, answers):
                content = r.content if r is not None else opts.cancelled_text
                if notes is not None and r is None:
                    notes.note("tool call without a result answered as cancelled", c.name)
                if r is not None and r.images:
                    if generation == "v15":  # takes image parts in tool messages
                        content = [{"type": "text", "text": _str(content)}, *r.images]
                    else:
                        shown += [{"type": "text", "text": f"The image{'s' if len(r.images) > 1 else ''} returned by the {c.name} call:"}, *r.images]
                        if notes is not None:
                            notes.note("image moved from a tool result to a user message", c.name, len(r.images))
                out.append({"role": "tool", "content": content, "tool_call_id": c.id, "name": c.name})
            b.release()
            if shown:
                b.emit({"role": "user", "content": shown})
            if len(results) != len(window) or leftovers:
                stray = {id(r) for r in leftovers}
                for w in window:
                    if w.role != "tool":
                        b.emit(_plain(w))
                    elif id(w) in stray:
                        b.orphan(w)
            i = j
            continue
        if m.role == "tool":
            b.orphan(m)
        elif m.role == "assistant":
            b.assistant(m)
        else:
            b.emit(_plain(m))
        i += 1
    out = b.out
    if not out:
        raise TranslationError(None, "the conversation has no message the model can read")
    last = out[-1]
    if last["role"] == "assistant" and "tool_calls" not in last:
        if len(out) == 1:
            raise TranslationError(msgs[-1].index, "a conversation cannot be a single assistant message")
        last["prefix"] = True  # a prefill: the model continues this text
        if notes is not None:
            notes.note("final assistant turn sent as a prefix the model continues")
    return out, b.bridgeable


def _note_read(messages: list[MessageIn], kept: list[_Msg], merged: list[_Msg], notes: Rewrites) -> None:
    """The rewrites of reading the messages: roles renamed, empty turns left out, parallel
    calls joined (asked only when someone wants the list)."""
    for old, new in (("developer", "system"), ("function", "tool")):
        n = sum(1 for m in messages if m.role == old)
        if n:
            notes.note(f"{old} message sent as {new}", times=n)
    if len(kept) < len(messages):
        notes.note("message with nothing to say left out (empty text, no calls)", times=len(messages) - len(kept))
    if len(merged) < len(kept):
        notes.note("parallel tool calls sent one message each joined into one assistant turn", times=len(kept) - len(merged))


_KEPT = {"role", "content", "tool_calls", "function_call", "tool_call_id", "prefix"}  # and a tool result's name


def note_left_out(messages: Any, notes: Rewrites) -> None:
    """The message fields that do not reach the backend (mistral-common's message models
    forbid them): a name on a user turn, refusal, annotations, audio, reasoning_content, a
    part's cache_control... Read only when someone asks for the list."""
    if not isinstance(messages, list):
        return
    counts: dict[str, int] = {}
    for m in messages:
        if not isinstance(m, dict):
            continue
        for key, value in m.items():
            if key not in _KEPT and not (key == "name" and m.get("role") in ("tool", "function")) and value not in (None, [], ""):
                counts[key] = counts.get(key, 0) + 1
        content = m.get("content")
        for part in content if isinstance(content, list) else ():
            for key in part if isinstance(part, dict) else ():
                if key not in ("type", "text", "image_url", "refusal", "input_text", "output_text"):
                    counts[f"content part {key}"] = counts.get(f"content part {key}", 0) + 1
    for key, n in counts.items():  # a field's name is the client's: shortened, control characters escaped
        name = key[:64].encode("ascii", "backslashreplace").decode()
        notes.note(f"{name!r} left out of messages (mistral-common accepts no such field)", times=n)


def _plain(m: _Msg) -> dict:
    return {"role": m.role, "content": m.content}


# ---- tools
def _tool(tool: Any, k: int, names: NameMap, param: str, strict: bool, notes: Rewrites | None = None) -> dict:
    fn = tool.get("function") if isinstance(tool, dict) and "function" in tool else tool
    if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
        raise RequestError(f"{param}[{k}]: a function with a name is required.", param=f"{param}[{k}]")
    if isinstance(tool, dict) and tool.get("type", "function") != "function":
        raise RequestError(f"{param}[{k}]: only 'function' tools are supported, not '{tool.get('type')}'.", param=f"{param}[{k}].type")
    params = fn.get("parameters")
    if params is None:
        params = {"type": "object", "properties": {}}
    elif not isinstance(params, dict):
        raise RequestError(f"{param}[{k}].function.parameters must be a JSON schema object.", param=f"{param}[{k}].function.parameters")
    else:
        if notes is not None and ("$schema" in params or "$id" in params):
            notes.note("$schema / $id left out of tool parameters", fn["name"])
        params = {key: v for key, v in params.items() if key not in ("$schema", "$id")}
    description = fn.get("description")
    out = {"name": names.backend(fn["name"]), "description": description if isinstance(description, str) else "", "parameters": params}
    if strict and isinstance(fn.get("strict"), bool):
        out["strict"] = fn["strict"]  # constrained decoding in recent vLLM
    return {"type": "function", "function": out}


def _tool_choice(choice: Any, names: NameMap) -> Any:
    if isinstance(choice, str):
        if choice not in ("auto", "none", "required", "any"):
            raise RequestError(f"Invalid tool_choice '{choice}'.", param="tool_choice")
        return "required" if choice == "any" else choice  # "any": the Mistral API's word for it
    if isinstance(choice, dict):
        fn = choice.get("function") if "function" in choice else choice  # function_call: {"name": ...}
        if isinstance(fn, dict) and isinstance(fn.get("name"), str):
            return {"type": "function", "function": {"name": names.backend(fn["name"])}}
    raise RequestError("tool_choice must be 'auto', 'none', 'required' or a named function.", param="tool_choice")


def translate_tools(top: dict[str, Raw], names: NameMap, strict: bool = True, notes: Rewrites | None = None) -> None:
    tools = decode_any(top.pop("tools")) if "tools" in top else None
    functions = decode_any(top.pop("functions")) if "functions" in top else None
    choice = decode_any(top.pop("tool_choice")) if "tool_choice" in top else None
    function_call = decode_any(top.pop("function_call")) if "function_call" in top else None
    param = "tools"
    if not tools and functions:
        tools, param = functions, "functions"
    if choice is None and function_call is not None:
        choice = function_call
    if tools is None or tools == []:
        if notes is not None and (tools == [] or choice is not None):
            notes.note("empty tools left out, tool_choice with them")
        return  # `tools: []` goes, and tool_choice with it
    if not isinstance(tools, list):
        raise RequestError(f"'{param}' must be an array.", param=param)
    if notes is not None and param == "functions":
        notes.note("functions (the pre-tools API) sent as tools")
    top["tools"] = raw([_tool(t, k, names, param, strict, notes) for k, t in enumerate(tools)])
    if choice is not None:
        top["tool_choice"] = raw(_tool_choice(choice, names))
        if notes is not None and choice == "any":
            notes.note("tool_choice 'any' sent as 'required'")


_REASONING_V15 = {"none": "none", "minimal": "none"}


def top_level(top: dict[str, Raw], stream: bool, generation: str | None, prefill: bool = False, notes: Rewrites | None = None) -> None:
    """The top-level keys vLLM refuses or misreads for Mistral tokenizers; `prefill`: the
    last message is an assistant turn to continue."""
    if notes is not None:
        gone: list[str] = [k for k in ("chat_template", "chat_template_kwargs", "reasoning_effort") if k in top]
        gone += ["stream_options"] if not stream and "stream_options" in top else []
        for key in gone:
            kept = key == "reasoning_effort" and generation == "v15"
            notes.note(f"{key} {'mapped to what the v15 tokenizer reads' if kept else 'left out (a Mistral tokenizer does not read it)'}")
        if prefill:
            notes.note("continue_final_message / add_generation_prompt set for the prefix")
    if prefill:
        # older vLLM reads `prefix` on the message; newer vLLM (the from_openai path) ignores
        # it and refuses a final assistant turn without these two (accepted since 0.6.3)
        top["continue_final_message"] = raw(True)
        top["add_generation_prompt"] = raw(False)
    if not stream:
        top.pop("stream_options", None)
    top.pop("chat_template", None)
    top.pop("chat_template_kwargs", None)
    effort = top.pop("reasoning_effort", None)
    if effort is not None and generation == "v15":
        value = decode_any(effort)
        if isinstance(value, str):
            top["reasoning_effort"] = raw(_REASONING_V15.get(value, "high"))
