"""The response cache (`[cache]`, off by default): a complete, successful chat completion kept
under a hash of the request as the backend receives it (after translation and mapping: chat,
Responses and Messages requests that become the same backend request share an entry) and its
model, then answered again in the shape the next identical request asks for.

Which requests: `temperature = 0` or a `seed`, or any with `Cache-Control: max-age=N` (an
entry older than N is not answered to it); `no-cache` skips reading, `no-store` skips both.
Entries belong to their caller unless `shared`. Identical requests arriving while the first
is in flight wait for it (at most `max_waiting`), then are answered from what it left.
"""

import asyncio
import hashlib
import logging
import struct

import msgspec

from devstral_translate.ids import new_id
from devstral_translate.replay import as_stream, assemble, finish_reason
from devstral_translate.sse import WholeFrames

from .clock import SYSTEM, Clock
from .http import JSON
from .store import MemoryStore, RedisStore, StoreUnavailable
from .tasks import background, spawn

log = logging.getLogger("devstral_proxy")
_SHARED = b"\x00" * 12  # the owner of entries every caller may read (cache.shared)
_STREAM_HEAD = b"content-type: text/event-stream\r\ncache-control: no-cache\r\n"
_decode = msgspec.json.Decoder()
_encode = msgspec.json.encode


class MemoryCache(MemoryStore):
    """Entries in this process: bounded by bytes, the least recently answered go first."""

    async def get(self, rid: str, owner: bytes) -> bytes | None:
        value = await super().get(rid, owner)
        if value is not None:
            self.items.move_to_end(rid)
        return value


class Plan:
    """What the cache does for one cacheable request."""

    __slots__ = ("key", "owner", "read", "max_age", "usage")

    def __init__(self, key: str, owner: bytes, read: bool, max_age: float | None, usage: bool) -> None:
        self.key = key
        self.owner = owner
        self.read = read  # not Cache-Control: no-cache
        self.max_age = max_age  # the client's max-age: an older entry is not answered to it
        self.usage = usage  # a streamed hit carries a usage frame (the client asked for one)


def _cache_control(value: bytes) -> tuple[set[bytes], float | None]:
    directives, max_age = set(), None
    for part in value.lower().split(b","):
        name, _, arg = part.strip().partition(b"=")
        directives.add(name)
        if name == b"max-age" and arg.strip().isdigit():
            max_age = float(arg.strip())
    return directives, max_age


