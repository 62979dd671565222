"""The front door (security, second round): one canonical spelling of every route, limits
that apply to every route that reaches a backend, bounded input, health without detail for
strangers, honest 429s, and CORS when configured.

A real proxy in front of the simulated vLLM; requests written as raw bytes where the exact
spelling of the target matters.
"""

import json

import pytest

from tests.support import http, raw_exchange

CHAT = {"model": "gpt-4", "messages": [{"role": "user", "content": "hi"}]}
KEY = {"authentication": {"api_keys": ["sk-alice"]}}


def raw_post(port: int, target: bytes, body: dict = CHAT, headers: bytes = b"") -> tuple[int, bytes]:
    data = json.dumps(body).encode()
    out = raw_exchange(
        port,
        b"POST %s HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: %d\r\n%s\r\n%s"
        % (target, len(data), headers, data),
    )
    head, _, rest = out.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), rest


@pytest.mark.parametrize(
    "target",
    [
        b"/v1/chat%2Fcompletions",
        b"/v1/%63hat/completions",
        b"/v1/chat/completions/",
        b"/v1/./chat/completions",
        b"/v1/x/../chat/completions",
        b"/v1/chat/completions;x",
    ],
)
def test_other_spellings_of_an_inference_route_are_limited_and_mapped_or_refused(sim, start_proxy, target):
    p = start_proxy(sim.url, rate_limit={"requests_per_minute": 2})
    assert [raw_post(p.port, b"/v1/chat/completions")[0] for _ in range(2)] == [200, 200]
    status, body = raw_post(p.port, target)
    assert status in (404, 429), (status, body)  # never the backend, unlimited and unmapped
    assert len(sim.record.requests) == 2


def test_a_fragment_in_the_target_is_refused(proxy):
    assert raw_post(proxy.port, b"/v1/chat/completions#x")[0] == 400


def test_unreserved_percent_escapes_and_dot_segments_reach_the_same_route(proxy, sim):
    for target in (b"/v1/%63hat/completions", b"/v1/./chat/completions", b"/v1/x/../chat/completions", b"/v1/chat/completions/"):
        status, body = raw_post(proxy.port, target)
        assert status == 200 and b'"model":"gpt-4"' in body
    assert all(r["model"] == "mistral-sim" for r in sim.record.requests)  # mapped every time


def test_relayed_routes_are_an_allow_list_and_rate_limited(sim, start_proxy):
    p = start_proxy(sim.url, rate_limit={"requests_per_minute": 1})
    assert http("POST", p.url + "/v1/load_lora_adapter", {"lora_name": "x"}).status == 404  # admin: off by default
    assert http("POST", p.url + "/v1/something", {"a": 1}).status == 404
    first = http("POST", p.url + "/v1/audio/transcriptions", {"model": "gpt-4"})
    assert b"backend_error" in first.body  # relayed: the simulator has no such route
    assert http("POST", p.url + "/v1/audio/transcriptions", {"model": "gpt-4"}).status == 429


def test_model_mapping_applies_to_relayed_json_routes(sim, start_proxy):
    p = start_proxy(sim.url, server={"relay_paths": ["/v1/echo"]})
    r = http("POST", p.url + "/v1/echo", {"model": "gpt-4", "x": 1})
    assert r.status == 200 and json.loads(r.json()["body"])["model"] == "mistral-sim"


def test_a_huge_model_name_is_a_400(proxy):
    r = http("POST", proxy.url + "/v1/chat/completions", {**CHAT, "model": "m" * 100_000})
    assert r.status == 400 and r.json()["error"]["param"] == "model"


