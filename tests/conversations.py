"""Conversations shaped like what real OpenAI clients send (SDK replays, Cline, OpenHands,
Continue, Aider, LangChain): the table the Mistral dialect is judged on."""

import base64
import io
import json

from openai.types.chat import ChatCompletionMessage
from openai.types.chat.chat_completion_message_tool_call import ChatCompletionMessageToolCall, Function
from PIL import Image

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
READ = {
    "type": "function",
    "function": {
        "name": "fs.read_file",
        "description": "Read a file",
        "strict": True,
        "parameters": {
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "properties": {"path": {"type": "string"}},
            "additionalProperties": False,
        },
    },
}
WRITE = {
    "type": "function",
    "function": {"name": "fs.write_file", "parameters": {"type": "object", "properties": {"path": {"type": "string"}, "text": {"type": "string"}}}},
}


def call(cid, name="get_weather", args='{"city": "Paris"}'):
    c = {"type": "function", "function": {"name": name, "arguments": args}}
    if cid is not ...:
        c["id"] = cid
    return c


def result(cid, text, name=None):
    m = {"role": "tool", "content": text}
    if cid is not ...:
        m["tool_call_id"] = cid
    if name:
        m["name"] = name
    return m


def sdk_assistant_dump() -> dict:
    """What `message.model_dump()` of an SDK reply gives, replayed by many agents."""
    msg = ChatCompletionMessage(
        role="assistant",
        content=None,
        tool_calls=[
            ChatCompletionMessageToolCall(id="call_Xk2jL9mN4pQ7rS1t", type="function", function=Function(name="get_weather", arguments='{"city": "Paris"}'))
        ],
    )
    return msg.model_dump()


def agent_history(turns: int = 100) -> list[dict]:
    """A long coding-agent history: ~200 messages, ~100 KB, calls, results, list content."""
    msgs = [{"role": "system", "content": "You are a coding agent. " * 40}]
    msgs.append(
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "<task>Fix the failing test in src/app.py</task>"},
                {"type": "text", "text": "<environment_details>cwd: /repo</environment_details>", "cache_control": {"type": "ephemeral"}},
            ],
        }
    )
    for t in range(turns - 1):
        cid = f"call_{t:04d}_{'x' * 12}"
        name = ("fs.read_file", "fs.write_file")[t % 2]
        msgs.append(
            {
                "role": "assistant",
                "content": f"Step {t}: checking." if t % 3 else None,
                "tool_calls": [call(cid, name, json.dumps({"path": f"src/mod{t}.py", "text": "pass"}))],
                "refusal": None,
            }
        )
        msgs.append(result(cid, f"# file mod{t}.py\n" + "def f():\n    return 42\n" * 24))
    msgs.append({"role": "user", "content": "Now run the tests."})
    return msgs


U = {"role": "user", "content": "What is the weather in Paris?"}
_png = io.BytesIO()
Image.new("RGB", (4, 4), "blue").save(_png, "PNG")
SCREENSHOT = "data:image/png;base64," + base64.b64encode(_png.getvalue()).decode()
VIEW_IMAGE = {"type": "function", "function": {"name": "view_image", "parameters": {"type": "object", "properties": {"path": {"type": "string"}}}}}

