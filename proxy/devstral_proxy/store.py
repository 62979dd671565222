"""Stored Responses (`store: true`): what a follow-up turn names with previous_response_id, and
what GET / DELETE /v1/responses/{id} read: in this process (bounded: count, bytes, TTL) or
in Redis, shared by every instance.

A stored value is opaque bytes with its owner (a digest of the caller that made it: its key,
or its address without keys): another caller cannot read or delete it.
"""

import time
from collections import OrderedDict

from .clock import SYSTEM, Clock
from .outage import Outage


class MemoryStore:
    """Responses in this process. Every entry lives `ttl` seconds, so insertion order is
    expiry order: expired entries are dropped from the front (amortised O(1) a put), and the
    oldest go first when `max_items` or `max_bytes` would be passed."""

    def __init__(self, ttl: float, max_items: int, max_bytes: int, clock=time.monotonic) -> None:
        self.ttl = ttl
        self.max_items = max_items
        self.max_bytes = max_bytes
        self.clock = clock
        self.items: OrderedDict[str, tuple[float, bytes, bytes]] = OrderedDict()  # id -> (expires, owner, value)
        self.size = 0
        self.evicted = 0  # entries let go before their time, to stay within max_items / max_bytes

    def _expire(self, now: float) -> None:
        items = self.items
        while items:
            rid, (expires, _, value) = next(iter(items.items()))
            if expires > now and len(items) <= self.max_items and self.size <= self.max_bytes:
                return
            if expires > now:
                self.evicted += 1
            del items[rid]
            self.size -= len(value)

    async def get(self, rid: str, owner: bytes) -> bytes | None:
        found = self.items.get(rid)
        if found is None or found[0] <= self.clock() or found[1] != owner:
            return None
        return found[2]

    async def put(self, rid: str, owner: bytes, value: bytes) -> None:
        if len(value) > self.max_bytes:
            return  # larger than the whole store: not kept (a follow-up gets a clear 404)
        now = self.clock()
        self.items[rid] = (now + self.ttl, owner, value)
        self.size += len(value)
        self._expire(now)

    async def delete(self, rid: str, owner: bytes) -> bool:
        found = self.items.get(rid)
        if found is None or found[1] != owner or found[0] <= self.clock():
            return False
        del self.items[rid]
        self.size -= len(found[2])
        return True

    async def close(self) -> None:
        self.items.clear()


class StoreUnavailable(Exception):
    """The response store (Redis) did not answer, or is paused after it did not: the request
    that needs it gets a 503 at once (logged once per outage by the store, not per request)."""


MAX_REDIS_CONNECTIONS = 32  # to the store's Redis, per process: beyond, a request fails fast


class RedisStore:
    """Responses in Redis (`SET key value EX ttl`): every proxy instance sees them. As the rate
    limiter's Redis: no client retries, and after a failure `pause` seconds in which requests
    that need the store get a 503 without asking it; one line when an outage begins and one
    when it ends."""

    def __init__(self, url: str, prefix: str, ttl: float, max_bytes: int, timeout: float, pause: float = 1.0, clock: Clock = SYSTEM) -> None:
        import redis.asyncio  # the [redis] extra; config.py checks it is installed
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        self.redis = redis.asyncio.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0), max_connections=MAX_REDIS_CONNECTIONS
        )
        self.prefix = prefix
        self.ttl = max(1, int(ttl))
        self.max_bytes = max_bytes
        self.outage = Outage("response store", "requests that need it get 503 until it does", "", pause, clock)

    def _key(self, rid: str) -> str:
        return f"{self.prefix}:{rid}"

    async def _ask(self, call, *args, **kwargs):
        if self.outage.paused():
            raise StoreUnavailable("paused after a failure")
        try:
            result = await call(*args, **kwargs)
        except Exception as exc:  # redis-py's own error classes, timeouts and a full pool included
            self.outage.failed(exc)
            raise StoreUnavailable(str(exc)) from None
        self.outage.answered()
        return result

    async def get(self, rid: str, owner: bytes) -> bytes | None:
        value = await self._ask(self.redis.get, self._key(rid))
        if not isinstance(value, bytes) or value[:12] != owner:  # bytes: decode_responses is off
            return None
        return value[12:]

    async def put(self, rid: str, owner: bytes, value: bytes) -> None:
        if len(value) <= self.max_bytes:
            await self._ask(self.redis.set, self._key(rid), owner + value, ex=self.ttl)

    async def delete(self, rid: str, owner: bytes) -> bool:
        if await self.get(rid, owner) is None:
            return False
        return bool(await self._ask(self.redis.delete, self._key(rid)))

    async def close(self) -> None:
        await self.redis.aclose()


def make_store(config) -> MemoryStore | RedisStore | None:
    """The store the [responses] section names (None: `store = "off"`)."""
    if config.store == "off":
        return None
    if config.store == "redis":
        return RedisStore(config.redis_url, config.redis_prefix, config.ttl, config.max_bytes, config.redis_timeout)
    return MemoryStore(config.ttl, config.max_stored, config.max_bytes)
