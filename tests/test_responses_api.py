"""The Responses API end to end: the official OpenAI SDK (`client.responses`) -> proxy -> a
simulated vLLM that judges every chat request with mistral-common, for three tokenizer
generations, structured and raw `[TOOL_CALLS]` replies: Codex-shaped tool loops, parallel
calls, images, reasoning, previous_response_id, stored responses, errors."""

import json

import openai
import pytest

from tests.conversations import SCREENSHOT
from tests.support import SimThread, http

SHELL = {
    "type": "function",
    "name": "shell",
    "description": "Run a shell command.",
    "parameters": {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]},
}
READ = {"type": "function", "name": "read_file", "parameters": {"type": "object", "properties": {"path": {"type": "string"}}}}


@pytest.fixture
def client(front_sim, start_proxy):
    p = start_proxy(
        backends={"vllm": {"url": front_sim.url, "dialect": "mistral", "tokenizer_version": front_sim.behavior.generation}},
        model_mapping={"devstral": "devstral-sim"},
    )
    c = openai.OpenAI(base_url=p.url + "/v1", api_key="x", max_retries=0)
    c.proxy = p
    return c


def streamed(client, **kwargs):
    """(the events, the final Response) of a streamed create."""
    events = list(client.responses.create(stream=True, **kwargs))
    numbers = [e.sequence_number for e in events]
    assert numbers == list(range(len(events)))
    assert events[0].type == "response.created" and events[1].type == "response.in_progress"
    assert events[-1].type in ("response.completed", "response.incomplete")
    return events, events[-1].response


def create(client, stream, **kwargs):
    if stream:
        return streamed(client, **kwargs)[1]
    return client.responses.create(**kwargs)


def calls_of(response):
    return [item for item in response.output if item.type == "function_call"]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_codex_shaped_tool_loop_with_previous_response_id(client, front_sim, stream):
    first = create(client, stream, model="devstral", instructions="You are a coding agent.", input="List the files.", tools=[SHELL])
    assert first.model == "devstral" and first.status == "completed"
    [call] = calls_of(first)
    assert call.name == "shell" and json.loads(call.arguments) == {"command": "value of command"}
    assert first.usage.input_tokens > 0 and first.usage.output_tokens > 0
    # The follow-up names its predecessor and sends only the tool's output.
    second = create(
        client,
        stream,
        model="devstral",
        instructions="You are a coding agent.",
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "README.md\nsetup.py"}],
        tools=[SHELL],
    )
    assert second.output_text == front_sim.behavior.reply
    assert second.previous_response_id == first.id
    sent = front_sim.record.requests[-1]["messages"]  # what the strict backend accepted
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "tool"]
    assert sent[3]["content"] == "README.md\nsetup.py"
    assert sent[2]["tool_calls"][0]["function"]["name"] == "shell"


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_two_parallel_calls_sent_back_as_items(client, front_sim, stream):
    front_sim.behavior.tool_calls = 2
    first = create(client, stream, model="devstral", input="Look around.", tools=[SHELL, READ], store=False)
    calls = calls_of(first)
    assert [c.name for c in calls] == ["shell", "read_file"]
    assert len({c.call_id for c in calls}) == 2
    # Stateless, as Codex with store=false: the whole history goes back as items.
    history = [{"role": "user", "content": "Look around."}]
    history += [{"type": "function_call", "call_id": c.call_id, "name": c.name, "arguments": c.arguments} for c in calls]
    history += [{"type": "function_call_output", "call_id": c.call_id, "output": f"result {k}"} for k, c in enumerate(calls)]
    second = create(client, stream, model="devstral", input=history, tools=[SHELL, READ], store=False)
    assert second.output_text == front_sim.behavior.reply
    sent = front_sim.record.requests[-1]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool", "tool"]
    assert len(sent[1]["tool_calls"]) == 2


