"""The front door: who may connect (connection cap, IP allow-list), who the caller is (its
address, X-Forwarded-For believed only from trusted proxies; its API key), the request id,
CORS; then the request goes to the route table.

Keys are compared in constant time, every configured key each time.
"""

import hmac
import ipaddress
import os
from typing import Any

import msgspec

from .caller import Caller, key_id
from .errors import Failure
from .parsed import Request, routing_head
from .target import canonical_path

_OPEN = frozenset(("/health", "/health/live", "/health/ready"))  # answered without a key
_CORS_EXPOSE = b"x-request-id, retry-after, x-ratelimit-limit-requests, x-ratelimit-remaining-requests, x-ratelimit-reset-requests"


def _no_key() -> Failure:  # a new one each time: a Failure raised again keeps its old traceback
    return Failure(401, "Invalid or missing API key.", "invalid_api_key")


def _token(headers: list[tuple[bytes, bytes]]) -> bytes:
    """The credential a request carries: the Bearer token of Authorization, else x-api-key."""
    value = other = b""
    for name, v in headers:
        if name == b"authorization" and not value:
            value = v
        elif name == b"x-api-key" and not other:
            other = v
    token = value[7:].strip() if value[:7].lower() == b"bearer " else b""
    return token or other.strip()


def _model_refused(body: bytes, allowed: frozenset) -> Failure | None:
    """A 403 when the request names a model its token does not allow."""
    try:
        model = routing_head.decode(body).model
    except (msgspec.DecodeError, UnicodeDecodeError):
        return None  # no model to check: the route answers what it is
    if isinstance(model, str) and model not in allowed:
        return Failure(403, f"Your token does not allow the model '{model[:256]}'.", "model_not_allowed", "model")
    return None


def _not_allowed() -> Failure:
    return Failure(403, "Requests from this address are not allowed.", "ip_not_allowed")


def _networks(cidrs) -> list:
    return [ipaddress.ip_network(c, strict=False) for c in cidrs]


def _within(address: str, networks: list) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)


