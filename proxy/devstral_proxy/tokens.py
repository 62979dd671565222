"""Bearer tokens of an identity provider (`[authentication.jwt]`): JWTs verified against the
provider's keys (JWKS), with PyJWT (a well-kept JOSE library on `cryptography`; an extra).

Only asymmetric algorithms are taken (`none` and HMAC never: no key confusion); the keys come
from a file or a URL (fetched in a thread, bounded in size and time, kept while the provider is
down, fetched again on an unknown `kid` at most every `jwks_min_interval`); a verified token is
remembered until its `exp`, so a busy client pays one signature check, not one a request.
"""

import asyncio
import hashlib
import json
import logging
import urllib.request

from .clock import SYSTEM, Clock
from .errors import Failure
from .tasks import background

log = logging.getLogger("devstral_proxy")
MAX_REMEMBERED = 10_000  # verified tokens kept until their exp (beyond, the oldest half goes)
MAX_TOKEN = 16 << 10  # bytes: a longer bearer value is not a token this proxy takes


def invalid(why: str) -> Failure:
    """RFC 6750's answer: 401 with WWW-Authenticate naming the error (never the token)."""
    header = b'www-authenticate: Bearer error="invalid_token", error_description="%s"\r\n' % why.encode("ascii", "replace").replace(b'"', b"'")
    return Failure(401, f"Invalid token: {why}.", "invalid_token", headers=header)


class Verified:
    """A token that passed: who it is (`id`: issuer + subject, digested), until when, and the
    client models it may use (None: any)."""

    __slots__ = ("id", "expires", "models", "tier")

    def __init__(self, identity: str, expires: float, models: frozenset | None, tier: str | None = None) -> None:
        self.id = identity
        self.expires = expires
        self.models = models
        self.tier = tier


