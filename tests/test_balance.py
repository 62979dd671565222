"""Choosing a backend, with plain objects: weights, affinity with bounded load, determinism
across proxy instances, ejection with a growing cooldown and a trial request."""

import collections
import random

from devstral_proxy.balance import affinity, least_loaded
from devstral_proxy.config import RoutingConfig
from devstral_proxy.router import Router
from tests.unit.fakes import ManualClock


class B:
    def __init__(self, name: str, weight: float = 1.0, models=()) -> None:
        self.name, self.weight, self.outstanding = name, weight, 0
        self.models = set(models)
        self.failures, self.ejected_until, self.trial = 0, 0.0, False
        self.max_in_flight = 0
        self.engine_running, self.engine_waiting, self.kv_usage = None, 0, 0.0

    def serves(self, model):
        return not self.models or model is None or model in self.models

    @property
    def load(self):
        return self.outstanding if self.engine_running is None else max(self.outstanding, self.engine_running + self.engine_waiting)


def test_least_loaded_honours_weights():
    rng = random.Random(1)
    heavy, light = B("heavy", 3), B("light", 1)
    counts = collections.Counter()
    for _ in range(4000):  # each request stays in flight: load builds up by weight
        b = least_loaded([heavy, light], rng)
        b.outstanding += 1
        counts[b.name] += 1
    assert 2.7 < counts["heavy"] / counts["light"] < 3.3


def test_least_loaded_prefers_the_idle_backend():
    busy, idle = B("busy"), B("idle")
    busy.outstanding = 10
    assert all(least_loaded([busy, idle], random.Random(i)) is idle for i in range(50))


def test_affinity_is_sticky_spread_and_the_same_in_every_instance():
    backends = [B(f"vllm-{i}") for i in range(4)]
    others = [B(f"vllm-{i}") for i in range(4)]  # another proxy instance, same list
    picks = {}
    for s in range(400):
        key = f"conversation-{s}".encode()
        first = affinity(backends, key, 1.25)[0]
        assert affinity(backends, key, 1.25)[0] is first
        assert affinity(others, key, 1.25)[0].name == first.name
        picks[key] = first.name
    spread = collections.Counter(picks.values())
    assert len(spread) == 4 and max(spread.values()) < 1.4 * 100


def test_affinity_bounded_load_moves_overflow_elsewhere():
    backends = [B(f"vllm-{i}") for i in range(4)]
    key = b"hot conversation"
    home = affinity(backends, key, 1.25)[0]
    home.outstanding = 50  # far over its share
    assert affinity(backends, key, 1.25)[0] is not home


def test_router_filters_by_model_and_ejects_with_growing_cooldown():
    clock = ManualClock()
    a, b = B("a", models={"llama"}), B("b", models={"mistral"})
    router = Router([a, b], RoutingConfig(eject_after=2, cooldown=10, max_cooldown=25), clock)
    assert router.pick("mistral") is b and router.pick("llama") is a
    assert router.pick("other") is None and not router.serving("other")
    router.outcome(b, False)
    assert router.pick("mistral") is b  # one failure: still in
    router.outcome(b, False)
    assert router.pick("mistral") is None  # ejected for the cooldown
    assert router.retry_after() == 10
    clock.advance(9.9)
    assert router.pick("mistral") is None
    clock.advance(0.2)
    assert router.pick("mistral") is b  # the trial request
    assert router.pick("mistral") is None  # only one while it is out
    router.outcome(b, False)  # the trial failed: twice the cooldown
    clock.advance(19.9)
    assert router.pick("mistral") is None and router.retry_after() == 1
    clock.advance(0.2)
    assert router.pick("mistral") is b
    router.outcome(b, False)  # again: 40 s, capped by max_cooldown
    assert router.retry_after() == 25
    clock.advance(25.1)
    assert router.pick("mistral") is b
    router.outcome(b, True)
    assert router.pick("mistral") is b and router.pick("mistral") is b  # back in service
