"""The Responses API's tools as chat-completions functions and back: function and namespace
tools, free-form `custom` tools, the client-executed built-ins (local_shell, shell, apply_patch,
tool_search), and the call / output items of each, in both directions.

A chat function name says which tool a call is for (`ToolKinds`); hosted tools a local model
cannot run (web search, file search, ...) are dropped and reported, or refused by setting.
"""

from dataclasses import dataclass, field
from typing import Any

import msgspec

from ..errors import invalid as _bad

_encode = msgspec.json.encode
_decode = msgspec.json.decode

# Tools the provider runs on its own servers: a chat backend has none of them.
HOSTED = frozenset(
    {
        "web_search",
        "web_search_preview",
        "web_search_2025_08_26",
        "web_search_preview_2025_03_11",
        "file_search",
        "code_interpreter",
        "image_generation",
        "mcp",
        "computer_use_preview",
        "computer",
    }
)
# Call items of hosted tools in a replayed history: nothing a local model made or can read back.
HOSTED_ITEMS = frozenset(
    {
        "web_search_call",
        "file_search_call",
        "code_interpreter_call",
        "image_generation_call",
        "mcp_call",
        "mcp_list_tools",
        "mcp_approval_request",
        "mcp_approval_response",
        "computer_call",
        "computer_call_output",
        "compaction",
    }
)
MAX_DROPPED = 32  # distinct kinds reported as left out (a client names kinds: the list stays short)
NAMESPACE_SEP = "__"  # a namespaced function `ns.fn` is offered as `ns__fn` (as Codex itself does)

_OBJECT = {"type": "object", "properties": {}}
_SCHEMAS: dict[str, tuple[str, dict]] = {
    # name -> (description, parameters): the Responses reference's action fields as arguments
    "local_shell": (
        'Run a command on the user\'s machine. `command` is the argv list (e.g. ["bash", "-lc", "ls"]).',
        {
            "type": "object",
            "properties": {
                "command": {"type": "array", "items": {"type": "string"}, "description": "The command and its arguments."},
                "timeout_ms": {"type": "integer", "description": "Time limit in milliseconds."},
                "working_directory": {"type": "string", "description": "Directory to run in."},
                "env": {"type": "object", "additionalProperties": {"type": "string"}, "description": "Environment variables to set."},
                "user": {"type": "string", "description": "User to run as."},
            },
            "required": ["command"],
        },
    ),
    "shell": (
        "Run shell commands on the user's machine, one after another; each output is returned.",
        {
            "type": "object",
            "properties": {
                "commands": {"type": "array", "items": {"type": "string"}, "description": "Shell command lines to run in order."},
                "timeout_ms": {"type": "integer", "description": "Time limit in milliseconds."},
                "max_output_length": {"type": "integer", "description": "Most characters of output to return."},
            },
            "required": ["commands"],
        },
    ),
    "apply_patch": (
        "Create, update or delete one file. For create_file and update_file, `diff` is a V4A diff "
        "(lines starting with '+', '-' or ' ', hunks introduced by '@@'); delete_file needs only the path.",
        {
            "type": "object",
            "properties": {
                "type": {"type": "string", "enum": ["create_file", "update_file", "delete_file"]},
                "path": {"type": "string", "description": "The file's path."},
                "diff": {"type": "string", "description": "The V4A diff (not for delete_file)."},
            },
            "required": ["type", "path"],
        },
    ),
}
_CUSTOM_PARAM = "input"


@dataclass(slots=True, frozen=True)
class Tool:
    """What a chat function stands for: `kind` is function, custom, local_shell, shell,
    apply_patch or tool_search; `namespace` is set for a namespaced function."""

    kind: str
    name: str
    namespace: str | None = None


@dataclass(slots=True)
class ToolKinds:
    """The tools of one request by chat function name, and the hosted kinds it dropped."""

    by_chat_name: dict[str, Tool] = field(default_factory=dict)
    dropped: list[str] = field(default_factory=list)

    def tool(self, chat_name: str) -> Tool:
        return self.by_chat_name.get(chat_name) or Tool("function", chat_name)


