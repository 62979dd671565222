"""The response cache through a real proxy and the simulated vLLM: what is kept (complete,
successful, deterministic or asked for), how it is answered (the shape asked: JSON or a
stream the openai SDK reads, the client's model name, a fresh id, x-cache and Age), whose it
is (per caller unless shared), its bounds (ttl, bytes) and single flight; the Redis store."""

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest

from tests.support import eventually, http

ASK = {"model": "gpt-4", "messages": [{"role": "user", "content": "Say hello."}], "temperature": 0}
MEMORY = {"store": "memory"}


def post(p, body=ASK, headers=None, route="/v1/chat/completions"):
    return http("POST", p.url + route, body, headers)


def test_a_deterministic_request_is_answered_again_from_the_cache(sim, start_proxy):
    p = start_proxy(sim.url, cache=MEMORY)
    first, second = post(p), post(p)
    assert first.status == second.status == 200 and len(sim.record.requests) == 1
    assert first.headers["x-cache"] == "miss" and second.headers["x-cache"] == "hit" and int(second.headers["age"]) >= 0
    a, b = first.json(), second.json()
    assert b["model"] == "gpt-4" and b["choices"][0]["message"]["content"] == a["choices"][0]["message"]["content"]
    assert b["id"] != a["id"]
    metrics = http("GET", p.url + "/metrics").body.decode()
    assert 'devstral_cache_requests_total{route="/v1/chat/completions",model="gpt-4",result="hit"} 1' in metrics
    assert 'devstral_requests_total{route="/v1/chat/completions",model="gpt-4",backend="cache",status="200"} 1' in metrics  # no backend worked


def test_an_entry_is_answered_in_the_shape_asked_a_stream_or_a_whole_body(sim, start_proxy):
    p = start_proxy(sim.url, cache=MEMORY)
    client = openai.OpenAI(base_url=p.url + "/v1", api_key="x", max_retries=0)
    streamed = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(**ASK, stream=True) if c.choices)  # a miss, kept
    whole = client.chat.completions.with_raw_response.create(**ASK)
    assert whole.headers["x-cache"] == "hit" and whole.parse().choices[0].message.content == streamed
    again = client.chat.completions.with_raw_response.create(**ASK, stream=True, stream_options={"include_usage": True})
    chunks = list(again.parse())
    assert again.headers["x-cache"] == "hit" and "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == streamed
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0  # asked for: the usage frame is there
    assert len(sim.record.requests) == 1


def test_what_may_be_kept_and_read(sim, start_proxy):
    p = start_proxy(sim.url, cache=MEMORY)
    sampled = {**ASK, "temperature": 0.7}
    post(p, sampled), post(p, sampled)
    assert len(sim.record.requests) == 2  # sampled: never kept
    assert post(p, sampled, {"cache-control": "max-age=60"}).headers["x-cache"] == "miss"
    assert post(p, sampled, {"cache-control": "max-age=60"}).headers["x-cache"] == "hit"  # asked for
    seeded = {**sampled, "seed": 7}
    post(p, seeded)
    assert post(p, seeded).headers["x-cache"] == "hit"
    assert "x-cache" not in post(p, ASK, {"cache-control": "no-store"}).headers  # neither read nor kept
    assert post(p, ASK).headers["x-cache"] == "miss"
    fresh = post(p, ASK, {"cache-control": "no-cache"})  # not read: to the backend, kept anew
    assert fresh.headers["x-cache"] == "miss"
    cut = {**ASK, "max_tokens": 1}
    post(p, cut)
    assert post(p, cut).headers["x-cache"] == "miss"  # finish_reason length: not kept


def test_entries_belong_to_their_caller_unless_shared(sim, start_proxy):
    keys = {"authentication": {"api_keys": ["sk-a", "sk-b"]}}
    p = start_proxy(sim.url, cache=MEMORY, **keys)
    a, b = {"authorization": "Bearer sk-a"}, {"authorization": "Bearer sk-b"}
    post(p, ASK, a)
    assert post(p, ASK, b).headers["x-cache"] == "miss" and post(p, ASK, a).headers["x-cache"] == "hit"
    shared = start_proxy(sim.url, cache={**MEMORY, "shared": True}, **keys)
    post(shared, ASK, a)
    assert post(shared, ASK, b).headers["x-cache"] == "hit"


def test_ttl_and_the_byte_bound(sim, start_proxy):
    p = start_proxy(sim.url, cache={**MEMORY, "ttl": 0.5})
    post(p)
    eventually(lambda: post(p).headers["x-cache"] == "miss", what="the entry expiring")
    small = start_proxy(sim.url, cache={**MEMORY, "max_bytes": 2000})
    asks = [{**ASK, "messages": [{"role": "user", "content": f"question {i}"}]} for i in range(8)]
    for body in asks:
        post(small, body)
    assert post(small, asks[0]).headers["x-cache"] == "miss"  # the oldest went to stay within 2,000 bytes
    assert post(small, asks[-1]).headers["x-cache"] == "hit"
    metrics = http("GET", small.url + "/metrics").body.decode()
    assert "devstral_cache_evictions_total 0" not in metrics and "devstral_cache_evictions_total" in metrics


def test_identical_requests_in_flight_wait_for_the_first(sim, start_proxy):
    sim.behavior.gate = threading.Event()  # the engine holds the first request
    p = start_proxy(sim.url, cache=MEMORY)
    with ThreadPoolExecutor(6) as pool:
        replies = [pool.submit(post, p) for _ in range(6)]
        eventually(lambda: len(sim.record.requests) >= 1, what="the first request at the backend")
        sim.behavior.gate.set()
        results = [r.result() for r in replies]
    assert [r.status for r in results] == [200] * 6 and len(sim.record.requests) == 1
    assert sorted(r.headers["x-cache"] for r in results) == ["hit"] * 5 + ["miss"]


def test_a_messages_request_and_a_chat_request_that_become_one_backend_request_share_an_entry(sim, start_proxy):
    p = start_proxy(sim.url, cache=MEMORY)
    chat = {"model": "gpt-4", "max_tokens": 50, "temperature": 0, "messages": [{"role": "user", "content": "Say hello."}]}
    post(p, chat)
    hit = post(p, chat, route="/v1/messages")
    assert hit.status == 200 and hit.headers["x-cache"] == "hit" and hit.json()["type"] == "message"
    assert len(sim.record.requests) == 1


def test_a_hit_is_a_request_for_the_rate_limits(sim, start_proxy):
    p = start_proxy(sim.url, cache=MEMORY, rate_limit={"requests_per_minute": 2})
    assert post(p).status == 200 and post(p).status == 200
    assert post(p).status == 429


def test_the_redis_store_is_shared_between_instances(sim, start_proxy, redis_url):
    first = start_proxy(sim.url, cache={"store": "redis", "redis_url": redis_url})
    second = start_proxy(sim.url, cache={"store": "redis", "redis_url": redis_url})
    assert post(first).headers["x-cache"] == "miss"
    eventually(lambda: post(second).headers["x-cache"] == "hit", what="the entry in Redis")
    assert len(sim.record.requests) == 1
    assert json.loads(post(second).body)["model"] == "gpt-4"


@pytest.mark.parametrize("cache", [{"store": "redis"}, {"ttl": 0}])
def test_a_cache_config_that_cannot_work_is_refused(cache):
    from devstral_proxy.config import ConfigError, build

    with pytest.raises(ConfigError, match="cache"):
        build({"backends": {"a": {"url": "http://127.0.0.1:9"}}, "cache": cache}, env={})
