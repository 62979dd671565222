"""Backends and the choice of one for a request.

A Backend holds its config, dialect, connection pool and health; the Router picks one for a
request by model, availability and the model's strategy (see balance.py), and is the sink
for what exchanges and health checks learn of backends (outcome, connected).
"""

import logging
import math
import random
import ssl
from typing import Any

import msgspec

from devstral_translate.dialect import Prepared
from devstral_translate.mistral import MistralDialect, MistralOptions
from devstral_translate.openai import OpenAIDialect

from . import balance
from .clock import SYSTEM, Clock
from .config import BackendConfig, Config, RoutingConfig
from .errors import unreachable_because
from .http import HOP_BY_HOP, relay_headers
from .upstream import Pool


def client_tls(cfg: BackendConfig) -> ssl.SSLContext:
    """TLS to an https:// backend: verified against the system's CAs or `ca_file`, with a
    client certificate when configured; `tls_verify = false` only when asked for."""
    context = ssl.create_default_context(cafile=cfg.ca_file)
    if cfg.client_cert:
        context.load_cert_chain(cfg.client_cert, cfg.client_key)
    if not cfg.tls_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def make_dialect(cfg: BackendConfig, generations: dict[str, str]):
    if cfg.dialect == "mistral":
        generation = None if cfg.tokenizer_version == "auto" else cfg.tokenizer_version
        bridge = {"auto": None, "always": True, "never": False}[cfg.bridge]
        opts = MistralOptions(generation, cfg.bridge_text, cfg.images, cfg.cancelled_tool_result, cfg.tool_strict, bridge)
        return MistralDialect(opts, generations)
    return OpenAIDialect()


log = logging.getLogger("devstral_proxy")

# Client headers never forwarded: hop-by-hop, the client's own credentials (the backend gets
# its configured key instead), and compression (the proxy must read what it rewrites).
# The request id and forwarding headers are the proxy's own (see inference.upstream_headers).
_SKIP_FORWARD = HOP_BY_HOP | {b"authorization", b"x-api-key", b"accept-encoding", b"x-request-id", b"x-forwarded-for", b"forwarded"}
_SKIP_TRACED = _SKIP_FORWARD | {b"traceparent"}


class Backend:
    def __init__(self, cfg: BackendConfig, config: Config) -> None:
        self.cfg = cfg
        self.key = identity_of(cfg, config)
        self.name = cfg.name
        self.timeout = config.backend_timeout(cfg)
        self.max_reply_bytes = cfg.max_reply_bytes
        self.native = frozenset(cfg.native_routes)  # front routes it serves itself (relayed untranslated)
        self.pool = Pool(cfg.url, cfg.pool_idle_seconds, cfg.connect_timeout, ssl=client_tls(cfg) if cfg.url.startswith("https:") else None)
        # Mistral dialect: the tokenizer generation of each served model, from its `root`
        self.generations: dict[str, str] = {}
        self.learns_generations = cfg.dialect == "mistral" and cfg.tokenizer_version == "auto"
        self.unknown_logged: set[str] = set()
        self.context_lengths: dict[str, int] = {}  # served model -> max_model_len (vLLM's /v1/models)
        self.dialect = make_dialect(cfg, self.generations)
        self._fixed = b"host: " + self.pool.host_header + b"\r\n"
        if cfg.api_key:
            self._fixed += b"authorization: Bearer " + cfg.api_key.encode() + b"\r\n"
        self._base = self.pool.base_path.encode()
        self.origin = self.pool.origin  # how the backend names itself in a Location
        self.weight = cfg.weight
        self.models = set(cfg.models)  # configured; else discovered from /v1/models
        self.outstanding = 0  # requests in flight
        self.failures = 0  # consecutive connect failures or 5xx
        self.ejected_until = 0.0  # monotonic time; 0: in service
        self.trial = False  # after a cooldown, one request tries it before it takes more
        self.up: bool | None = None  # whether the last connection attempt worked (None: none yet)
        self.tokenizing = 0  # count_tokens calls to its /tokenize under way
        self.health = "not checked"  # what the monitor's last health check found (GET /health reads it)
        self.max_in_flight = cfg.max_in_flight  # 0: no cap
        # the engine's own load, read from its /metrics (vLLM); None until read, or never
        self.engine_running: int | None = None
        self.engine_waiting = 0
        self.kv_usage = 0.0

    def serves(self, model: str | None) -> bool:
        return not self.models or model is None or model in self.models

    def usable(self) -> bool:
        """Not ejected (a queued request is not the trial of an ejected backend)."""
        return not self.ejected_until

    def full(self) -> bool:
        return 0 < self.max_in_flight <= self.outstanding

    @property
    def load(self) -> int:
        """Requests on it: the proxy's own in flight, or the engine's count when that is
        higher (other clients; the engine's figure lags by up to a read interval)."""
        running = self.engine_running
        return self.outstanding if running is None else max(self.outstanding, running + self.engine_waiting)

    def state(self, now: float) -> str:
        if not self.ejected_until:
            return "healthy"
        return "ejected" if now < self.ejected_until else "trial"

    def prepare(self, path: str, body: bytes, model_map: dict[str, str], want_usage: bool = False, notes=None) -> Prepared:
        return self.dialect.prepare(path, body, model_map, want_usage, notes)

    def request_head(self, method: bytes, target: bytes, headers: bytes, length: int) -> bytes:
        """`headers` are the client's, already filtered by forward_headers()."""
        return b"%s %s%s HTTP/1.1\r\n%scontent-length: %d\r\n%s\r\n" % (method, self._base, target, self._fixed, length, headers)

    def close(self) -> None:
        self.pool.close()


def identity_of(cfg: BackendConfig, config: Config) -> bytes:
    """What makes two backend definitions the same backend (a reload keeps its pool)."""
    return msgspec.json.encode([cfg, config.backend_timeout(cfg)])


