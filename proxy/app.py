"""The proxy application: routes each parsed request to its handler, and owns the listening
socket, the backends and the open connections.

Inference routes go through the backend's dialect; other /v1/* paths are relayed unchanged.
"""

import asyncio
import hmac
import ipaddress
import logging
import os
import time

import msgspec
from devstral_translate.dialect import ROUTES
from devstral_translate.errors import RequestError

from .accesslog import AccessLog
from .config import Config
from .errors import backend_failure, normalize_backend_error
from .http import JSON
from .metrics import Metrics
from .ratelimit import LocalLimiter, RedisLimiter, identity
from .relay import Exchange, decode_json, fetch
from .router import Backend, Router, forward_headers
from .server import HttpProtocol, Limits, Request

log = logging.getLogger("devstral_proxy")
_encode = msgspec.json.encode
_LOCAL = {"/health", "/v1/models"}
_ROUTES = {*ROUTES, *_LOCAL, "/metrics"}
_PROMETHEUS = b"content-type: text/plain; version=0.0.4; charset=utf-8\r\n"


class _RoutingHead(msgspec.Struct):
    """What routing reads of a request body before a dialect translates it."""

    model: object = None
    user: object = None
    messages: msgspec.Raw = msgspec.Raw(b"null")  # left encoded: only its first bytes matter
    prompt: msgspec.Raw = msgspec.Raw(b"null")


_routing_head = msgspec.json.Decoder(_RoutingHead)


class _Role(msgspec.Struct):
    role: object = None


_raw_list = msgspec.json.Decoder(list[msgspec.Raw])
_role = msgspec.json.Decoder(_Role)


def conversation_start(head: _RoutingHead, limit: int) -> bytes:
    """What identifies a conversation in every one of its turns: its messages up to and
    including the first user message (or a completion's prompt), at most `limit` bytes."""
    if memoryview(head.messages)[:1] == b"n":
        return memoryview(head.prompt)[:limit].tobytes()
    try:
        messages = _raw_list.decode(head.messages)
    except (msgspec.DecodeError, UnicodeDecodeError):
        return b""
    parts = []
    for raw in messages:
        parts.append(memoryview(raw)[:limit].tobytes())
        try:
            if _role.decode(raw).role == "user":
                break
        except (msgspec.DecodeError, UnicodeDecodeError):
            break
    return b"".join(parts)[:limit]


class _TaskHandler:
    """A handler running as a task: it follows the client connection's fate."""

    __slots__ = ("task",)

    def __init__(self, task: asyncio.Task) -> None:
        self.task = task

    def cancel(self) -> None:
        self.task.cancel()

    def pause(self) -> None:
        pass

    def resume(self) -> None:
        pass

    def expire(self, now: float) -> None:
        pass


