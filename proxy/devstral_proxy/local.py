"""The proxy's own answers: the model list (every backend's models plus the aliases of
model_mapping), the health of the backends, and the Prometheus metrics.
"""

from typing import Any

import msgspec

from .clock import Clock
from .errors import Failure, backend_failure, normalize_backend_error
from .http import JSON
from .monitor import BadModelList
from .tasks import spawn

_encode = msgspec.json.encode
_PROMETHEUS = b"content-type: text/plain; version=0.0.4; charset=utf-8\r\n"


class LocalEndpoints:
    """`auth`: keys are configured, so backend details go only to callers with one."""

    def __init__(
        self, router, monitor, metrics, model_map: dict[str, str], started: float, log_error, auth: bool, rate_limits, share, queue, clock: Clock
    ) -> None:
        self.clock = clock
        self.auth = auth
        self.rate_limits = rate_limits  # RateLimits, for the fail-open count
        self.share = share  # MetricsShare with --workers (else None): /metrics renders the whole service
        self.queue = queue  # the FairQueue: its length and waits in /metrics
        self.router = router
        self.monitor = monitor
        self.metrics = metrics
        self.model_map = model_map
        self.started = started
        self.log_error = log_error
        self.cache: Any = None  # the response cache (cache.ResponseCache), when on: its gauges in /metrics
        self.tracing: Any = None  # tracing.Tracing, when on: its dropped spans in /metrics
        self._rendered: tuple[list, bytes] = ([], b"")  # the listings of the last list answered, and its body

    def models(self, cycle) -> None:
        spawn(cycle, self._models(cycle), self.log_error)

    def model(self, cycle) -> None:
        """GET /v1/models/{id}: an alias of model_mapping, or a model a backend serves."""
        req = cycle.req
        if req.method not in (b"GET", b"HEAD"):
            cycle.fail(Failure(405, f"Method {req.method.decode()} not allowed on {req.path}; use GET.", "method_not_allowed", headers=b"allow: GET\r\n"))
            return
        spawn(cycle, self._model(cycle, req.path.split("/models/", 1)[1]), self.log_error)

    async def _lists(self) -> tuple[list, list]:
        """(backends asked, each one's model list or why it has none), from the monitor's
        catalog: the backends not ejected, or all of them when every one is."""
        now = self.clock.monotonic()
        backends = [b for b in self.router.backends if b.state(now) != "ejected"] or self.router.backends
        return backends, await self.monitor.catalog.lists(backends, self.monitor.routing.health_timeout)

    async def _model(self, cycle, wanted: str) -> None:
        _, results = await self._lists()
        data = [m for r in results if not isinstance(r, BaseException) for m in r]
        listed = with_aliases({"object": "list", "data": data}, self.model_map)["data"]
        found = next((m for m in listed if m.get("id") == wanted), None)
        if found is None:
            cycle.fail(Failure(404, f"The model '{wanted}' does not exist.", "model_not_found", "model"))
        else:
            cycle.respond(200, JSON, _encode(found))

    def health(self, cycle) -> None:
        """Each backend's state from the monitor's last check (never a probe per request: a
        flood of /health must not become a flood of backend connections); 503 when none is
        healthy. An ejected backend says so beside what its last check found."""
        now = self.clock.monotonic()
        results = [b.health if b.state(now) != "ejected" else f"ejected ({b.health})" for b in self.router.backends]
        healthy = any(r == "healthy" for r in results)
        body: dict = {"status": "healthy" if healthy else "unhealthy", "uptime_s": round(self.clock.wall() - self.started, 1)}
        if not (self.auth and cycle.caller.key is None):
            body["backends"] = {b.name: _detail(b, state) for b, state in zip(self.router.backends, results)}
        cycle.respond(200 if healthy else 503, JSON, _encode(body))

    def root(self, cycle) -> None:
        """`GET /` and `HEAD /`: clients (Claude Code) check that the base URL answers."""
        cycle.respond(200, JSON, b'{"object":"devstral-proxy","status":"ok"}')

    def live(self, cycle) -> None:
        """The process serves: no backend detail, no probe."""
        cycle.respond(200, JSON, b'{"status":"alive"}')

    def ready(self, cycle) -> None:
        """200 when a backend can take traffic, from the monitor's last state; no probe."""
        now = self.clock.monotonic()
        states = {b.name: b.state(now) if b.up is not False else "unreachable" for b in self.router.backends}
        ready = any(s != "ejected" and s != "unreachable" for s in states.values())
        body: dict = {"status": "ready" if ready else "unavailable"}
        if not self.auth or cycle.caller.key is not None:
            body["backends"] = {
                b.name: {"state": states[b.name], "outstanding": b.outstanding, "weight": b.weight, "models": sorted(b.models)} for b in self.router.backends
            }
        cycle.respond(200 if ready else 503, JSON + (b"" if ready else b"retry-after: 1\r\n"), _encode(body))

    def metrics_text(self, cycle) -> None:
        metrics = self.share.combined() if self.share is not None else self.metrics
        text = metrics.render(self.router.backends, self.rate_limits.failed_open if self.rate_limits else 0)
        text += self.metrics.render_load(self.router, self.queue)
        for part in (self.cache, self.tracing):
            if part is not None:
                text += ("\n".join(part.render()) + "\n").encode()
        cycle.respond(200, _PROMETHEUS, text)

    async def _models(self, cycle) -> None:
        """Every reachable backend's models, once each, plus the aliases."""
        backends, results = await self._lists()
        kept, body = self._rendered
        if len(kept) == len(results) and all(a is b for a, b in zip(kept, results)):
            cycle.respond(200, JSON, body)  # nothing new since: not encoded again
            return
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
                cycle.fail(backend_failure(backend.name, exc))
            elif isinstance(exc, BadModelList) and exc.status != 200:
                cycle.respond(exc.status, JSON, normalize_backend_error(exc.status, exc.body))
            else:
                cycle.fail(Failure(502, f"Backend '{backend.name}' answered /v1/models with something that is not a model list.", "bad_backend_response"))
            return
        body = _encode(with_aliases({"object": "list", "data": data}, self.model_map))
        self._rendered = (results, body)
        cycle.respond(200, JSON, body)


def _detail(backend, state: str) -> dict:
    detail = {"state": state, "outstanding": backend.outstanding, "weight": backend.weight, "models": sorted(backend.models)}
    if backend.cfg.dialect == "mistral":  # the tokenizer generation used for each model
        detail["generations"] = dict(backend.generations) if backend.learns_generations else {"*": backend.cfg.tokenizer_version}
    return detail


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
