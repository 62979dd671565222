"""Every refusal goes one way, the parser's included (400, 408, 413, 414, 417, 431): counted in
/metrics, written to the access log with its request id, and answered in the caller's protocol's
error shape (Anthropic's on /v1/messages, OpenAI's elsewhere)."""

import json
import socket

import pytest

from tests.support import http, read_to_close

KEYS = {"authentication": {"api_keys": ["sk-a"]}}


def raw(port: int, data: bytes) -> tuple[int, dict, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(data)
        reply = read_to_close(s)
    head, _, body = reply.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


async def _flush(p):
    p.proxy.access.flush()


def access_lines(p, capfd) -> list[dict]:
    p.loop.call(lambda: _flush(p))
    return [json.loads(line) for line in capfd.readouterr().err.splitlines() if line.startswith("{") and '"request_id"' in line]


def metrics(p) -> str:
    return http("GET", p.url + "/metrics", headers={"authorization": "Bearer sk-a"}).body.decode()


def test_a_413_on_messages_is_anthropic_shaped_counted_and_logged(sim, start_proxy, capfd):
    p = start_proxy(sim.url, server={"max_body_bytes": 1000}, logging={"level": "INFO"}, **KEYS)
    status, headers, body = raw(p.port, b"POST /v1/messages HTTP/1.1\r\nhost: x\r\ncontent-length: 5000\r\n\r\n")
    assert status == 413 and headers["connection"] == "close" and headers["x-request-id"]
    assert json.loads(body) == {"type": "error", "error": {"type": "request_too_large", "message": "Request body too large: 5000 bytes, the limit is 1000."}}
    line = next(a for a in access_lines(p, capfd) if a["status"] == 413)
    assert line["route"] == "/v1/messages" and line["method"] == "POST" and line["request_id"] == headers["x-request-id"]
    assert 'devstral_requests_total{route="/v1/messages",model="",backend="",status="413"} 1' in metrics(p)


@pytest.mark.parametrize(
    "wire, status",
    [
        (b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: 5000\r\n\r\n", 413),
        (b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nx-big: " + b"a" * 20_000 + b"\r\n\r\n", 431),
        (b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nexpect: magic\r\ncontent-length: 2\r\n\r\n{}", 417),
        (b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: nope\r\n\r\n", 400),
    ],
)
def test_parser_refusals_are_openai_shaped_counted_and_logged(sim, start_proxy, capfd, wire, status):
    p = start_proxy(sim.url, server={"max_body_bytes": 1000, "max_header_bytes": 8192}, logging={"level": "INFO"}, **KEYS)
    got, headers, body = raw(p.port, wire)
    assert got == status
    assert json.loads(body)["error"]["type"] == "invalid_request_error"
    assert [a["route"] for a in access_lines(p, capfd) if a["status"] == status] == ["/v1/chat/completions"]
    assert f'devstral_requests_total{{route="/v1/chat/completions",model="",backend="",status="{status}"}} 1' in metrics(p)


def test_a_request_line_the_parser_cannot_read_is_counted_as_other(sim, start_proxy, capfd):
    p = start_proxy(sim.url, logging={"level": "INFO"}, **KEYS)
    got, _, body = raw(p.port, b"GARBAGE\r\n\r\n")
    assert got == 400 and json.loads(body)["error"]["code"] == "bad_request"
    assert [a["status"] for a in access_lines(p, capfd)] == [400]
    assert 'route="other",model="",backend="",status="400"} 1' in metrics(p)


def test_a_slow_upload_is_a_408_counted_in_the_metrics(sim, start_proxy):
    p = start_proxy(sim.url, server={"body_timeout": 0.3}, **KEYS)
    got, _, body = raw(p.port, b"POST /v1/messages HTTP/1.1\r\nhost: x\r\nx-api-key: sk-a\r\ncontent-length: 100\r\n\r\n{")
    assert got == 408 and json.loads(body)["type"] == "error"  # Anthropic's shape on its route
    assert 'devstral_requests_total{route="/v1/messages",model="",backend="",status="408"} 1' in metrics(p)
