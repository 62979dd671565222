"""Time moved by hand (one ManualClock): the queue's waits and its timeout, the rate-limit
windows and the Redis fail-open pause, uptime; no sleeps."""

from devstral_proxy.caller import Caller
from devstral_proxy.config import QueueConfig
from devstral_proxy.metrics import Metrics
from devstral_proxy.ratelimit import LocalLimiter
from devstral_proxy.waitqueue import FairQueue
from tests.unit.fakes import ManualClock


class _Cycle:
    """What the queue needs of a request's cycle."""

    def __init__(self, address: str) -> None:
        self.caller = Caller(address)
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
    max_in_flight = 1
    outstanding = 0

    def serves(self, model) -> bool:
        return True

    def usable(self) -> bool:
        return True


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
