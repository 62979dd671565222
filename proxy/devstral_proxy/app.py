"""The composition root: builds the parts from the config and wires them, and owns the
lifecycle (start, reload, drain, close) and the one sweep that expires deadlines.

The walk of a request: server -> admission -> route table -> inference service (or local
endpoints) -> relay -> reply channel -> accounting. Each part is in its own module.
"""

import asyncio
import logging
import ssl
import weakref
from typing import Any

from .accesslog import AccessLog
from .accounting import Accounting
from .admission import Admission
from .cache import ResponseCache, make_cache, replaced
from .clock import SYSTEM, Clock
from .config import Config
from .fronts import FrontRoutes
from .inference import InferenceService
from .local import LocalEndpoints
from .metrics import Metrics
from .monitor import BackendMonitor
from .ratelimit import RateLimits
from .router import Backend, Router
from .routes import proxy_routes
from .server import HttpProtocol, Limits
from .shared_metrics import MetricsShare
from .store import MemoryStore, RedisStore, make_store
from .tls import SniffingServer, listening_socket, renew, server_context
from .tokens import JwtAuth, make_jwt
from .tracing import Tracing
from .waitqueue import FairQueue

log = logging.getLogger("devstral_proxy")
_GET = (b"GET", b"HEAD")


class Proxy:
    """Implements server.Application for the connections it accepts."""

    def __init__(self, config: Config, metrics_dir: str | None = None, clock: Clock = SYSTEM) -> None:
        self.clock = clock  # one time source for every part that measures time
        self.connections: set[HttpProtocol] = set()
        self.handshaking: weakref.WeakSet[HttpProtocol] = weakref.WeakSet()  # TLS: accepted, not yet connections
        self.metrics = Metrics()
        self.share = MetricsShare(metrics_dir, self.metrics) if metrics_dir else None
        self.started = clock.wall()
        self.server: Any = None  # asyncio's server, or tls.SniffingServer (close(), sockets)
        self.router: Router | None = None
        self.rate_limits: RateLimits | None = None
        self.monitor: BackendMonitor | None = None
        self.access: AccessLog | None = None
        self._sweeper: asyncio.TimerHandle | None = None
        self.tls: ssl.SSLContext | None = None
        self._tick = 0.5
        self._pruned = 0.0
        self.store: MemoryStore | RedisStore | None = None  # stored Responses (store.py), made at start
        self.queue: FairQueue | None = None  # requests waiting for a backend under max_in_flight
        self.cache: ResponseCache | None = None  # the response cache, when [cache] is on
        self.jwt: JwtAuth | None = None  # [authentication.jwt]: the identity provider's tokens
        self.tracing = Tracing(config.tracing) if config.tracing.otlp_endpoint else None  # [tracing]: set at start (a restart changes it)
        self.config = config

    def _wire(self, config: Config) -> None:
        """Everything derived from the config that new requests read."""
        self.config = config
        self.limits = Limits(config.server, config.max_body_bytes)
        self.limits.tls = self.tls is not None
        lg = config.logging
        if self.access is not None:
            self.access.flush()
        bodies = lg.log_bodies or lg.include_request_body
        self.access = (
            AccessLog(bodies=bodies, backend_bodies=lg.log_backend_bodies, text=lg.format == "text")
            if lg.access and lg.level.upper() in ("DEBUG", "INFO")
            else None
        )
        self.monitor = BackendMonitor(self.router, config.routing, self.clock)
        if self.queue is None:
            self.queue = FairQueue(config.queue, self.metrics, self.clock)
        else:  # a reload: those waiting stay in line
            self.queue.configure(config.queue)
        inference = InferenceService(config, self.router, self.rate_limits, self.log_error, self.queue)
        inference.cache = self.cache
        auth = bool(config.authentication.active_keys()) or self.jwt is not None
        local = LocalEndpoints(
            self.router,
            self.monitor,
            self.metrics,
            inference.model_map,
            self.started,
            self.log_error,
            auth,
            self.rate_limits,
            self.share,
            self.queue,
            self.clock,
        )
        local.cache, local.tracing = self.cache, self.tracing
        routes = proxy_routes(inference, local, FrontRoutes(inference, self.store, self.log_error, config), config.server.relay_paths)
        admission = Admission(config, self.connections, self.handshaking, self.metrics, routes.dispatch, self.jwt)
        admission.keep_bodies = bodies and self.access is not None
        if admission.auth:  # a request without a valid key is refused before its body is read
            self.limits.screen = admission.screen
        accounting = Accounting(self.metrics, self.access, set(routes.paths))
        admission.tracing = accounting.tracing = self.tracing
        # what the connections call (server.Application)
        self.admit = admission.admit
        self.handle = admission.handle
        self.finished = accounting.finished

    def log_error(self, what: str, exc: BaseException) -> None:
        log.error("%s: %s", what, exc, exc_info=exc)

    # ---- lifecycle
    async def start(self, sock=None) -> tuple[str, int]:
        loop = asyncio.get_running_loop()
        self.router = Router([Backend(b, self.config) for b in self.config.backend_list()], self.config.routing, self.clock)
        self.rate_limits = RateLimits(self.config.rate_limit, self.clock)
        self.store = make_store(self.config.responses)
        self.cache = make_cache(self.config, self.metrics, self.log_error, self.clock)
        self.jwt = await make_jwt(self.config.authentication.jwt, self.clock)
        s = self.config.server
        self.tls = server_context(s)
        self._wire(self.config)
        # Before the first request: each backend's state (devstral_backend_up from the start),
        # and with several backends or a Mistral one, the models each serves and their generation.
        monitor, router = self.monitor, self.router
        assert monitor is not None  # made by _wire
        first = [monitor.probe_all(), monitor.read_loads()]
        if len(router.backends) > 1 or any(b.learns_generations for b in router.backends):
            first.append(monitor.discover_once())
        try:
            await asyncio.wait_for(asyncio.gather(*first), 3.0)
        except TimeoutError:
            log.warning("some backends did not answer their first health check or model list within 3 s")
        monitor.start()
        factory = lambda: HttpProtocol(self, loop)  # noqa: E731
        if self.tls is not None:  # each connection sniffed: TLS goes on (handshake within header_timeout), plain HTTP gets a 400
            listener = sock if sock is not None else listening_socket(s.host, s.port, s.backlog)
            self.server = SniffingServer(loop, listener, factory, self.tls, s.header_timeout, self.handshaking)  # type: ignore[assignment]
        elif sock is not None:
            self.server = await loop.create_server(factory, sock=sock, backlog=s.backlog)
        else:
            self.server = await loop.create_server(factory, s.host, s.port, backlog=s.backlog)
        self._tick = self.config.sweep_tick()
        self._sweeper = loop.call_later(self._tick, self._sweep)
        host, port = self.server.sockets[0].getsockname()[:2]
        return host, port

    async def reload(self, config: Config) -> None:
        """SIGHUP: the new config applies to new requests; those in flight finish as they
        began. The listening address and worker count change only with a restart."""
        old = self.config
        assert self.router is not None and self.monitor is not None, "reload() follows start()"
        if self.tls is not None or config.server.tls_cert:  # first: a certificate that does not load refuses the reload whole
            renew(self.tls, config.server)
        if (config.server.host, config.server.port, config.server.workers) != (old.server.host, old.server.port, old.server.workers):
            log.warning("reload: server.host, server.port and server.workers change only with a restart")
        self.router = self.router.replaced(config)
        previous = None
        if config.rate_limit != old.rate_limit:
            previous, self.rate_limits = self.rate_limits, RateLimits(config.rate_limit, self.clock)
        kept = ("store", "ttl", "max_stored", "max_bytes", "redis_url", "redis_prefix", "redis_timeout")
        if any(getattr(config.responses, k) != getattr(old.responses, k) for k in kept):  # stored responses do not survive a new store
            old_store, self.store = self.store, make_store(config.responses)
            if old_store is not None:
                await old_store.close()
        self.jwt = await make_jwt(config.authentication.jwt, self.clock, self.jwt)
        if config.cache != old.cache:  # a new cache: what the old one kept is let go
            self.cache = await replaced(self.cache, make_cache(config, self.metrics, self.log_error, self.clock))
        self.monitor.stop()
        self._wire(config)
        self.monitor.start()
        if previous is not None:
            await previous.close()
        self._tick = self.config.sweep_tick()
        log.info("configuration reloaded")

    def _sweep(self) -> None:
        """Every tick: expire what is past its deadline (reads, idle keep-alive, backends)."""
        now = self.clock.monotonic()  # the deadlines' clock (the event loop's is the same monotonic one)
        if now - self._pruned > 60:
            self._pruned = now
            if self.rate_limits is not None:
                self.rate_limits.prune(self.clock.wall())
        if self.access is not None:
            self.access.flush()
        if self.share is not None:
            self.share.publish()
        for conn in list(self.connections):
            if conn.deadline or conn.cycle is not None:
                conn.expire(now)
        self._sweeper = asyncio.get_running_loop().call_later(self._tick, self._sweep)

    async def drain(self, timeout: float) -> None:
        """Stop accepting, let requests in flight finish (up to `timeout`), then close."""
        if self.server is not None:
            self.server.close()
        for conn in list(self.connections):
            conn.shutdown()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.connections and loop.time() < deadline:
            await asyncio.sleep(0.02)
        for conn in list(self.connections):
            conn.abort()
        await self.close()

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self.monitor is not None:
            self.monitor.stop()
        if self.server is not None:
            self.server.close()
        for conn in list(self.connections):
            conn.shutdown()
        if self.router is not None:
            self.router.close()
        if self.rate_limits is not None:
            await self.rate_limits.close()
        if self.store is not None:
            await self.store.close()
        if self.cache is not None:
            await self.cache.close()
        await make_jwt(None, self.clock, self.jwt)  # its refresh stops
        if self.access is not None:
            self.access.flush()
