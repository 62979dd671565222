"""Per-key rate limits: requests and tokens per minute, in-process and shared through a real
redis-server by several proxies."""

import os
import subprocess
import time

import openai
import pytest

from devstral_proxy.ratelimit import LocalLimiter
from tests.support import eventually, free_port, http

CHAT = {"model": "gpt-4", "messages": [{"role": "user", "content": "hi"}]}
KEYS = {"authentication": {"api_keys": ["sk-alice", "sk-bob"]}}


def post(proxy, key: str, body=CHAT):
    return http("POST", proxy.url + "/v1/chat/completions", body, headers={"authorization": f"Bearer {key}"})


def test_requests_per_minute_per_key(sim, start_proxy):
    p = start_proxy(sim.url, rate_limit={"requests_per_minute": 3}, **KEYS)
    assert [post(p, "sk-alice").status for _ in range(3)] == [200, 200, 200]
    r = post(p, "sk-alice")
    assert r.status == 429 and r.json()["error"]["code"] == "rate_limit_exceeded"
    assert 1 <= int(r.headers["retry-after"]) <= 120  # the sliding window: up to the end of the next minute
    assert post(p, "sk-bob").status == 200  # another key, another budget


def test_tokens_per_minute_counts_usage_also_from_streams_the_client_did_not_ask_usage_for(sim, start_proxy):
    p = start_proxy(sim.url, rate_limit={"tokens_per_minute": 50}, **KEYS)
    client = openai.OpenAI(base_url=p.url + "/v1", api_key="sk-alice", max_retries=0)
    chunks = list(client.chat.completions.create(**CHAT, stream=True))
    assert all(c.choices for c in chunks)  # the usage chunk the proxy asked for is not shown
    assert sim.record.requests[-1]["stream_options"] == {"include_usage": True}
    client.chat.completions.create(**CHAT)  # whole reply: usage in the body
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(**CHAT)
    shown = list(
        openai.OpenAI(base_url=p.url + "/v1", api_key="sk-bob", max_retries=0).chat.completions.create(
            **CHAT, stream=True, stream_options={"include_usage": True}
        )
    )
    assert shown[-1].usage is not None  # a client that asks for usage still gets it


def test_sliding_window_weights_the_previous_minute():
    limiter = LocalLimiter(rpm=10, tpm=0)
    t0 = 6000.0  # the start of a minute
    for _ in range(10):
        assert limiter.admit("k", t0 + 50) is None
    assert limiter.admit("k", t0 + 50) is not None
    assert limiter.admit("k", t0 + 60 + 3) is not None  # 10 * 0.95 + 1 > 10
    assert limiter.admit("k", t0 + 60 + 30) is None  # 10 * 0.5 + 1 <= 10


def test_proxies_sharing_redis_enforce_one_limit(sim, start_proxy, redis_url):
    a = start_proxy(sim.url, rate_limit={"requests_per_minute": 4, "redis_url": redis_url}, **KEYS)
    b = start_proxy(sim.url, rate_limit={"requests_per_minute": 4, "redis_url": redis_url}, **KEYS)
    statuses = [post(proxy, "sk-alice").status for proxy in (a, b, a, b, a, b)]
    assert statuses == [200, 200, 200, 200, 429, 429]
    assert post(b, "sk-bob").status == 200


def test_shared_tokens_and_redis_outage_fails_open(sim, start_proxy, redis_url):
    p = start_proxy(sim.url, rate_limit={"tokens_per_minute": 40, "redis_url": redis_url}, **KEYS)
    assert post(p, "sk-alice").status == 200
    assert post(p, "sk-alice").status == 200
    # token counts are written after the reply
    eventually(lambda: post(p, "sk-alice").status == 429, what="the tokens being counted", interval=0.1)
    down = start_proxy(sim.url, rate_limit={"requests_per_minute": 1, "redis_url": f"redis://127.0.0.1:{free_port()}/0"}, **KEYS)
    assert [post(down, "sk-alice").status for _ in range(3)] == [200, 200, 200]


def test_a_hung_redis_fails_open_at_once_and_limits_return_with_it(sim, start_proxy, redis_url):
    import signal

    p = start_proxy(sim.url, rate_limit={"requests_per_minute": 2, "redis_url": redis_url}, **KEYS)
    assert post(p, "sk-alice").status == 200
    pid = int(subprocess.run(["redis-cli", "-u", redis_url, "info", "server"], capture_output=True, text=True).stdout.split("process_id:")[1].split()[0])
    os.kill(pid, signal.SIGSTOP)  # hung: it accepts nothing and answers nothing
    try:
        start = time.monotonic()
        statuses = [post(p, "sk-alice").status for _ in range(5)]
        assert statuses == [200] * 5 and time.monotonic() - start < 10.0  # not 5 s each
        metrics = http("GET", p.url + "/metrics", headers={"authorization": "Bearer sk-alice"}).body.decode()
        assert "devstral_ratelimit_failed_open_total 5" in metrics
    finally:
        os.kill(pid, signal.SIGCONT)
    # the fail-open pause ends; Redis is asked again and counts
    eventually(lambda: post(p, "sk-alice").status == 429, what="the limit applying again", interval=0.1)