def test_deeply_nested_json_in_a_request_is_a_400_not_a_500(sim, start_proxy):
    p = start_proxy(sim.url)
    deep = b'{"model": "gpt-4", "messages": [], "x": ' + b"[" * 2000 + b"]" * 2000 + b"}"
    out = raw_exchange(p.port, b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-length: %d\r\n\r\n%s" % (len(deep), deep))
    assert out.startswith(b"HTTP/1.1 400") and b"invalid_request" in out


def test_an_invalid_client_request_id_is_replaced_not_forwarded_beside_ours(proxy, sim):
    r = http("POST", proxy.url + "/v1/chat/completions", CHAT, headers={"x-request-id": "x" * 5000})
    made = r.headers["x-request-id"]
    assert len(made) == 16
    forwarded = [v for k, v in sim.record.headers[-1].items() if k.lower() == "x-request-id"]
    assert forwarded == [made]


def test_health_live_and_ready_without_detail_for_strangers(sim, start_proxy):
    p = start_proxy(sim.url, **KEY)
    checks = sim.record.health_checks
    live = http("GET", p.url + "/health/live")
    ready = http("GET", p.url + "/health/ready")
    assert live.status == 200 and ready.status == 200
    assert sim.record.health_checks == checks  # no probe per call
    for r in (live, ready, http("GET", p.url + "/health")):
        assert "backends" not in r.json()
    detailed = http("GET", p.url + "/health/ready", headers={"authorization": "Bearer sk-alice"})
    assert "primary" in detailed.json()["backends"]


def test_a_429_says_when_a_request_will_pass_and_the_openai_headers(sim, start_proxy):
    p = start_proxy(sim.url, rate_limit={"requests_per_minute": 3})
    ok = http("POST", p.url + "/v1/chat/completions", CHAT)
    assert ok.headers["x-ratelimit-limit-requests"] == "3"
    assert ok.headers["x-ratelimit-remaining-requests"] == "2"
    assert "x-ratelimit-reset-requests" in ok.headers
    for _ in range(2):
        http("POST", p.url + "/v1/chat/completions", CHAT)
    r = http("POST", p.url + "/v1/chat/completions", CHAT)
    assert r.status == 429 and r.headers["x-ratelimit-remaining-requests"] == "0"
    limiter = p.proxy.rate_limits.limiter
    wait = int(r.headers["retry-after"])
    who = next(iter(limiter.counts))
    later = limiter.clock() + wait
    assert limiter.admit(who, later) is None  # it passes then (counted: a sliding window)


def test_cors_preflight_and_headers_when_configured(sim, start_proxy):
    p = start_proxy(sim.url, server={"cors_allow_origins": ["https://ui.example"]}, **KEY)
    pre = http(
        "OPTIONS",
        p.url + "/v1/chat/completions",
        headers={"origin": "https://ui.example", "access-control-request-method": "POST", "access-control-request-headers": "authorization, content-type"},
    )
    assert pre.status == 204
    assert pre.headers["access-control-allow-origin"] == "https://ui.example"
    assert "POST" in pre.headers["access-control-allow-methods"]
    assert "authorization" in pre.headers["access-control-allow-headers"].lower()
    r = http("POST", p.url + "/v1/chat/completions", CHAT, headers={"origin": "https://ui.example", "authorization": "Bearer sk-alice"})
    assert r.status == 200 and r.headers["access-control-allow-origin"] == "https://ui.example"
    other = http("OPTIONS", p.url + "/v1/chat/completions", headers={"origin": "https://evil.example", "access-control-request-method": "POST"})
    assert "access-control-allow-origin" not in other.headers


def test_no_cors_by_default(proxy):
    r = http("OPTIONS", proxy.url + "/v1/chat/completions", headers={"origin": "https://ui.example", "access-control-request-method": "POST"})
    assert "access-control-allow-origin" not in r.headers


def test_forwarded_for_is_appended_and_trusted_only_from_trusted_proxies(sim, start_proxy):
    p = start_proxy(sim.url)
    http("POST", p.url + "/v1/chat/completions", CHAT, headers={"x-forwarded-for": "6.6.6.6"})
    assert sim.record.headers[-1]["X-Forwarded-For"] == "127.0.0.1"  # an untrusted peer's claim is dropped
    t = start_proxy(sim.url, server={"trusted_proxies": ["127.0.0.0/8"], "allow_ips": ["10.0.0.0/8"]})
    r = http("POST", t.url + "/v1/chat/completions", CHAT, headers={"x-forwarded-for": "10.1.2.3"})
    assert r.status == 200  # the client is the address the trusted proxy names
    assert sim.record.headers[-1]["X-Forwarded-For"] == "10.1.2.3, 127.0.0.1"
    assert http("POST", t.url + "/v1/chat/completions", CHAT, headers={"x-forwarded-for": "6.6.6.6"}).status == 403


def test_a_backend_location_header_does_not_leak_its_address(sim, start_proxy):
    p = start_proxy(sim.url, server={"relay_paths": ["/v1/redirect"]})
    r = http("GET", p.url + "/v1/redirect")
    assert r.status == 307
    assert f"127.0.0.1:{sim.port}" not in r.headers.get("location", "")
    assert r.headers["location"] == "/v1/redirect/"
