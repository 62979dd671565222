"""Per-key rate limits: requests and tokens per minute, with a sliding-window counter (this
minute, plus the last one weighted by how much of it the window still covers).

In-process by default; with `rate_limit.redis_url` every proxy instance shares the counts.
"""

import math

from .clock import SYSTEM, Clock
from .errors import Failure
from .outage import Outage
from .tasks import background, spawn

WINDOW = 60.0


def _wait(now: float, cur: float, prev: float, room: float, strict: bool) -> float:
    """Seconds from `now` until the window's estimate (`cur` + `prev` x the share of the last
    minute the window still covers) is at most `room` (below it when `strict`)."""
    start = now - now % WINDOW

    def fits(estimate: float) -> bool:
        return estimate < room if strict else estimate <= room

    if fits(cur + prev * (1 - (now - start) / WINDOW)):
        return 0.0
    if fits(cur) and prev > 0:  # within this minute, as the last one's weight falls
        return start + WINDOW * (1 - (room - cur) / prev) - now + 1e-6
    # next minute: this one's count becomes the last one's, and its weight falls
    if room <= 0 or cur <= 0:
        return start + 2 * WINDOW - now
    return start + WINDOW * (2 - room / cur) - now + 1e-6


class Window:
    """What one identity's counts say after a request: whether it went, when the next
    will, and OpenAI's x-ratelimit-* headers."""

    __slots__ = ("admitted", "retry_after", "headers")

    def __init__(self, now: float, rpm: int, tpm: int, counts: tuple[float, float, float, float], admitted: bool) -> None:
        cur_r, prev_r, cur_t, prev_t = counts
        start = now - now % WINDOW
        weight = 1 - (now - start) / WINDOW
        waits = [0.0]
        lines = []
        if rpm:
            waits.append(_wait(now, cur_r, prev_r, rpm - 1, False))
            lines.append((b"requests", rpm, rpm - (cur_r + prev_r * weight), cur_r, prev_r))
        if tpm:
            waits.append(_wait(now, cur_t, prev_t, tpm, True))
            lines.append((b"tokens", tpm, tpm - (cur_t + prev_t * weight), cur_t, prev_t))
        self.admitted = admitted
        self.retry_after = max(1, math.ceil(max(waits)))
        out = []
        for what, limit, left, cur, prev in lines:
            reset = start + 2 * WINDOW - now if cur else (start + WINDOW - now if prev else 0.0)
            out.append(
                b"x-ratelimit-limit-%s: %d\r\nx-ratelimit-remaining-%s: %d\r\nx-ratelimit-reset-%s: %s\r\n"
                % (what, limit, what, max(0, math.floor(left)), what, _duration(reset))
            )
        self.headers = b"".join(out)


def _duration(seconds: float) -> bytes:
    """OpenAI's spelling of a reset time: 20s, 1m30s."""
    s = max(0, math.ceil(seconds))
    return (b"%dm%ds" % divmod(s, 60)) if s >= 60 else b"%ds" % s


class _Counts:
    __slots__ = ("minute", "requests", "requests_before", "tokens", "tokens_before")

    def __init__(self, minute: int) -> None:
        self.minute = minute
        self.requests = self.requests_before = self.tokens = self.tokens_before = 0


