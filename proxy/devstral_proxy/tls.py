"""HTTPS on the listening side: the server's SSL context, and its renewal by a reload (all or
nothing: new files are checked on a context of their own before the live one takes them).
"""

import asyncio
import logging
import socket
import ssl

from .config import ConfigError
from .tasks import background

log = logging.getLogger("devstral_proxy")


def server_context(server) -> ssl.SSLContext | None:
    """The context for server.tls_cert / tls_key (HTTP/1.1 only), or None when TLS is off.
    Raises OSError or ssl.SSLError when the files do not load or do not match."""
    if not server.tls_cert:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])
    context.load_cert_chain(server.tls_cert, server.tls_key)
    return context


def renew(current: ssl.SSLContext | None, server) -> None:
    """A reload: the files are loaded on a context of their own first (ConfigError naming
    them, and nothing changes, when they do not load or match), then into the live one: new
    handshakes use them, open connections go on. Turning TLS on or off takes a restart."""
    if bool(server.tls_cert) != (current is not None):
        log.warning("reload: turning TLS on or off takes a restart")
        return
    if current is None:
        return
    try:
        server_context(server)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"server.tls_cert / server.tls_key ({server.tls_cert}, {server.tls_key}): {exc}") from None
    current.load_cert_chain(server.tls_cert, server.tls_key)


_PLAIN_BODY = (
    b'{"error":{"message":"The plain HTTP request was sent to the HTTPS port: use https://.",'
    b'"type":"invalid_request_error","param":null,"code":"plain_http_to_https_port"}}'
)
_PLAIN_TO_TLS = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: %d\r\n\r\n%s" % (
    len(_PLAIN_BODY),
    _PLAIN_BODY,
)
_TLS_RECORD = b"\x16"  # the first byte of a TLS handshake record (ClientHello)


class SniffingServer:
    """HTTPS that hears plain HTTP too, as nginx does: each accepted connection's first byte
    says which it is; a TLS handshake goes on to TLS (`connect_accepted_socket`), plain HTTP
    gets a 400 saying to use https://. A connection not yet sniffed counts as handshaking
    (`pending`, against max_connections) and is closed after `timeout` if it says nothing."""

    def __init__(self, loop, sock: socket.socket, factory, context: ssl.SSLContext, timeout: float, pending) -> None:
        self.loop, self.sock, self.factory, self.context, self.timeout, self.pending = loop, sock, factory, context, timeout, pending
        self.sockets = [sock]
        sock.setblocking(False)
        self.task = loop.create_task(self._accept())

    async def _accept(self) -> None:
        while True:
            try:
                conn, _ = await self.loop.sock_accept(self.sock)
            except OSError:  # out of file descriptors, a connection reset in the backlog: go on
                await asyncio.sleep(0.05)
                continue
            conn.setblocking(False)
            self.pending.add(conn)
            timer = self.loop.call_later(self.timeout, self._drop, conn)
            self.loop.add_reader(conn.fileno(), self._readable, conn, timer)

    def _drop(self, conn: socket.socket) -> None:
        self.loop.remove_reader(conn.fileno())
        self.pending.discard(conn)
        conn.close()

    def _readable(self, conn: socket.socket, timer) -> None:
        try:
            first = conn.recv(1, socket.MSG_PEEK)
        except BlockingIOError:
            return  # not yet: the reader stays
        except OSError:
            first = b""
        self.loop.remove_reader(conn.fileno())
        timer.cancel()
        self.pending.discard(conn)
        if first == _TLS_RECORD:
            background(self._secure(conn))
            return
        if first:  # plain HTTP (or anything else): a 400, the request read first so it is not reset
            try:
                conn.recv(65536)
                conn.send(_PLAIN_TO_TLS)
                conn.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        conn.close()

    async def _secure(self, conn: socket.socket) -> None:
        try:
            await self.loop.connect_accepted_socket(self.factory, conn, ssl=self.context, ssl_handshake_timeout=self.timeout)
        except Exception:  # a bad client hello, a timeout, a reset: routine, the socket is closed
            conn.close()

    def close(self) -> None:
        self.task.cancel()
        self.sock.close()


def listening_socket(host: str, port: int, backlog: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family, backlog=backlog)
