"""Anthropic Messages end to end: the official Anthropic SDK (`client.messages`) -> proxy -> a
simulated vLLM that judges every chat request with mistral-common, for three tokenizer
generations, structured and raw `[TOOL_CALLS]` replies: Claude-Code-shaped tool loops,
parallel calls, images, thinking, stop sequences, count_tokens, errors in Anthropic's shape."""

import base64

import anthropic
import pytest

from tests.conversations import SCREENSHOT
from tests.support import http

BASH = {
    "name": "Bash",
    "description": "Run a command.",
    "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]},
}
READ = {"name": "Read", "input_schema": {"type": "object", "properties": {"file_path": {"type": "string"}}}}
SYSTEM = [{"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}}]


@pytest.fixture
def client(front_sim, start_proxy):
    p = start_proxy(
        backends={"vllm": {"url": front_sim.url, "dialect": "mistral", "tokenizer_version": front_sim.behavior.generation}},
        model_mapping={"claude-local": "devstral-sim"},
        authentication={"api_keys": ["sk-local"]},
    )
    c = anthropic.Anthropic(base_url=p.url, api_key="sk-local", max_retries=0)  # sends x-api-key
    c.proxy = p
    return c


def create(client, stream, **kwargs):
    kwargs.setdefault("model", "claude-local")
    kwargs.setdefault("max_tokens", 1024)
    if not stream:
        return client.messages.create(**kwargs)
    with client.messages.stream(**kwargs) as s:
        kinds = [e.type for e in s]
        message = s.get_final_message()
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    return message


def tool_uses(message):
    return [b for b in message.content if b.type == "tool_use"]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_claude_code_shaped_tool_loop(client, front_sim, stream):
    messages = [{"role": "user", "content": [{"type": "text", "text": "What is in this directory?"}]}]
    first = create(client, stream, system=SYSTEM, messages=messages, tools=[BASH, READ])
    assert first.model == "claude-local" and first.stop_reason == "tool_use"
    [use] = tool_uses(first)
    assert use.name == "Bash" and use.input == {"command": "value of command"}
    assert first.usage.input_tokens > 0 and first.usage.output_tokens > 0
    messages.append({"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]})
    messages.append({"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "README.md"}]})
    second = create(client, stream, system=SYSTEM, messages=messages, tools=[BASH, READ])
    assert second.stop_reason == "end_turn"
    assert [b.type for b in second.content] == ["text"] and second.content[0].text == front_sim.behavior.reply
    sent = front_sim.record.requests[-1]["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "tool"]
    # A third turn: the user speaks right after the tool result (bridged where needed).
    messages.append({"role": "assistant", "content": [{"type": "text", "text": second.content[0].text}]})
    messages.append({"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "again"}, {"type": "text", "text": "Thanks!"}]})
    third = create(client, stream, system=SYSTEM, messages=messages, tools=[BASH, READ])
    assert third.content[-1].type in ("text", "tool_use")


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_two_parallel_tool_uses_and_their_results(client, front_sim, stream):
    front_sim.behavior.tool_calls = 2
    messages = [{"role": "user", "content": "Look around."}]
    first = create(client, stream, messages=messages, tools=[BASH, READ])
    uses = tool_uses(first)
    assert [u.name for u in uses] == ["Bash", "Read"] and len({u.id for u in uses}) == 2
    messages.append({"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]})
    messages.append({"role": "user", "content": [{"type": "tool_result", "tool_use_id": u.id, "content": f"out {k}"} for k, u in enumerate(uses)]})
    second = create(client, stream, messages=messages, tools=[BASH, READ])
    assert second.content[0].text == front_sim.behavior.reply
    sent = front_sim.record.requests[-1]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool", "tool"]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_thinking_comes_back_and_goes_back_in(client, front_sim, stream):
    front_sim.behavior.tool_mode = None
    front_sim.behavior.think = "The user greets me."
    first = create(client, stream, messages=[{"role": "user", "content": "Hello"}])
    assert [b.type for b in first.content] == ["thinking", "text"]
    assert first.content[0].thinking == "The user greets me." and first.content[1].text == front_sim.behavior.reply
    messages = [
        {"role": "user", "content": "Hello"},
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
        {"role": "user", "content": "And now?"},
    ]
    second = create(client, stream, messages=messages)
    assert second.stop_reason == "end_turn"


def test_image_blocks_reach_the_backend(client, front_sim):
    front_sim.behavior.tool_mode = None
    data = SCREENSHOT.split(",", 1)[1]
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": data}}
    reply = create(client, False, messages=[{"role": "user", "content": [image, {"type": "text", "text": "What is this?"}]}])
    assert reply.content[0].text == front_sim.behavior.reply
    parts = front_sim.record.requests[-1]["messages"][0]["content"]
    assert [p["type"] for p in parts] == ["image_url", "text"]
    assert base64.b64decode(parts[0]["image_url"]["url"].split(",", 1)[1]) == base64.b64decode(data)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_stop_sequences_and_max_tokens(client, front_sim, stream):
    front_sim.behavior.tool_mode = None
    stopped = create(client, stream, messages=[{"role": "user", "content": "Hi"}], stop_sequences=["simulated"])
    assert stopped.stop_reason == "stop_sequence" and stopped.stop_sequence == "simulated"
    assert stopped.content[0].text == front_sim.behavior.reply.split("simulated")[0]
    short = create(client, stream, messages=[{"role": "user", "content": "Hi"}], max_tokens=3)
    assert short.stop_reason == "max_tokens"


def test_count_tokens_asks_the_backend_tokenizer(client, front_sim):
    before = front_sim.record.tokenized
    counted = client.messages.count_tokens(model="claude-local", system=SYSTEM, messages=[{"role": "user", "content": "Hello there"}], tools=[BASH])
    assert counted.input_tokens > 0
    assert front_sim.record.tokenized == before + 1


def test_errors_are_in_anthropics_shape(client, front_sim):
    with pytest.raises(anthropic.BadRequestError) as exc:
        client.messages.create(model="claude-local", max_tokens=10, messages=[{"role": "tool", "content": "Hi"}])
    assert exc.value.body["type"] == "error" and exc.value.body["error"]["type"] == "invalid_request_error"
    assert "Unexpected role 'tool'" in exc.value.body["error"]["message"]  # worded as Anthropic's, which clients' fallbacks read
    bad = anthropic.Anthropic(base_url=client.proxy.url, api_key="wrong", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as exc:
        bad.messages.create(model="claude-local", max_tokens=10, messages=[{"role": "user", "content": "Hi"}])
    assert exc.value.body["error"]["type"] == "authentication_error"
    reply = http("POST", client.proxy.url + "/v1/messages", {"model": "claude-local", "messages": []}, {"x-api-key": "sk-local"})
    assert reply.status == 400 and reply.json()["error"]["message"].startswith("max_tokens")


def test_backend_refusal_is_in_anthropics_shape(client, front_sim):
    front_sim.behavior.tool_mode = None
    with pytest.raises(anthropic.NotFoundError) as exc:
        client.messages.create(model="no-such-model", max_tokens=10, messages=[{"role": "user", "content": "Hi"}])
    assert exc.value.body["type"] == "error" and "no-such-model" in exc.value.body["error"]["message"]


def test_claude_code_request_shape_goes_through(client, front_sim, caplog):
    """What Claude Code sends today: system turns inside `messages`, adaptive thinking, effort,
    context_management, cache_control with scope, metadata, the beta query string and header,
    versioned client tools and a server tool; the strict backend takes the chat request."""
    from devstral_proxy import fronts

    fronts._dropped.seen.clear()
    front_sim.behavior.tool_mode = None
    front_sim.behavior.script = [{"calls": [{"name": "str_replace_based_edit_tool", "arguments": {"command": "view", "path": "/tmp"}}]}, {"text": "Done."}]
    body = {
        "model": "claude-local",
        "max_tokens": 1024,
        "system": SYSTEM,
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Look at /tmp", "cache_control": {"type": "ephemeral", "scope": "global"}}]},
            {"role": "system", "content": "Available agent types: claude."},
        ],
        "tools": [
            BASH,
            {"type": "bash_20250124", "name": "bash"},
            {"type": "text_editor_20250728", "name": "str_replace_based_edit_tool", "max_characters": 1000},
            {"type": "web_search_20250305", "name": "web_search", "max_uses": 3},
        ],
        "thinking": {"type": "adaptive"},
        "output_config": {"effort": "high"},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "metadata": {"user_id": '{"session_id": "s"}'},
    }
    headers = {"x-api-key": "sk-local", "anthropic-beta": "mid-conversation-system-2026-04-07,context-management-2025-06-27"}
    reply = http("POST", client.proxy.url + "/v1/messages?beta=true", body, headers)
    assert reply.status == 200, reply.body
    [block] = reply.json()["content"]
    assert block["type"] == "tool_use" and block["name"] == "str_replace_based_edit_tool" and block["input"] == {"command": "view", "path": "/tmp"}
    sent = front_sim.record.requests[-1]
    assert [t["function"]["name"] for t in sent["tools"]] == ["Bash", "bash", "str_replace_based_edit_tool"]
    texts = [m["content"] for m in sent["messages"]]
    assert any("Available agent types" in str(t) for t in texts)  # the system turn reached the model
    assert "left out 'web_search_20250305'" in caplog.text
    counted = http("POST", client.proxy.url + "/v1/messages/count_tokens?beta=true", {k: v for k, v in body.items() if k != "max_tokens"}, headers)
    assert counted.status == 200 and counted.json()["input_tokens"] > 0
    second = {
        **body,
        "messages": [
            *body["messages"],
            {"role": "assistant", "content": [block]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": block["id"], "content": "a.txt"}]},
        ],
    }
    reply = http("POST", client.proxy.url + "/v1/messages?beta=true", second, headers)
    assert reply.status == 200 and reply.json()["content"][0]["text"] == "Done."


def test_count_tokens_goes_through_the_rate_limits_and_never_floods_the_backend(start_proxy):
    """requests_per_minute and max_in_flight hold on count_tokens as on every route: beyond
    the limit a 429; a backend whose /tokenize hangs gets at most a few calls at once (the
    others are answered with the estimate), not one connection per caller."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from bench.simulator import Behavior
    from devstral_proxy.fronts import MAX_TOKENIZING
    from tests.support import SimThread, eventually

    gate = threading.Event()
    sim = SimThread(Behavior(gate=gate))
    try:
        p = start_proxy(backends={"vllm": {"url": sim.url, "max_in_flight": 1}}, rate_limit={"requests_per_minute": 10}, authentication={"api_keys": ["sk-a"]})
        body = {"model": "gpt-4", "messages": [{"role": "user", "content": "Hello there"}]}
        headers = {"x-api-key": "sk-a"}
        with ThreadPoolExecutor(40) as pool:
            replies = [pool.submit(http, "POST", p.url + "/v1/messages/count_tokens", body, headers) for _ in range(40)]
            eventually(lambda: sum(r.done() for r in replies) >= 40 - MAX_TOKENIZING, what="all but the held counts answered")
            assert sim.record.tokenizing <= MAX_TOKENIZING
            gate.set()
            statuses = [r.result().status for r in replies]
        assert statuses.count(200) == 10 and statuses.count(429) == 30
        assert sim.record.tokenized <= MAX_TOKENIZING
    finally:
        gate.set()
        sim.stop()