class Proxy:
    def __init__(self, config: Config) -> None:
        self.connections: set[HttpProtocol] = set()
        self.router: Router | None = None
        self.server: asyncio.AbstractServer | None = None
        self.started = time.time()
        self._sweeper: asyncio.TimerHandle | None = None
        self._tick = 0.5
        self.limiter: LocalLimiter | RedisLimiter | None = None
        self._pruned = 0.0
        self.metrics = Metrics()
        self.access: AccessLog | None = None
        self._discovery: asyncio.Task | None = None
        self._rid_prefix = os.urandom(4).hex()  # request ids: per-process prefix + counter
        self._requests = 0
        self._apply(config)

    def _apply(self, config: Config) -> None:
        """Everything derived from the config that new requests read."""
        self.config = config
        self.model_map = dict(config.model_mapping)
        self.limits = Limits(config.server, config.max_body_bytes)
        self._keys = [k.encode() for k in config.authentication.active_keys()]
        self._allowed = [ipaddress.ip_network(c, strict=False) for c in config.server.allow_ips]
        lg = config.logging
        if lg.access and lg.level.upper() in ("DEBUG", "INFO"):
            if self.access is not None:
                self.access.flush()
            self.access = AccessLog(bodies=lg.log_bodies or lg.include_request_body)
        else:
            self.access = None

    def _make_limiter(self) -> None:
        rl = self.config.rate_limit
        self.limiter = None
        if rl.requests_per_minute or rl.tokens_per_minute:
            if rl.redis_url:
                self.limiter = RedisLimiter(rl.requests_per_minute, rl.tokens_per_minute, rl.redis_url, rl.redis_prefix)
            else:
                self.limiter = LocalLimiter(rl.requests_per_minute, rl.tokens_per_minute)

    async def reload(self, config: Config) -> None:
        """SIGHUP: the new config applies to new requests; those in flight finish as they
        began. The listening address and worker count change only with a restart."""
        old = self.config
        if (config.server.host, config.server.port, config.server.workers) != (old.server.host, old.server.port, old.server.workers):
            log.warning("reload: server.host, server.port and server.workers change only with a restart")
        self._apply(config)
        self.router = self.router.replaced(config)
        if config.rate_limit != old.rate_limit:
            previous = self.limiter
            self._make_limiter()
            if isinstance(previous, RedisLimiter):
                await previous.close()
        self._start_discovery()
        self._tick = min(0.5, self._shortest_timeout() / 3)
        log.info("configuration reloaded")

    # ---- lifecycle
    async def start(self, sock=None) -> tuple[str, int]:
        loop = asyncio.get_running_loop()
        self.router = Router([Backend(b, self.config) for b in self.config.backend_list()], self.config.routing)
        self._make_limiter()
        if len(self.router.backends) > 1:  # route by model from the first request on
            try:
                await asyncio.wait_for(self._discover_once(), 3.0)
            except TimeoutError:
                log.warning("some backends did not list their models within 3 s")
        self._start_discovery()
        s = self.config.server
        factory = lambda: HttpProtocol(self, loop)  # noqa: E731
        if sock is not None:
            self.server = await loop.create_server(factory, sock=sock, backlog=s.backlog)
        else:
            self.server = await loop.create_server(factory, s.host, s.port, backlog=s.backlog)
        self._tick = min(0.5, self._shortest_timeout() / 3)
        self._sweeper = loop.call_later(self._tick, self._sweep)
        host, port = self.server.sockets[0].getsockname()[:2]
        return host, port

    def _shortest_timeout(self) -> float:
        s = self.config.server
        return min(s.header_timeout, s.body_timeout, s.keepalive_timeout, s.request_timeout, *(b.timeout for b in self.router.backends))

    def _sweep(self) -> None:
        """Every tick: expire what is past its deadline (reads, idle keep-alive, backends)."""
        now = asyncio.get_running_loop().time()
        if isinstance(self.limiter, LocalLimiter) and now - self._pruned > 60:
            self._pruned = now
            self.limiter.prune(time.time())
        if self.access is not None:
            self.access.flush()
        for conn in list(self.connections):
            if conn.deadline:
                conn.expire(now)
            active = conn.active
            if active is not None:
                active.expire(now)
        self._sweeper = asyncio.get_running_loop().call_later(self._tick, self._sweep)

    def _start_discovery(self) -> None:
        if self._discovery is not None:
            self._discovery.cancel()
        self._discovery = asyncio.get_running_loop().create_task(self._watch())

    async def _discover_once(self) -> None:
        backends = [b for b in self.router.backends if not b.cfg.models]
        await asyncio.gather(*(self._list_models(b) for b in backends), return_exceptions=True)

    async def _watch(self) -> None:
        """Active health checks every `routing.health_interval`; the models of backends whose
        config does not list them, every 30 s."""
        loop = asyncio.get_running_loop()
        discovered = loop.time()
        while True:
            await asyncio.sleep(self.config.routing.health_interval)
            await asyncio.gather(*(self._probe(b) for b in self.router.backends))
            if len(self.router.backends) > 1 and loop.time() - discovered >= 30:
                discovered = loop.time()
                await self._discover_once()

    async def _probe(self, backend: Backend) -> str:
        """One health check; what it learns feeds the router."""
        try:
            status, _, _ = await fetch(backend, b"GET", backend.cfg.health_path, self.config.routing.health_timeout)
        except OSError as exc:
            self.router.outcome(backend, False)
            return f"unreachable ({exc.__class__.__name__})"
        # A server without a health route (LM Studio: 404) is up all the same; a 5xx is the
        # backend saying it cannot serve (vLLM's engine is dead).
        self.router.outcome(backend, status < 500)
        return "healthy" if status < 500 else f"unhealthy (status {status})"

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
        if self._discovery is not None:
            self._discovery.cancel()
        if self.server is not None:
            self.server.close()
        for conn in list(self.connections):
            conn.shutdown()
        if self.router is not None:
            self.router.close()
        if isinstance(self.limiter, RedisLimiter):
            await self.limiter.close()
        if self.access is not None:
            self.access.flush()

    def _spawn(self, conn: HttpProtocol, coro) -> None:
        """Run a handler that must wait as a task; a bug in it still gets the client a 500."""

        async def run() -> None:
            try:
                await coro
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.log_error("handler failed", exc)
                if not conn.closed and conn.current is not None and conn.active in (None, handler):
                    conn.respond_error(500, "The proxy failed to handle the request.", "internal_error")

        handler = conn.active = _TaskHandler(asyncio.get_running_loop().create_task(run()))

    def log_error(self, what: str, exc: BaseException) -> None:
        log.error("%s: %s", what, exc, exc_info=exc)

    def admit(self, conn: HttpProtocol) -> tuple[int, str, str] | None:
        """Why a new connection's requests are refused, or None."""
        if len(self.connections) > self.config.server.max_connections:
            return 503, "The proxy has too many open connections; try again shortly.", "too_many_connections"
        if self._allowed:
            try:
                ip = ipaddress.ip_address(conn.client)
            except ValueError:
                ip = None
            if ip is None or not any(ip in net for net in self._allowed):
                return 403, "Requests from this address are not allowed.", "ip_not_allowed"
        return None

    # ---- routing
    def handle(self, conn: HttpProtocol, req: Request) -> None:
        self.metrics.in_flight += 1
        rid = req.header(b"x-request-id")
        if rid and len(rid) <= 128 and rid.isascii() and rid.decode().isprintable():
            req.rid = rid.decode()
        else:
            self._requests += 1
            req.rid = f"{self._rid_prefix}{self._requests:08x}"
            req.rid_made = True
        if conn.refusal is not None:
            req.keep_alive = False
            conn.respond_error(*conn.refusal)
            return
        path = req.path
        key = None
        if self._keys and path != "/health":
            key = self._api_key(req)
            if key is None:
                conn.respond_error(401, "Invalid or missing API key.", "invalid_api_key")
                return
        if path in ROUTES:
            if req.method != b"POST":
                conn.respond_error(405, f"Method {req.method.decode()} not allowed on {path}; use POST.", "method_not_allowed", headers=b"allow: POST\r\n")
                return
            self._limited(conn, req, key)
        elif path in _LOCAL:
            if req.method not in (b"GET", b"HEAD"):
                conn.respond_error(405, f"Method {req.method.decode()} not allowed on {path}; use GET.", "method_not_allowed", headers=b"allow: GET\r\n")
                return
            handler = self._models if path == "/v1/models" else self._health
            self._spawn(conn, handler(conn))
        elif path == "/metrics" and req.method == b"GET":
            conn.respond(200, _PROMETHEUS, self.metrics.render())
        elif path.startswith("/v1/"):
            self._relay(conn, req)
        else:
            conn.respond_error(404, f"Unknown route: {req.method.decode()} {path}.", "not_found")

    def _api_key(self, req: Request) -> bytes | None:
        """The request's valid API key, or None."""
        value = req.header(b"authorization") or b""
        token = value[7:].strip() if value[:7].lower() == b"bearer " else b""
        ok = False
        for key in self._keys:  # every key is compared, in constant time each
            ok |= hmac.compare_digest(token, key)
        return token if ok else None

    def finished(self, req: Request, now: float) -> None:
        """A reply is complete (or abandoned): count it and log it."""
        if not req.rid:
            return  # refused by the parser: never handled
        self.metrics.in_flight -= 1
        duration = now - req.t0
        first = req.t_first - req.t0 if req.t_first else None
        overhead = None
        if req.t_sent:
            overhead = req.t_sent - req.t0
            if req.t_upstream_end:
                overhead += now - req.t_upstream_end
        route = req.path if req.path in _ROUTES else "other"
        self.metrics.observe(route, req.model, req.backend, req.status, duration, overhead, first, req.usage)
        if self.access is not None:
            self.access.log(req, duration, first)

    def _forward(self, req: Request) -> bytes:
        """The client's headers for the backend, with the request id."""
        headers = forward_headers(req.headers)
        return headers + b"x-request-id: %s\r\n" % req.rid.encode() if req.rid_made else headers

    def _target(self, req: Request) -> bytes:
        target = req.path.encode("latin-1")
        return target + b"?" + req.query if req.query else target

    def _limited(self, conn: HttpProtocol, req: Request, key: bytes | None) -> None:
        """Inference under the rate limits, when there are any."""
        limiter = self.limiter
        if limiter is None:
            self._inference(conn, req, None)
            return
        who = identity(key, req.client)
        if isinstance(limiter, LocalLimiter):
            wait = limiter.admit(who)
            if wait is None:
                self._inference(conn, req, who)
            else:
                self._too_many(conn, wait)
            return
        self._spawn(conn, self._shared_limit(conn, req, who))

    async def _shared_limit(self, conn: HttpProtocol, req: Request, who: str) -> None:
        wait = await self.limiter.admit(who)
        if conn.current is not req or conn.closed:
            return
        conn.active = None
        if wait is None:
            self._inference(conn, req, who)
        else:
            self._too_many(conn, wait)

    def _too_many(self, conn: HttpProtocol, wait: int) -> None:
        rl = self.config.rate_limit
        limits = ", ".join(f"{n} {what} per minute" for n, what in ((rl.requests_per_minute, "requests"), (rl.tokens_per_minute, "tokens")) if n)
        conn.respond_error(429, f"Rate limit reached ({limits}); retry in {wait} s.", "rate_limit_exceeded", headers=b"retry-after: %d\r\n" % wait)

    def _count_tokens(self, who: str):
        limiter = self.limiter
        if isinstance(limiter, LocalLimiter):
            return lambda tokens: limiter.add_tokens(who, tokens)
        loop = asyncio.get_running_loop()
        return lambda tokens: loop.create_task(limiter.add_tokens(who, tokens))

    def _routing_keys(self, req: Request) -> tuple[str | None, str | None, bytes | None]:
        """(client model, backend model, session) of a request, read before any dialect
        translates it: a choice of backend is needed first."""
        try:
            head = _routing_head.decode(req.body)
        except (msgspec.DecodeError, UnicodeDecodeError):
            return None, None, None  # the dialect will refuse it with a clear 400
        model = head.model if isinstance(head.model, str) else None
        session = req.header(b"x-session-id")
        if session is None and self.router.strategy(model) == "affinity":
            if isinstance(head.user, str) and head.user:
                session = head.user.encode()
            else:
                session = conversation_start(head, self.config.routing.affinity_bytes)
        return model, self.model_map.get(model, model) if model else None, session

    def _inference(self, conn: HttpProtocol, req: Request, who: str | None, exclude: tuple = ()) -> None:
        router = self.router
        if len(router.backends) == 1 and not exclude:
            backend = router.pick(None)
        else:
            client_model, model, session = self._routing_keys(req)
            backend = router.pick(model, client_model, session, exclude)
            if backend is None:
                if exclude:
                    conn.respond_error(502, "No backend could be reached.", "backend_unreachable")
                elif model is not None and not router.serving(model):
                    conn.respond_error(404, f"The model '{client_model}' is not served by any backend.", "model_not_found", "model")
                else:
                    conn.respond_error(503, "No backend is available right now; try again shortly.", "no_backend_available")
                return
        if backend is None:
            conn.respond_error(503, "The backend is ejected after repeated failures; try again shortly.", "no_backend_available")
            return
        counting = who is not None and self.config.rate_limit.tokens_per_minute > 0
        try:
            prepared = backend.prepare(req.path, req.body, self.model_map, counting)
        except RequestError as exc:
            conn.respond_error(400, exc.message, exc.code, exc.param)
            return
        req.model, req.backend_model, req.backend = prepared.client_model, prepared.backend_model, backend.name
        head = backend.request_head(b"POST", self._target(req), self._forward(req), len(prepared.body))
        on_tokens = self._count_tokens(who) if counting else None
        exchange = Exchange(conn, backend, head, prepared.body, prepared.response, backend.timeout, on_tokens=on_tokens, hide_usage=prepared.usage_added)
        if len(router.backends) > 1:
            exchange.failover = lambda failed: self._inference(conn, req, who, (*exclude, failed))
        exchange.start()

    def _relay(self, conn: HttpProtocol, req: Request) -> None:
        backend = self.router.pick(None) or self.router.backends[0]
        req.backend = backend.name
        head = backend.request_head(req.method, self._target(req), self._forward(req), len(req.body))
        Exchange(conn, backend, head, req.body, None, backend.timeout, raw=True).start()

    # ---- the proxy's own answers
    async def _list_models(self, backend: Backend) -> list[dict]:
        """A backend's model list (OSError, or ValueError for a reply that is not one)."""
        status, _, body = await fetch(backend, b"GET", "/v1/models", backend.timeout)
        doc = decode_json(body) if status == 200 else None
        if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
            raise ValueError(status, body)
        models = [m for m in doc["data"] if isinstance(m, dict)]
        if not backend.cfg.models:  # discovered: model-aware routing uses it
            backend.models = {m["id"] for m in models if isinstance(m.get("id"), str)}
        return models

    async def _models(self, conn: HttpProtocol) -> None:
        """Every reachable backend's models, once each, plus the aliases."""
        now = time.monotonic()
        backends = [b for b in self.router.backends if b.state(now) != "ejected"] or self.router.backends
        results = await asyncio.gather(*(self._list_models(b) for b in backends), return_exceptions=True)
        data, seen, failure = [], set(), None
        for backend, result in zip(backends, results):
            if isinstance(result, BaseException):
                failure = failure or (backend, result)
                continue
            for m in result:
                if m.get("id") not in seen:
                    seen.add(m.get("id"))
                    data.append(m)
        if not data and failure is not None:
            backend, exc = failure
            if isinstance(exc, OSError):
                conn.respond_error(*backend_failure(backend.name, exc))
            elif isinstance(exc, ValueError) and len(exc.args) == 2 and exc.args[0] != 200:
                conn.respond(exc.args[0], JSON, normalize_backend_error(*exc.args))
            else:
                conn.respond_error(502, f"Backend '{backend.name}' answered /v1/models with something that is not a model list.", "bad_backend_response")
            return
        conn.respond(200, JSON, _encode(with_aliases({"object": "list", "data": data}, self.model_map)))

    async def _health(self, conn: HttpProtocol) -> None:
        """Each backend probed now; what is learnt feeds the router. 503 when none is healthy."""
        router = self.router
        results = await asyncio.gather(*(self._probe(b) for b in router.backends))
        backends = {
            b.name: {"state": state, "outstanding": b.outstanding, "weight": b.weight, "models": sorted(b.models)} for b, state in zip(router.backends, results)
        }
        healthy = any(r == "healthy" for r in results)
        body = {"status": "healthy" if healthy else "unhealthy", "backends": backends, "uptime_s": round(time.time() - self.started, 1)}
        conn.respond(200 if healthy else 503, JSON, _encode(body))


def with_aliases(doc: dict, model_map: dict[str, str]) -> dict:
    """The backend's model list plus an entry for each alias the proxy answers to."""
    data = doc["data"]
    listed = {m.get("id"): m for m in data if isinstance(m, dict)}
    for alias, target in model_map.items():
        if alias in listed:
            continue
        base = listed.get(target, {})
        data.append(
            {
                "id": alias,
                "object": "model",
                "created": base.get("created", 0),
                "owned_by": "devstral-proxy",
                "root": target,
                "parent": target,
            }
        )
    return doc
