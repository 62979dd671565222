"""The official openai SDK against a live proxy in front of the simulated vLLM."""

import openai
import pytest

from devstral_proxy.local import LocalEndpoints
from tests.support import http


@pytest.fixture
def client(proxy):
    return openai.OpenAI(base_url=proxy.url + "/v1", api_key="sk-test", max_retries=0)


def test_chat_maps_model_both_ways(client, sim):
    r = client.chat.completions.create(model="gpt-4", messages=[{"role": "user", "content": "hi"}])
    assert r.model == "gpt-4"
    assert r.choices[0].message.content == sim.behavior.reply
    assert sim.record.requests[-1]["model"] == "mistral-sim"


def test_unmapped_model_passes_through(client, sim):
    r = client.chat.completions.create(model="mistral-sim", messages=[{"role": "user", "content": "hi"}])
    assert r.model == "mistral-sim"
    with pytest.raises(openai.NotFoundError) as err:
        client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "hi"}])
    assert "no-such-model" in err.value.message


def test_streaming_chat(client, sim):
    chunks = list(
        client.chat.completions.create(model="gpt-3.5-turbo", messages=[{"role": "user", "content": "hi"}], stream=True, stream_options={"include_usage": True})
    )
    assert {c.model for c in chunks} == {"gpt-3.5-turbo"}
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == sim.behavior.reply
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_completions(client, sim):
    r = client.completions.create(model="gpt-4", prompt="Once upon a time")
    assert r.model == "gpt-4"
    assert r.choices[0].text == sim.behavior.reply
    streamed = list(client.completions.create(model="gpt-4", prompt="x", stream=True))
    assert "".join(c.choices[0].text for c in streamed) == sim.behavior.reply
    assert {c.model for c in streamed} == {"gpt-4"}


def test_embeddings(client, sim):
    r = client.embeddings.create(model="gpt-4", input=["a", "b"])
    assert r.model == "gpt-4"
    assert len(r.data) == 2 and len(r.data[0].embedding) == sim.behavior.embedding_size


def test_models_lists_backend_models_and_aliases(client):
    ids = [m.id for m in client.models.list()]
    assert "mistral-sim" in ids
    assert "gpt-4" in ids and "gpt-3.5-turbo" in ids


def test_other_fields_reach_backend_unchanged(client, sim):
    client.chat.completions.create(
        model="gpt-4",
        messages=[{"role": "user", "content": 'say "model": "gpt-4" please'}],
        temperature=0.25,
        max_tokens=17,
        extra_body={"top_k": 5, "guided_json": {"type": "object"}},
    )
    got = sim.record.requests[-1]
    assert got["model"] == "mistral-sim"
    assert got["messages"] == [{"role": "user", "content": 'say "model": "gpt-4" please'}]
    assert (got["temperature"], got["max_tokens"], got["top_k"], got["guided_json"]) == (0.25, 17, 5, {"type": "object"})


def test_bad_requests_get_openai_errors(client, proxy):
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="gpt-4", messages="not a list")
    assert err.value.body["param"] == "messages"
    r = http("POST", proxy.url + "/v1/chat/completions", b"{not json")
    assert r.status == 400 and "not valid JSON" in r.json()["error"]["message"]
    r = http("POST", proxy.url + "/v1/chat/completions", {"messages": []})
    assert r.status == 400 and r.json()["error"]["param"] == "model"
    r = http("POST", proxy.url + "/v1/chat/completions", {"model": "gpt-4", "messages": [], "stream": "yes"})
    assert r.status == 400 and r.json()["error"]["param"] == "stream"
    r = http("GET", proxy.url + "/nowhere")
    assert r.status == 404 and r.json()["error"]["code"] == "not_found"
    r = http("GET", proxy.url + "/v1/chat/completions")
    assert r.status == 405 and r.headers["allow"] == "POST"


def test_other_v1_paths_are_relayed(proxy, sim):
    r = http("POST", proxy.url + "/v1/echo?x=1", b"raw body", headers={"x-custom": "7", "authorization": "Bearer client"})
    assert r.status == 200
    doc = r.json()
    assert (doc["method"], doc["path"], doc["body"]) == ("POST", "/v1/echo?x=1", "raw body")
    headers = {k.lower(): v for k, v in doc["headers"].items()}
    assert headers["x-custom"] == "7"
    assert "authorization" not in headers


def test_a_failing_task_handler_still_answers_500(proxy, monkeypatch):
    async def broken(self, conn):
        raise RuntimeError("bug")

    monkeypatch.setattr(LocalEndpoints, "_models", broken)
    r = http("GET", proxy.url + "/v1/models")
    assert r.status == 500 and r.json()["error"]["code"] == "internal_error"
    assert http("GET", proxy.url + "/health").status == 200


def test_a_base_url_without_v1_and_models_retrieve(proxy):
    bare = openai.OpenAI(base_url=proxy.url, api_key="x", max_retries=0)  # no /v1
    assert bare.chat.completions.create(model="gpt-4", messages=[{"role": "user", "content": "hi"}]).model == "gpt-4"
    assert "gpt-4" in [m.id for m in bare.models.list()]
    client = openai.OpenAI(base_url=proxy.url + "/v1", api_key="x", max_retries=0)
    alias = client.models.retrieve("gpt-4")
    assert alias.id == "gpt-4" and alias.owned_by == "devstral-proxy"
    assert client.models.retrieve("mistral-sim").id == "mistral-sim"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model")