def chat_name(kind: str, name: str, namespace: str | None = None) -> str:
    """The function name a tool (or a call of it) has on the chat side."""
    if kind == "function":
        return f"{namespace}{NAMESPACE_SEP}{name}" if namespace else name
    return name if kind == "custom" else kind


def _function(name: str, description: Any, parameters: Any, strict: Any = None) -> dict:
    fn: dict[str, Any] = {"name": name, "parameters": parameters if isinstance(parameters, dict) and parameters else dict(_OBJECT)}
    if isinstance(description, str) and description:
        fn["description"] = description
    if isinstance(strict, bool):
        fn["strict"] = strict
    return {"type": "function", "function": fn}


def _custom_description(tool: dict) -> str:
    """A custom tool's description with its input format told to the model."""
    description = tool.get("description")
    text: str = description if isinstance(description, str) else ""
    fmt = tool.get("format")
    if isinstance(fmt, dict) and fmt.get("type") == "grammar" and isinstance(fmt.get("definition"), str):
        syntax = fmt.get("syntax") if isinstance(fmt.get("syntax"), str) else "grammar"
        text += f"\n\nPut the whole free-form input in the `{_CUSTOM_PARAM}` string; it must follow this {syntax} grammar:\n{fmt['definition']}"
    else:
        text += f"\n\nPut the whole free-form input in the `{_CUSTOM_PARAM}` string."
    return text.strip()


def _named(tool: dict, where: str) -> str:
    name = tool.get("name")
    if not isinstance(name, str) or not name:
        raise _bad(f"'{where}.name' must be a non-empty string.", f"{where}.name")
    return name


def _add(kinds: ToolKinds, out: list[dict], tool: Tool, chat: dict) -> None:
    name = chat["function"]["name"]
    if name not in kinds.by_chat_name:  # the first of two alike wins; a call goes to it
        kinds.by_chat_name[name] = tool
        out.append(chat)


def _one(tool: Any, where: str, kinds: ToolKinds, out: list[dict], hosted: str, namespace: str | None = None) -> None:
    kind = tool.get("type") if isinstance(tool, dict) else None
    if not isinstance(tool, dict) or not isinstance(kind, str):
        raise _bad(f"'{where}' must be a tool object with a type.", where, "invalid_type")
    if kind == "function":
        name = _named(tool, where)
        chat = _function(chat_name("function", name, namespace), tool.get("description"), tool.get("parameters"), tool.get("strict"))
        _add(kinds, out, Tool("function", name, namespace), chat)
    elif kind == "custom":
        name = _named(tool, where)
        params = {
            "type": "object",
            "properties": {_CUSTOM_PARAM: {"type": "string", "description": "The tool's free-form input."}},
            "required": [_CUSTOM_PARAM],
        }
        _add(kinds, out, Tool("custom", name, namespace), _function(chat_name("custom", name), _custom_description(tool), params))
    elif kind == "namespace" and namespace is None:
        ns = _named(tool, where)
        inner = tool.get("tools")
        if not isinstance(inner, list):
            raise _bad(f"'{where}.tools' must be an array.", f"{where}.tools", "invalid_type")
        for k, t in enumerate(inner):
            _one(t, f"{where}.tools[{k}]", kinds, out, hosted, ns)
    elif kind in _SCHEMAS:
        description, params = _SCHEMAS[kind]
        _add(kinds, out, Tool(kind, kind), _function(kind, description, params))
    elif kind == "tool_search" and tool.get("execution", "server") == "client":
        _add(kinds, out, Tool("tool_search", "tool_search"), _function("tool_search", tool.get("description"), tool.get("parameters")))
    elif kind in HOSTED or kind == "tool_search" or kind.startswith(("web_search", "computer")):
        if hosted == "refuse":
            raise _bad(f"'{where}': hosted tools ({kind!r}) cannot run on a local model ([responses] hosted_tools = 'refuse').", f"{where}.type")
        note_dropped(kinds.dropped, kind)
    else:
        raise _bad(f"'{where}': tools of type {kind!r} are not supported.", f"{where}.type")


