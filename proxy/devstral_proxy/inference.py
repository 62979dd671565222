"""The inference service: a request on an inference route goes through the rate limits, gets
a backend (by model, session and strategy), is prepared by that backend's dialect and relayed;
a backend that cannot be connected to hands the request to the next one.

Other /v1/* paths are relayed to a backend unchanged (`relay`).
"""

import heapq
import logging
from functools import partial
from typing import Any

import msgspec

from devstral_translate import context, images
from devstral_translate.errors import RequestError
from devstral_translate.openai import map_model
from devstral_translate.rewrites import Rewrites

from .cache import ResponseCache
from .errors import Failure
from .parsed import RoutingHead, raw_list, role, routing_head
from .relay import Exchange
from .router import forward_headers
from .split import Splits

log = logging.getLogger("devstral_proxy")


def conversation_start(head: RoutingHead, limit: int) -> bytes:
    """What identifies a conversation in every one of its turns: its messages up to and
    including the first user message (or a completion's prompt), at most `limit` bytes."""
    if memoryview(head.messages)[:1] == b"n":
        return memoryview(head.prompt)[:limit].tobytes()
    try:
        messages = raw_list.decode(head.messages)
    except (msgspec.DecodeError, UnicodeDecodeError):
        return b""
    parts = []
    for raw in messages:
        parts.append(memoryview(raw)[:limit].tobytes())
        try:
            if role.decode(raw).role == "user":
                break
        except (msgspec.DecodeError, UnicodeDecodeError):
            break
    return b"".join(parts)[:limit]


def target(cycle) -> bytes:
    """The request target to send on: path and query."""
    path = cycle.path.encode("latin-1")
    return path + b"?" + cycle.query if cycle.query else path


def upstream_headers(cycle) -> bytes:
    """The client's headers for the backend, with the request id (the client's, when valid:
    an invalid one is replaced, never sent beside ours) and X-Forwarded-For."""
    trace = cycle.record.trace
    forwarded = forward_headers(cycle.req.headers) if trace is None else forward_headers(cycle.req.headers, traced=True) + trace.traceparent()  # type: ignore[attr-defined]
    return b"%sx-request-id: %s\r\nx-forwarded-for: %s\r\n" % (forwarded, cycle.record.rid.encode(), cycle.caller.forwarded_for)


class _Failover:
    """Sends a request whose backend could not be connected to (nothing written) elsewhere."""

    __slots__ = ("service", "cycle", "tried")

    def __init__(self, service: "InferenceService", cycle, tried: tuple) -> None:
        self.service = service
        self.cycle = cycle
        self.tried = tried

    def __call__(self, failed) -> None:
        self.service.route(self.cycle, (*self.tried, failed))


class _Resend:
    """Sends a request again when the backend refused what a second try fixes (nothing was
    generated): something its dialect has now learnt (the bridge turn), or a max_tokens that
    does not fit beside the prompt (once, with the max_tokens vLLM's refusal leaves room for)."""

    __slots__ = ("service", "cycle", "learn", "fit")

    def __init__(self, service: "InferenceService", cycle, learn, fit: bool) -> None:
        self.service = service
        self.cycle = cycle
        self.learn = learn
        self.fit = fit

    def __call__(self, status: int, body: bytes) -> bool:
        if self.learn is not None and self.learn(status, body):
            self.service.route(self.cycle)
            return True
        room = context.fitting(status, body) if self.fit and not self.cycle.fit else None
        if room is None:
            return False
        self.cycle.fit = room
        log.info("request %s: max_tokens does not fit the model's context; sent again with max_tokens %d", self.cycle.record.rid, room)
        self.service.route(self.cycle)
        return True


def not_served(model: str | None, router, model_map: dict[str, str]) -> Failure:
    """A 404 naming what is served (the client may have misspelt it)."""
    names = {*model_map, *(m for b in router.backends for m in b.models)}
    first = heapq.nsmallest(10, names)  # linear in the models served, however many there are
    listed = ", ".join(first) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
    served = f"; served here: {listed} (GET /v1/models lists them)" if names else ""
    return Failure(404, f"The model '{model}' is not served by any backend{served}.", "model_not_found", "model")


def image_refusal(body: bytes, policy: str, domains: tuple) -> Failure | None:
    """Why an image URL of the request may not reach the backend (images.url_policy)."""
    for url in images.image_urls(body):
        why = images.refused(url, policy, domains)
        if why is not None:
            return Failure(400, f"Image URL refused ({why}; images.url_policy = '{policy}'): {url[:200]}", "image_url_refused", "messages")
    return None


