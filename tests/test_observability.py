"""GET /metrics in Prometheus text, JSON access lines, and X-Request-ID end to end."""

import io
import json

import openai
from prometheus_client.parser import text_string_to_metric_families

from tests.support import eventually, http

CHAT = {"model": "gpt-4", "messages": [{"role": "user", "content": "hi"}]}


def scrape(proxy) -> dict:
    r = http("GET", proxy.url + "/metrics")
    assert r.status == 200 and r.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(r.body.decode()):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))), 0)


def test_metrics_parse_and_move_with_requests(proxy):
    before = scrape(proxy)
    client = openai.OpenAI(base_url=proxy.url + "/v1", api_key="x", max_retries=0)
    client.chat.completions.create(**CHAT)
    list(client.chat.completions.create(**CHAT, stream=True, stream_options={"include_usage": True}))
    try:
        client.chat.completions.create(**{**CHAT, "model": "missing"})
    except openai.NotFoundError:
        pass
    after = scrape(proxy)
    ok = dict(route="/v1/chat/completions", model="gpt-4", backend="primary", status="200")
    assert value(after, "devstral_requests_total", **ok) - value(before, "devstral_requests_total", **ok) == 2
    assert value(after, "devstral_requests_total", route="/v1/chat/completions", model="missing", backend="primary", status="404") == 1
    assert value(after, "devstral_request_duration_seconds_count", route="/v1/chat/completions") >= 3
    assert value(after, "devstral_proxy_overhead_seconds_count", route="/v1/chat/completions") >= 3
    assert value(after, "devstral_stream_first_byte_seconds_count") >= 1
    assert value(after, "devstral_tokens_total", model="gpt-4", kind="completion") > value(before, "devstral_tokens_total", model="gpt-4", kind="completion")
    assert value(after, "devstral_backend_up", backend="primary") == 1
    assert value(after, "devstral_requests_in_flight") == 1  # the scrape itself


def seen(sim) -> dict:
    return {k.lower(): v for k, v in sim.record.headers[-1].items()}


def test_access_lines_and_request_ids(proxy, sim):
    proxy.proxy.access.stream = out = io.StringIO()
    r = http("POST", proxy.url + "/v1/chat/completions", CHAT, headers={"x-request-id": "trace-123"})
    assert r.headers["x-request-id"] == "trace-123"
    assert seen(sim)["x-request-id"] == "trace-123"
    r = http("POST", proxy.url + "/v1/chat/completions", CHAT)
    made = r.headers["x-request-id"]
    assert len(made) == 16 and seen(sim)["x-request-id"] == made
    eventually(lambda: made in out.getvalue(), what="the sweep writing the buffered lines")
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    first = next(line for line in lines if line["request_id"] == "trace-123")
    assert first["route"] == "/v1/chat/completions" and first["status"] == 200
    assert (first["model"], first["backend_model"], first["backend"]) == ("gpt-4", "mistral-sim", "primary")
    assert first["bytes_in"] > 0 and first["bytes_out"] > 0 and first["duration_ms"] > 0
    assert "request_body" not in first and "hi" not in json.dumps(first)  # nothing the client sent
    assert any(line["request_id"] == made for line in lines)


def test_bodies_are_logged_only_when_configured(sim, start_proxy):
    p = start_proxy(sim.url, logging={"log_bodies": True})
    p.proxy.access.stream = out = io.StringIO()
    http("POST", p.url + "/v1/chat/completions", CHAT)
    eventually(out.getvalue, what="the access line")
    line = json.loads(out.getvalue().splitlines()[-1])
    assert json.loads(line["request_body"]) == CHAT


def test_a_client_leaving_mid_stream_is_counted_and_not_left_in_flight(proxy, sim):
    import socket

    sim.behavior.token_delay = 0.05
    body = json.dumps({**CHAT, "stream": True}).encode()
    s = socket.create_connection(("127.0.0.1", proxy.port))
    s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    assert s.recv(65536).startswith(b"HTTP/1.1 200 ")
    s.close()
    after = eventually(lambda: (lambda m: m if value(m, "devstral_requests_in_flight") == 1 else None)(scrape(proxy)), what="the stream's end")
    assert value(after, "devstral_requests_in_flight") == 1  # only the scrape
    assert value(after, "devstral_requests_total", route="/v1/chat/completions", model="gpt-4", backend="primary", status="499") == 1


def test_backend_up_is_set_by_the_monitor_for_every_backend_from_startup(sim, start_proxy):
    from tests.support import free_port

    p = start_proxy(backends={"up": {"url": sim.url}, "down": {"url": f"http://127.0.0.1:{free_port()}"}}, routing={"health_interval": 0.2})
    samples = scrape(p)  # no request has been made
    assert samples[("devstral_backend_up", (("backend", "up"),))] == 1
    assert samples[("devstral_backend_up", (("backend", "down"),))] == 0
