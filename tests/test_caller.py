"""One caller identity, resolved once at admission: the validated API key (from whichever header
carried it) when authentication is on, else the client's address. The queue's flows, classes and
shares, the rate limits and stored responses all key on it; no unvalidated header chooses it."""

import uuid
from concurrent.futures import ThreadPoolExecutor

from tests.support import http
from tests.test_queue import CHAT, in_order, metric, wait_until
from tests.test_queue import slow_sim as slow_sim

MESSAGE = {"model": "mistral-sim", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}


def chat(proxy, user: str, headers: dict):
    return http("POST", proxy.url + "/v1/chat/completions", {**CHAT, "user": user}, headers, timeout=30)


def test_a_key_in_x_api_key_beside_an_empty_bearer_counts_against_its_own_share(slow_sim, start_proxy):
    """Measured before: admitted as sk-batch, queued under the empty Bearer: 2 slots of 2."""
    keys = {"authentication": {"api_keys": ["sk-batch", "sk-a"]}}
    p = start_proxy(backends={"vllm": {"url": slow_sim.url, "max_in_flight": 2}}, queue={"clients": {"sk-batch": {"max_share": 0.5}}}, **keys)
    slow_sim.behavior.token_delay = 0.02
    headers = {"authorization": "Bearer ", "x-api-key": "sk-batch"}
    with ThreadPoolExecutor(3) as pool:
        futures = [pool.submit(http, "POST", p.url + "/v1/messages", MESSAGE, headers, 30) for _ in range(3)]
        wait_until(lambda: metric(p, "devstral_queue_length") == 2, timeout=20)  # one slot of two, the rest wait
        assert slow_sim.running == 1
        assert all(f.result().status == 200 for f in futures)


def test_without_authentication_a_bearer_header_claims_no_priority(slow_sim, start_proxy):
    """Measured before: `Bearer <a prioritised client's name>` jumped a 20-deep backlog."""
    p = start_proxy(backends={"vllm": {"url": slow_sim.url, "max_in_flight": 1}}, queue={"clients": {"sk-vip": {"priority": 1}}})
    with ThreadPoolExecutor(8) as pool:
        first = pool.submit(chat, p, "first", {})
        wait_until(lambda: slow_sim.running == 1, timeout=20)
        backlog = [pool.submit(chat, p, f"b{k}", {}) for k in range(5)]
        wait_until(lambda: metric(p, "devstral_queue_length") == 5, timeout=20)
        spoof = pool.submit(chat, p, "spoof", {"authorization": "Bearer sk-vip"})
        wait_until(lambda: metric(p, "devstral_queue_length") == 6, timeout=20)
        assert all(f.result().status == 200 for f in [first, *backlog, spoof])
    assert in_order(slow_sim)[-1] == "spoof"  # one caller (the address): behind its own backlog


def test_without_authentication_random_bearer_values_make_no_extra_flows(slow_sim, start_proxy):
    """Measured before: twenty random Bearer values were twenty flows a real client queued behind."""
    p = start_proxy(backends={"vllm": {"url": slow_sim.url, "max_in_flight": 1}}, server={"trusted_proxies": ["127.0.0.1"]})
    flood = {"x-forwarded-for": "10.0.0.1"}
    with ThreadPoolExecutor(14) as pool:
        first = pool.submit(chat, p, "first", flood)
        wait_until(lambda: slow_sim.running == 1, timeout=20)
        backlog = [pool.submit(chat, p, f"f{k}", {**flood, "authorization": f"Bearer {uuid.uuid4()}"}) for k in range(10)]
        wait_until(lambda: metric(p, "devstral_queue_length") == 10, timeout=20)
        other = pool.submit(chat, p, "other", {"x-forwarded-for": "10.0.0.2"})
        wait_until(lambda: metric(p, "devstral_queue_length") == 11, timeout=20)
        assert all(f.result().status == 200 for f in [first, *backlog, other])
    assert in_order(slow_sim).index("other") <= 2  # two flows, served in turn


def test_a_clients_entry_may_name_an_address(slow_sim, start_proxy):
    """Measured before: an address-keyed `queue.clients` entry got no priority at all."""
    p = start_proxy(
        backends={"vllm": {"url": slow_sim.url, "max_in_flight": 1}},
        server={"trusted_proxies": ["127.0.0.1"]},
        queue={"clients": {"10.0.0.9": {"priority": 1}}},
    )
    with ThreadPoolExecutor(8) as pool:
        first = pool.submit(chat, p, "first", {"x-forwarded-for": "10.0.0.1"})
        wait_until(lambda: slow_sim.running == 1, timeout=20)
        backlog = [pool.submit(chat, p, f"b{k}", {"x-forwarded-for": "10.0.0.1"}) for k in range(5)]
        wait_until(lambda: metric(p, "devstral_queue_length") == 5, timeout=20)
        vip = pool.submit(chat, p, "vip", {"x-forwarded-for": "10.0.0.9"})
        wait_until(lambda: metric(p, "devstral_queue_length") == 6, timeout=20)
        assert all(f.result().status == 200 for f in [first, *backlog, vip])
    assert in_order(slow_sim).index("vip") == 1  # right after the one running


async def _flush(p):
    p.proxy.access.flush()


def test_the_access_log_names_the_caller_not_its_key(sim, start_proxy, capfd):
    p = start_proxy(sim.url, authentication={"api_keys": ["sk-secret"]}, logging={"level": "INFO"})
    assert http("POST", p.url + "/v1/chat/completions", CHAT, {"x-api-key": "sk-secret"}).status == 200
    p.loop.call(lambda: _flush(p))
    err = capfd.readouterr().err
    assert '"caller":"k' in err and "sk-secret" not in err
