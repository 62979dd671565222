"""HTTPS on the listening side: the server's SSL context, and its renewal by a reload (all or
nothing: new files are checked on a context of their own before the live one takes them).
"""

import logging
import ssl

from .config import ConfigError

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
