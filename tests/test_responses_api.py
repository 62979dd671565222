"""The Responses API end to end: the official OpenAI SDK (`client.responses`) -> proxy -> a
simulated vLLM that judges every chat request with mistral-common, for three tokenizer
generations, structured and raw `[TOOL_CALLS]` replies: Codex-shaped tool loops, parallel
calls, images, reasoning, previous_response_id, stored responses, errors."""

import json

import openai
import pytest

from devstral_proxy import fronts
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
        client.responses.create(model="devstral", input="Hi", background=True)
    assert exc.value.body["param"] == "background"
    with pytest.raises(openai.BadRequestError) as exc:
        client.responses.create(model="devstral", input=[{"type": "frobnicate_call", "call_id": "x"}])
    assert exc.value.body["param"] == "input[0].type"
    assert not front_sim.record.requests  # none of them reached the backend


def test_hosted_tools_are_dropped_and_the_turn_goes_through(client, front_sim, caplog):
    front_sim.behavior.tool_mode = None
    fronts._dropped.seen.clear()  # one line per kind per process: this test sees the first
    history = [
        {"type": "message", "role": "user", "content": "Look it up."},
        {"type": "web_search_call", "id": "ws_1", "status": "completed", "action": {"type": "search", "query": "x"}},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Found it."}]},
        {"type": "message", "role": "user", "content": "Thanks."},
    ]
    hosted = [{"type": "web_search", "external_web_access": False}, {"type": "image_generation"}, {"type": "file_search", "vector_store_ids": ["v"]}]
    reply = client.responses.create(model="devstral", input=history, tools=[*hosted, READ], include=["web_search_call.action.sources"])
    assert reply.status == "completed"
    [sent] = front_sim.record.requests
    assert [t["function"]["name"] for t in sent["tools"]] == ["read_file"]
    assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "user"]
    assert "left out 'web_search'" in caplog.text and "left out 'web_search_call'" in caplog.text
    caplog.clear()
    client.responses.create(model="devstral", input=history, tools=hosted)
    assert "left out" not in caplog.text  # once per kind, not per request
    assert "tools" not in front_sim.record.requests[-1]


def test_hosted_tools_refused_when_configured(front_sim, start_proxy):
    p = start_proxy(
        backends={"vllm": {"url": front_sim.url, "dialect": "mistral"}}, model_mapping={"devstral": "devstral-sim"}, responses={"hosted_tools": "refuse"}
    )
    c = openai.OpenAI(base_url=p.url + "/v1", api_key="x", max_retries=0)
    with pytest.raises(openai.BadRequestError) as exc:
        c.responses.create(model="devstral", input="Hi", tools=[{"type": "web_search"}])
    assert exc.value.body["param"] == "tools[0].type" and "web_search" in exc.value.body["message"]
    assert not front_sim.record.requests


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


def test_without_keys_a_stored_response_belongs_to_the_address_that_made_it(plain_sim, start_proxy):
    """Authentication off: the caller is its address (here named by a trusted proxy), so another
    address that learns the id can neither read, continue nor delete the response."""
    p = start_proxy(plain_sim.url, server={"trusted_proxies": ["127.0.0.1/32"]})
    alice, mallory = {"x-forwarded-for": "10.0.0.1"}, {"x-forwarded-for": "10.0.0.2"}
    a = http("POST", p.url + "/v1/responses", {"model": "mistral-sim", "input": "Hi"}, alice)
    assert a.status == 200
    rid = a.json()["id"]
    assert http("GET", p.url + f"/v1/responses/{rid}", headers=mallory).status == 404
    assert http("DELETE", p.url + f"/v1/responses/{rid}", headers=mallory).status == 404
    follow = http("POST", p.url + "/v1/responses", {"model": "mistral-sim", "input": "and?", "previous_response_id": rid}, mallory)
    assert follow.status == 404 and follow.json()["error"]["param"] == "previous_response_id"
    assert http("GET", p.url + f"/v1/responses/{rid}", headers=alice).status == 200
    assert http("POST", p.url + "/v1/responses", {"model": "mistral-sim", "input": "and?", "previous_response_id": rid}, alice).status == 200


def test_a_stored_history_obeys_the_request_size_limit(plain_sim, start_proxy):
    """previous_response_id cannot grow a request past max_body_bytes: the expanded request
    is refused with a 413 naming the history, before anything reaches the backend."""
    p = start_proxy(plain_sim.url, server={"max_body_bytes": 8192})
    first = http("POST", p.url + "/v1/responses", {"model": "mistral-sim", "input": "x" * 5000})
    assert first.status == 200
    rid = first.json()["id"]
    from tests.support import eventually

    eventually(lambda: http("GET", p.url + f"/v1/responses/{rid}").status == 200, what="the response stored")
    before = len(plain_sim.record.requests)
    follow = http("POST", p.url + "/v1/responses", {"model": "mistral-sim", "input": "y" * 4000, "previous_response_id": rid})
    assert follow.status == 413 and follow.json()["error"]["param"] == "previous_response_id"
    assert "stored under previous_response_id" in follow.json()["error"]["message"]
    assert len(plain_sim.record.requests) == before
    short = http("POST", p.url + "/v1/responses", {"model": "mistral-sim", "input": "and?", "previous_response_id": rid})
    assert short.status == 200  # within the limit, the history goes


