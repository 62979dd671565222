"""Several backends: routing by model, merged model lists, weights, conversation affinity,
and a backend that dies under load and comes back."""

import collections
import json
import threading
import time

import pytest

from bench.simulator import Behavior
from tests.support import SimThread, eventually, free_port, http


def chat(proxy, model: str, headers=None):
    return http("POST", proxy.url + "/v1/chat/completions", {"model": model, "messages": [{"role": "user", "content": "hi"}]}, headers=headers)


def test_requests_go_to_a_backend_serving_their_model_and_models_merge(start_proxy):
    a, b = SimThread(Behavior(models=["llama"])), SimThread(Behavior(models=["mistral"]))
    try:
        p = start_proxy(backends={"a": {"url": a.url}, "b": {"url": b.url}}, model_mapping={"gpt-4": "mistral"})
        for _ in range(10):
            assert chat(p, "llama").status == 200 and chat(p, "gpt-4").status == 200
        assert {r["model"] for r in a.record.requests} == {"llama"} and {r["model"] for r in b.record.requests} == {"mistral"}
        r = chat(p, "unknown")
        assert r.status == 404 and r.json()["error"]["code"] == "model_not_found"
        said = "The model 'unknown' is not served by any backend; served here: gpt-4, llama, mistral (GET /v1/models lists them)."
        assert r.json()["error"]["message"] == said
        ids = [m["id"] for m in http("GET", p.url + "/v1/models").json()["data"]]
        assert sorted(ids) == ["gpt-4", "llama", "mistral"]
        health = http("GET", p.url + "/health").json()
        assert set(health["backends"]) == {"a", "b"} and health["backends"]["b"]["models"] == ["mistral"]
    finally:
        a.stop()
        b.stop()


def test_weights_and_affinity(start_proxy):
    sims = [SimThread() for _ in range(3)]
    try:
        backends = {f"s{i}": {"url": s.url, "weight": w} for i, (s, w) in enumerate(zip(sims, (3, 1, 1)))}
        p = start_proxy(backends=backends, model_mapping={})
        for _ in range(250):
            assert chat(p, "mistral-sim").status == 200
        counts = [len(s.record.requests) for s in sims]
        assert 2.0 < counts[0] / ((counts[1] + counts[2]) / 2) < 4.5, counts
        a = start_proxy(backends=backends, routing={"strategy": "affinity"}, model_mapping={})
        for session in ("alice", "bob", "carol", "dave", "erin", "frank"):
            before = [len(s.record.requests) for s in sims]
            for _ in range(5):
                assert chat(a, "mistral-sim", {"x-session-id": session}).status == 200
            grew = [len(s.record.requests) - n for s, n in zip(sims, before)]
            assert sorted(grew) == [0, 0, 5], (session, grew)  # one conversation, one backend
        homes = set()
        for convo in range(8):  # no header: the `user` field, or the conversation's start
            history = [{"role": "system", "content": f"agent {convo}"}, {"role": "user", "content": "task"}]
            before = [len(s.record.requests) for s in sims]
            for turn in range(4):
                body = {"model": "mistral-sim", "messages": history + [{"role": "user", "content": f"turn {turn}"}]}
                if convo % 2:
                    body["user"] = f"user-{convo}"
                assert http("POST", a.url + "/v1/chat/completions", body).status == 200
            grew = [len(s.record.requests) - n for s, n in zip(sims, before)]
            assert sorted(grew) == [0, 0, 4], (convo, grew)
            homes.add(grew.index(4))
        assert len(homes) > 1  # conversations spread over backends
    finally:
        for s in sims:
            s.stop()


def test_a_backend_dies_under_load_and_rejoins(start_proxy):
    port = free_port()
    steady, flaky = SimThread(), SimThread(port=port)
    p = start_proxy(
        backends={"steady": {"url": steady.url}, "flaky": {"url": flaky.url}},
        routing={"eject_after": 1, "cooldown": 0.5, "health_interval": 0.2},
        model_mapping={},
    )
    results, stop = [], threading.Event()

    def load() -> None:
        while not stop.is_set():
            t = time.monotonic()
            try:
                results.append((t, chat(p, "mistral-sim").status))
            except OSError:
                results.append((t, "connection error"))

    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        eventually(lambda: len(results) >= 20, what="load on both backends")
        killed = time.monotonic()
        flaky.stop()
        eventually(lambda: sum(t > killed + 0.2 for t, _ in results) >= 40, what="40 requests after the kill")
        after_kill = [s for t, s in results if t > killed + 0.2]
        assert after_kill and all(s == 200 for s in after_kill), collections.Counter(after_kill)
        lost = [s for t, s in results if s != 200]
        assert len(lost) <= 4, lost  # at most the requests already in flight on the dead one
        flaky = SimThread(port=port)  # it comes back ...
        eventually(lambda: flaky.record.requests, what="the backend rejoining")  # ... and takes requests again
    finally:
        stop.set()
        for t in threads:
            t.join()
        steady.stop()
        flaky.stop()


def test_affinity_reuses_the_prefix_cache_more_than_round_robin():
    import argparse

    from bench.routing import run

    args = argparse.Namespace(backends=3, conversations=9, turns=4, cache_blocks=1500, prefill_us=10.0, seed=3)
    rr, aff = run("round_robin", args), run("affinity", args)
    assert aff["hit"] > rr["hit"] + 0.15, (rr, aff)


def test_active_health_checks_eject_and_readmit_without_traffic(start_proxy):
    port = free_port()
    a, b = SimThread(), SimThread(port=port)
    p = start_proxy(backends={"a": {"url": a.url}, "b": {"url": b.url}}, routing={"health_interval": 0.1, "eject_after": 1, "cooldown": 0.2}, model_mapping={})
    try:
        backend_b = next(x for x in p.proxy.router.backends if x.name == "b")
        b.stop()
        eventually(lambda: backend_b.ejected_until > 0, what="the ejection")  # found by the checks alone
        before = len(a.record.requests)
        assert all(chat(p, "mistral-sim").status == 200 for _ in range(10))
        assert len(a.record.requests) - before == 10
        b = SimThread(port=port)
        eventually(lambda: backend_b.ejected_until == 0, what="the readmission")  # by a passing check
    finally:
        a.stop()
        b.stop()


@pytest.mark.parametrize(("health", "ejected"), [(404, False), (503, True)])
def test_a_backend_without_a_health_route_stays_in_service(sim, start_proxy, health, ejected):
    """LM Studio has no /health: its 404 says the server is up. A 5xx (vLLM's dead engine)
    is what takes a backend out."""
    sim.behavior.health_status = health
    p = start_proxy(backends={"only": {"url": sim.url}}, routing={"health_interval": 0.1, "eject_after": 1, "cooldown": 30})
    eventually(lambda: sim.record.health_checks >= 3, what="three health checks")  # the third starts once the first two were taken in
    backend = p.proxy.router.backends[0]
    assert bool(backend.ejected_until) is ejected
    r = chat(p, "gpt-4")
    assert r.status == (503 if ejected else 200)
    assert ("retry-after" in r.headers) is ejected  # a 503 says when to come back
    health = http("GET", p.url + "/health").json()
    assert ("unhealthy" in json.dumps(health)) is ejected, health