class ResponseCache:
    def __init__(self, config, metrics, log_error, clock: Clock = SYSTEM) -> None:
        c = config.cache
        self.store: MemoryCache | RedisStore
        if c.store == "redis":
            self.store = RedisStore(c.redis_url, c.redis_prefix, c.ttl, c.max_entry_bytes + 8, c.redis_timeout, clock=clock)
        else:
            self.store = MemoryCache(c.ttl, 1 << 62, c.max_bytes, clock.monotonic)
        self.shared = c.shared
        self.max_entry = c.max_entry_bytes
        self.keep_truncated = c.keep_truncated
        self.max_waiting = c.max_waiting
        self.metrics = metrics
        self.log_error = log_error
        self.clock = clock
        self.pending: dict[str, list[asyncio.Future]] = {}  # key -> the requests waiting for the one in flight

    # ---- which requests
    def plan(self, cycle, prepared) -> Plan | None:
        """How the cache treats this request, or None when it does not (not cacheable)."""
        directives, max_age = _cache_control(cycle.req.header(b"cache-control") or b"")
        if b"no-store" in directives:
            return None
        top = _decode.decode(prepared.body)  # the backend's request, whole: its canonical form is the key
        if max_age is None and top.get("temperature") != 0 and top.get("seed") is None:
            return None  # sampled: another answer is as right, and expected
        options = top.pop("stream_options", None)
        top.pop("stream", None)
        usage = isinstance(options, dict) and options.get("include_usage") is True and not prepared.usage_added
        owner = _SHARED if self.shared else cycle.caller.owner()  # in the key: one caller's entry never replaces another's
        digest = hashlib.blake2b(owner + prepared.backend_model.encode() + b"\x00" + _encode(top, order="sorted"), digest_size=16).hexdigest()
        return Plan(digest, owner, b"no-cache" not in directives, max_age, usage)

    # ---- the request's way through
    def serve(self, cycle, prepared, plan: Plan, go) -> None:
        """Answer from the cache, or `go(tap)` to the backend (`tap`: keeps its reply, or None)."""
        spawn(cycle, self._serve(cycle, prepared, plan, go), self.log_error)

    async def _serve(self, cycle, prepared, plan: Plan, go) -> None:
        if plan.read and await self._answer(cycle, prepared, plan):
            return
        waiting = self.pending.get(plan.key)
        if waiting is not None and plan.read and len(waiting) < self.max_waiting:
            done = asyncio.get_running_loop().create_future()
            waiting.append(done)
            await done  # the one in flight ended
            if await self._answer(cycle, prepared, plan):
                return
        self._count(cycle, "miss")
        cycle.record.extra += b"x-cache: miss\r\n"
        if waiting is not None or not cycle.waiting:
            go(None)  # another one leads (or this client left): not kept twice
            return
        self.pending[plan.key] = []
        try:
            go(Tap(prepared.response, self, plan))
        except BaseException:  # no exchange will end to release those who wait for this one
            self.ended(plan.key)
            raise

    def ended(self, key: str) -> None:
        """The request that led `key` ended (kept or not): those waiting for it go on."""
        for done in self.pending.pop(key, ()):
            if not done.done():
                done.set_result(None)

    async def _answer(self, cycle, prepared, plan: Plan) -> bool:
        try:
            value = await self.store.get(plan.key, plan.owner)
        except StoreUnavailable:
            return False  # Redis down: the backend answers (the store logs the outage)
        if value is None or not cycle.waiting:
            return False
        (made,) = struct.unpack("!d", value[:8])
        age = max(0, int(self.clock.wall() - made))
        if plan.max_age is not None and age > plan.max_age:
            return False
        doc = _decode.decode(value[8:])
        doc["id"] = f"chatcmpl-{new_id(24)}"
        whole = _encode(doc)
        record = cycle.record
        record.model, record.backend_model, record.backend = prepared.client_model, prepared.backend_model, "cache"  # no backend worked on it
        record.extra += b"x-cache: hit\r\nage: %d\r\n" % age
        self._count(cycle, "hit")
        translator = prepared.response
        if prepared.stream:
            stream = translator.stream() if translator is not None else WholeFrames()
            frames = as_stream(whole, plan.usage)
            cycle.start_stream(200, _STREAM_HEAD)
            cycle.end_stream(stream.feed(frames) + stream.close())
        else:
            cycle.respond(200, JSON, translator.body(whole) if translator is not None else whole)
        return True

    def keep(self, plan: Plan, whole: bytes) -> None:
        """A complete reply of a request that led its key: kept (if it may be)."""
        reason = finish_reason(whole)
        if len(whole) > self.max_entry or reason is None or (reason == "length" and not self.keep_truncated):
            return
        background(self._put(plan, struct.pack("!d", self.clock.wall()) + whole))

    async def _put(self, plan: Plan, value: bytes) -> None:
        try:
            await self.store.put(plan.key, plan.owner, value)
        except StoreUnavailable:
            pass

    def _count(self, cycle, event: str) -> None:
        key = (cycle.record.route, self.metrics.model_label(cycle.record.model), event)
        self.metrics.cache_events[key] = self.metrics.cache_events.get(key, 0) + 1

    def render(self) -> list[str]:
        out = ["# HELP devstral_cache_stored_bytes Bytes the response cache holds (memory store).", "# TYPE devstral_cache_stored_bytes gauge"]
        store = self.store
        out.append(f"devstral_cache_stored_bytes {store.size if isinstance(store, MemoryCache) else 0}")
        out += [
            "# HELP devstral_cache_evictions_total Entries let go before their ttl to stay within max_bytes.",
            "# TYPE devstral_cache_evictions_total counter",
        ]
        out.append(f"devstral_cache_evictions_total {store.evicted if isinstance(store, MemoryCache) else 0}")
        return out

    async def close(self) -> None:
        await self.store.close()


def make_cache(config, metrics, log_error, clock: Clock = SYSTEM) -> ResponseCache | None:
    """The cache [cache] names (None: store = "off")."""
    return ResponseCache(config, metrics, log_error, clock) if config.cache.store != "off" else None


async def replaced(old: ResponseCache | None, new: ResponseCache | None) -> ResponseCache | None:
    """A reload's new cache in place of the old one, which is closed (what it kept is let go)."""
    if old is not None:
        await old.close()
    return new


class Tap:
    """The reply translator of a request that leads its key: it keeps what the backend
    answered (backend terms: a whole body, or the stream gathered whole), then translates as
    the dialect's translator `inner` would."""

    __slots__ = ("inner", "cache", "plan")

    def __init__(self, inner, cache: ResponseCache, plan: Plan) -> None:
        self.inner = inner
        self.cache = cache
        self.plan = plan

    def body(self, data: bytes) -> bytes:
        self.cache.keep(self.plan, data)
        return self.inner.body(data) if self.inner is not None else data

    def stream(self) -> "TapStream":
        return TapStream(self.inner.stream() if self.inner is not None else WholeFrames(), self)


class TapStream:
    __slots__ = ("inner", "tap", "parts", "size")

    def __init__(self, inner, tap: Tap) -> None:
        self.inner = inner
        self.tap = tap
        self.parts: list[bytes] | None = []
        self.size = 0

    def feed(self, data: bytes) -> bytes:
        if self.parts is not None:
            self.size += len(data)
            if self.size > self.tap.cache.max_entry * 4:  # frames weigh more than the completion they make
                self.parts = None
            else:
                self.parts.append(data)
        return self.inner.feed(data)

    def close(self) -> bytes:
        tail = self.inner.close()
        if self.parts is not None:
            whole = assemble(b"".join(self.parts))
            if whole is not None:
                self.tap.cache.keep(self.tap.plan, whole)
        return tail

    def error(self, status: int, message: str, code: str | None = None) -> bytes:
        self.parts = None  # a stream cut short is never kept
        return self.inner.error(status, message, code)