def test_stream_helper_gives_the_final_response(client, front_sim):
    with client.responses.stream(model="devstral", input="Hi", tools=[SHELL]) as stream:
        events = [e.type for e in stream]
        final = stream.get_final_response()
    assert "response.function_call_arguments.delta" in events
    assert "response.output_item.done" in events
    assert calls_of(final)[0].name == "shell"


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_reasoning_comes_back_as_an_item_and_goes_back_in(client, front_sim, stream):
    front_sim.behavior.tool_mode = None
    front_sim.behavior.think = "The user greets me."
    first = create(client, stream, model="devstral", input="Hello")
    kinds = [item.type for item in first.output]
    assert kinds == ["reasoning", "message"]
    assert first.output[0].content[0].text == "The user greets me."
    assert first.output_text == front_sim.behavior.reply
    items = [{"role": "user", "content": "Hello"}, first.output[0].model_dump(exclude_none=True), first.output[1].model_dump(exclude_none=True)]
    items.append({"role": "user", "content": "And now?"})
    second = create(client, stream, model="devstral", input=items, store=False)
    assert second.status == "completed"
    assert [m["role"] for m in front_sim.record.requests[-1]["messages"]] == ["user", "assistant", "user"]


def test_image_input_reaches_the_backend(client, front_sim):
    front_sim.behavior.tool_mode = None
    content = [{"type": "input_text", "text": "What is this?"}, {"type": "input_image", "image_url": SCREENSHOT}]
    reply = client.responses.create(model="devstral", input=[{"role": "user", "content": content}])
    assert reply.output_text == front_sim.behavior.reply
    parts = front_sim.record.requests[-1]["messages"][0]["content"]
    assert [p["type"] for p in parts] == ["text", "image_url"]


def test_max_output_tokens_makes_it_incomplete(client, front_sim):
    front_sim.behavior.tool_mode = None
    reply = client.responses.create(model="devstral", input="Hi", max_output_tokens=3)
    assert reply.status == "incomplete" and reply.incomplete_details.reason == "max_output_tokens"
    events, final = streamed(client, model="devstral", input="Hi", max_output_tokens=3)
    assert events[-1].type == "response.incomplete" and final.incomplete_details.reason == "max_output_tokens"


def test_stored_response_get_and_delete(client, front_sim):
    front_sim.behavior.tool_mode = None
    reply = client.responses.create(model="devstral", input="Hi")
    got = client.responses.retrieve(reply.id)
    assert got.id == reply.id and got.output_text == reply.output_text
    client.responses.delete(reply.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(reply.id)
    with pytest.raises(openai.NotFoundError) as exc:
        client.responses.create(model="devstral", input="again", previous_response_id=reply.id)
    assert exc.value.body["param"] == "previous_response_id"


def test_unsupported_fields_are_named(client, front_sim):
    with pytest.raises(openai.BadRequestError) as exc:
        client.responses.create(model="devstral", input="Hi", tools=[{"type": "web_search"}])
    assert exc.value.body["param"] == "tools[0].type" and "web_search" in exc.value.body["message"]
    with pytest.raises(openai.BadRequestError) as exc:
        client.responses.create(model="devstral", input="Hi", background=True)
    assert exc.value.body["param"] == "background"
    with pytest.raises(openai.BadRequestError) as exc:
        client.responses.create(model="devstral", input=[{"type": "computer_call_output", "call_id": "x"}])
    assert exc.value.body["param"] == "input[0].type"
    assert not front_sim.record.requests  # none of them reached the backend


def test_backend_refusal_is_an_openai_error(client, front_sim):
    with pytest.raises(openai.NotFoundError) as exc:
        client.responses.create(model="no-such-model", input="Hi")
    assert "no-such-model" in exc.value.body["message"]  # the backend's own 404, in OpenAI's shape


@pytest.fixture(scope="module")
def plain_sim():
    s = SimThread()
    yield s
    s.stop()


def test_unprefixed_route_and_other_keys_cannot_read(plain_sim, start_proxy):
    p = start_proxy(plain_sim.url, authentication={"api_keys": ["key-a", "key-b"]})
    a = http("POST", p.url + "/responses", {"model": "mistral-sim", "input": "Hi"}, {"authorization": "Bearer key-a"})
    assert a.status == 200 and a.json()["object"] == "response"
    rid = a.json()["id"]
    assert http("GET", p.url + f"/v1/responses/{rid}", headers={"authorization": "Bearer key-a"}).status == 200
    assert http("GET", p.url + f"/v1/responses/{rid}", headers={"authorization": "Bearer key-b"}).status == 404
    assert http("DELETE", p.url + f"/v1/responses/{rid}", headers={"authorization": "Bearer key-b"}).status == 404
    assert http("GET", p.url + f"/v1/responses/{rid}", headers={"authorization": "Bearer key-a"}).status == 200
