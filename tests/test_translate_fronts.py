"""The front protocols' pure translation (translate/responses, translate/anthropic) with
literals: requests into chat terms, replies and streams back, cut anywhere."""

import json

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devstral_translate import anthropic, responses
from devstral_translate.errors import RequestError
from devstral_translate.front import FrontResponse
from devstral_translate.openai import RenameResponse


def body(**doc) -> bytes:
    return json.dumps(doc).encode()


def sse(*chunks, done=True) -> bytes:
    out = b"".join(b"data: " + msgspec.json.encode(c) + b"\n\n" for c in chunks)
    return out + (b"data: [DONE]\n\n" if done else b"")


def delta(finish=None, **d):
    return {"model": "backend-name", "choices": [{"index": 0, "delta": d, "finish_reason": finish}]}


USAGE = {"model": "backend-name", "choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 4, "prompt_tokens_details": {"cached_tokens": 2}}}
CALL_STREAM = sse(
    delta(reasoning_content="Let me "),
    delta(reasoning_content="look."),
    delta(content="Sure."),
    delta(tool_calls=[{"index": 0, "id": "abc123XYZ", "type": "function", "function": {"name": "shell", "arguments": ""}}]),
    delta(tool_calls=[{"index": 0, "function": {"arguments": '{"command":'}}]),
    delta(tool_calls=[{"index": 0, "function": {"arguments": ' "ls"}'}}]),
    delta(tool_calls=[{"index": 1, "id": "def456UVW", "type": "function", "function": {"name": "read", "arguments": "{}"}}]),
    delta("tool_calls"),
    USAGE,
)


def events(data: bytes) -> list[tuple[str, dict]]:
    out = []
    for frame in data.split(b"\n\n"):
        if frame:
            name, payload = frame.split(b"\n", 1)
            assert name.startswith(b"event: ") and payload.startswith(b"data: ")
            out.append((name[7:].decode(), json.loads(payload[6:])))
    return out


# ---- Responses: requests
def test_responses_input_items_become_chat_messages():
    req = responses.read_request(
        body(
            model="m",
            instructions="Be brief.",
            input=[
                {"role": "developer", "content": "Use tools."},
                {"role": "user", "content": [{"type": "input_text", "text": "Hi"}, {"type": "input_image", "image_url": "data:image/png;base64,AA=="}]},
                {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "thinking"}]},
                {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Let me check."}]},
                {"type": "function_call", "call_id": "c1", "name": "shell", "arguments": '{"command": "ls"}'},
                {"type": "function_call", "call_id": "c2", "name": "read", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "c1", "output": "a.txt"},
                {"type": "function_call_output", "call_id": "c2", "output": [{"type": "input_text", "text": "x"}]},
            ],
            tools=[{"type": "function", "name": "shell", "parameters": {"type": "object"}, "strict": True}],
            tool_choice={"type": "function", "name": "shell"},
            text={"format": {"type": "json_schema", "name": "out", "schema": {"type": "object"}}},
            max_output_tokens=50,
            reasoning={"effort": "high"},
        )
    )
    chat = responses.chat_request(req, [{"role": "user", "content": "earlier"}])
    assert [m["role"] for m in chat["messages"]] == ["system", "user", "system", "user", "assistant", "tool", "tool"]
    assert chat["messages"][3]["content"][1] == {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}}
    assistant = chat["messages"][4]
    assert assistant["content"] == "Let me check." and assistant["reasoning_content"] == "thinking"
    assert [c["id"] for c in assistant["tool_calls"]] == ["c1", "c2"]
    assert chat["messages"][6]["content"] == [{"type": "text", "text": "x"}]
    assert chat["tools"] == [{"type": "function", "function": {"name": "shell", "parameters": {"type": "object"}, "strict": True}}]
    assert chat["tool_choice"] == {"type": "function", "function": {"name": "shell"}}
    assert chat["response_format"] == {"type": "json_schema", "json_schema": {"name": "out", "schema": {"type": "object"}}}
    assert chat["max_tokens"] == 50 and chat["reasoning_effort"] == "high" and "stream" not in chat