def note_dropped(dropped: list[str], kind: str) -> None:
    """Add a kind left out to the report, once, up to MAX_DROPPED kinds (each check is short)."""
    if len(dropped) < MAX_DROPPED and kind not in dropped:
        dropped.append(kind)


def read_tools(tools: Any, hosted: str = "drop") -> tuple[list[dict], ToolKinds]:
    """A request's `tools` as chat functions, and what each function stands for."""
    if not isinstance(tools, list):
        raise _bad("'tools' must be an array.", "tools", "invalid_type")
    kinds, out = ToolKinds(), list[dict]()
    for k, tool in enumerate(tools):
        _one(tool, f"tools[{k}]", kinds, out, hosted)
    return out, kinds


# ---- call items of a history <-> chat tool calls
def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _json_text(value: Any) -> str:
    return value if isinstance(value, str) else _encode(value if value is not None else {}).decode()


def call_of_item(item: dict, kind: str, where: str) -> dict:
    """A call item of the input (function_call, custom_tool_call, local_shell_call, ...) as a
    chat tool call."""
    call_id = item.get("call_id")
    if kind == "local_shell_call" and not isinstance(call_id, str):
        call_id = item.get("id")
    if not isinstance(call_id, str):
        raise _bad(f"'{where}.call_id' must be a string.", f"{where}.call_id", "invalid_type")
    if kind == "function_call":
        name, args, ns = item.get("name"), item.get("arguments", "{}"), item.get("namespace")
        if not isinstance(name, str) or not isinstance(args, str):
            raise _bad(f"'{where}' needs call_id, name and arguments as strings.", where, "invalid_type")
        fn = chat_name("function", name, ns if isinstance(ns, str) and ns else None)
    elif kind == "custom_tool_call":
        name, text = item.get("name"), item.get("input", "")
        if not isinstance(name, str) or not isinstance(text, str):
            raise _bad(f"'{where}' needs a name and an input string.", where, "invalid_type")
        fn, args = chat_name("custom", name), _encode({_CUSTOM_PARAM: text}).decode()
    elif kind == "local_shell_call":
        action = _dict(item.get("action"))
        fn, args = "local_shell", _encode({k: v for k, v in action.items() if k != "type" and v is not None}).decode()
    elif kind == "shell_call":
        action = _dict(item.get("action"))
        fn, args = "shell", _encode({k: v for k, v in action.items() if v is not None}).decode()
    elif kind == "apply_patch_call":
        fn, args = "apply_patch", _json_text(item.get("operation"))
    else:  # tool_search_call
        fn, args = "tool_search", _json_text(item.get("arguments"))
    return {"id": call_id, "type": "function", "function": {"name": fn, "arguments": args}}


CALL_ITEMS = frozenset({"function_call", "custom_tool_call", "local_shell_call", "shell_call", "apply_patch_call", "tool_search_call"})
OUTPUT_ITEMS = frozenset(
    {"function_call_output", "custom_tool_call_output", "local_shell_call_output", "shell_call_output", "apply_patch_call_output", "tool_search_output"}
)


def _shell_output(output: Any) -> str:
    """A shell_call_output's list of command outputs as one text."""
    if not isinstance(output, list):
        return _json_text(output)
    parts = []
    for entry in output:
        if not isinstance(entry, dict):
            continue
        outcome = _dict(entry.get("outcome"))
        status = f"exit code {outcome.get('exit_code')}" if outcome.get("type") == "exit" else str(outcome.get("type") or "done")
        text = f"[{status}]"
        for stream in ("stdout", "stderr"):
            if isinstance(entry.get(stream), str) and entry[stream]:
                text += f"\n{stream}:\n{entry[stream]}"
        parts.append(text)
    return "\n\n".join(parts)