class InferenceService:
    def __init__(self, config, router, rate_limits, log_error, queue) -> None:
        self.router = router
        self.queue = queue  # waitqueue.FairQueue: where requests wait for a full backend
        queue.send = self.dispatched
        router.queue = queue
        queue.router = router
        self.model_map = config.model_map()
        splits = config.model_splits()
        self.splits = Splits(splits) if splits else None  # weighted model routing (split.py)
        self.image_policy = config.images.url_policy
        self.image_domains = tuple(d.lower().strip(".") for d in config.images.allowed_domains)
        self.affinity_bytes = config.routing.affinity_bytes
        self.rate_limits = rate_limits
        self.log_error = log_error
        self.debug = log.isEnabledFor(logging.DEBUG)  # a line per routing decision, and the rewrites, at DEBUG
        self.backend_bodies = config.logging.log_backend_bodies
        self.cache: ResponseCache | None = None  # the response cache, when [cache] is on (set by the app)

    @property
    def entry(self) -> Any:
        """The handler of the inference routes: through the rate limits when there are any."""
        return self.handle if self.rate_limits.active else self.route

    def unprefixed(self, cycle) -> None:
        """`/chat/completions` and its kind: clients given a base URL without /v1."""
        cycle.path = "/v1" + cycle.path
        self.entry(cycle)

    def handle(self, cycle) -> None:
        """An inference route: under the rate limits, then routed."""
        self.rate_limits.check(cycle, self.route, self.log_error)

    def routing_keys(self, cycle) -> tuple[str | None, str | None, bytes | None]:
        """(client model, backend model, session) of a request, read before any dialect
        translates it: a choice of backend is needed first."""
        try:
            head = routing_head.decode(cycle.body)
        except (msgspec.DecodeError, UnicodeDecodeError):
            return None, None, None  # the dialect will refuse it with a clear 400
        model = head.model if isinstance(head.model, str) else None
        session = cycle.req.header(b"x-session-id")
        if session is None and self.router.strategy(model) == "affinity":
            if isinstance(head.user, str) and head.user:
                session = head.user.encode()
            else:
                session = conversation_start(head, self.affinity_bytes)
        if cycle.variant is not None:
            return model, cycle.variant.model, session
        return model, self.model_map.get(model, model) if model else None, session

    def route(self, cycle, tried: tuple = ()) -> None:
        if cycle.body.find(b'"image_url"') != -1 and not tried:  # (find: a byte search; no image, no decoding)
            refused = image_refusal(cycle.body, self.image_policy, self.image_domains)
            if refused is not None:
                cycle.fail(refused)
                return
        router = self.router
        queue = self.queue
        if self.splits is not None and not tried:
            self.splits.assign(cycle)
        variant = cycle.variant
        if len(router.backends) == 1 and not tried and not queue.count and not queue.strict and variant is None:
            backend = router.pick(None)
            if backend is None:
                if router.full(None):
                    self._wait(cycle, self.routing_keys(cycle)[1])
                    return
                cycle.fail(Failure(503, "The backend is ejected after repeated failures; try again shortly.", "no_backend_available", headers=self._retry()))
                return
        else:
            client_model, model, session = self.routing_keys(cycle)
            if not tried and (queue.count and queue.waiting_for(model) or queue.strict and queue.over_share(queue.holder(cycle.caller), model)):
                self._wait(cycle, model)  # behind those already waiting for it, or over its share
                return
            backend = router.pick(model, client_model, session, tried + variant.excluded(router.backends) if variant is not None else tried)
            if backend is None:
                if not tried and router.full(model):
                    self._wait(cycle, model)
                elif tried:
                    cycle.fail(Failure(502, "No backend could be reached.", "backend_unreachable"))
                elif model is not None and not router.serving(model):
                    cycle.fail(not_served(client_model, router, self.model_map))
                else:
                    cycle.fail(Failure(503, "No backend is available right now; try again shortly.", "no_backend_available", headers=self._retry()))
                return
        self.send(cycle, backend, tried)

    def _wait(self, cycle, model: str | None) -> None:
        """Every backend for the model is at its max_in_flight: the request waits its turn."""
        queue = self.queue
        refused = queue.add(cycle, model)
        if refused is not None:
            cycle.fail(refused)
            return
        for backend in self.router.backends:  # room already (a share kept free, a slot just freed)
            if queue.count and backend.serves(model) and not backend.full():
                queue.dispatch(backend)

    def dispatched(self, entry, backend) -> None:
        """A queued request's turn: the backend that has room takes it."""
        if entry.cycle.waiting:
            self.send(entry.cycle, backend, ())

    def send(self, cycle, backend, tried: tuple) -> None:
        """Prepare the request in the backend's dialect and relay it."""
        front = cycle.front
        if front is not None and front.path in backend.native:
            self._native(cycle, front, backend)
            return
        usage = self.rate_limits.counts_tokens or self.cache is not None  # a stream's usage asked for (hidden if the client did not)
        notes = Rewrites() if self.debug else None  # the dialect reports what it changed
        try:
            prepared = backend.prepare(cycle.path, cycle.body, self.model_map if cycle.variant is None else cycle.variant.map, usage, notes)
        except RequestError as exc:
            cycle.fail(Failure(400, exc.message, exc.code, exc.param))
            return
        if cycle.fit:  # the second try of a max_tokens the backend refused for the context length
            prepared.body = context.with_max_tokens(prepared.body, cycle.fit)
        elif front is not None and backend.cfg.fit_max_tokens and prepared.backend_model in backend.context_lengths:
            prepared.body = context.clamped(prepared.body, backend.context_lengths[prepared.backend_model])
        if front is not None:  # Responses or Messages: their translator over the dialect's
            prepared.response = front.over(prepared.response)
        record = cycle.record
        record.model, record.backend_model, record.backend = prepared.client_model, prepared.backend_model, backend.name
        if notes is not None:
            record.rewrites = notes.counts()
        if self.backend_bodies:
            record.backend_body = prepared.body
        if self.cache is not None and (plan := self.cache.plan(cycle, prepared)) is not None:  # answered from it, or kept by it
            self.cache.serve(cycle, prepared, plan, partial(self._relay, cycle, backend, prepared, tried, plan.key))
            return
        self._relay(cycle, backend, prepared, tried)

    def _relay(self, cycle, backend, prepared, tried: tuple, key: str = "", tap=None) -> None:
        """The request to `backend` (`tap`: the cache keeps its reply, under `key`)."""
        router, record, counting = self.router, cycle.record, self.rate_limits.counts_tokens
        head = backend.request_head(b"POST", target(cycle), upstream_headers(cycle), len(prepared.body))
        exchange = Exchange(cycle, router, backend, head, prepared.body, prepared.response if tap is None else tap)
        if tap is not None:
            exchange.ended = partial(self.cache.ended, key)  # type: ignore[union-attr]  # a tap comes from the cache
        if backend.max_in_flight:  # a slot of a capped backend: counted against the client's share
            exchange.client = self.queue.take(cycle.caller)
        exchange.hide_usage = prepared.usage_added
        if counting:
            exchange.on_tokens = self.rate_limits.token_counter(cycle.caller)
        if len(router.backends) > 1:
            exchange.failover = _Failover(self, cycle, tried)
        if prepared.retry is not None or backend.cfg.fit_max_tokens:
            exchange.resend = _Resend(self, cycle, prepared.retry, backend.cfg.fit_max_tokens)
        if self.debug:
            log.debug(
                "request %s: %s -> backend %s as %s%s",
                record.rid,
                record.model,
                backend.name,
                record.backend_model,
                f" (after {len(tried)} unreachable)" if tried else "",
            )
        exchange.start()

    @property
    def relay_entry(self) -> Any:
        """The handler of relayed routes: through the request-rate limits when there are any."""
        return self.relay_limited if self.rate_limits.active else self.relay

    def relay_limited(self, cycle) -> None:
        self.rate_limits.check(cycle, self.relay, self.log_error)

    def _retry(self) -> bytes:
        return b"retry-after: %d\r\n" % self.router.retry_after()

    def _native(self, cycle, front, backend) -> None:
        """A front route the backend serves itself: the client's body, its model mapped."""
        record = cycle.record
        body, record.model = map_model(front.body, self.model_map)
        record.backend = backend.name
        head = backend.request_head(b"POST", front.path.encode(), upstream_headers(cycle), len(body))
        exchange = Exchange(cycle, self.router, backend, head, body, raw=True)
        if backend.max_in_flight:
            exchange.client = self.queue.take(cycle.caller)
        exchange.start()

    def relay(self, cycle) -> None:
        """A backend route the proxy does not translate: relayed as it is, its model mapped."""
        body = cycle.body
        record = cycle.record
        if self.model_map and body:
            body, record.model = map_model(body, self.model_map)
        backend = self.router.pick(None) or self.router.backends[0]
        record.backend = backend.name
        method = cycle.req.method
        head = backend.request_head(method, target(cycle), upstream_headers(cycle), len(body))
        Exchange(cycle, self.router, backend, head, body, head_only=method == b"HEAD", raw=True).start()
