"""Watching backends: an active health check of each every `routing.health_interval`, and
every 30 s the model lists of backends whose config does not name their models.

What it learns feeds the router (outcome), as requests do.
"""

import asyncio
import logging

from devstral_translate.mistral import guess_generation

from .fetch import decode_json, fetch
from .tasks import background

log = logging.getLogger("devstral_proxy")


class BackendMonitor:
    def __init__(self, router, routing) -> None:
        self.router = router
        self.routing = routing  # RoutingConfig
        self.task: asyncio.Task | None = None

    def start(self) -> None:
        self.stop()
        self.task = background(self._watch())

    def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            self.task = None

    async def discover_once(self) -> None:
        backends = [b for b in self.router.backends if not b.cfg.models or b.learns_generations]
        await asyncio.gather(*(self.list_models(b) for b in backends), return_exceptions=True)

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        discovered = loop.time()
        while True:
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
            self.router.connected(backend, False)
            self.router.outcome(backend, False)
            return f"unreachable ({exc.__class__.__name__})"
        self.router.connected(backend, True)
        # A server without a health route (LM Studio: 404) is up all the same; a 5xx is the
        # backend saying it cannot serve (vLLM's engine is dead).
        self.router.outcome(backend, status < 500)
        return "healthy" if status < 500 else f"unhealthy (status {status})"

    async def list_models(self, backend) -> list[dict]:
        """A backend's model list. Raises OSError, or BadModelList for a reply that is not one."""
        status, _, body = await fetch(backend, b"GET", "/v1/models", backend.timeout)
        doc = decode_json(body) if status == 200 else None
        if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
            raise BadModelList(status, body)
        models = [m for m in doc["data"] if isinstance(m, dict)]
        if not backend.cfg.models:  # discovered: model-aware routing uses it
            backend.models = {m["id"] for m in models if isinstance(m.get("id"), str)}
        if backend.learns_generations:
            self.learn_generations(backend, models)
        return models

    def learn_generations(self, backend, models: list[dict]) -> None:
        """vLLM's model list carries `root`, the model's original path, even under
        --served-model-name: the tokenizer generation is read from it (else from the id)."""
        for m in models[:1024]:
            served, root = m.get("id"), m.get("root")
            if not isinstance(served, str) or served in backend.generations:
                continue
            generation = (guess_generation(root) if isinstance(root, str) else None) or guess_generation(served)
            if generation is not None:
                backend.generations[served] = generation
            elif served not in backend.unknown_logged:
                backend.unknown_logged.add(served)
                log.warning(
                    "backend %s: model %s (root %s): Mistral tokenizer generation unknown; sending what every generation accepts", backend.name, served, root
                )
                continue
            log.info("backend %s: model %s (root %s): Mistral tokenizer generation %s", backend.name, served, root, generation)


class BadModelList(Exception):
    """A backend answered /v1/models with an error or with something that is not a list."""

    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
