"""Watching backends: an active health check of each every `routing.health_interval`, every
30 s the model lists of backends whose config does not name their models, and every
`routing.load_interval` the engine load a vLLM reports on /metrics.

What it learns feeds the router (outcome), as requests do.
"""

import asyncio
import logging
import math

from devstral_translate.mistral import guess_generation

from .catalog import ModelLists
from .clock import SYSTEM, Clock
from .errors import unreachable_because
from .fetch import decode_json, fetch
from .tasks import background

log = logging.getLogger("devstral_proxy")


class BackendMonitor:
    def __init__(self, router, routing, clock: Clock = SYSTEM) -> None:
        self.router = router
        self.routing = routing  # RoutingConfig
        self.catalog = ModelLists(self.list_models, clock)  # the lists /v1/models answers from
        self.truncated: set[str] = set()  # backends whose list was cut at MAX_MODELS (said once)
        self.task: asyncio.Task | None = None
        self.loads: asyncio.Task | None = None
        self.retry: dict[str, float] = {}  # backend -> when to ask a non-vLLM for engine metrics again

    def start(self) -> None:
        self.stop()
        self.task = background(self._watch())
        if self.routing.load_interval > 0 and any(b.cfg.metrics_path for b in self.router.backends):
            self.loads = background(self._watch_loads())

    def stop(self) -> None:
        for task in (self.task, self.loads):
            if task is not None:
                task.cancel()
        self.task = self.loads = None

    async def _watch_loads(self) -> None:
        while True:
            await asyncio.sleep(self.routing.load_interval)
            await self.read_loads()

    async def read_loads(self) -> None:
        """One read of every engine's load (the first before serving); a backend without
        engine metrics (not a vLLM) is asked again only every 30 s."""
        if self.routing.load_interval <= 0:
            return
        now = asyncio.get_running_loop().time()
        due = [b for b in self.router.backends if b.cfg.metrics_path and self.retry.get(b.name, 0) <= now]
        found = await asyncio.gather(*(self.read_load(b) for b in due), return_exceptions=True)
        for b, ok in zip(due, found):
            if ok is not True:
                self.retry[b.name] = now + 30

    async def read_load(self, backend) -> bool:
        """Read one engine's load into the backend; False when it reports none (not vLLM)."""
        try:
            status, _, body = await fetch(backend, b"GET", backend.cfg.metrics_path, self.routing.health_timeout)
        except OSError:
            backend.engine_running = None
            return False
        load = engine_load(body) if status == 200 and len(body) <= MAX_METRICS_BYTES else None
        if load is None:
            backend.engine_running = None
            return False
        backend.engine_running, backend.engine_waiting, backend.kv_usage = load
        return True

    async def discover_once(self) -> None:
        backends = [b for b in self.router.backends if not b.cfg.models or b.learns_generations]
        await asyncio.gather(*(self.catalog.refresh(b) for b in backends))

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        discovered = loop.time()
        while True:
            if all(b.health != "not checked" for b in self.router.backends):  # a reload's new backends: at once
                await asyncio.sleep(self.routing.health_interval)
            await asyncio.gather(*(self.probe(b) for b in self.router.backends))
            if len(self.router.backends) > 1 and loop.time() - discovered >= 30:
                discovered = loop.time()
                await self.discover_once()

    async def probe_all(self) -> None:
        await asyncio.gather(*(self.probe(b) for b in self.router.backends))

    async def probe(self, backend) -> str:
        """One health check; what it learns feeds the router (and devstral_backend_up)."""
        try:
            status, _, _ = await fetch(backend, b"GET", backend.cfg.health_path, self.routing.health_timeout)
        except OSError as exc:
            self.router.connected(backend, False, exc)
            self.router.outcome(backend, False)
            backend.health = f"unreachable ({unreachable_because(backend.name, exc)})"
            return backend.health
        self.router.connected(backend, True)
        # A server without a health route (LM Studio: 404) is up all the same; a 5xx is the
        # backend saying it cannot serve (vLLM's engine is dead).
        self.router.outcome(backend, status < 500)
        backend.health = "healthy" if status < 500 else f"unhealthy (status {status})"
        return backend.health

    async def list_models(self, backend) -> list[dict]:
        """A backend's model list. Raises OSError, or BadModelList for a reply that is not one."""
        status, _, body = await fetch(backend, b"GET", "/v1/models", backend.timeout)
        doc = decode_json(body) if status == 200 else None
        if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
            raise BadModelList(status, body)
        if len(doc["data"]) > MAX_MODELS and backend.name not in self.truncated:
            self.truncated.add(backend.name)
            log.warning("backend %s lists %d models: the first %d are used", backend.name, len(doc["data"]), MAX_MODELS)
        models = [m for m in doc["data"][:MAX_MODELS] if isinstance(m, dict)]
        if not backend.cfg.models:  # discovered: model-aware routing uses it
            backend.models = {m["id"] for m in models if isinstance(m.get("id"), str)}
        for m in models[:1024]:  # each model's context length: front requests asking for more are clamped
            length = m.get("max_model_len")
            if isinstance(m.get("id"), str) and isinstance(length, int) and 0 < length < 1 << 31:
                backend.context_lengths[m["id"]] = length
        if backend.learns_generations:
            self.learn_generations(backend, models)
        return models

    def learn_generations(self, backend, models: list[dict]) -> None:
        """vLLM's model list carries `root`, the model's original path, even under
        --served-model-name: the tokenizer generation is read from it (else from the id). A
        LoRA adapter (`parent`: the model it adapts) has its parent's tokenizer, so its
        generation is its parent's (base models are read first)."""
        for m in sorted(models[:1024], key=lambda m: isinstance(m.get("parent"), str)):
            served, root, parent = m.get("id"), m.get("root"), m.get("parent")
            if not isinstance(served, str) or served in backend.generations or served in backend.unknown_logged:
                continue  # known: nothing new to learn or to say
            if len(backend.generations) + len(backend.unknown_logged) >= MAX_MODEL_FACTS:
                return  # a backend whose names never repeat: memory and log lines stay bounded
            if isinstance(parent, str) and parent:
                generation = backend.generations.get(parent) or guess_generation(parent)
                origin = f"LoRA adapter of {parent}"
            else:
                generation = (guess_generation(root) if isinstance(root, str) else None) or guess_generation(served)
                origin = f"root {root}"
            if generation is not None:
                backend.generations[served] = generation
                log.info("backend %s: model %s (%s): Mistral tokenizer generation %s", backend.name, served, origin, generation)
            else:
                backend.unknown_logged.add(served)
                log.warning(
                    "backend %s: model %s (%s): Mistral tokenizer generation unknown; sending what every generation accepts", backend.name, served, origin
                )


