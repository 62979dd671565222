"""The admission queue: a request that finds every backend serving its model at its
`max_in_flight` waits here, shared fairly between clients, until a backend has room, its
deadline passes (503 queue_timeout) or its client leaves (it never reaches a backend).

Fairness: one flow per (caller, model), the caller being the identity admission resolved
(its validated API key, else its address; `queue.clients` entries name either); flows of a
higher `priority` class are served first; within a class, weighted deficit round robin (each
visit adds the flow's weight; a request costs one), so one client's burst waits behind its
own requests, not in front of everyone's. Removal on leave or timeout is
lazy (marked, skipped when reached): every operation is O(1) amortised, a dispatch scans
at most the flows it cannot serve.
"""

from collections import deque
from collections.abc import Callable
from typing import Any

from .caller import key_id
from .clock import SYSTEM, Clock
from .errors import Failure


def _ids(name: str) -> tuple[str, str]:
    """The identities a `queue.clients` entry may mean: the caller with that API key, or
    the caller at that address."""
    return key_id(name.encode()), "a" + name


class Waiting:
    """One queued request; its cycle's handler while it waits."""

    __slots__ = ("queue", "cycle", "model", "flow", "deadline", "t0", "gone")
    abandonable = True  # the client's connection closing (EOF) means it left

    def __init__(self, queue: "FairQueue", cycle, model: str | None, flow: "Flow", max_wait: float) -> None:
        self.queue = queue
        self.cycle = cycle
        self.model = model
        self.flow = flow
        self.t0 = queue.clock.monotonic()
        self.deadline = self.t0 + max_wait
        self.gone = False

    def cancel(self) -> None:
        """The client left: out of the queue; nothing was sent anywhere."""
        if not self.gone:
            self.queue.drop(self, "client_gone")

    def pause(self) -> None:
        pass

    def resume(self) -> None:
        pass

    def expire(self, now: float) -> None:
        """Called by the sweep: waited max_wait without a backend with room."""
        if not self.gone and now >= self.deadline:
            self.queue.drop(self, "queue_timeout")
            wait = self.queue.max_wait
            self.cycle.fail(
                Failure(
                    503, f"No backend had room for this request within {wait:g} s.", "queue_timeout", headers=b"retry-after: %d\r\n" % max(1, round(wait / 2))
                )
            )


class Flow:
    __slots__ = ("key", "model", "priority", "quantum", "deficit", "entries", "live", "active")

    def __init__(self, key, model: str | None, priority: int, quantum: float) -> None:
        self.key = key
        self.model = model
        self.priority = priority
        self.quantum = quantum  # >= 1: one visit always earns at least one request
        self.deficit = 0.0
        self.entries: deque[Waiting] = deque()
        self.live = 0  # entries not gone
        self.active = False  # in its class's ring


def _unwired(entry: Waiting, backend) -> None:
    raise RuntimeError("the queue's send is set by the inference service")


