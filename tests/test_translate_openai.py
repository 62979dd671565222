"""translate/ with plain data: the model field rewrite, SSE framing, request reading."""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devstral_translate.errors import RequestError
from devstral_translate.modelname import encoded_name, set_model
from devstral_translate.openai import prepare
from devstral_translate.sse import FrameSplitter, data_payload

NEW = encoded_name("gpt-4")


@pytest.mark.parametrize(
    "payload",
    [
        b'{"id":"a","model":"llama","choices":[]}',
        b'{"id":"a[{","model":"llama","choices":[]}',  # brackets inside a string: slow path
        b'{"id":"a\\"b","model":"llama"}',  # escapes before the key: slow path
        b'{ "id" : "a", "model" : "llama" }',  # spaces: slow path
        b'{"choices":[{"model":"nested"}],"model":"llama"}',  # nested key first
        b'{"id":"x","model":"ll\\u0061ma","n":1}',  # escaped value
    ],
)
def test_set_model_touches_only_the_top_level_model(payload):
    out = set_model(payload, NEW)
    before, after = json.loads(payload), json.loads(out)
    assert after["model"] == "gpt-4"
    del before["model"], after["model"]
    assert before == after


_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8)
_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=8)


@given(
    before=st.dictionaries(st.text(max_size=6).filter(lambda k: k != "model"), _values, max_size=4),
    model=_values,
    after=st.dictionaries(st.text(max_size=6).filter(lambda k: k != "model"), _values, max_size=3),
    spaced=st.booleans(),
)
def test_set_model_equals_decoding_and_replacing(before, model, after, spaced):
    doc = {**before, "model": model, **after}
    payload = json.dumps(doc, separators=(", ", " : ") if spaced else (",", ":")).encode()
    out = json.loads(set_model(payload, NEW))
    assert out == {**doc, "model": "gpt-4"}


def test_set_model_leaves_content_mentioning_the_model_alone():
    payload = b'{"id":"a","model":"llama","choices":[{"delta":{"content":"\\"model\\":\\"llama\\""}}]}'
    out = json.loads(set_model(payload, NEW))
    assert out["choices"][0]["delta"]["content"] == '"model":"llama"'


def test_set_model_on_non_json_or_modelless_payload_is_identity():
    for payload in (b"not json", b"[1,2]", b'{"id":"x"}', b""):
        assert set_model(payload, NEW) == payload


def test_frame_splitter_holds_back_only_partial_frames():
    f = FrameSplitter()
    assert f.feed(b"data: {}\n\nda") == [b"data: {}\n\n"]
    assert f.feed(b"ta: 1\r\n\r\ndata: [DONE]\n") == [b"data: 1\r\n\r\n"]
    assert f.feed(b"\n") == [b"data: [DONE]\n\n"]
    assert f.flush() == b""


def test_data_payload_span():
    frame = b'data: {"a":1}\n\n'
    start, end = data_payload(frame)
    assert frame[start:end] == b'{"a":1}'
    assert data_payload(b": comment\n\n") is None


def test_prepare_unmapped_sends_original_bytes():
    body = b'{"messages":[],"model":"m","x":{"deep":[1,2]}}'
    p = prepare("/v1/chat/completions", body, {"gpt-4": "m"})
    assert p.body is body and p.response is None and not p.stream


def test_prepare_mapped_rewrites_model_only_and_maps_back_in_stream():
    body = json.dumps({"messages": [{"role": "user", "content": "gpt-4"}], "model": "gpt-4", "stream": True, "n": 1}).encode()
    p = prepare("/v1/chat/completions", body, {"gpt-4": "m"})
    sent = json.loads(p.body)
    assert sent == {**json.loads(body), "model": "m"} and p.stream
    s = p.response.stream()
    out = (
        s.feed(b'data: {"id":"1","model":"m","choices":[{"delta":{"content":"m"}}]}\n\ndata: {"id":"2","mod')
        + s.feed(b'el":"m"}\n\ndata: [DONE]\n\n')
        + s.close()
    )
    frames = out.split(b"\n\n")
    assert json.loads(frames[0][6:]) == {"id": "1", "model": "gpt-4", "choices": [{"delta": {"content": "m"}}]}
    assert json.loads(frames[1][6:])["model"] == "gpt-4"
    assert frames[2] == b"data: [DONE]"


@pytest.mark.parametrize(
    "body, param",
    [
        (b"[]", None),
        (b"{", None),
        (b'{"messages":[]}', "model"),
        (b'{"model":"","messages":[]}', "model"),
        (b'{"model":"m","messages":{}}', "messages"),
        (b'{"model":"m"}', "messages"),
        (b'{"model":"m","messages":[],"stream":1}', "stream"),
    ],
)
def test_prepare_refuses_bad_requests_naming_the_field(body, param):
    with pytest.raises(RequestError) as err:
        prepare("/v1/chat/completions", body, {})
    assert err.value.param == param


def test_whole_frames():
    from devstral_translate.sse import whole_frames

    assert whole_frames(b"") == 0 and whole_frames(b"d") == 0 and whole_frames(b"data: 1\n") == 0
    assert whole_frames(b"data: 1\n\ndata: 2") == 9
    assert whole_frames(b"data: 1\r\n\r\nda") == 11


@pytest.mark.parametrize("cut", [1, 5, 50, None])
@pytest.mark.parametrize("sep", [b"\n\n", b"\r\n\r\n"])
def test_rename_stream_bulk_and_per_frame_paths_agree(cut, sep):
    """Every frame renamed whatever the chunking, separators and spacing; content untouched."""
    frames = [
        b'data: {"id":"1","model":"m","choices":[{"delta":{"content":"\\"model\\":\\"m\\""}}]}',
        b'data: {"id":"2", "model": "m","choices":[]}',  # spaced: the per-frame path
        b'data: {"id":"3","model":"m","choices":[]}',
        b"data: [DONE]",
    ]
    stream = sep.join(frames) + sep
    p = prepare("/v1/chat/completions", b'{"model":"gpt-4","messages":[],"stream":true}', {"gpt-4": "m"})
    s = p.response.stream()
    step = cut or len(stream)
    out = b"".join(s.feed(stream[i : i + step]) for i in range(0, len(stream), step)) + s.close()
    got = [f for f in out.split(sep) if f]
    assert got[-1] == b"data: [DONE]"
    docs = [json.loads(f[6:]) for f in got[:-1]]
    assert [d["model"] for d in docs] == ["gpt-4"] * 3
    assert docs[0]["choices"][0]["delta"]["content"] == '"model":"m"'


def test_invalid_utf8_anywhere_is_refused():
    for body in (b'{"model":"m\xff","messages":[]}', b'{"model":"m","messages":[{"role":"user","content":"\xe5\x00"}]}'):
        with pytest.raises(RequestError):
            prepare("/v1/chat/completions", body, {})
