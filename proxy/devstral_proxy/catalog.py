"""The model lists the backends serve, kept: GET /v1/models and /v1/models/{id} answer from
them, so no client request makes a backend call of its own (#25: 8 GETs of a 100,000-model
list each fetched and decoded it; against a hung backend a client waited `backend.timeout`).

One fetch a backend at a time, shared by every caller waiting for it and by discovery; a list
is fresh for LIST_TTL seconds, then the next caller starts a refresh and is answered the list
it had meanwhile. Only a backend never listed is waited for, and only up to `wait` seconds.
"""

import asyncio
from collections.abc import Awaitable, Callable

from .clock import Clock

LIST_TTL = 5.0  # seconds a model list is answered before the next caller refreshes it

Listing = list[dict] | Exception  # a backend's models, or why it has none


class ModelLists:
    """`fetch_list(backend)`: the backend's models (raises OSError or a bad-list error)."""

    def __init__(self, fetch_list: Callable[..., Awaitable[list[dict]]], clock: Clock) -> None:
        self.fetch_list = fetch_list
        self.clock = clock
        self.known: dict[str, tuple[float, Listing]] = {}  # backend name -> (when, its last listing)
        self.pending: dict[str, asyncio.Task] = {}  # backend name -> the fetch under way

    def refresh(self, backend) -> asyncio.Task:
        """The fetch of `backend`'s list: the one under way, else a new one."""
        task = self.pending.get(backend.name)
        if task is None:
            task = self.pending[backend.name] = asyncio.get_running_loop().create_task(self._fetch(backend))
        return task

    async def _fetch(self, backend) -> Listing:
        try:
            result: Listing = await self.fetch_list(backend)
        except Exception as exc:  # kept as the listing, without the frames that raised it
            result = exc.with_traceback(None)
        finally:
            self.pending.pop(backend.name, None)
        self.known[backend.name] = (self.clock.monotonic(), result)
        return result

    async def lists(self, backends: list, wait: float) -> list[Listing]:
        """Each backend's listing: the kept one (refreshed in the background once stale), or
        for a backend never listed, its first fetch, waited for up to `wait` seconds."""
        now = self.clock.monotonic()
        first = []
        for backend in backends:
            kept = self.known.get(backend.name)
            if kept is None or now - kept[0] >= LIST_TTL:
                task = self.refresh(backend)
                if kept is None:
                    first.append(task)
        if first:
            await asyncio.wait(first, timeout=wait)
        late = TimeoutError(f"no model list within {wait:g} s")
        return [self.known[b.name][1] if b.name in self.known else late for b in backends]
