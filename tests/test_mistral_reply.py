"""The Mistral dialect's reply half with plain data: whole bodies and the stream machine."""

import json

import pytest

from devstral_translate.markers import parse_raw_calls, split_think
from devstral_translate.mistral.names import VALID_ID, NameMap
from devstral_translate.mistral.reply import MistralResponse
from devstral_translate.modelname import encoded_name


def names() -> NameMap:
    n = NameMap()
    n.backend("fs.read_file")
    n.backend("fs.write_file")
    return n


def translator() -> MistralResponse:
    return MistralResponse(encoded_name("devstral"), encoded_name("backend"), names())


def body(content, finish="stop", tool_calls=None):
    msg = {"role": "assistant", "content": content, "tool_calls": tool_calls or []}
    doc = {"id": "c", "object": "chat.completion", "created": 1, "model": "backend", "choices": [{"index": 0, "message": msg, "finish_reason": finish}]}
    return json.dumps(doc, separators=(",", ":")).encode()


V3 = '[TOOL_CALLS] [{"name": "fs_read_file", "arguments": {"path": "a.py"}}, {"name": "fs_write_file", "arguments": {"path": "b.py", "text": "x"}}]'
V11 = '[TOOL_CALLS]fs_read_file[ARGS]{"path": "a.py"}[TOOL_CALLS]fs_write_file[CALL_ID]aB3dE5gH9[ARGS]{"path": "b.py", "text": "x"}'


@pytest.mark.parametrize("raw", [V3, V11], ids=["v3", "v11"])
def test_raw_tool_calls_in_a_whole_body(raw):
    out = json.loads(translator().body(body("Sure. " + raw)))
    choice = out["choices"][0]
    msg = choice["message"]
    assert out["model"] == "devstral" and choice["finish_reason"] == "tool_calls"
    assert msg["content"] == "Sure. "
    assert [c["function"]["name"] for c in msg["tool_calls"]] == ["fs.read_file", "fs.write_file"]
    assert [json.loads(c["function"]["arguments"]) for c in msg["tool_calls"]] == [{"path": "a.py"}, {"path": "b.py", "text": "x"}]
    assert all(VALID_ID.fullmatch(c["id"]) and c["type"] == "function" for c in msg["tool_calls"])


def test_call_id_from_the_model_is_kept():
    msg = json.loads(translator().body(body(V11)))["choices"][0]["message"]
    assert msg["tool_calls"][1]["id"] == "aB3dE5gH9" and msg["content"] is None