MAX_MODELS = 4096  # models of a backend's list that are kept and listed, at most
MAX_MODEL_FACTS = 4096  # models a backend's generations are learnt (and logged) for, at most
MAX_METRICS_BYTES = 2 << 20  # a /metrics page larger than this is not read (vLLM's: tens of KB)
MAX_ENGINE_REQUESTS = 1 << 20  # a running or waiting count above this is impossible: ignored
_RUNNING = b"vllm:num_requests_running"
_WAITING = b"vllm:num_requests_waiting"
_KV = (b"vllm:kv_cache_usage_perc", b"vllm:gpu_cache_usage_perc")  # the newer name, the older


def _samples(text: bytes, name: bytes) -> list[float]:
    """The finite values of metric `name`'s samples: only its own lines are looked at (a byte
    search from one to the next), whatever else the page holds."""
    out = []
    needle = b"\n" + name
    at = text.find(needle)
    while at != -1:
        end = text.find(b"\n", at + 1)
        line = text[at + 1 : end if end != -1 else len(text)]
        if line[len(name) : len(name) + 1] in (b"{", b" "):  # this metric, not a longer name
            try:
                value = float(line.rsplit(b" ", 1)[1])
            except (ValueError, IndexError):
                value = math.nan
            if math.isfinite(value):
                out.append(value)
        at = text.find(needle, at + 1) if end != -1 else -1
    return out


def engine_load(text: bytes) -> tuple[int, int, float] | None:
    """(running, waiting, KV cache use 0-1) from vLLM's Prometheus text, summed over its
    models (KV: the highest); None when the page has none of them (not a vLLM). Impossible
    values (negative, above MAX_ENGINE_REQUESTS, a KV use outside 0-1) are ignored."""
    text = b"\n" + text
    running = [v for v in _samples(text, _RUNNING) if 0 <= v <= MAX_ENGINE_REQUESTS]
    waiting = [v for v in _samples(text, _WAITING) if 0 <= v <= MAX_ENGINE_REQUESTS]
    kv = [v for name in _KV for v in _samples(text, name) if 0 <= v <= 1]
    if not (running or waiting or kv):
        return None
    return min(int(sum(running)), MAX_ENGINE_REQUESTS), min(int(sum(waiting)), MAX_ENGINE_REQUESTS), max(kv, default=0.0)


class BadModelList(Exception):
    """A backend answered /v1/models with an error or with something that is not a list."""

    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