class FairQueue:
    def __init__(self, config, metrics, clock: Clock = SYSTEM) -> None:
        self.clock = clock  # the time waited, for its histogram
        self.metrics = metrics
        self.send: Callable[[Waiting, Any], None] = _unwired  # set by the inference service that owns the route
        self.count = 0  # requests waiting
        self.router: Any = None  # for the capacity a share is of: set with send
        self.inflight: dict[str, int] = {}  # client -> its requests on capped backends
        self.by_model: dict[str | None, int] = {}
        self.flows: dict[tuple, Flow] = {}
        self.rings: dict[int, deque[Flow]] = {}  # priority -> active flows, in service order
        self.order: list[int] = []  # priorities, highest first
        self.configure(config)

    def configure(self, config) -> None:
        """The [queue] section (again on reload: new weights apply to new flows)."""
        self.max_wait = config.max_wait
        self.fair = config.fair
        self.max_share = config.max_share
        # an entry names an API key or an address: found by the caller's identity either way
        self.shares = {who: c.max_share for k, c in config.clients.items() if c.max_share is not None for who in _ids(k)}
        capped = config.max_share < 1 or any(share < 1 for share in self.shares.values())
        self.strict = config.fair and capped  # some client may not take every slot
        self.max_queued = config.max_queued
        weights = [c.weight for c in config.clients.values()]
        unit = min([1.0, *weights])  # the smallest weight earns one request a visit
        self.clients = {who: (c.priority, c.weight / unit) for k, c in config.clients.items() for who in _ids(k)}
        self.tiers = {k: (c.priority, c.weight / unit) for k, c in config.clients.items()}  # an entry may name a token's tier too
        self.default = (0, 1.0 / unit)

    def holder(self, caller) -> str:
        """Whose share a request counts against: its caller (one line for everyone when the
        queue is not fair)."""
        return caller.id if self.fair else ""

    def take(self, caller) -> str:
        client = self.holder(caller)
        self.inflight[client] = self.inflight.get(client, 0) + 1
        return client

    def release(self, client: str | None) -> None:
        if client is not None:
            left = self.inflight.get(client, 0) - 1
            if left > 0:
                self.inflight[client] = left
            else:
                self.inflight.pop(client, None)

    def over_share(self, client: str, model: str | None) -> bool:
        """Whether `client` holds its max_share of the capped slots of the backends serving `model`."""
        share = self.shares.get(client, self.max_share)
        if share >= 1:
            return False
        capacity = sum(b.max_in_flight for b in self.router.backends if b.max_in_flight and b.serves(model))
        return capacity > 0 and self.inflight.get(client, 0) >= max(1, int(share * capacity))

    def waiting_for(self, model: str | None) -> bool:
        return self.by_model.get(model, 0) > 0

    def add(self, cycle, model: str | None) -> Failure | None:
        """Queue a request (the entry becomes its cycle's handler); a Failure when the
        queue is full."""
        if self.count >= self.max_queued:
            self.metrics.queue_refused["queue_full"] = self.metrics.queue_refused.get("queue_full", 0) + 1
            return Failure(503, f"Every backend is busy and {self.max_queued} requests are waiting already.", "queue_full", headers=b"retry-after: 1\r\n")
        caller = cycle.caller
        client = self.holder(caller)
        priority, quantum = self.clients.get(caller.id) or (caller.tier is not None and self.tiers.get(caller.tier)) or self.default
        flow = self.flows.get((client, model))
        if flow is None:
            flow = self.flows[(client, model)] = Flow(client, model, priority, quantum)
        entry = Waiting(self, cycle, model, flow, self.max_wait)
        flow.entries.append(entry)
        flow.live += 1
        if not flow.active:
            flow.active = True
            ring = self.rings.get(priority)
            if ring is None:
                ring = self.rings[priority] = deque()
                self.order = sorted(self.rings, reverse=True)
            ring.append(flow)
        self.count += 1
        self.by_model[model] = self.by_model.get(model, 0) + 1
        cycle.attach(entry)
        return None

    def drop(self, entry: Waiting, reason: str) -> None:
        entry.gone = True
        flow = entry.flow
        flow.live -= 1
        self._left(entry)
        refused = self.metrics.queue_refused
        refused[reason] = refused.get(reason, 0) + 1
        if flow.live == 0:  # nothing left: out of the ring now (at most max_queued flows to scan)
            if flow.active:
                self.rings[flow.priority].remove(flow)
                flow.active = False
            flow.entries.clear()
            flow.deficit = 0.0
            self.flows.pop((flow.key, flow.model), None)
        elif len(flow.entries) > 2 * flow.live + 8:  # mostly gone: compact (amortised O(1))
            flow.entries = deque(e for e in flow.entries if not e.gone)

    def refuse_unservable(self, retry_after: int) -> None:
        """A backend was ejected: the requests waiting for a model that no backend in service
        serves any more get a 503 at once, not at max_wait (new ones get it from routing)."""
        backends = self.router.backends
        for flow in list(self.flows.values()):
            if any(b.serves(flow.model) and b.usable() for b in backends):
                continue
            for entry in list(flow.entries):
                if not entry.gone:
                    self.drop(entry, "no_backend")
                    why = "No backend serving this model is in service (ejected after failures); try again shortly."
                    entry.cycle.fail(Failure(503, why, "no_backend_available", headers=b"retry-after: %d\r\n" % retry_after))

    def _left(self, entry: Waiting) -> None:
        self.count -= 1
        self.by_model[entry.model] -= 1
        entry.cycle.detach(entry)

    def dispatch(self, backend) -> None:
        """A backend has room: give it the waiting requests it serves, fairly, while it has."""
        while self.count and (not backend.max_in_flight or backend.outstanding < backend.max_in_flight) and backend.usable():
            entry = self._next(backend)
            if entry is None:
                return
            self._left(entry)
            entry.gone = True
            waited = self.clock.monotonic() - entry.t0
            self.metrics.queue_wait(entry.model, entry.flow.priority, waited)
            entry.cycle.record.queued = waited
            self.send(entry, backend)

    def _next(self, backend) -> Waiting | None:
        for priority in self.order:
            ring = self.rings[priority]
            for _ in range(len(ring)):
                flow = ring[0]
                while flow.entries and flow.entries[0].gone:  # left or timed out: skip
                    flow.entries.popleft()
                if not flow.entries:
                    ring.popleft()
                    flow.active = False
                    flow.deficit = 0.0
                    del self.flows[(flow.key, flow.model)]
                    continue
                if not backend.serves(flow.model) or self.strict and self.over_share(flow.key, flow.model):
                    ring.rotate(-1)
                    continue
                if flow.deficit < 1:
                    flow.deficit += flow.quantum  # a new visit
                entry = flow.entries.popleft()
                flow.live -= 1
                flow.deficit -= 1
                if flow.deficit < 1:  # its share of this round is spent: the next flow's turn
                    ring.rotate(-1)
                return entry
            if not ring:
                del self.rings[priority]
                self.order = sorted(self.rings, reverse=True)
        return None

    def lengths(self) -> dict[tuple, int]:
        """(model, priority) -> requests waiting, for /metrics."""
        out: dict[tuple, int] = {}
        for flow in self.flows.values():
            if flow.live:
                key = (flow.model, flow.priority)
                out[key] = out.get(key, 0) + flow.live
        return out