class JwtAuth:
    def __init__(self, cfg, clock: Clock = SYSTEM) -> None:
        import jwt  # PyJWT: the [jwt] extra (config.py checks it is installed)

        self.jwt = jwt
        self.cfg = cfg
        self.clock = clock
        self.keys: dict = {}  # kid -> PyJWK
        self.remembered: dict[bytes, Verified] = {}
        self.fetched_at = float("-inf")
        self.fetching: asyncio.Task | None = None
        self.refresher: asyncio.Task | None = None
        self.down = False  # the provider did not answer the last fetch (said once)

    # ---- keys
    def load(self, jwks: dict) -> None:
        keys = {}
        for key in self.jwt.PyJWKSet.from_dict(jwks).keys:
            keys[key.key_id] = key
        self.keys = keys
        self.remembered.clear()  # a rotation: tokens are checked again against the new set

    async def start(self) -> None:
        if self.cfg.jwks_file:
            with open(self.cfg.jwks_file, "rb") as f:
                self.load(json.loads(f.read(self.cfg.jwks_max_bytes + 1)))
            return
        await self.fetch()
        self.refresher = background(self._refresh_every())

    async def _refresh_every(self) -> None:
        while True:
            await asyncio.sleep(self.cfg.jwks_refresh)
            await self.fetch()

    async def fetch(self) -> None:
        """The keys from jwks_url, in a thread (a slow provider never holds the loop); the last
        good set stays when it fails."""
        self.fetched_at = self.clock.monotonic()
        try:
            raw = await asyncio.get_running_loop().run_in_executor(None, self._get)
            self.load(json.loads(raw))
        except Exception as exc:  # unreachable, too large, not a key set: the last good set stays
            if not self.down:
                log.warning("authentication.jwt: cannot read the keys at %s (%s); the last ones read stay in use", self.cfg.jwks_url, exc)
            self.down = True
            return
        if self.down:
            log.warning("authentication.jwt: the keys at %s are read again", self.cfg.jwks_url)
        self.down = False

    def _get(self) -> bytes:
        with urllib.request.urlopen(self.cfg.jwks_url, timeout=self.cfg.jwks_timeout) as reply:
            raw = reply.read(self.cfg.jwks_max_bytes + 1)
        if len(raw) > self.cfg.jwks_max_bytes:
            raise ValueError(f"over {self.cfg.jwks_max_bytes} bytes")
        return raw

    def _unknown_kid(self) -> None:
        if self.cfg.jwks_url and self.fetching is None and self.clock.monotonic() - self.fetched_at >= self.cfg.jwks_min_interval:
            self.fetching = background(self._fetch_once())

    async def _fetch_once(self) -> None:
        try:
            await self.fetch()
        finally:
            self.fetching = None

    # ---- tokens
    def verify(self, token: bytes) -> Verified | Failure:
        now = self.clock.wall()
        known = self.remembered.get(token)
        if known is not None and known.expires > now:
            return known
        if len(token) > MAX_TOKEN:
            return invalid("too long")
        jwt = self.jwt
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            return invalid("not a JWT")
        alg = header.get("alg")
        if alg not in self.cfg.algorithms:
            return invalid(f"algorithm {str(alg)[:16]!r} not accepted")
        key = self.keys.get(header.get("kid"))
        if key is None:
            self._unknown_kid()
            return invalid("unknown key id")
        cfg = self.cfg
        try:
            claims = jwt.decode(
                token,
                key.key,  # type: ignore[attr-defined]  # a PyJWK
                algorithms=[alg],
                audience=cfg.audiences or None,
                issuer=cfg.issuer,
                leeway=cfg.leeway,
                options={"require": cfg.required_claims, "verify_aud": bool(cfg.audiences)},
            )
        except jwt.ExpiredSignatureError:
            return invalid("expired")
        except jwt.ImmatureSignatureError:
            return invalid("not yet valid")
        except jwt.InvalidAudienceError:
            return invalid("wrong audience")
        except jwt.InvalidIssuerError:
            return invalid("wrong issuer")
        except jwt.MissingRequiredClaimError as exc:
            return invalid(f"missing claim {exc.claim!r}")
        except jwt.PyJWTError:
            return invalid("bad signature or malformed token")
        subject = claims.get(cfg.identity_claim)
        if not isinstance(subject, str) or not subject:
            return invalid(f"no {cfg.identity_claim!r} claim")
        identity = "j" + hashlib.sha256(f"{cfg.issuer}\x00{subject}".encode()).hexdigest()[:24]
        tier = claims.get(cfg.tier_claim) if cfg.tier_claim else None
        verified = Verified(identity, float(claims.get("exp", now + 300)), _models(claims, cfg.models_claim), tier if isinstance(tier, str) else None)
        if len(self.remembered) >= MAX_REMEMBERED:
            self.remembered = {t: v for t, v in self.remembered.items() if v.expires > now}
            if len(self.remembered) >= MAX_REMEMBERED:
                self.remembered.clear()
        self.remembered[token] = verified
        return verified

    def close(self) -> None:
        for task in (self.refresher, self.fetching):
            if task is not None:
                task.cancel()


def _models(claims: dict, name: str | None) -> frozenset | None:
    """The client models a token allows: its `models_claim` (a list, or a space-separated
    string as OAuth scopes are), None when no such claim is configured."""
    if not name:
        return None
    value = claims.get(name)
    if isinstance(value, str):
        return frozenset(value.split())
    if isinstance(value, list):
        return frozenset(v for v in value if isinstance(v, str))
    return frozenset()


async def make_jwt(cfg, clock: Clock = SYSTEM, old: JwtAuth | None = None) -> JwtAuth | None:
    """The verifier [authentication.jwt] names, its keys read (None when it is not set); a
    reload with the same section keeps the old one (and what it has verified)."""
    if old is not None and old.cfg == cfg:
        return old
    if old is not None:
        old.close()
    if cfg is None:
        return None
    auth = JwtAuth(cfg, clock)
    await auth.start()
    return auth