@pytest.mark.parametrize(
    "doc, param",
    [
        ({"input": "x", "tools": [{"type": "hologram"}]}, "tools[0].type"),
        ({"input": "x", "background": True}, "background"),
        ({"input": "x", "prompt": {"id": "p"}}, "prompt"),
        ({"input": [{"type": "item_reference", "id": "x"}]}, "input[0].type"),
        ({"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]}, "input[0].content[0].type"),
        ({"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]}, "input[0].content[0].image_url"),
        ({"input": [{"role": "tool", "content": "x"}]}, "input[0].role"),
        ({}, "input"),
        ({"input": "x", "text": {"format": {"type": "grammar"}}}, "text.format"),
        ({"input": "x", "tools": [{"type": "function", "name": "f"}], "tool_choice": "sometimes"}, "tool_choice"),
    ],
)
def test_responses_refusals_name_the_field(doc, param):
    with pytest.raises(RequestError) as exc:
        responses.read_request(body(model="m", **doc))
    assert exc.value.param == param


def test_responses_whole_reply_and_its_stored_turn():
    stored = []
    turn = responses.read_request(body(model="client-name", input="Hi", store=True))
    reply = responses.ResponsesTranslator(turn, "resp_1", 100, lambda r, a: stored.append((r, a)))
    chat = {
        "model": "backend-name",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "Sure.",
                    "tool_calls": [{"id": "c9", "type": "function", "function": {"name": "shell", "arguments": "{}"}}],
                },
                "finish_reason": "tool_calls",
            }
        ],
        "usage": USAGE["usage"],
    }
    out = json.loads(reply.body(msgspec.json.encode(chat)))
    assert out["id"] == "resp_1" and out["model"] == "client-name" and out["status"] == "completed"
    assert [i["type"] for i in out["output"]] == ["message", "function_call"]
    assert out["output"][1]["call_id"] == "c9"
    assert out["usage"] == {
        "input_tokens": 7,
        "input_tokens_details": {"cached_tokens": 2},
        "output_tokens": 4,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 11,
    }
    [(response, assistant)] = stored
    assert response == out
    assert assistant == {
        "role": "assistant",
        "content": "Sure.",
        "tool_calls": [{"id": "c9", "type": "function", "function": {"name": "shell", "arguments": "{}"}}],
    }


def test_responses_stream_event_sequence():
    turn = responses.read_request(body(model="client-name", input="Hi", stream=True))
    stream = responses.ResponsesTranslator(turn, "resp_1", 100).stream()
    evs = events(stream.feed(CALL_STREAM) + stream.close())
    names = [n for n, _ in evs]
    assert names == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.reasoning_text.delta",
        "response.reasoning_text.delta",
        "response.reasoning_text.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [p["sequence_number"] for _, p in evs] == list(range(len(evs)))
    final = evs[-1][1]["response"]
    assert [i["type"] for i in final["output"]] == ["reasoning", "message", "function_call", "function_call"]
    assert final["output"][2]["arguments"] == '{"command": "ls"}' and final["output"][2]["call_id"] == "abc123XYZ"
    assert final["usage"]["total_tokens"] == 11


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(CALL_STREAM)), max_size=12))
def test_responses_stream_cut_anywhere_gives_the_same_events(cuts):
    turn = responses.read_request(body(model="m", input="Hi", stream=True))
    whole = responses.ResponsesTranslator(turn, "r", 1).stream()
    expected = events(whole.feed(CALL_STREAM) + whole.close())
    pieces = sorted(set(cuts))
    stream = responses.ResponsesTranslator(turn, "r", 1).stream()
    out, start = [], 0
    for cut in [*pieces, len(CALL_STREAM)]:
        out.append(stream.feed(CALL_STREAM[start:cut]))
        start = cut
    got = events(b"".join(out) + stream.close())
    assert [n for n, _ in got] == [n for n, _ in expected]
    assert got[-1][1]["response"]["output"][2]["arguments"] == expected[-1][1]["response"]["output"][2]["arguments"]


def test_responses_stream_fails_on_a_backend_error_frame_and_on_a_break():
    turn = responses.read_request(body(model="m", input="Hi", stream=True))
    stream = responses.ResponsesTranslator(turn, "r", 1).stream()
    evs = events(stream.feed(sse(delta(content="Hel"), {"error": {"message": "engine died"}}, done=False)) + stream.close())
    assert evs[-1][0] == "response.failed" and evs[-1][1]["response"]["error"]["message"] == "engine died"
    broken = responses.ResponsesTranslator(turn, "r", 1).stream()
    evs = events(broken.feed(sse(delta(content="Hel"), done=False)) + broken.error(502, "Backend closed the connection."))
    assert evs[-1][0] == "response.failed" and evs[-1][1]["response"]["output"][0]["content"][0]["text"] == "Hel"


