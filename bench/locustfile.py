"""Load test for users of locust: a mix of plain chat, streaming chat, and tool-call agent
conversations against any OpenAI-compatible host (devstral-proxy or a backend directly).

Run: `locust -f bench/locustfile.py --host http://127.0.0.1:9000` (MODEL=... to pick the model).
"""

import json
import os

from locust import HttpUser, between, task

MODEL = os.environ.get("MODEL", "mistral-sim")
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "fs.read_file",
            "description": "Read a file",
            "parameters": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
        },
    },
    {
        "type": "function",
        "function": {"name": "shell.run", "description": "Run a command", "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}}},
    },
]


def agent_turns(n: int) -> list[dict]:
    """A coding-agent history of n tool round trips, with the ids and shapes real clients send."""
    messages = [
        {"role": "system", "content": "You are a coding agent."},
        {"role": "user", "content": [{"type": "text", "text": "<task>fix the bug</task>", "cache_control": {"type": "ephemeral"}}]},
    ]
    for i in range(n):
        call_id = f"call_{i:03d}_{'x' * 16}"
        messages.append(
            {
                "role": "assistant",
                "content": None,
                "refusal": None,
                "tool_calls": [{"id": call_id, "type": "function", "function": {"name": "fs.read_file", "arguments": json.dumps({"path": f"src/m{i}.py"})}}],
            }
        )
        messages.append({"role": "tool", "tool_call_id": call_id, "content": "def f():\n    return 1\n" * 8})
    messages.append({"role": "user", "content": "Continue."})
    return messages


class OpenAIClient(HttpUser):
    wait_time = between(0.05, 0.5)

    @task(5)
    def chat(self) -> None:
        self.client.post("/v1/chat/completions", json={"model": MODEL, "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 64}, name="chat")

    @task(3)
    def stream(self) -> None:
        body = {"model": MODEL, "stream": True, "stream_options": {"include_usage": True}, "messages": [{"role": "user", "content": "Tell me a story."}]}
        with self.client.post("/v1/chat/completions", json=body, stream=True, name="chat (stream)", catch_response=True) as r:
            frames = sum(1 for line in r.iter_lines() if line.startswith(b"data: "))
            if r.status_code != 200 or frames == 0:
                r.failure(f"status {r.status_code}, {frames} frames")

    @task(2)
    def agent(self) -> None:
        body = {"model": MODEL, "messages": agent_turns(20), "tools": TOOLS}
        self.client.post("/v1/chat/completions", json=body, name="agent (tools, 43 messages)")