class Admission:
    def __init__(self, config, connections: set, handshaking, metrics, dispatch, jwt=None) -> None:
        self.connections = connections
        self.handshaking = handshaking  # TLS handshakes under way: they hold a socket as well
        self.max_connections = config.server.max_connections
        self.allowed = _networks(config.server.allow_ips)
        self.trusted = _networks(config.server.trusted_proxies)
        origins = config.server.cors_allow_origins
        self.cors = {o.encode() for o in origins} if origins else None
        self.cors_any = "*" in origins
        self.keys = [k.encode() for k in config.authentication.active_keys()]
        self.jwt = jwt  # tokens.JwtAuth: an identity provider's tokens, beside the keys
        self.auth = bool(self.keys) or jwt is not None
        self.key_ids = {k: key_id(k) for k in self.keys}
        self.metrics = metrics
        self.dispatch = dispatch  # (cycle) -> None: the route table
        self.keep_bodies = False  # the access log wants request bodies
        self.tracing: Any = None  # tracing.Tracing, when [tracing] is on: each request's trace begins here
        self._rid_prefix = os.urandom(4).hex()  # request ids: per-process prefix + counter
        self._requests = 0
        self._callers: dict[str, Caller] = {}  # without keys: the caller of each address

    def admit(self, conn) -> Failure | None:
        """Why a new connection's requests are refused, or None."""
        if len(self.connections) + len(self.handshaking) > self.max_connections:
            return Failure(503, "The proxy has too many open connections; try again shortly.", "too_many_connections")
        if self.allowed and not _within(conn.client, self.allowed):
            if self.trusted and _within(conn.client, self.trusted):
                return None  # a trusted proxy: the allow-list applies to the client it names
            return _not_allowed()
        return None

    def _client(self, req: Request) -> tuple[str, bytes] | Failure:
        """Who the client is, and the X-Forwarded-For to send on: behind a trusted proxy, the
        last address its X-Forwarded-For names that is not itself a trusted proxy; that
        address meets the allow-list."""
        peer = req.client
        forwarded = req.header(b"x-forwarded-for") if self.trusted and _within(peer, self.trusted) else None
        if not forwarded:
            return peer, peer.encode()
        hops: list[str] = [h.strip() for h in forwarded.decode("latin-1").split(",")[-32:] if h.strip()]
        client = next((h for h in reversed(hops) if not _within(h, self.trusted)), hops[0] if hops else peer)
        if self.allowed and not _within(client, self.allowed):
            return _not_allowed()
        return client, b"%s, %s" % (forwarded[-2048:], peer.encode())

    def screen(self, method: bytes, url: bytes, headers: list[tuple[bytes, bytes]]) -> Failure | None:
        """At the end of a request's head, before its body is read (server.Limits.screen, set
        when keys are): a request without a valid key is refused there, so that nobody
        without one makes the proxy read a body. Open routes and CORS preflights pass."""
        path = url.partition(b"?")[0]
        if method == b"OPTIONS" and self.cors is not None:
            return None  # a preflight carries no key (answered by handle(), or refused there)
        if path.startswith(b"/") and canonical_path(path) in _OPEN:
            return None
        found = self.credential(headers)
        return found if isinstance(found, Failure) else None if found[0] is not None else _no_key()

    def _cors(self, cycle) -> bool:
        """CORS headers for an allowed origin; True when this was a preflight, answered."""
        req = cycle.req
        origin = req.header(b"origin")
        if origin is None or self.cors is None or not (self.cors_any or origin in self.cors):
            return False
        allow = b"*" if self.cors_any else origin
        cycle.record.extra += b"access-control-allow-origin: %s\r\nvary: origin\r\naccess-control-expose-headers: %s\r\n" % (allow, _CORS_EXPOSE)
        if req.method != b"OPTIONS" or req.header(b"access-control-request-method") is None or cycle.failure is not None:
            return False
        asked = req.header(b"access-control-request-headers") or b"authorization, content-type"
        preflight = b"access-control-allow-methods: GET, POST, OPTIONS\r\naccess-control-allow-headers: %s\r\naccess-control-max-age: 600\r\n"
        cycle.respond(204, preflight % asked[:1024], b"")
        return True

    def handle(self, cycle) -> None:
        """Every request comes here first, refused ones included (the parser's, the
        connection's): each gets a request id, is counted, and is answered in its shape."""
        self.metrics.in_flight += 1
        req = cycle.req
        record = cycle.record
        rid = req.header(b"x-request-id")
        if rid and len(rid) <= 128 and rid.isascii() and rid.decode().isprintable():
            record.rid = rid.decode()
        else:
            self._requests += 1
            record.rid = f"{self._rid_prefix}{self._requests:08x}"
            record.rid_made = True
        if self.tracing is not None:
            record.trace = self.tracing.begin(req.header(b"traceparent"))
        if cycle.failure is not None:  # refused by the parser, the connection's admission, the screen
            if self.cors is not None:
                self._cors(cycle)  # a browser may read why
            cycle.fail(cycle.failure)
            return
        if self.keep_bodies:
            record.body = req.body
        if self.trusted:
            client = self._client(req)
            if isinstance(client, Failure):
                cycle.fail(client)
                return
            address, forwarded_for = client
            record.client = address
        else:  # the peer is the client, and the X-Forwarded-For sent on names it (no call)
            address, forwarded_for = req.client, b""
        if self.auth:
            found = self.credential(req.headers)
            if isinstance(found, Failure):  # a token that did not pass (on an open route: no detail)
                found = (None, "", None) if req.path in _OPEN else found
            if isinstance(found, Failure):
                cycle.fail(found)
                return
            key, kid, token = found
            caller = Caller(address, key, kid, forwarded_for)
            if token is not None:
                caller.models, caller.tier = token.models, token.tier
        else:
            known = self._callers.get(address)
            if known is None or (forwarded_for and known.forwarded_for != forwarded_for):
                known = self._by_address(address, forwarded_for)
            caller = known
        cycle.caller = caller
        record.caller = caller.id
        if self.cors is not None and self._cors(cycle):
            return
        if self.auth and key is None and req.path not in _OPEN:  # open routes: a key only adds detail
            cycle.fail(_no_key())
            return
        if caller.models is not None and req.method == b"POST" and (refused := _model_refused(req.body, caller.models)) is not None:
            cycle.fail(refused)
            return
        self.dispatch(cycle)

    def _by_address(self, address: str, forwarded_for: bytes) -> Caller:
        """A caller known by its address alone, made once per address (at most 4,096 kept)."""
        if len(self._callers) >= 4096:
            self._callers.clear()
        caller = self._callers[address] = Caller(address, None, "", forwarded_for)
        return caller

    def credential(self, headers: list[tuple[bytes, bytes]]) -> tuple[bytes | None, str, Any] | Failure:
        """(key, identity, the token's Verified or None) of the request's valid credential: a
        configured key, or a token of the identity provider; (None, "", None) without one; the
        Failure of a token that did not pass (expired, wrong audience, ...)."""
        token = _token(headers)  # one rule on every route: the Bearer token of Authorization, else x-api-key
        key, kid = self.api_key(token)
        if key is not None or self.jwt is None:
            return key, kid, None
        if token.count(b".") != 2:
            return None, "", None
        verified = self.jwt.verify(token)
        if isinstance(verified, Failure):
            return verified
        return b"token", verified.id, verified

    def api_key(self, token: bytes) -> tuple[bytes | None, str]:
        """The configured key `token` is, and its identity, or (None, "")."""
        found = None
        for key in self.keys:  # every key is compared, in constant time each
            if hmac.compare_digest(token, key):
                found = key
        return (found, self.key_ids[found]) if found is not None else (None, "")