def test_front_over_a_dialect_translator():
    """The dialect's translator runs first (here the model renamer), the front's after it."""
    turn = responses.read_request(body(model="client-name", input="Hi"))
    front = FrontResponse(responses.ResponsesTranslator(turn, "r", 1), RenameResponse("client-name", "backend-name"))
    chat = {"model": "backend-name", "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "length"}]}
    out = json.loads(front.body(msgspec.json.encode(chat)))
    assert out["status"] == "incomplete" and out["incomplete_details"] == {"reason": "max_output_tokens"}
    stream = front.stream()
    evs = events(stream.feed(sse(delta(content="ok"), delta("stop"))) + stream.close())
    assert evs[-1][0] == "response.completed"


# ---- Anthropic: requests
def test_anthropic_blocks_become_chat_messages():
    chat = anthropic.read_request(
        body(
            model="claude",
            max_tokens=100,
            system=[{"type": "text", "text": "A"}, {"type": "text", "text": "B", "cache_control": {"type": "ephemeral"}}],
            messages=[
                {
                    "role": "user",
                    "content": [{"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "QUJD"}}, {"type": "text", "text": "Look"}],
                },
                {
                    "role": "assistant",
                    "content": [
                        {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                        {"type": "redacted_thinking", "data": "xxx"},
                        {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "ls"}},
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "boom"}], "is_error": True},
                        {"type": "text", "text": "?"},
                    ],
                },
            ],
            tools=[{"name": "Bash", "description": "run", "input_schema": {"type": "object"}}],
            tool_choice={"type": "tool", "name": "Bash", "disable_parallel_tool_use": True},
            stop_sequences=["END"],
            top_k=5,
            metadata={"user_id": "u1"},
            stream=True,
        )
    )
    assert chat["messages"] == [
        {"role": "system", "content": "A\n\nB"},
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,QUJD"}}, {"type": "text", "text": "Look"}]},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "toolu_1", "type": "function", "function": {"name": "Bash", "arguments": '{"command":"ls"}'}}],
            "reasoning_content": "hmm",
        },
        {"role": "tool", "tool_call_id": "toolu_1", "content": "Error: boom"},
        {"role": "user", "content": "?"},
    ]
    assert chat["tool_choice"] == {"type": "function", "function": {"name": "Bash"}} and chat["parallel_tool_calls"] is False
    assert chat["stop"] == ["END"] and chat["top_k"] == 5 and chat["user"] == "u1"
    assert chat["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize(
    "doc, words",
    [
        ({"messages": [{"role": "user", "content": "x"}]}, "max_tokens"),
        ({"max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "document", "source": {}}]}]}, "messages[0].content[0]"),
        ({"max_tokens": 5, "messages": [{"role": "tool", "content": "x"}]}, "Unexpected role 'tool'"),
        ({"max_tokens": 5, "messages": [{"role": "user", "content": "x"}], "tools": [{"type": "hologram_20260101", "name": "h"}]}, "tools.0.type"),
        ({"max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "file", "file_id": "f"}}]}]}, "source"),
    ],
)
def test_anthropic_refusals_name_the_field(doc, words):
    with pytest.raises(RequestError) as exc:
        anthropic.read_request(body(model="claude", **doc))
    assert words in exc.value.message


def test_anthropic_whole_reply():
    reply = anthropic.AnthropicTranslator("claude", ["END"])
    chat = {
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "Done",
                    "reasoning_content": "hm",
                    "tool_calls": [{"id": "x1", "type": "function", "function": {"name": "Bash", "arguments": "not json"}}],
                },
                "finish_reason": "tool_calls",
            }
        ],
        "usage": USAGE["usage"],
    }
    out = json.loads(reply.body(msgspec.json.encode(chat)))
    assert [b["type"] for b in out["content"]] == ["thinking", "text", "tool_use"]
    assert out["content"][2] == {"type": "tool_use", "id": "x1", "name": "Bash", "input": {}}
    assert out["stop_reason"] == "tool_use" and out["usage"]["input_tokens"] == 7 and out["usage"]["cache_read_input_tokens"] == 2
    stop = {"choices": [{"index": 0, "message": {"content": "a"}, "finish_reason": "stop", "stop_reason": "END"}]}
    assert json.loads(reply.body(msgspec.json.encode(stop)))["stop_sequence"] == "END"


def test_anthropic_stream_event_sequence_and_break():
    stream = anthropic.AnthropicTranslator("claude").stream()
    evs = events(stream.feed(CALL_STREAM) + stream.close())
    names = [n for n, _ in evs]
    assert names[:2] == ["message_start", "ping"]
    assert names[-2:] == ["message_delta", "message_stop"]
    starts = [p["content_block"]["type"] for n, p in evs if n == "content_block_start"]
    assert starts == ["thinking", "text", "tool_use", "tool_use"]
    assert names.count("content_block_stop") == 4
    json_parts = "".join(p["delta"]["partial_json"] for n, p in evs if n == "content_block_delta" and p["index"] == 2)
    assert json.loads(json_parts) == {"command": "ls"}
    assert evs[-2][1]["delta"]["stop_reason"] == "tool_use" and evs[-2][1]["usage"]["output_tokens"] == 4
    broken = anthropic.AnthropicTranslator("claude").stream()
    evs = events(broken.feed(sse(delta(content="Hel"), done=False)) + broken.error(504, "timeout"))
    assert evs[-1] == ("error", {"type": "error", "error": {"type": "api_error", "message": "timeout"}})


def test_anthropic_error_shape_from_openai():
    out = json.loads(anthropic.from_openai(429, b'{"error": {"message": "slow down", "type": "rate_limit_error"}}'))
    assert out == {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}
    assert json.loads(anthropic.error_body(503, "busy"))["error"]["type"] == "overloaded_error"


def test_responses_hosted_tools_dropped_or_refused():
    doc = body(
        model="m", input="x", tools=[{"type": "web_search", "external_web_access": False}, {"type": "mcp", "server_label": "s"}, {"type": "local_shell"}]
    )
    turn = responses.read_request(doc)
    assert [t["function"]["name"] for t in turn.chat["tools"]] == ["local_shell"] and turn.dropped == ["web_search", "mcp"]
    with pytest.raises(RequestError) as exc:
        responses.read_request(doc, "refuse")
    assert exc.value.param == "tools[0].type"


def test_responses_namespace_names_are_unique_and_come_back():
    ns = {"type": "namespace", "name": "crm", "tools": [{"type": "function", "name": "find", "parameters": {"type": "object"}}]}
    turn = responses.read_request(
        body(model="m", input="x", tools=[{"type": "function", "name": "find"}, ns], tool_choice={"type": "function", "name": "find", "namespace": "crm"})
    )
    assert [t["function"]["name"] for t in turn.chat["tools"]] == ["find", "crm__find"]
    assert turn.chat["tool_choice"] == {"type": "function", "function": {"name": "crm__find"}}
    reply = responses.ResponsesTranslator(turn, "resp_1", 100)
    chat = {
        "choices": [{"message": {"role": "assistant", "tool_calls": [{"id": "a", "type": "function", "function": {"name": "crm__find", "arguments": "{}"}}]}}]
    }
    [item] = msgspec.json.decode(reply.body(msgspec.json.encode(chat)))["output"]
    assert (item["type"], item["name"], item["namespace"]) == ("function_call", "find", "crm")


def test_responses_custom_tool_input_that_is_not_json_is_kept_whole():
    turn = responses.read_request(body(model="m", input="x", tools=[{"type": "custom", "name": "patch", "format": {"type": "text"}}]))
    reply = responses.ResponsesTranslator(turn, "resp_1", 100)
    chat = {
        "choices": [{"message": {"role": "assistant", "tool_calls": [{"id": "a", "type": "function", "function": {"name": "patch", "arguments": "*** raw"}}]}}]
    }
    [item] = msgspec.json.decode(reply.body(msgspec.json.encode(chat)))["output"]
    assert (item["type"], item["input"]) == ("custom_tool_call", "*** raw")


def test_anthropic_client_tools_system_turns_and_effort():
    dropped: list[str] = []
    chat = anthropic.read_request(
        body(
            model="claude",
            max_tokens=5,
            messages=[{"role": "user", "content": "x"}, {"role": "system", "content": [{"type": "text", "text": "late"}]}],
            tools=[
                {"type": "bash_20250124", "name": "bash"},
                {"type": "web_fetch_20250910", "name": "web_fetch"},
                {"type": "computer_20250124", "name": "computer"},
            ],
            tool_choice={"type": "tool", "name": "web_fetch"},
            thinking={"type": "enabled", "budget_tokens": 2000},
        ),
        dropped=dropped,
    )
    assert [m["role"] for m in chat["messages"]] == ["user", "system"] and chat["messages"][1]["content"] == "late"
    assert [t["function"]["name"] for t in chat["tools"]] == ["bash"] and "command" in chat["tools"][0]["function"]["parameters"]["properties"]
    assert dropped == ["web_fetch_20250910", "computer_20250124"] and chat["tool_choice"] == "auto"
    assert chat["reasoning_effort"] == "high"
    with pytest.raises(RequestError):
        anthropic.read_request(body(model="claude", max_tokens=5, messages=[], tools=[{"type": "web_fetch_20250910", "name": "w"}]), server_tools="refuse")


def test_left_out_kinds_are_reported_once_each_and_bounded():
    """A client names the kinds: 20,000 distinct hosted-looking tools are left out in linear
    time and reported as a short list."""
    many = [{"type": f"web_search_{k}"} for k in range(20000)]
    turn = responses.read_request(body(model="m", input="x", tools=many + [{"type": "web_search_1"}]))
    assert len(turn.dropped) == 32 and len(set(turn.dropped)) == 32 and "tools" not in turn.chat
    dropped: list[str] = []
    anthropic.read_request(body(model="c", max_tokens=5, messages=[], tools=[{"type": f"web_fetch_{k}", "name": "w"} for k in range(20000)]), dropped=dropped)
    assert len(dropped) == 32


def test_responses_apply_patch_builtin_round_trip():
    turn = responses.read_request(body(model="m", input="x", tools=[{"type": "apply_patch"}]))
    assert turn.chat["tools"][0]["function"]["name"] == "apply_patch"
    op = {"type": "create_file", "path": "a.txt", "diff": "+hi"}
    chat = {
        "choices": [
            {
                "message": {
                    "role": "assistant",
                    "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "apply_patch", "arguments": json.dumps(op)}}],
                }
            }
        ]
    }
    [item] = msgspec.json.decode(responses.ResponsesTranslator(turn, "resp_1", 100).body(msgspec.json.encode(chat)))["output"]
    assert item["type"] == "apply_patch_call" and item["operation"] == op and item["call_id"] == "c1"
    back = [{"role": "user", "content": "x"}, item, {"type": "apply_patch_call_output", "call_id": "c1", "status": "completed", "output": "Created a.txt"}]
    messages = responses.read_request(body(model="m", input=back, tools=[{"type": "apply_patch"}])).messages
    assert json.loads(messages[1]["tool_calls"][0]["function"]["arguments"]) == op
    assert messages[2] == {"role": "tool", "tool_call_id": "c1", "content": "[completed] Created a.txt"}


def test_message_and_block_counts_are_bounded_before_any_per_item_work():
    from devstral_translate import anthropic, responses
    from devstral_translate.errors import RequestError, bounded

    with pytest.raises(RequestError) as exc:
        bounded([{"role": "user", "content": "x"}] * 900_000, 100_000, "messages")  # refused on its length alone
    assert exc.value.code == "too_many_items"
    blocks = [{"role": "user", "content": [{"type": "text", "text": "x"}] * 3}] * 2  # 2 messages + 6 blocks
    bounded(blocks, 8, "messages")
    with pytest.raises(RequestError):
        bounded(blocks, 7, "messages")
    body = json.dumps({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}] * 5}).encode()
    with pytest.raises(RequestError, match="request.max_items"):
        anthropic.read_request(body, max_items=4)
    assert anthropic.read_request(body, max_items=5)["messages"]
    turn = json.dumps({"model": "m", "input": [{"role": "user", "content": "hi"}] * 5}).encode()
    with pytest.raises(RequestError, match="request.max_items"):
        responses.read_request(turn, max_items=4)
