"""The Mistral dialect end to end: the OpenAI SDK -> proxy -> a simulated vLLM that judges
every request with mistral-common (as vLLM --tokenizer-mode mistral does)."""

import json

import openai
import pytest

from bench.simulator import Behavior
from devstral_translate.mistral.names import VALID_ID
from tests.conversations import READ, TABLE, WRITE
from tests.support import SimThread, http

# (served model, the generation the backend judges with): a model whose name tells the
# proxy its generation, and one it knows nothing about (then every generation must accept).
BACKENDS = {"devstral-2507": ("mistralai/Devstral-Small-2507", "v11"), "unknown-model": ("acme/mistral-finetune", None)}


@pytest.fixture(scope="module", params=list(BACKENDS))
def strict_sim(request):
    model, generation = BACKENDS[request.param]
    s = SimThread(Behavior(strict_mistral=True, generation=generation, models=[model]))
    yield s
    s.stop()


@pytest.fixture
def sim_behavior(strict_sim):
    saved = dict(strict_sim.behavior.__dict__)
    yield strict_sim.behavior
    strict_sim.behavior.__dict__.update(saved)


@pytest.fixture
def client(strict_sim, start_proxy):
    p = start_proxy(backends={"vllm": {"url": strict_sim.url, "dialect": "mistral"}}, model_mapping={"devstral": strict_sim.behavior.models[0]})
    c = openai.OpenAI(base_url=p.url + "/v1", api_key="x", max_retries=0)
    c.proxy = p
    return c


def create(client, messages, extra, stream):
    kwargs = {"model": "devstral", "messages": messages, "extra_body": dict(extra)}
    if stream:
        return list(client.chat.completions.create(stream=True, **kwargs))
    return client.chat.completions.create(**kwargs)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("name", list(TABLE))
def test_table_goes_through_strict_backend(client, strict_sim, name, stream):
    messages, extra = TABLE[name]
    reply = create(client, messages, extra, stream)
    if stream:
        assert {c.model for c in reply} == {"devstral"}
        text = "".join(c.choices[0].delta.content or "" for c in reply if c.choices)
    else:
        assert reply.model == "devstral"
        text = reply.choices[0].message.content
    assert text == strict_sim.behavior.reply


def test_strict_backend_really_refuses_untranslated_requests(strict_sim):
    messages, extra = TABLE["sdk model_dump replay"]
    r = http("POST", strict_sim.url + "/v1/chat/completions", {"model": strict_sim.behavior.models[0], "messages": messages, **extra})
    assert r.status == 400 and "Extra inputs are not permitted" in r.json()["message"]


def test_untranslatable_conversation_is_a_proxy_400_naming_the_message(client):
    with pytest.raises(openai.BadRequestError) as err:
        create(client, [{"role": "user", "content": "x"}, {"role": "oracle", "content": "y"}], {}, False)
    assert err.value.body["param"] == "messages[1]" and "unknown role" in err.value.body["message"]
    assert err.value.body["code"] == "invalid_conversation"


def _calls_from_stream(chunks):
    calls: dict[int, dict] = {}
    firsts = []
    for c in chunks:
        for tc in (c.choices[0].delta.tool_calls or []) if c.choices else []:
            if tc.index not in calls:
                firsts.append(tc)
                calls[tc.index] = {"id": tc.id, "name": tc.function.name, "arguments": ""}
            else:
                assert tc.id is None and (tc.function.name is None)
            calls[tc.index]["arguments"] += tc.function.arguments or ""
    for tc in firsts:
        assert tc.id and tc.type == "function" and tc.function.name
    return [calls[k] for k in sorted(calls)]


