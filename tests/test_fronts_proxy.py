"""The front routes as routes of the proxy: rate limits, metrics and access lines, a backend
that breaks mid-stream, the client leaving, native pass-through, count_tokens without a
tokenizer, and stored responses shared through a real redis-server."""

import json
import socket
import time

import anthropic
import openai
import pytest

from tests.support import http

KEYS = {"authentication": {"api_keys": ["sk-a"]}}
MESSAGE = {"model": "gpt-4", "max_tokens": 50, "messages": [{"role": "user", "content": "Hi"}]}


def test_rate_limits_and_metrics_on_both_routes(sim, start_proxy):
    p = start_proxy(sim.url, rate_limit={"requests_per_minute": 2}, **KEYS)
    claude = anthropic.Anthropic(base_url=p.url, api_key="sk-a", max_retries=0)
    codex = openai.OpenAI(base_url=p.url + "/v1", api_key="sk-a", max_retries=0)
    assert claude.messages.create(**MESSAGE).content[0].text == sim.behavior.reply
    assert codex.responses.create(model="gpt-4", input="Hi").output_text == sim.behavior.reply
    with pytest.raises(anthropic.RateLimitError) as exc:
        claude.messages.create(**MESSAGE)
    assert exc.value.body["error"]["type"] == "rate_limit_error" and exc.value.response.headers["retry-after"]
    with pytest.raises(openai.RateLimitError):
        codex.responses.create(model="gpt-4", input="Hi")
    metrics = http("GET", p.url + "/metrics", headers={"authorization": "Bearer sk-a"}).body.decode()
    for route in ("/v1/messages", "/v1/responses"):
        assert f'devstral_requests_total{{route="{route}",model="gpt-4",backend="primary",status="200"}} 1' in metrics
        assert f'devstral_requests_total{{route="{route}",model="",backend="",status="429"}} 1' in metrics  # refused before routing


def test_missing_key_on_messages_is_anthropic_shaped(sim, start_proxy):
    p = start_proxy(sim.url, **KEYS)
    reply = http("POST", p.url + "/v1/messages", MESSAGE)
    assert reply.status == 401 and reply.json() == {"type": "error", "error": {"type": "authentication_error", "message": "Invalid or missing API key."}}
    assert http("POST", p.url + "/v1/messages", MESSAGE, {"authorization": "Bearer sk-a"}).status == 200
    # one rule on every route: the Bearer token, else x-api-key
    assert http("POST", p.url + "/v1/responses", {"model": "gpt-4", "input": "x"}, {"x-api-key": "sk-a"}).status == 200
    assert http("POST", p.url + "/v1/messages", MESSAGE, {"authorization": "Bearer ", "x-api-key": "sk-a"}).status == 200
    assert http("POST", p.url + "/v1/messages", MESSAGE, {"authorization": "Bearer sk-wrong", "x-api-key": "sk-a"}).status == 401


def _stream_then_die(frames: int):
    async def serve(reader, writer):
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        await reader.readexactly(length)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
        for k in range(frames):
            frame = b'data: {"choices":[{"index":0,"delta":{"content":"w%d "}}]}\n\n' % k
            writer.write(b"%x\r\n%s\r\n" % (len(frame), frame))
        await writer.drain()
        writer.transport.abort()

    return serve


def test_a_backend_breaking_mid_stream_ends_each_protocol_its_own_way(start_proxy):
    from tests.support import RawBackend

    backend = RawBackend(_stream_then_die(3))
    try:
        p = start_proxy(f"http://127.0.0.1:{backend.port}")
        codex = openai.OpenAI(base_url=p.url + "/v1", api_key="x", max_retries=0)
        events = list(codex.responses.create(model="gpt-4", input="Hi", stream=True))
        assert events[-1].type == "response.failed"
        assert events[-1].response.output[0].content[0].text == "w0 w1 w2 "
        assert "closed the connection" in events[-1].response.error.message
        claude = anthropic.Anthropic(base_url=p.url, api_key="x", max_retries=0)
        with pytest.raises(anthropic.APIStatusError) as exc:
            with claude.messages.stream(**MESSAGE) as s:
                list(s)
        assert "closed the connection" in str(exc.value)
    finally:
        backend.stop()


