"""HTTP/1.1 bytes the server writes: status lines, response heads, chunk framing.

Kept apart from the protocol so heads are built in one place, with a Date cached per second.
"""

import time
from email.utils import formatdate
from http import HTTPStatus

_STATUS_LINES = {s.value: f"HTTP/1.1 {s.value} {s.phrase}\r\n".encode() for s in HTTPStatus}
SERVER = b"server: devstral-proxy\r\n"

# Never relayed between the two sides: they describe one hop, or the framing we redo.
HOP_BY_HOP = frozenset(
    (
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"content-length",
        b"host",
        b"expect",
    )
)

_date: list = [0, b""]  # the second it was made for, the header line


def date_header() -> bytes:
    now = int(time.time())
    if _date[0] != now:
        _date[0] = now
        _date[1] = b"date: " + formatdate(now, usegmt=True).encode() + b"\r\n"
    return _date[1]


def status_line(status: int) -> bytes:
    line = _STATUS_LINES.get(status)
    return line if line is not None else f"HTTP/1.1 {status} Unknown\r\n".encode()


def response_head(status: int, headers: bytes, length: int | None, keep_alive: bool) -> bytes:
    """A full response head. `headers` is pre-joined `name: value\\r\\n` lines; `length`
    None means a chunked body."""
    framing = b"transfer-encoding: chunked\r\n" if length is None else b"content-length: %d\r\n" % length
    conn = b"" if keep_alive else b"connection: close\r\n"
    return b"".join((status_line(status), SERVER, date_header(), headers, framing, conn, b"\r\n"))


def close_delimited_head(status: int, headers: bytes) -> bytes:
    """The head of a reply whose end is the connection's close (for HTTP/1.0 clients)."""
    return b"".join((status_line(status), SERVER, date_header(), headers, b"connection: close\r\n\r\n"))


_PLAIN_CONNECTION = frozenset((b"keep-alive", b"close"))  # name no other header


def relay_headers(headers: list[tuple[bytes, bytes]], skip: frozenset) -> bytes:
    """Header lines to pass to the other side: without `skip`, nor the headers that this
    hop's `Connection` header names (they are hop-by-hop too). `skip` holds "connection"."""
    out = []
    for k, v in headers:
        if k not in skip:
            out.append(b"%s: %s\r\n" % (k, v))
        elif k == b"connection" and v.lower() not in _PLAIN_CONNECTION:
            return _relay_named(headers, skip)  # rare: it names other headers
    return b"".join(out)


def _relay_named(headers: list[tuple[bytes, bytes]], skip: frozenset) -> bytes:
    for k, v in headers:
        if k == b"connection":
            skip = skip | {t.strip().lower() for t in v.split(b",")}
    return b"".join([b"%s: %s\r\n" % (k, v) for k, v in headers if k not in skip])


JSON = b"content-type: application/json\r\n"
CHUNK_END = b"0\r\n\r\n"
CHUNK_TAIL_END = b"\r\n" + CHUNK_END  # a chunk's end, then the body's
