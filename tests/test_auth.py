"""`authentication.enabled / valid_api_keys` (the seed config's shape): Bearer keys, 401s."""

import openai
import pytest

from tests.support import http

CHAT = {"model": "gpt-4", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def guarded(sim, start_proxy):
    return start_proxy(sim.url, authentication={"enabled": True, "valid_api_keys": ["sk-one-key-abc", "sk-two-key-xyz"]})


@pytest.mark.parametrize("header", [None, "Bearer sk-one-key-abd", "Bearer ", "Basic sk-one-key-abc", "sk-one-key-abc"])
def test_wrong_missing_or_near_miss_keys_are_401(guarded, header):
    r = http("POST", guarded.url + "/v1/chat/completions", CHAT, headers={"authorization": header} if header else None)
    assert r.status == 401
    assert r.json()["error"]["code"] == "invalid_api_key"


def test_valid_keys_pass_and_are_not_forwarded(guarded, sim):
    client = openai.OpenAI(base_url=guarded.url + "/v1", api_key="sk-two-key-xyz", max_retries=0)
    assert client.chat.completions.create(**CHAT).model == "gpt-4"
    assert "authorization" not in {k.lower() for k in sim.record.headers[-1]}
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=guarded.url + "/v1", api_key="nope", max_retries=0).models.list()


def test_a_key_sent_as_x_api_key_is_not_forwarded_but_trace_context_is(guarded, sim):
    """Anthropic's clients send the key as x-api-key: a credential of the proxy's, never the
    backend's. W3C trace context goes on, so a vLLM that traces continues the client's trace."""
    trace = {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "tracestate": "vendor=x"}
    assert http("POST", guarded.url + "/v1/chat/completions", CHAT, headers={"x-api-key": "sk-one-key-abc", **trace}).status == 200
    sent = {k.lower(): v for k, v in sim.record.headers[-1].items()}
    assert "x-api-key" not in sent and "authorization" not in sent
    assert sent["traceparent"] == trace["traceparent"] and sent["tracestate"] == "vendor=x"


def test_health_needs_no_key(guarded):
    assert http("GET", guarded.url + "/health").status == 200


def test_keys_inline_and_from_a_file(sim, start_proxy, tmp_path):
    keys = tmp_path / "keys"
    keys.write_text("# team keys\nsk-from-file-1\n\n  sk-from-file-2  \n")
    p = start_proxy(sim.url, authentication={"api_keys": ["sk-inline"], "api_keys_file": str(keys)})
    for key in ("sk-inline", "sk-from-file-1", "sk-from-file-2"):
        assert http("POST", p.url + "/v1/chat/completions", CHAT, headers={"authorization": f"Bearer {key}"}).status == 200
    assert http("POST", p.url + "/v1/chat/completions", CHAT, headers={"authorization": "Bearer # team keys"}).status == 401
    assert http("POST", p.url + "/v1/chat/completions", CHAT).status == 401


def test_authentication_explicitly_off_ignores_keys(sim, start_proxy):
    p = start_proxy(sim.url, authentication={"enabled": False, "api_keys": ["sk-x"]})
    assert http("POST", p.url + "/v1/chat/completions", CHAT).status == 200


def test_backend_key_is_sent_and_hop_by_hop_headers_stay_on_their_hop(sim, start_proxy):
    p = start_proxy(backends={"vllm": {"url": sim.url, "api_key": "backend-secret"}})
    headers = {
        "authorization": "Bearer client-key",
        "connection": "keep-alive, X-Hop",
        "x-hop": "named by Connection",
        "keep-alive": "timeout=5",
        "te": "trailers",
        "proxy-authorization": "Basic abc",
        "x-end-to-end": "kept",
    }
    r = http("POST", p.url + "/v1/echo", b"{}", headers=headers)
    seen = {k.lower(): v for k, v in r.json()["headers"].items()}
    assert seen["authorization"] == "Bearer backend-secret"
    assert seen["x-end-to-end"] == "kept"
    for gone in ("x-hop", "keep-alive", "te", "proxy-authorization"):
        assert gone not in seen, gone
    assert "keep-alive" not in r.headers and r.headers.get("connection") is None