def _search_output(tools: Any) -> str:
    if not isinstance(tools, list):
        return "No tools found."
    names = [f"- {t.get('name')}: {t.get('description') or ''}".rstrip(": ") for t in tools if isinstance(t, dict) and isinstance(t.get("name"), str)]
    return "Tools now available:\n" + "\n".join(names) if names else "No tools found."


def output_of_item(item: dict, kind: str, where: str, content) -> dict:
    """An output item of the input as a chat tool message; `content` reads a string-or-parts
    output (function and custom tool outputs may carry images)."""
    call_id = item.get("call_id")
    if kind == "local_shell_call_output" and not isinstance(call_id, str):
        call_id = item.get("id")
    if not isinstance(call_id, str):
        raise _bad(f"'{where}.call_id' must be a string.", f"{where}.call_id", "invalid_type")
    output = item.get("output", "")
    if kind in ("function_call_output", "custom_tool_call_output"):
        text = content(output, f"{where}.output")
    elif kind == "shell_call_output":
        text = _shell_output(output)
    elif kind == "apply_patch_call_output":
        text = f"[{item.get('status') or 'completed'}] {output if isinstance(output, str) else ''}".strip()
    elif kind == "tool_search_output":
        text = _search_output(item.get("tools"))
    else:
        text = output if isinstance(output, str) else _json_text(output)
    return {"role": "tool", "tool_call_id": call_id, "content": text}


def searched_tools(items: Any) -> list[Any]:
    """The tools that tool_search_output items of the input made available (offered again)."""
    out: list[Any] = []
    if isinstance(items, list):
        for item in items:
            if isinstance(item, dict) and item.get("type") == "tool_search_output" and isinstance(item.get("tools"), list):
                out.extend(item["tools"])
    return out


# ---- a reply's chat call -> the client's item
def _arguments(text: str) -> dict:
    try:
        doc = _decode(text) if text else {}
    except (msgspec.DecodeError, UnicodeDecodeError):
        return {}
    return doc if isinstance(doc, dict) else {}


def output_item(iid: str, call_id: str, chat_fn: str, arguments: str, kinds: ToolKinds, status: str = "completed") -> dict:
    """A chat tool call as the item its tool's kind has in a Response."""
    tool = kinds.tool(chat_fn)
    if tool.kind == "function":
        item = {"type": "function_call", "id": iid, "call_id": call_id, "name": tool.name, "arguments": arguments, "status": status}
        if tool.namespace:
            item["namespace"] = tool.namespace
        return item
    args = _arguments(arguments)
    if tool.kind == "custom":
        text = args.get(_CUSTOM_PARAM)
        if not isinstance(text, str):  # the model wrote no JSON object: its text is the input
            text = arguments if not args else _encode(args).decode()
        return {"type": "custom_tool_call", "id": iid, "call_id": call_id, "name": tool.name, "input": text, "status": status}
    if tool.kind == "local_shell":
        command = args.get("command")
        action: dict[str, Any] = {
            "type": "exec",
            "command": command if isinstance(command, list) else ([command] if isinstance(command, str) else []),
            "timeout_ms": args.get("timeout_ms"),
            "working_directory": args.get("working_directory"),
            "env": args.get("env") if isinstance(args.get("env"), dict) else {},
            "user": args.get("user"),
        }
        return {"type": "local_shell_call", "id": iid, "call_id": call_id, "action": action, "status": status}
    if tool.kind == "shell":
        commands = args.get("commands")
        action = {
            "commands": commands if isinstance(commands, list) else ([commands] if isinstance(commands, str) else []),
            "timeout_ms": args.get("timeout_ms"),
            "max_output_length": args.get("max_output_length"),
        }
        return {"type": "shell_call", "id": iid, "call_id": call_id, "action": action, "status": status}
    if tool.kind == "apply_patch":
        operation = {k: args[k] for k in ("type", "path", "diff") if isinstance(args.get(k), str)}
        return {"type": "apply_patch_call", "id": iid, "call_id": call_id, "operation": operation, "status": status}
    return {"type": "tool_search_call", "id": iid, "call_id": call_id, "execution": "client", "arguments": args, "status": status}
