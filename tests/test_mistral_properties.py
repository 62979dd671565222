"""Property tests: random OpenAI-shaped conversations translate into requests mistral-common
accepts, or get the proxy's clear 400; arbitrary JSON never raises anything else."""

import base64
import io
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from bench.mistral_judge import problem
from devstral_translate.errors import RequestError
from devstral_translate.mistral import MistralDialect
from tests.conversations import all_text, texts_sent

text = st.text(max_size=30)
_png = io.BytesIO()
Image.new("RGB", (2, 2), "red").save(_png, "PNG")
PNG_URL = "data:image/png;base64," + base64.b64encode(_png.getvalue()).decode()
ids = st.one_of(st.just(""), st.just("call_0"), st.text(min_size=1, max_size=12), st.uuids().map(str), st.text("abcXYZ019", min_size=9, max_size=9))
names = st.one_of(st.sampled_from(["get_weather", "fs.read_file", "a b", "ü-tool", "x" * 80]), st.text(min_size=1, max_size=10))
arguments = st.one_of(st.none(), text, st.dictionaries(st.text(max_size=5), st.integers(), max_size=3), st.just('{"a": 1'))
part = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": text}, optional={"cache_control": st.just({"type": "ephemeral"})}),
    st.fixed_dictionaries({"type": st.just("image_url"), "image_url": st.fixed_dictionaries({"url": st.just(PNG_URL)})}),
    st.fixed_dictionaries({"type": st.just("refusal"), "refusal": text}),
)
content = st.one_of(st.none(), text, st.just("   "), st.lists(part, max_size=3))
tool_call = st.fixed_dictionaries(
    {"function": st.fixed_dictionaries({"name": names, "arguments": arguments})},
    optional={"id": ids, "type": st.just("function"), "index": st.integers(0, 3)},
)
extras = st.fixed_dictionaries({}, optional={"name": text, "refusal": st.none(), "annotations": st.just([]), "reasoning_content": text, "audio": st.none()})


@st.composite
def message(draw):
    role = draw(st.sampled_from(["system", "developer", "user", "assistant", "assistant", "tool", "tool", "function"]))
    msg = {"role": role, "content": draw(content), **draw(extras)}
    if role == "assistant" and draw(st.booleans()):
        msg["tool_calls"] = draw(st.lists(tool_call, min_size=1, max_size=3))
    if role == "tool":
        msg["tool_call_id"] = draw(ids)
    if role == "function":
        msg["name"] = draw(names)
    return msg


tools = st.lists(
    st.fixed_dictionaries(
        {
            "type": st.just("function"),
            "function": st.fixed_dictionaries({"name": names}, optional={"parameters": st.just({"type": "object", "properties": {}}), "strict": st.booleans()}),
        }
    ),
    max_size=3,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages=st.lists(message(), min_size=1, max_size=8), tool_list=tools)
def test_random_conversations_translate_or_get_a_clear_400(messages, tool_list):
    body = json.dumps({"model": "acme/unknown", "messages": messages, "tools": tool_list}).encode()
    try:
        prepared = MistralDialect().prepare("/v1/chat/completions", body, {})
    except RequestError as exc:
        assert exc.message and (exc.param is None or exc.param.startswith(("messages", "tools")))
        return
    sent = json.loads(prepared.body)
    assert problem(sent) is None, (problem(sent), sent)
    contents = all_text(sent["messages"])
    for t in texts_sent(messages):
        assert t in contents


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(text, children, max_size=4),
    max_leaves=20,
)
top_keys = st.sampled_from(["model", "messages", "tools", "tool_choice", "functions", "function_call", "stream", "stream_options", "reasoning_effort", "x"])


@settings(max_examples=300, deadline=None)
@given(doc=st.one_of(json_values, st.dictionaries(top_keys, json_values, max_size=6)), model=st.booleans())
def test_arbitrary_json_only_ever_raises_the_defined_error(doc, model):
    if model and isinstance(doc, dict):
        doc["model"] = "m"
    try:
        MistralDialect().prepare("/v1/chat/completions", json.dumps(doc).encode(), {})
    except RequestError:
        pass


@settings(max_examples=500, deadline=None)
@given(
    body=st.one_of(
        st.binary(max_size=300), json_values.map(lambda v: json.dumps({"model": "m", "messages": [v]}).encode()).map(lambda b: b[:-3] + bytes([0xE5]) + b[-3:])
    )
)
def test_arbitrary_bytes_only_ever_raise_the_defined_error(body):
    from devstral_translate.openai import OpenAIDialect

    for dialect in (MistralDialect(), OpenAIDialect()):
        try:
            dialect.prepare("/v1/chat/completions", body, {"m": "x"})
        except RequestError:
            pass