@pytest.mark.parametrize("mode", ["raw-v3", "raw-v11", "structured"])
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_tool_calls_come_back_structured_with_client_names(client, sim_behavior, mode, stream):
    sim_behavior.tool_mode = mode
    sim_behavior.tool_calls = 2
    sim_behavior.preamble = "Let me look. "
    messages = [{"role": "user", "content": "Copy a.py to b.py"}]
    reply = create(client, messages, {"tools": [READ, WRITE]}, stream)
    if stream:
        calls = _calls_from_stream(reply)
        finish = [c.choices[0].finish_reason for c in reply if c.choices and c.choices[0].finish_reason]
        content = "".join(c.choices[0].delta.content or "" for c in reply if c.choices)
    else:
        msg = reply.choices[0].message
        calls = [{"id": t.id, "name": t.function.name, "arguments": t.function.arguments} for t in msg.tool_calls]
        finish = [reply.choices[0].finish_reason]
        content = msg.content or ""
    assert [c["name"] for c in calls] == ["fs.read_file", "fs.write_file"]
    assert json.loads(calls[0]["arguments"]) == {"path": "value of path"}
    assert finish == ["tool_calls"]
    assert content.strip() == "Let me look."
    assert "[TOOL_CALLS]" not in content and "[ARGS]" not in content
    assert all(VALID_ID.fullmatch(c["id"]) for c in calls)

    # the reply, replayed as the next turn with results, passes the strict backend
    sim_behavior.tool_mode = None
    turn = [
        {
            "role": "assistant",
            "content": content or None,
            "tool_calls": [{"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}} for c in calls],
        }
    ]
    turn += [{"role": "tool", "tool_call_id": c["id"], "content": "ok"} for c in calls]
    again = create(client, messages + turn + [{"role": "user", "content": "thanks"}], {"tools": [READ, WRITE]}, False)
    assert again.choices[0].message.content == sim_behavior.reply


def test_openai_dialect_backend_is_untouched_by_mistral_rules(sim, start_proxy):
    p = start_proxy(sim.url)
    c = openai.OpenAI(base_url=p.url + "/v1", api_key="x", max_retries=0)
    c.chat.completions.create(model="gpt-4", messages=[{"role": "user", "content": "x", "name": "bob"}])
    assert sim.record.requests[-1]["messages"] == [{"role": "user", "content": "x", "name": "bob"}]


@pytest.fixture
def checked_client(strict_sim, sim_behavior, client):
    """The strict backend with vLLM's own request checks on, as newer vLLM has them."""
    sim_behavior.vllm_checks = True
    return client


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_second_round_shapes_pass_a_newer_vllm(checked_client, strict_sim, stream):
    weather = TABLE["user after tool"][1]["tools"][0]
    cases = [
        ([{"role": "user", "content": "Structured, please."}], {"tools": [weather], "tool_choice": "any"}),  # langchain-mistralai
        TABLE["prefill"],
        TABLE["parallel calls as one assistant message each"],
        TABLE["assistant text before and beside calls"],
    ]
    for messages, extra in cases:
        reply = create(checked_client, messages, extra, stream)
        text = "".join(c.choices[0].delta.content or "" for c in reply if c.choices) if stream else reply.choices[0].message.content
        assert text == strict_sim.behavior.reply
    sent = strict_sim.record.requests[-2]
    assert [m["content"] for m in sent["messages"] if m["role"] == "tool"] == ["sunny in Paris", "rainy in Rome"]
    # what a JavaScript client sends when it cuts a string mid-emoji (json.dumps escapes it)
    body = json.dumps({"model": "devstral", "messages": [{"role": "user", "content": "cut mid-emoji \ud83d"}], "stream": stream}).encode()
    assert b"\\ud83d" in body
    r = http("POST", checked_client.proxy.url + "/v1/chat/completions", body, headers={"content-type": "application/json"})
    assert r.status == 200, r.body


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("split, spaced", [(False, False), (True, False), (False, True), (True, True)], ids=["plain", "split-markers", "spaced-json", "both"])
def test_prose_after_a_raw_call_comes_back_as_content(client, sim_behavior, stream, split, spaced):
    """Prose after the arguments, markers cut across deltas, frames that are not compact
    JSON: the client gets one call, its arguments, the prose as content, tool_calls."""
    sim_behavior.tool_mode = "raw-v11"
    sim_behavior.trailing = "\n\nLet me search for that."
    sim_behavior.split_markers, sim_behavior.spaced_frames, sim_behavior.piece = split, spaced, 3
    kwargs = {"model": "devstral", "messages": [{"role": "user", "content": "find TODOs"}], "tools": [READ]}
    if stream:
        chunks = list(client.chat.completions.create(stream=True, **kwargs))
        calls = _calls_from_stream(chunks)
        content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        finish = next(c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason)
        assert [c["name"] for c in calls] == ["fs.read_file"] and json.loads(calls[0]["arguments"]) == {"path": "value of path"}
        assert "Let me search for that." in content and "[" not in content and finish == "tool_calls"
        return
    msg = client.chat.completions.create(**kwargs).choices[0]
    (call,) = msg.message.tool_calls
    assert call.function.name == "fs.read_file" and json.loads(call.function.arguments) == {"path": "value of path"}
    assert "Let me search for that." in (msg.message.content or "") and msg.finish_reason == "tool_calls"


def test_the_generation_is_read_from_the_served_models_root(start_proxy):
    """`--served-model-name devstral` hides the generation; vLLM's /v1/models `root` tells it."""
    sim = SimThread(Behavior(strict_mistral=True, generation="v11", models=["devstral"], roots={"devstral": "mistralai/Devstral-Small-2507"}))
    try:
        p = start_proxy(backends={"vllm": {"url": sim.url, "dialect": "mistral"}}, model_mapping={})
        client = openai.OpenAI(base_url=p.url + "/v1", api_key="x", max_retries=0)
        messages, extra = TABLE["assistant text before and beside calls"]
        assert create(client, messages, extra, False).choices[0].message.content == sim.behavior.reply
        sent = sim.record.requests[-1]["messages"]
        with_calls = [m for m in sent if m.get("tool_calls")]
        assert with_calls[0]["content"] == "Checking Paris first."  # v11: the text stays beside its call
        health = http("GET", p.url + "/health").json()
        assert health["backends"]["vllm"]["generations"] == {"devstral": "v11"}
    finally:
        sim.stop()


@pytest.mark.parametrize(
    "model, generation",
    [
        ("mistralai/Devstral-Small-2-24B-Instruct-2512", "v13"),
        ("mistralai/Devstral-2-123B-Instruct-2512", "v13"),
        ("mistralai/Mistral-Small-24B-Instruct-2501", "v7"),
        ("mistralai/Mistral-Small-3.1-24B-Instruct-2503", "v7"),
        ("mistralai/Mistral-Large-Instruct-2411", "v7"),
        ("mistralai/Mistral-Small-3.2-24B-Instruct-2506", "v11"),
        ("mistralai/Magistral-Small-2509", "v11"),
        ("mistralai/Pixtral-12B-2409", "v3"),
        ("mistralai/Ministral-8B-Instruct-2410", "v3"),
        ("mistralai/Mistral-Nemo-Instruct-2407", "v3"),
        ("devstral", None),
    ],
)
def test_official_model_ids_name_their_generation(model, generation):
    from devstral_translate.mistral import guess_generation

    assert guess_generation(model) == generation


def test_the_bridge_turn_is_sent_only_to_a_backend_that_needs_it(start_proxy):
    """A user turn right after a tool result: newer mistral-common takes it as it is; an older
    one refuses it, the proxy sends that request again with the bridge and remembers."""
    messages, extra = TABLE["user after tool"]
    for old, sent_first in ((False, 1), (True, 2)):
        sim = SimThread(Behavior(strict_mistral=True, old_mistral_common=old, models=["mistral-sim"]))
        try:
            p = start_proxy(backends={"vllm": {"url": sim.url, "dialect": "mistral"}}, model_mapping={"devstral": "mistral-sim"})
            client = openai.OpenAI(base_url=p.url + "/v1", api_key="x", max_retries=0)
            assert create(client, messages, extra, False).choices[0].message.content == sim.behavior.reply
            assert len(sim.record.requests) == sent_first
            bridged = [m["role"] for m in sim.record.requests[-1]["messages"]][-2:] == ["assistant", "user"]
            assert bridged is old  # no invented turn where the backend takes the order
            chunks = create(client, messages, extra, True)  # learnt: one request from now on
            assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == sim.behavior.reply
            assert len(sim.record.requests) == sent_first + 1
        finally:
            sim.stop()


def test_the_bridge_turn_by_configuration(start_proxy, strict_sim):
    messages, extra = TABLE["user after tool"]
    p = start_proxy(
        backends={"vllm": {"url": strict_sim.url, "dialect": "mistral", "bridge": "always"}}, model_mapping={"devstral": strict_sim.behavior.models[0]}
    )
    client = openai.OpenAI(base_url=p.url + "/v1", api_key="x", max_retries=0)
    create(client, messages, extra, False)
    assert [m["role"] for m in strict_sim.record.requests[-1]["messages"]][-2:] == ["assistant", "user"]


def test_the_readme_error_example_is_what_the_proxy_prints(client):
    import re

    from tests.support import documentation

    readme = documentation()
    example = re.search(r"`(\{\"error\":\{\"message\":\"messages\[3\]: unknown role 'oracle'\".*?\}\})`", readme).group(1)
    messages = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}, {"role": "oracle", "content": "d"}]
    r = http("POST", client.proxy.url + "/v1/chat/completions", {"model": "devstral", "messages": messages})
    assert r.status == 400 and r.body.decode() == example