def forward_headers(headers: list[tuple[bytes, bytes]], traced: bool = False) -> bytes:
    """`traced`: the proxy's own span is the backend's parent (its traceparent replaces the client's)."""
    return relay_headers(headers, _SKIP_TRACED if traced else _SKIP_FORWARD)


class Router:
    """Which backend serves a request: one that serves its model and is not ejected, chosen
    by the model's strategy. Backends that keep failing are ejected for a cooldown that grows;
    after it, one trial request decides whether they come back."""

    def __init__(self, backends: list[Backend], routing: RoutingConfig, clock: Clock = SYSTEM) -> None:
        self.backends = backends
        self.routing = routing
        self.clock = clock  # ejection, cooldowns, the trial request's turn
        self.rng = random.Random()
        self.turn = 0
        self.queue: Any = None  # the admission queue (waitqueue.FairQueue), told when a capped backend has room
        self.repins: dict[tuple[str, str], int] = {}  # (backend left, reason) -> affinity re-pins
        self.orphaned = 0  # backend requests found still running after their client left

    def strategy(self, client_model: str | None) -> str:
        return self.routing.per_model.get(client_model or "", self.routing.strategy)

    def pick(self, model: str | None, client_model: str | None = None, session: bytes | None = None, exclude: tuple = ()) -> Backend | None:
        """A backend for `model` (the backend's name for it), or None when none can take it."""
        now = self.clock.monotonic()
        candidates = []
        for b in self.backends:
            if b in exclude or not b.serves(model):
                continue
            if b.ejected_until and (now < b.ejected_until or b.trial):
                continue
            if b.max_in_flight and b.outstanding >= b.max_in_flight:
                continue  # full: the request waits in the queue
            candidates.append(b)
        if not candidates:
            return None
        if len(candidates) == 1:
            chosen = candidates[0]
        else:
            strategy = self.strategy(client_model)
            if strategy == "affinity" and session:
                chosen, left = balance.affinity(candidates, session, self.routing.load_factor, self._overloaded)
                if left is not None:
                    key = (left[0].name, left[1])
                    self.repins[key] = self.repins.get(key, 0) + 1
            elif strategy == "round_robin":
                self.turn += 1
                chosen = balance.round_robin(candidates, self.turn)
            else:
                chosen = balance.least_loaded(candidates, self.rng)
        if chosen.ejected_until:
            chosen.trial = True
        return chosen

    def _overloaded(self, b: Backend) -> str | None:
        """Why affinity should leave a backend its engine reports as overloaded, or None."""
        if b.engine_running is None:
            return None
        if b.engine_waiting > self.routing.max_engine_waiting:
            return "engine_waiting"
        if b.kv_usage > self.routing.max_kv_usage:
            return "kv_cache"
        return None

    def full(self, model: str | None) -> bool:
        """Whether every usable backend serving `model` is at its max_in_flight (so a request
        for it waits in the queue rather than being refused)."""
        usable = [b for b in self.backends if b.serves(model) and b.usable()]
        return bool(usable) and all(b.full() for b in usable)

    def freed(self, backend: Backend, client=None) -> None:
        """A capped backend finished a request (`client`'s slot): the queue may send it the next one."""
        queue = self.queue
        if queue is not None:
            queue.release(client)
            if queue.count:
                queue.dispatch(backend)

    def connected(self, backend: Backend, up: bool, why: BaseException | None = None) -> None:
        """Whether a connection to the backend could be opened (a change is logged, with why)."""
        if up and backend.up is False:
            log.warning("backend %s: reachable again", backend.name)
        elif not up and backend.up is not False:
            log.warning("backend %s: cannot connect to %s: %s", backend.name, backend.cfg.url, unreachable_because(backend.name, why))
        backend.up = up

    def outcome(self, backend: Backend, ok: bool) -> None:
        """What a request (or a health check) learnt of a backend."""
        backend.trial = False
        if ok:
            if backend.ejected_until:
                log.warning("backend %s: back in service", backend.name)
            backend.failures = 0
            backend.ejected_until = 0.0
            return
        backend.failures += 1
        over = backend.failures - self.routing.eject_after
        if over >= 0:
            cooldown = min(self.routing.cooldown * 2**over, self.routing.max_cooldown)
            newly = not backend.ejected_until
            if newly or over == 0:
                log.warning("backend %s: ejected after %d failures in a row, for %g s", backend.name, backend.failures, cooldown)
            backend.ejected_until = self.clock.monotonic() + cooldown
            if newly and self.queue is not None and self.queue.count:  # those waiting for it alone: answered now
                self.queue.refuse_unservable(self.retry_after())

    def retry_after(self) -> int:
        """Seconds until the first ejected backend gets its trial request (at least 1)."""
        now = self.clock.monotonic()
        waits = [b.ejected_until - now for b in self.backends if b.ejected_until > now]
        return max(1, math.ceil(min(waits))) if waits else 1

    def serving(self, model: str | None) -> bool:
        """Whether any backend, ejected or not, serves this model."""
        return any(b.serves(model) for b in self.backends)

    def close(self) -> None:
        for b in self.backends:
            b.close()

    def replaced(self, config: Config) -> "Router":
        """The router for a new config: unchanged backends (and their pools) are kept, the
        others retire once their requests in flight are done."""
        old = {b.key: b for b in self.backends}
        backends = []
        for cfg in config.backend_list():
            kept = old.pop(identity_of(cfg, config), None)
            backends.append(kept if kept is not None else Backend(cfg, config))
        for b in old.values():
            b.close()
        router = Router(backends, config.routing, self.clock)
        router.repins, router.orphaned = self.repins, self.orphaned  # counters go on
        return router
