"""The front door: who may connect (connection cap, IP allow-list), who the client is
(X-Forwarded-For believed only from trusted proxies), the request id, CORS, and the API key;
then the request goes to the route table.

Keys are compared in constant time, every configured key each time.
"""

import hmac
import ipaddress
import os

from .errors import Failure

_OPEN = frozenset(("/health", "/health/live", "/health/ready"))  # answered without a key
_CORS_EXPOSE = b"x-request-id, retry-after, x-ratelimit-limit-requests, x-ratelimit-remaining-requests, x-ratelimit-reset-requests"


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
    def __init__(self, config, connections: set, metrics, dispatch) -> None:
        self.connections = connections
        self.max_connections = config.server.max_connections
        self.allowed = _networks(config.server.allow_ips)
        self.trusted = _networks(config.server.trusted_proxies)
        origins = config.server.cors_allow_origins
        self.cors = {o.encode() for o in origins} if origins else None
        self.cors_any = "*" in origins
        self.keys = [k.encode() for k in config.authentication.active_keys()]
        self.metrics = metrics
        self.dispatch = dispatch  # (conn, request, key) -> None: the route table
        self.keep_bodies = False  # the access log wants request bodies
        self._rid_prefix = os.urandom(4).hex()  # request ids: per-process prefix + counter
        self._requests = 0

    def admit(self, conn) -> Failure | None:
        """Why a new connection's requests are refused, or None."""
        if len(self.connections) > self.max_connections:
            return Failure(503, "The proxy has too many open connections; try again shortly.", "too_many_connections")
        if self.allowed and not _within(conn.client, self.allowed):
            if self.trusted and _within(conn.client, self.trusted):
                return None  # a trusted proxy: the allow-list applies to the client it names
            return _not_allowed()
        return None

    def _client(self, conn, req) -> Failure | None:
        """Who the client is: behind a trusted proxy, the last address its X-Forwarded-For
        names that is not itself a trusted proxy; that address meets the allow-list."""
        peer = req.client
        forwarded = req.header(b"x-forwarded-for") if _within(peer, self.trusted) else None
        if not forwarded:
            req.forwarded_for = peer.encode()
            return None
        hops = [h.strip() for h in forwarded.decode("latin-1").split(",")[-32:] if h.strip()]
        client = next((h for h in reversed(hops) if not _within(h, self.trusted)), hops[0] if hops else peer)
        req.client = req.record.client = client
        req.forwarded_for = b"%s, %s" % (forwarded[-2048:], peer.encode())
        if self.allowed and not _within(client, self.allowed):
            return _not_allowed()
        return None

    def _cors(self, conn, req) -> bool:
        """CORS headers for an allowed origin; True when this was a preflight, answered."""
        origin = req.header(b"origin")
        if origin is None or not (self.cors_any or origin in self.cors):
            return False
        allow = b"*" if self.cors_any else origin
        req.record.extra += b"access-control-allow-origin: %s\r\nvary: origin\r\naccess-control-expose-headers: %s\r\n" % (allow, _CORS_EXPOSE)
        if req.method != b"OPTIONS" or req.header(b"access-control-request-method") is None:
            return False
        asked = req.header(b"access-control-request-headers") or b"authorization, content-type"
        preflight = b"access-control-allow-methods: GET, POST, OPTIONS\r\naccess-control-allow-headers: %s\r\naccess-control-max-age: 600\r\n"
        conn.respond(204, preflight % asked[:1024], b"")
        return True

    def handle(self, conn, req) -> None:
        """Every parsed request comes here first."""
        self.metrics.in_flight += 1
        record = req.record
        rid = req.header(b"x-request-id")
        if rid and len(rid) <= 128 and rid.isascii() and rid.decode().isprintable():
            record.rid = rid.decode()
        else:
            self._requests += 1
            record.rid = f"{self._rid_prefix}{self._requests:08x}"
            record.rid_made = True
        if self.keep_bodies:
            record.body = req.body
        if conn.refusal is not None:
            req.keep_alive = False
            conn.fail(conn.refusal)
            return
        if self.trusted:
            failure = self._client(conn, req)
            if failure is not None:
                conn.fail(failure)
                return
        else:
            req.forwarded_for = req.client.encode()
        if self.cors is not None and self._cors(conn, req):
            return
        key = None
        if self.keys:
            key = self.api_key(req)
            if key is None and req.path not in _OPEN:  # open routes: a key only adds detail
                conn.fail(Failure(401, "Invalid or missing API key.", "invalid_api_key"))
                return
        self.dispatch(conn, req, key)

    def api_key(self, req) -> bytes | None:
        """The request's valid API key, or None."""
        value = req.header(b"authorization") or b""
        token = value[7:].strip() if value[:7].lower() == b"bearer " else b""
        if not token and req.path.startswith("/v1/messages"):  # Anthropic's clients send x-api-key
            token = (req.header(b"x-api-key") or b"").strip()
        ok = False
        for key in self.keys:  # every key is compared, in constant time each
            ok |= hmac.compare_digest(token, key)
        return token if ok else None