@pytest.mark.parametrize("path, body", [("/v1/responses", {"model": "gpt-4", "input": "Hi", "stream": True}), ("/v1/messages", {**MESSAGE, "stream": True})])
def test_client_leaving_aborts_the_backend_request(proxy, sim, path, body):
    sim.behavior.token_delay = 0.01
    sim.behavior.reply = " ".join(["word"] * 2000)
    data = json.dumps(body).encode()
    s = socket.create_connection(("127.0.0.1", proxy.port))
    s.sendall(b"POST %s HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (path.encode(), len(data), data))
    buf = b""
    while b"word" not in buf:
        buf += s.recv(65536)
    s.close()
    closed_at = time.monotonic()
    while not sim.record.disconnects and time.monotonic() < closed_at + 2:
        time.sleep(0.005)
    assert sim.record.disconnects and sim.record.disconnects[0] - closed_at < 0.2


def test_native_routes_go_to_the_backend_untranslated(sim, start_proxy):
    p = start_proxy(backends={"vllm": {"url": sim.url, "native_routes": ["/v1/responses", "/v1/messages"]}})
    for path, body in (("/v1/responses", {"model": "gpt-4", "input": "Hi"}), ("/v1/messages", MESSAGE)):
        reply = http("POST", p.url + path, body)
        doc = reply.json()
        assert reply.status == 200 and doc["object"] == "native" and doc["path"] == path
        assert doc["model"] == "mistral-sim"  # mapped
        assert {k: v for k, v in doc["request"].items() if k != "model"} == {k: v for k, v in body.items() if k != "model"}
    with pytest.raises(Exception, match="native_routes"):
        start_proxy(backends={"vllm": {"url": sim.url, "native_routes": ["/v1/chat/completions"]}})


def test_count_tokens_estimates_without_a_tokenizer(start_proxy):
    from tests.support import RawBackend

    async def no_tokenizer(reader, writer):
        while True:
            try:
                await reader.readuntil(b"\r\n\r\n")
            except Exception:
                return
            writer.write(b"HTTP/1.1 404 Not Found\r\ncontent-length: 9\r\n\r\nnot found")
            await writer.drain()

    backend = RawBackend(no_tokenizer)
    try:
        p = start_proxy(f"http://127.0.0.1:{backend.port}")
        claude = anthropic.Anthropic(base_url=p.url, api_key="x", max_retries=0)
        text = "word " * 400
        counted = claude.messages.count_tokens(model="gpt-4", messages=[{"role": "user", "content": text}])
        assert len(text) // 4 <= counted.input_tokens <= len(text) // 4 + 40  # about 4 bytes a token
    finally:
        backend.stop()


def test_stored_responses_shared_through_redis(sim, start_proxy, redis_url):
    a = start_proxy(sim.url, responses={"store": "redis", "redis_url": redis_url})
    b = start_proxy(sim.url, responses={"store": "redis", "redis_url": redis_url})
    first = openai.OpenAI(base_url=a.url + "/v1", api_key="x", max_retries=0).responses.create(model="gpt-4", input="Remember 42.")
    client_b = openai.OpenAI(base_url=b.url + "/v1", api_key="x", max_retries=0)
    second = client_b.responses.create(model="gpt-4", input="What did I say?", previous_response_id=first.id)
    assert second.output_text == sim.behavior.reply
    sent = sim.record.requests[-1]["messages"]
    assert [m["content"] for m in sent] == ["Remember 42.", sim.behavior.reply, "What did I say?"]
    assert client_b.responses.retrieve(first.id).id == first.id
    client_b.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        client_b.responses.retrieve(first.id)


def test_a_hung_response_store_fails_fast_and_logs_once(sim, start_proxy, redis_url, caplog):
    """Redis frozen: requests that need the store get a 503 store_unavailable, the first after
    redis_timeout and the rest at once (the pause), with one line for the outage and one when
    it ends; never a traceback per request."""
    import logging
    import os
    import signal
    import subprocess

    from tests.support import eventually

    p = start_proxy(sim.url, responses={"store": "redis", "redis_url": redis_url, "redis_timeout": 0.5})
    made = http("POST", p.url + "/v1/responses", {"model": "gpt-4", "input": "Remember 42."})
    rid = made.json()["id"]
    eventually(lambda: http("GET", p.url + f"/v1/responses/{rid}").status == 200, what="the response stored")
    info = subprocess.run(["redis-cli", "-u", redis_url, "info", "server"], capture_output=True, text=True).stdout
    pid = int(info.split("process_id:")[1].split()[0])
    with caplog.at_level(logging.WARNING, logger="devstral_proxy"):
        os.kill(pid, signal.SIGSTOP)
        try:
            start = time.monotonic()
            replies = [http("GET", p.url + f"/v1/responses/{rid}") for _ in range(5)]
            assert [r.status for r in replies] == [503] * 5 and replies[0].json()["error"]["code"] == "store_unavailable"
            assert time.monotonic() - start < 2.0  # not 5 x 0.5 s: after the first, the pause answers at once
        finally:
            os.kill(pid, signal.SIGCONT)
        eventually(lambda: http("GET", p.url + f"/v1/responses/{rid}").status == 200, what="the store answering again")
    lines = [r.getMessage() for r in caplog.records if "response store" in r.getMessage()]
    assert len(lines) == 2 and "does not answer" in lines[0] and "answers again" in lines[1]
    assert not any(r.exc_info for r in caplog.records)


def test_memory_store_bounds():
    import asyncio

    from devstral_proxy.store import MemoryStore

    now = [0.0]
    store = MemoryStore(ttl=10, max_items=3, max_bytes=100, clock=lambda: now[0])

    async def run():
        for k in range(5):
            await store.put(f"r{k}", b"o", b"x" * 10)
        assert [await store.get(f"r{k}", b"o") for k in range(5)] == [None, None, b"x" * 10, b"x" * 10, b"x" * 10]
        assert await store.get("r4", b"someone else") is None
        await store.put("big", b"o", b"y" * 95)  # the bytes bound drops the oldest
        assert list(store.items) == ["big"] and store.size == 95
        await store.put("huge", b"o", b"z" * 101)  # larger than the store: not kept
        assert await store.get("huge", b"o") is None
        now[0] = 11
        assert await store.get("big", b"o") is None  # expired
        await store.put("new", b"o", b"n")
        assert list(store.items) == ["new"] and store.size == 1

    asyncio.run(run())


def test_front_queries_stay_home_root_answers_and_doubled_v1_is_explained(sim, start_proxy):
    """Claude Code posts to /v1/messages?beta=true and checks `HEAD /`; a base URL ending in
    /v1 given to a client that adds /v1 itself makes /v1/v1/...: each gets a clear answer."""
    p = start_proxy(sim.url)
    for path in ("/v1/messages?beta=true", "/v1/messages/count_tokens?beta=true", "/v1/responses?x=1"):
        body = {"model": "gpt-4", "max_tokens": 5, "messages": [{"role": "user", "content": "Hi"}]} if "messages" in path else {"model": "gpt-4", "input": "Hi"}
        assert http("POST", p.url + path, body).status == 200
    assert sim.record.targets and all("?" not in t for t in sim.record.targets)
    for method in ("GET", "HEAD"):
        assert http(method, p.url + "/").status == 200
    r = http("POST", p.url + "/v1/v1/messages", {"model": "gpt-4"})
    assert r.status == 404 and "should not end in /v1" in r.json()["error"]["message"]