NAMESPACE = {
    "type": "namespace",
    "name": "multi_agent_v1",
    "description": "Sub-agents.",
    "tools": [{"type": "function", "name": "spawn_agent", "parameters": {"type": "object", "properties": {"message": {"type": "string"}}}}],
}
GRAMMAR = 'start: "*** Begin Patch" LF hunk+ "*** End Patch"\n%import common.LF'
EDIT = {"type": "custom", "name": "edit", "description": "Edit files.", "format": {"type": "grammar", "syntax": "lark", "definition": GRAMMAR}}
PATCH = "*** Begin Patch\n*** Add File: a.txt\n+hi\n*** End Patch"
SCRIPTED_CALLS = [
    {"name": "multi_agent_v1__spawn_agent", "arguments": {"message": "go"}},
    {"name": "edit", "arguments": {"input": PATCH}},
    {"name": "local_shell", "arguments": {"command": ["ls", "-la"], "working_directory": "/tmp"}},
    {"name": "shell", "arguments": {"commands": ["pwd"], "timeout_ms": 1000}},
]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_every_client_tool_kind_round_trips(client, front_sim, stream):
    """Namespaced functions, custom (grammar) tools and the client-run built-ins go to the
    model as functions and come back as their own item types; their outputs go back in."""
    tools = [NAMESPACE, EDIT, {"type": "local_shell"}, {"type": "shell"}]
    front_sim.behavior.script = [{"calls": SCRIPTED_CALLS}, {"text": "All done."}]
    first = create(client, stream, model="devstral", input="Work.", tools=tools)
    offered = {t["function"]["name"]: t["function"] for t in front_sim.record.requests[0]["tools"]}
    assert set(offered) == {"multi_agent_v1__spawn_agent", "edit", "local_shell", "shell"}
    assert GRAMMAR in offered["edit"]["description"] and offered["edit"]["parameters"]["required"] == ["input"]
    items = [i.to_dict() for i in first.output if i.type != "message"]
    assert [i["type"] for i in items] == ["function_call", "custom_tool_call", "local_shell_call", "shell_call"]
    fn, custom, local, shell = items
    assert (fn["name"], fn["namespace"], json.loads(fn["arguments"])) == ("spawn_agent", "multi_agent_v1", {"message": "go"})
    assert custom["name"] == "edit" and custom["input"] == PATCH
    assert local["action"]["type"] == "exec" and local["action"]["command"] == ["ls", "-la"] and local["action"]["working_directory"] == "/tmp"
    assert shell["action"]["commands"] == ["pwd"] and shell["action"]["timeout_ms"] == 1000
    outputs = [
        {"type": "function_call_output", "call_id": fn["call_id"], "output": "agent started"},
        {"type": "custom_tool_call_output", "call_id": custom["call_id"], "output": "patched"},
        {"type": "local_shell_call_output", "id": local["call_id"], "output": "a.txt"},
        {"type": "shell_call_output", "call_id": shell["call_id"], "output": [{"stdout": "/tmp\n", "stderr": "", "outcome": {"type": "exit", "exit_code": 0}}]},
    ]
    second = create(client, stream, model="devstral", input=["Work.", *items, *outputs][1:], tools=tools)
    assert second.output_text == "All done."
    sent = front_sim.record.requests[-1]["messages"]  # the strict backend took it: mistral-common passed it
    [assistant] = [m for m in sent if m["role"] == "assistant"]
    assert [c["function"]["name"] for c in assistant["tool_calls"]] == ["multi_agent_v1__spawn_agent", "edit", "local_shell", "shell"]
    assert json.loads(assistant["tool_calls"][1]["function"]["arguments"]) == {"input": PATCH}
    results = [m["content"] for m in sent if m["role"] == "tool"]
    assert results[:3] == ["agent started", "patched", "a.txt"] and "exit code 0" in results[3] and "/tmp" in results[3]


def test_client_run_tool_search_brings_its_tools_into_the_next_turn(client, front_sim):
    search = {
        "type": "tool_search",
        "execution": "client",
        "description": "Find tools.",
        "parameters": {"type": "object", "properties": {"query": {"type": "string"}}},
    }
    front_sim.behavior.script = [{"calls": [{"name": "tool_search", "arguments": {"query": "calendar"}}]}, {"text": "Booked."}]
    first = client.responses.create(model="devstral", input="Book a meeting.", tools=[search])
    [call] = [i.to_dict() for i in first.output if i.type == "tool_search_call"]
    assert call["arguments"] == {"query": "calendar"} and call["execution"] == "client"
    found = {"type": "function", "name": "create_event", "description": "Create an event.", "parameters": {"type": "object", "properties": {}}}
    output = {"type": "tool_search_output", "call_id": call["call_id"], "execution": "client", "status": "completed", "tools": [found]}
    second = client.responses.create(model="devstral", input=[{"role": "user", "content": "Book a meeting."}, call, output], tools=[search])
    assert second.output_text == "Booked."
    sent = front_sim.record.requests[-1]
    assert [t["function"]["name"] for t in sent["tools"]] == ["tool_search", "create_event"]
    assert "create_event" in [m for m in sent["messages"] if m["role"] == "tool"][0]["content"]