# name -> (messages, extra request fields)
TABLE: dict[str, tuple[list[dict], dict]] = {
    "sdk model_dump replay": (
        [U, sdk_assistant_dump(), result("call_Xk2jL9mN4pQ7rS1t", "18C, sunny"), {"role": "user", "content": "And tomorrow?"}],
        {"tools": [WEATHER]},
    ),
    "list content with cache_control": (
        [
            {"role": "system", "content": [{"type": "text", "text": "You are Cline.", "cache_control": {"type": "ephemeral"}}]},
            {
                "role": "user",
                "content": [{"type": "text", "text": "<task>hello</task>"}, {"type": "text", "text": "<env>x</env>", "cache_control": {"type": "ephemeral"}}],
            },
            {"role": "assistant", "content": [{"type": "text", "text": "Reading."}], "tool_calls": [call("abcdefgh1", "fs.read_file", '{"path": "a.py"}')]},
            {"role": "tool", "tool_call_id": "abcdefgh1", "content": [{"type": "text", "text": "print(1)"}, {"type": "text", "text": "(end of file)"}]},
        ],
        {"tools": [READ]},
    ),
    "user after tool": (
        [
            U,
            {"role": "assistant", "content": None, "tool_calls": [call("call_1")]},
            result("call_1", "rainy"),
            {"role": "user", "content": "Thanks, and Rome?"},
        ],
        {"tools": [WEATHER]},
    ),
    "cancelled tool call": (
        [U, {"role": "assistant", "tool_calls": [call("call_c1")]}, {"role": "user", "content": "Never mind, stop."}],
        {"tools": [WEATHER]},
    ),
    "cancelled call at the end": ([U, {"role": "assistant", "tool_calls": [call("call_c2")]}], {"tools": [WEATHER]}),
    "empty short uuid and missing ids": (
        [
            U,
            {"role": "assistant", "tool_calls": [call(""), call("1"), call("3f1b2c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"), call(...)]},
            result("", "a"),
            result("1", "b"),
            result("3f1b2c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d", "c"),
            result(..., "d"),
        ],
        {"tools": [WEATHER]},
    ),
    "colliding ids across turns": (
        [
            U,
            {"role": "assistant", "tool_calls": [call("call_0")]},
            result("call_0", "first"),
            {"role": "assistant", "tool_calls": [call("call_0")]},
            result("call_0", "second"),
        ],
        {"tools": [WEATHER]},
    ),
    "duplicate ids in one message": (
        [U, {"role": "assistant", "tool_calls": [call("dup"), call("dup", args='{"city": "Rome"}')]}, result("dup", "P"), result("dup", "R")],
        {"tools": [WEATHER]},
    ),
    "results out of order": (
        [
            U,
            {"role": "assistant", "tool_calls": [call("call_a"), call("call_b", args='{"city": "Rome"}'), call("call_c", args='{"city": "Oslo"}')]},
            result("call_c", "cold"),
            result("call_a", "warm"),
            result("call_b", "hot"),
        ],
        {"tools": [WEATHER]},
    ),
    "result after a user turn": (
        [U, {"role": "assistant", "tool_calls": [call("call_late")]}, {"role": "user", "content": "hurry"}, result("call_late", "done")],
        {"tools": [WEATHER]},
    ),
    "orphan tool result": ([result("call_zz", "stray output"), U], {}),
    "system mid-conversation": (
        [
            {"role": "system", "content": "Be brief."},
            U,
            {"role": "assistant", "content": "Sunny."},
            {"role": "system", "content": "Now answer in French."},
            {"role": "user", "content": "Et demain ?"},
        ],
        {},
    ),
    "system after a tool result": (
        [U, {"role": "assistant", "tool_calls": [call("call_s")]}, result("call_s", "ok"), {"role": "system", "content": "Mode: plan"}],
        {"tools": [WEATHER]},
    ),
    "developer role": ([{"role": "developer", "content": "Follow the style guide."}, U], {}),
    "legacy functions": (
        [
            U,
            {"role": "assistant", "content": None, "function_call": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
            {"role": "function", "name": "get_weather", "content": "sunny"},
        ],
        {"functions": [WEATHER["function"]], "function_call": "auto"},
    ),
    "dotted tool names": (
        [
            {"role": "user", "content": "Copy a.py to b.py"},
            {"role": "assistant", "tool_calls": [call("c1", "fs.read_file", '{"path": "a.py"}')]},
            result("c1", "x = 1", "fs.read_file"),
        ],
        {"tools": [READ, WRITE], "tool_choice": {"type": "function", "function": {"name": "fs.write_file"}}},
    ),
    "prefill": ([{"role": "user", "content": "Write a haiku"}, {"role": "assistant", "content": "Autumn moonlight"}], {}),
    "empty and whitespace assistant turns": (
        [
            U,
            {"role": "assistant", "content": "   "},
            {"role": "user", "content": "hello?"},
            {"role": "assistant", "content": ""},
            {"role": "user", "content": "?"},
        ],
        {},
    ),
    "whitespace content beside tool calls": (
        [U, {"role": "assistant", "content": "\n", "tool_calls": [call("call_w")]}, result("call_w", "fine")],
        {"tools": [WEATHER]},
    ),
    "dict and invalid arguments": (
        [
            U,
            {"role": "assistant", "tool_calls": [call("call_d", args={"city": "Paris"}), call("call_i", args='{"city": "Par')]},
            result("call_d", "a"),
            result("call_i", "b"),
        ],
        {"tools": [WEATHER]},
    ),
    "extra fields everywhere": (
        [
            {"role": "user", "content": "hi", "name": "alice"},
            {
                "role": "assistant",
                "content": "Hello!",
                "refusal": None,
                "annotations": [],
                "audio": None,
                "reasoning_content": "greet",
                "function_call": None,
                "tool_calls": None,
            },
            {"role": "user", "content": "bye", "name": None},
        ],
        {},
    ),
    "top-level extras": (
        [U],
        {
            "chat_template_kwargs": {"enable_thinking": False},
            "stream_options": {"include_usage": True},
            "reasoning_effort": "low",
            "tools": [],
            "tool_choice": "auto",
            "parallel_tool_calls": True,
            "temperature": 0.1,
        },
    ),
    "long mixed agent history": (agent_history(), {"tools": [READ, WRITE]}),
    # second round: what agents send in 2026
    "parallel calls as one assistant message each": (
        [
            U,
            {"role": "assistant", "tool_calls": [call("call_pa", args='{"city": "Paris"}')]},
            {"role": "assistant", "tool_calls": [call("call_pb", args='{"city": "Rome"}')]},
            result("call_pa", "sunny in Paris"),
            result("call_pb", "rainy in Rome"),
            {"role": "user", "content": "Which is warmer?"},
        ],
        {"tools": [WEATHER]},
    ),
    "assistant text before and beside calls": (
        [
            U,
            {"role": "assistant", "content": "I will look that up for you."},
            {"role": "assistant", "content": "Checking Paris first.", "tool_calls": [call("call_tb")]},
            result("call_tb", "18C"),
            {"role": "user", "content": "And now?"},
        ],
        {"tools": [WEATHER]},
    ),
    "image in a tool result": (
        [
            {"role": "user", "content": "What does the login page look like?"},
            {"role": "assistant", "tool_calls": [call("call_img", "view_image", '{"path": "login.png"}')]},
            {
                "role": "tool",
                "tool_call_id": "call_img",
                "content": [{"type": "text", "text": "login.png, 4x4"}, {"type": "image_url", "image_url": {"url": SCREENSHOT}}],
            },
        ],
        {"tools": [VIEW_IMAGE]},
    ),
    "text beside a call at the end": (
        [U, {"role": "assistant", "content": "Let me search for that.", "tool_calls": [call("call_te")]}, result("call_te", "found it")],
        {"tools": [WEATHER]},
    ),
}


def texts_sent(messages: list[dict]) -> list[str]:
    """Every user, system and tool text in a conversation: none may be lost."""
    out = []
    for m in messages:
        if m.get("role") not in ("user", "system", "developer", "tool", "function"):
            continue
        content = m.get("content")
        parts = content if isinstance(content, list) else [{"text": content}]
        out += [p["text"] for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str) and p["text"].strip()]
    return out


def assistant_texts(messages: list[dict]) -> list[str]:
    """What the model said in a conversation: none of it may be lost either."""
    out = []
    for m in messages:
        if m.get("role") != "assistant":
            continue
        content = m.get("content")
        parts = content if isinstance(content, list) else [{"text": content}]
        out += [p["text"] for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str) and p["text"].strip()]
    return out


def all_text(messages: list[dict]) -> str:
    """Every text of a translated conversation, to look for what was sent."""
    out = []
    for m in messages:
        content = m.get("content")
        parts = content if isinstance(content, list) else [{"text": content}]
        out += [p["text"] for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str)]
    return "\n".join(out)
