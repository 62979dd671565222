"""The front door: who may connect (connection cap, IP allow-list), the request id, and the
API key; then the request goes to the route table.

Keys are compared in constant time, every configured key each time.
"""

import hmac
import ipaddress
import os

from .errors import Failure

_OPEN = frozenset(("/health",))  # answered without a key


class Admission:
    def __init__(self, config, connections: set, metrics, dispatch) -> None:
        self.connections = connections
        self.max_connections = config.server.max_connections
        self.allowed = [ipaddress.ip_network(c, strict=False) for c in config.server.allow_ips]
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
        if self.allowed:
            try:
                ip = ipaddress.ip_address(conn.client)
            except ValueError:
                ip = None
            if ip is None or not any(ip in net for net in self.allowed):
                return Failure(403, "Requests from this address are not allowed.", "ip_not_allowed")
        return None

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
        key = None
        if self.keys and req.path not in _OPEN:
            key = self.api_key(req)
            if key is None:
                conn.fail(Failure(401, "Invalid or missing API key.", "invalid_api_key"))
                return
        self.dispatch(conn, req, key)

    def api_key(self, req) -> bytes | None:
        """The request's valid API key, or None."""
        value = req.header(b"authorization") or b""
        token = value[7:].strip() if value[:7].lower() == b"bearer " else b""
        ok = False
        for key in self.keys:  # every key is compared, in constant time each
            ok |= hmac.compare_digest(token, key)
        return token if ok else None