def test_structured_calls_get_client_names_and_plain_bodies_only_the_model():
    calls = [{"id": "aB3dE5gH9", "type": "function", "function": {"name": "fs_read_file", "arguments": "{}"}}]
    out = json.loads(translator().body(body(None, "tool_calls", calls)))
    assert out["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "fs.read_file"
    plain = body("fs_read_file is a [tool]")
    assert translator().body(plain) == plain.replace(b'"model":"backend"', b'"model":"devstral"')


def test_think_becomes_reasoning_and_no_control_token_leaks():
    out = json.loads(translator().body(body("[THINK]let me see[/THINK]The answer is 4.")))
    msg = out["choices"][0]["message"]
    assert msg["content"] == "The answer is 4." and msg["reasoning_content"] == "let me see"
    broken = json.loads(translator().body(body("oops [TOOL_CALLS] not json [ARGS")))["choices"][0]["message"]
    assert "[TOOL_CALLS]" not in broken["content"]


def test_parsers():
    assert parse_raw_calls(' [{"name": "f", "arguments": {"a": 1}}]') == [(None, "f", '{"a":1}')]
    assert parse_raw_calls("f[ARGS]{}") == [(None, "f", "{}")]
    assert parse_raw_calls("no args here") is None
    assert split_think("a[THINK]b[/THINK]c") == ("ac", "b")
    assert split_think("plain") == ("plain", None)


# ---- streaming
def sse(delta, finish=None, index=0):
    chunk = {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "backend",
        "choices": [{"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }
    return b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n"


def raw_stream(deltas: list[str]) -> bytes:
    frames = [sse({"role": "assistant", "content": ""})] + [sse({"content": d}) for d in deltas] + [sse({"content": ""}, "stop"), b"data: [DONE]\n\n"]
    return b"".join(frames)


def run(stream_bytes: bytes, cut: int | None = None) -> list[dict]:
    """Feed the translator (in pieces of `cut` bytes), parse what it writes."""
    s = translator().stream()
    step = cut or len(stream_bytes)
    out = b"".join(s.feed(stream_bytes[i : i + step]) for i in range(0, len(stream_bytes), step)) + s.close()
    frames = [f for f in out.split(b"\n\n") if f]
    assert frames[-1] == b"data: [DONE]"
    return [json.loads(f[6:]) for f in frames[:-1]]


def collect(chunks):
    content, calls, finish = "", {}, None
    for c in chunks:
        assert c["model"] == "devstral"
        for ch in c["choices"]:
            d = ch["delta"]
            content += d.get("content") or ""
            for tc in d.get("tool_calls") or []:
                if tc["index"] not in calls:
                    assert set(tc) == {"index", "id", "type", "function"} and tc["function"]["name"]
                    calls[tc["index"]] = {"id": tc["id"], "name": tc["function"]["name"], "arguments": tc["function"].get("arguments", "")}
                else:
                    assert set(tc) == {"index", "function"} and set(tc["function"]) == {"arguments"}
                    calls[tc["index"]]["arguments"] += tc["function"]["arguments"]
            finish = ch.get("finish_reason") or finish
    return content, [calls[k] for k in sorted(calls)], finish


def pieces(text, n=4):
    return [text[i : i + n] for i in range(0, len(text), n)]


V11_DELTAS = [
    "Sure. ",
    "[TOOL_CALLS]",
    *pieces("fs_read_file"),
    "[ARGS]",
    *pieces('{"path": "a.py"}'),
    "[TOOL_CALLS]",
    *pieces("fs_write_file"),
    "[ARGS]",
    *pieces('{"path": "b.py"}'),
]
V3_DELTAS = [
    "Sure. ",
    "[TOOL_CALLS]",
    *pieces(' [{"name": "fs_read_file", "arguments": {"path": "a.py"}}, {"name": "fs_write_file", "arguments": {"path": "b.py"}}]'),
]


@pytest.mark.parametrize("deltas", [V11_DELTAS, V3_DELTAS], ids=["v11", "v3"])
@pytest.mark.parametrize("cut", [None, 1, 7, 64])
def test_stream_turns_raw_calls_into_tool_call_deltas(deltas, cut):
    content, calls, finish = collect(run(raw_stream(deltas), cut))
    assert content == "Sure. " and finish == "tool_calls"
    assert [c["name"] for c in calls] == ["fs.read_file", "fs.write_file"]
    assert [json.loads(c["arguments"]) for c in calls] == [{"path": "a.py"}, {"path": "b.py"}]
    assert all(VALID_ID.fullmatch(c["id"]) for c in calls)


def test_plain_text_and_argument_pieces_pass_at_once():
    s = translator().stream()
    out = s.feed(sse({"content": "Hel"}))
    assert json.loads(out[6:])["choices"][0]["delta"]["content"] == "Hel"
    assert s.feed(sse({"content": "[TOOL_CALLS]"})) == b""  # held: the name is not known yet
    assert s.feed(sse({"content": "fs_read"})) == b""
    first = json.loads(s.feed(sse({"content": '_file[ARGS]{"pa'}))[6:])["choices"][0]["delta"]["tool_calls"]
    assert first[0]["function"]["name"] == "fs.read_file" and first[1]["function"]["arguments"] == '{"pa'
    piece = json.loads(s.feed(sse({"content": 'th": 1}'}))[6:])["choices"][0]["delta"]["tool_calls"]
    assert piece == [{"index": 0, "function": {"arguments": 'th": 1}'}}]


def test_stream_think_becomes_reasoning_content():
    chunks = run(raw_stream(["[THINK]", "hmm", " ok", "[/THINK]", "Four."]))
    reasoning = "".join(ch["delta"].get("reasoning_content") or "" for c in chunks for ch in c["choices"])
    content, calls, finish = collect(chunks)
    assert (reasoning, content, calls, finish) == ("hmm ok", "Four.", [], "stop")


def test_structured_stream_names_mapped_back():
    frames = sse({"tool_calls": [{"index": 0, "id": "aB3dE5gH9", "type": "function", "function": {"name": "fs_write_file"}}]})
    frames += sse({"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]}) + sse({}, "tool_calls") + b"data: [DONE]\n\n"
    content, calls, finish = collect(run(frames))
    assert calls == [{"id": "aB3dE5gH9", "name": "fs.write_file", "arguments": "{}"}] and finish == "tool_calls"


def test_unfinished_name_at_end_still_becomes_a_call():
    content, calls, finish = collect(run(raw_stream(["[TOOL_CALLS]", "fs_read_file"])))
    assert calls[0]["name"] == "fs.read_file" and calls[0]["arguments"] == "{}" and finish == "tool_calls"


def test_finish_reason_becomes_tool_calls_when_frames_are_not_compact_json():
    """Behind other servers or intermediaries frames may carry spaces: the decision is made
    on the decoded finish_reason, not on a byte pattern."""
    deltas = ["[TOOL_CALLS]", "get_weather", "[ARGS]", '{"city": "Paris"}']
    spaced = raw_stream(deltas).replace(b'"finish_reason":"stop"', b'"finish_reason": "stop"')
    assert b'"finish_reason": "stop"' in spaced
    _, calls, finish = collect(run(spaced))
    assert [c["name"] for c in calls] == ["get_weather"] and finish == "tool_calls"


PROSE = '[TOOL_CALLS]grep[ARGS]{"pattern": "TODO", "note": "a } in a string"}\n\nLet me search for that.'


def test_prose_after_a_raw_call_is_content_not_arguments():
    msg = json.loads(translator().body(body(PROSE)))["choices"][0]["message"]
    (call,) = msg["tool_calls"]
    assert json.loads(call["function"]["arguments"]) == {"pattern": "TODO", "note": "a } in a string"}
    assert msg["content"].strip() == "Let me search for that."
    v3 = json.loads(translator().body(body('[TOOL_CALLS] [{"name": "grep", "arguments": {"pattern": "x"}}] Done.')))["choices"][0]["message"]
    assert json.loads(v3["tool_calls"][0]["function"]["arguments"]) == {"pattern": "x"} and v3["content"].strip() == "Done."


@pytest.mark.parametrize("n", [1, 2, 3, 5, 7, 64])
def test_prose_after_a_streamed_raw_call_is_content(n):
    content, calls, finish = collect(run(raw_stream(pieces(PROSE, n))))
    assert [c["name"] for c in calls] == ["grep"]
    assert json.loads(calls[0]["arguments"]) == {"pattern": "TODO", "note": "a } in a string"}
    assert content.strip() == "Let me search for that." and finish == "tool_calls"


@pytest.mark.parametrize("n", [1, 2, 3, 4, 6])
def test_markers_split_across_deltas_are_still_markers(n):
    """Two calls and some text, every delta n characters: no marker leaks into content, none
    is glued into a tool name."""
    text = 'Sure. [TOOL_CALLS]get_weather[ARGS]{"city": "Paris"}[TOOL_CALLS]fs_read_file[ARGS]{"path": "a.py"}'
    content, calls, finish = collect(run(raw_stream(pieces(text, n))))
    assert content == "Sure. " and "[" not in content
    assert [(c["name"], json.loads(c["arguments"])) for c in calls] == [("get_weather", {"city": "Paris"}), ("fs.read_file", {"path": "a.py"})]
    assert finish == "tool_calls"


def test_a_bracket_that_starts_no_marker_is_text():
    content, calls, _ = collect(run(raw_stream(["Use a list [1, 2", "] or [T", "his]."])))
    assert content == "Use a list [1, 2] or [This]." and not calls