class LocalLimiter:
    def __init__(self, rpm: int, tpm: int, clock: Clock = SYSTEM) -> None:
        self.rpm = rpm
        self.tpm = tpm
        self.clock = clock.wall  # the windows are minutes of the wall clock (as Redis's)
        self.counts: dict[str, _Counts] = {}

    def _counts(self, who: str, now: float) -> _Counts:
        minute = int(now // WINDOW)
        c = self.counts.get(who)
        if c is None:
            c = self.counts[who] = _Counts(minute)
        elif c.minute != minute:
            last = c.minute == minute - 1
            c.requests_before, c.tokens_before = (c.requests, c.tokens) if last else (0, 0)
            c.requests = c.tokens = 0
            c.minute = minute
        return c

    def admit(self, who: str, now: float | None = None) -> int | None:
        """None when the request may go (and it is counted), else Retry-After seconds."""
        window = self.window(who, now)
        return None if window.admitted else window.retry_after

    def window(self, who: str, now: float | None = None) -> Window:
        """Admit (and count) the request if it fits; what the counts then say."""
        now = self.clock() if now is None else now
        c = self._counts(who, now)
        weight = 1.0 - (now % WINDOW) / WINDOW
        admitted = not (self.rpm and c.requests + c.requests_before * weight + 1 > self.rpm) and not (
            self.tpm and c.tokens + c.tokens_before * weight >= self.tpm
        )
        if admitted:
            c.requests += 1
        return Window(now, self.rpm, self.tpm, (c.requests, c.requests_before, c.tokens, c.tokens_before), admitted)

    def add_tokens(self, who: str, tokens: int, now: float | None = None) -> None:
        now = self.clock() if now is None else now
        self._counts(who, now).tokens += tokens

    def prune(self, now: float) -> None:
        """Forget identities idle for two windows."""
        minute = int(now // WINDOW)
        for who in [w for w, c in self.counts.items() if c.minute < minute - 1]:
            del self.counts[who]


# KEYS: requests now, requests before, tokens now, tokens before.
# ARGV: rpm, tpm, weight of the minute before, ttl.
# Returns {1 admitted and counted | 0, the four counts after it}.
_ADMIT = """
local rpm, tpm, w = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local function n(key) return tonumber(redis.call('GET', key) or '0') end
local r, rb, t, tb = n(KEYS[1]), n(KEYS[2]), n(KEYS[3]), n(KEYS[4])
if (rpm > 0 and r + rb * w + 1 > rpm) or (tpm > 0 and t + tb * w >= tpm) then return {0, r, rb, t, tb} end
redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[4])
return {1, r + 1, rb, t, tb}
"""


class RedisLimiter:
    """The same counts kept in Redis, so N proxies behind a load balancer enforce one limit.

    Redis must answer within `timeout` (tens of milliseconds on a LAN). When it does not, or
    cannot be reached, requests go through at once (fail open) for `pause` seconds before
    Redis is asked again: one warning when an outage begins, one line when it ends, and
    `failed_open` counts the requests let through meanwhile."""

    def __init__(self, rpm: int, tpm: int, url: str, prefix: str, timeout: float = 0.1, pause: float = 1.0, clock: Clock = SYSTEM) -> None:
        import redis.asyncio  # the [redis] extra; config.py checks it is installed
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        self.rpm = rpm
        self.tpm = tpm
        self.prefix = prefix
        # no retries of its own: a slow Redis must not hold a request
        self.redis = redis.asyncio.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0))
        self.script = self.redis.register_script(_ADMIT)
        self.clock = clock
        self.outage = Outage("rate limits", "requests are not limited until it does", "; limits apply", pause, clock)
        self.failed_open = 0

    def _keys(self, who: str, minute: int) -> list[str]:
        base = f"{self.prefix}:{who}"
        return [f"{base}:r:{minute}", f"{base}:r:{minute - 1}", f"{base}:t:{minute}", f"{base}:t:{minute - 1}"]

    async def window(self, who: str) -> Window | None:
        """Admit (and count) the request if it fits; None when Redis cannot say (fail open)."""
        if self.outage.paused():
            self.failed_open += 1
            return None
        now = self.clock.wall()
        minute = int(now // WINDOW)
        weight = 1.0 - (now % WINDOW) / WINDOW
        try:
            ok, *counts = await self.script(keys=self._keys(who, minute), args=[self.rpm, self.tpm, weight, int(2 * WINDOW)])
        except Exception as exc:  # redis-py raises its own error classes (timeouts included)
            self._failed(exc)
            return None
        self.outage.answered()
        return Window(now, self.rpm, self.tpm, tuple(counts), ok == 1)

    async def admit(self, who: str) -> int | None:
        window = await self.window(who)
        return None if window is None or window.admitted else window.retry_after

    async def add_tokens(self, who: str, tokens: int) -> None:
        if self.outage.paused():
            return
        key = self._keys(who, int(self.clock.wall() // WINDOW))[2]
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.incrby(key, tokens)
                pipe.expire(key, int(2 * WINDOW))
                await pipe.execute()
        except Exception as exc:
            self._failed(exc)

    def _failed(self, exc: Exception) -> None:
        self.failed_open += 1
        self.outage.failed(exc)

    async def close(self) -> None:
        await self.redis.aclose()


class RateLimits:
    """The configured limits, local or shared, behind one front: `check` admits a request (at
    once, or when Redis has answered) or answers it 429; `token_counter` counts its usage."""

    def __init__(self, config, clock: Clock = SYSTEM) -> None:
        self.config = config  # RateLimitConfig
        self.limiter = _limiter(config.requests_per_minute, config.tokens_per_minute, config, config.redis_prefix, clock)
        tiers = {
            name: _limiter(t.requests_per_minute, t.tokens_per_minute, config, f"{config.redis_prefix}:tier:{name}", clock) for name, t in config.tiers.items()
        }
        self.tiers = {name: limiter for name, limiter in tiers.items() if limiter is not None}
        unlimited = {name for name, limiter in tiers.items() if limiter is None}
        self.unlimited = frozenset(unlimited)  # tiers with no limit at all
        self.active = self.limiter is not None or bool(self.tiers)  # some request is limited
        self.counts_tokens = config.tokens_per_minute > 0 or any(t.tokens_per_minute > 0 for t in config.tiers.values())

    def limiter_for(self, caller) -> "LocalLimiter | RedisLimiter | None":
        """The limits a caller is under: its tier's (a token's tier claim), else the default."""
        tier = caller.tier
        if tier is None:
            return self.limiter
        return None if tier in self.unlimited else self.tiers.get(tier, self.limiter)

    def check(self, cycle, admitted, log_error) -> None:
        """Call `admitted(cycle)` if the request is within its caller's limits, else answer
        it 429."""
        limiter = self.limiter_for(cycle.caller)
        if limiter is None:
            admitted(cycle)
            return
        if isinstance(limiter, LocalLimiter):
            self._decide(limiter.window(cycle.caller.id), cycle, admitted)
            return
        spawn(cycle, self._shared(limiter, cycle, admitted), log_error)

    async def _shared(self, limiter: RedisLimiter, cycle, admitted) -> None:
        window = await limiter.window(cycle.caller.id)
        if cycle.waiting:
            self._decide(window, cycle, admitted)

    def _decide(self, window: Window | None, cycle, admitted) -> None:
        if window is None:  # Redis unavailable: fail open
            admitted(cycle)
            return
        cycle.record.extra += window.headers
        if window.admitted:
            admitted(cycle)
        else:
            cycle.fail(self.too_many(window.retry_after, self.limiter_for(cycle.caller)))

    def too_many(self, wait: int, limiter=None) -> Failure:
        rpm, tpm = (limiter.rpm, limiter.tpm) if limiter is not None else (self.config.requests_per_minute, self.config.tokens_per_minute)
        limits = ", ".join(f"{n} {what} per minute" for n, what in ((rpm, "requests"), (tpm, "tokens")) if n)
        return Failure(429, f"Rate limit reached ({limits}); retry in {wait} s.", "rate_limit_exceeded", headers=b"retry-after: %d\r\n" % wait)

    def token_counter(self, caller):
        """A function of a token count that adds it to the caller's tokens (None: not counted)."""
        limiter, who = self.limiter_for(caller), caller.id
        if limiter is None or not limiter.tpm:
            return None
        if isinstance(limiter, LocalLimiter):
            return lambda tokens: limiter.add_tokens(who, tokens)
        return lambda tokens: background(limiter.add_tokens(who, tokens))

    def _all(self) -> list:
        return [x for x in (self.limiter, *self.tiers.values()) if x is not None]

    def prune(self, now: float) -> None:
        for limiter in self._all():
            if isinstance(limiter, LocalLimiter):
                limiter.prune(now)

    @property
    def failed_open(self) -> int:
        return sum(limiter.failed_open for limiter in self._all() if isinstance(limiter, RedisLimiter))

    async def close(self) -> None:
        for limiter in self._all():
            if isinstance(limiter, RedisLimiter):
                await limiter.close()


def _limiter(rpm: int, tpm: int, config, prefix: str, clock: Clock) -> "LocalLimiter | RedisLimiter | None":
    if not (rpm or tpm):
        return None
    if config.redis_url:
        return RedisLimiter(rpm, tpm, config.redis_url, prefix, timeout=config.redis_timeout, clock=clock)
    return LocalLimiter(rpm, tpm, clock)
