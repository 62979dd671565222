"""Time moved by hand (one ManualClock): the queue's waits and its timeout, the rate-limit
windows and the Redis fail-open pause, uptime; no sleeps."""

from devstral_proxy.caller import Caller
from devstral_proxy.config import QueueConfig
from devstral_proxy.metrics import Metrics
from devstral_proxy.ratelimit import LocalLimiter
from devstral_proxy.record import Record
from devstral_proxy.waitqueue import FairQueue
from tests.unit.fakes import ManualClock


class _Cycle:
    """What the queue needs of a request's cycle."""

    def __init__(self, address: str) -> None:
        self.caller = Caller(address)
        self.record = Record(b"POST", "/v1/chat/completions", address, 0)
        self.handler = None
        self.failed = None

    def attach(self, handler) -> None:
        self.handler = handler

    def detach(self, handler) -> None:
        if self.handler is handler:
            self.handler = None

    def fail(self, failure) -> None:
        self.failed = failure


class _Backend:
    """What the queue and the router's ejection read of a backend."""

    max_in_flight = 1

    def __init__(self, name: str = "b", model: str | None = None, outstanding: int = 0) -> None:
        self.name, self.model, self.outstanding = name, model, outstanding
        self.failures, self.ejected_until, self.trial = 0, 0.0, False

    def serves(self, model) -> bool:
        return self.model is None or model == self.model

    def usable(self) -> bool:
        return not self.ejected_until


def _queue(clock: ManualClock, **config) -> tuple[FairQueue, Metrics, list]:
    metrics = Metrics()
    queue = FairQueue(QueueConfig(**config), metrics, clock)
    sent: list = []
    queue.send = lambda entry, backend: sent.append(entry.cycle)
    return queue, metrics, sent


def test_a_queued_request_waits_as_long_as_the_clock_says():
    clock = ManualClock()
    queue, metrics, sent = _queue(clock)
    cycle = _Cycle("10.0.0.1")
    assert queue.add(cycle, "m") is None and queue.count == 1
    clock.advance(2.5)
    queue.dispatch(_Backend())
    assert sent == [cycle] and queue.count == 0
    (hist,) = metrics.queue_waits.values()
    assert hist.count == 1 and hist.total == 2.5
    assert cycle.record.queued == 2.5  # what its trace's queue span spans


def test_a_request_waiting_past_max_wait_is_answered_503():
    clock = ManualClock()
    queue, _, sent = _queue(clock, max_wait=10)
    cycle = _Cycle("10.0.0.1")
    queue.add(cycle, "m")
    entry = cycle.handler
    clock.advance(9.9)
    entry.expire(clock.monotonic())
    assert cycle.failed is None and queue.count == 1
    clock.advance(0.2)
    entry.expire(clock.monotonic())
    assert cycle.failed.status == 503 and cycle.failed.code == "queue_timeout" and queue.count == 0
    queue.dispatch(_Backend())
    assert sent == []  # gone: never sent


def test_rate_limit_windows_slide_with_the_wall_clock():
    clock = ManualClock(wall=60.0 * 1000)  # the start of a minute
    limiter = LocalLimiter(rpm=2, tpm=0, clock=clock)
    assert limiter.admit("a") is None and limiter.admit("a") is None
    assert limiter.admit("a") is not None  # the third in this minute
    clock.advance(60)  # the next minute: the last one's two still weigh fully at its start
    assert limiter.admit("a") is not None
    clock.advance(45)  # three quarters through: they weigh a quarter (0.5 + 1 <= 2)
    assert limiter.admit("a") is None


def test_requests_waiting_for_an_ejected_backend_are_answered_at_once():
    """The only backend for model "m" is ejected: its waiting requests get a 503 with
    Retry-After now, not after max_wait; those for another model keep waiting."""
    from devstral_proxy.config import RoutingConfig
    from devstral_proxy.router import Router

    clock = ManualClock()
    queue, metrics, _ = _queue(clock, max_wait=120)
    m, other = _Backend("m", "m", outstanding=1), _Backend("o", "o", outstanding=1)  # both full
    router = Router([m, other], RoutingConfig(eject_after=1, cooldown=5), clock)  # type: ignore[list-item]
    router.queue, queue.router = queue, router
    waiting = [_Cycle(f"10.0.0.{i}") for i in range(3)]
    for cycle in waiting:
        queue.add(cycle, "m")
    elsewhere = _Cycle("10.0.0.9")
    queue.add(elsewhere, "o")
    router.outcome(m, False)  # ejected
    assert all(c.failed is not None and c.failed.status == 503 and b"retry-after: 5" in c.failed.headers for c in waiting)
    assert elsewhere.failed is None and queue.count == 1
    assert metrics.queue_refused["no_backend"] == 3
