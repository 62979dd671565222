"""Anthropic tool definitions as chat-completions functions: custom tools by their input_schema,
the versioned client tools (bash, text editor, memory) by their documented inputs, and server
tools a local model cannot run (web search, web fetch, code execution, ...) dropped or refused.

A client tool's call comes back as a plain tool_use block named as the client named it.
"""

from typing import Any

from ..errors import invalid as _bad
from ..responses.tools import note_dropped

_STR = {"type": "string"}
_TEXT_EDITOR = {
    "type": "object",
    "properties": {
        "command": {"type": "string", "enum": ["view", "create", "str_replace", "insert", "undo_edit"]},
        "path": {"type": "string", "description": "Absolute path to the file or directory."},
        "file_text": {"type": "string", "description": "create: the new file's content."},
        "old_str": {"type": "string", "description": "str_replace: the exact text to replace."},
        "new_str": {"type": "string", "description": "str_replace: the replacement; insert: the text to insert."},
        "insert_line": {"type": "integer", "description": "insert: the line after which to insert (0: the start)."},
        "view_range": {"type": "array", "items": {"type": "integer"}, "description": "view: [start, end] lines, 1-based; end -1: to the end."},
    },
    "required": ["command", "path"],
}
# type prefix -> (description, input schema) of Anthropic's client tools
_CLIENT = {
    "bash_": (
        "Run a command in a persistent bash shell; `restart` restarts the shell.",
        {"type": "object", "properties": {"command": {"type": "string", "description": "The command to run."}, "restart": {"type": "boolean"}}},
    ),
    "text_editor_": ("View, create and edit text files: view, create, str_replace, insert (undo_edit on older versions).", _TEXT_EDITOR),
    "memory_": (
        "Keep notes across conversations in the /memories directory: view, create, str_replace, insert, delete, rename.",
        {
            "type": "object",
            "properties": {
                "command": {"type": "string", "enum": ["view", "create", "str_replace", "insert", "delete", "rename"]},
                "path": _STR,
                "file_text": _STR,
                "old_str": _STR,
                "new_str": _STR,
                "insert_line": {"type": "integer"},
                "insert_text": _STR,
                "old_path": _STR,
                "new_path": _STR,
                "view_range": {"type": "array", "items": {"type": "integer"}},
            },
            "required": ["command"],
        },
    ),
}
# server tools (Anthropic runs them) and tools that need what a local model lacks (screens)
_SERVER = ("web_search_", "web_fetch_", "code_execution_", "tool_search_tool_", "computer_", "mcp_toolset")


def _client_tool(kind: str) -> tuple[str, dict] | None:
    for prefix, spec in _CLIENT.items():
        if kind.startswith(prefix):
            return spec
    return None


def read_tools(tools: Any, server_tools: str, dropped: list[str]) -> list[dict]:
    """The request's tools as chat functions; the server tools left out are added to `dropped`
    (by type), or refused when `server_tools` is "refuse"."""
    if not isinstance(tools, list):
        raise _bad("tools: Input should be a valid list.", "tools", "invalid_type")
    out = []
    for k, tool in enumerate(tools):
        where = f"tools.{k}"
        if not isinstance(tool, dict):
            raise _bad(f"{where}: Input should be an object.", f"tools[{k}]", "invalid_type")
        kind = tool.get("type")
        name = tool.get("name")
        if kind in (None, "custom"):
            if not isinstance(tool.get("input_schema"), dict):
                raise _bad(f"{where}.input_schema: Field required.", f"tools[{k}].input_schema")
            description, schema = tool.get("description"), tool["input_schema"]
        elif isinstance(kind, str) and _client_tool(kind) is not None:
            description, schema = _client_tool(kind)  # type: ignore[misc]
        elif isinstance(kind, str) and kind.startswith(_SERVER):
            if server_tools == "refuse":
                raise _bad(f"{where}: server tool '{kind}' is not supported by a local model ([messages] server_tools = 'refuse').", f"tools[{k}].type")
            note_dropped(dropped, kind)
            continue
        else:
            raise _bad(f"{where}.type: tool type {kind!r} is not supported.", f"tools[{k}].type")
        if not isinstance(name, str) or not name:
            raise _bad(f"{where}.name: must be a non-empty string.", f"tools[{k}].name")
        fn: dict[str, Any] = {"name": name, "parameters": schema}
        if isinstance(description, str) and description:
            fn["description"] = description
        out.append({"type": "function", "function": fn})
    return out
