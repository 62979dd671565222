"""One JSON line per request (request id, route, models, backend, status, durations, bytes),
buffered and written by the server's sweep, never per request. Bodies only when configured.
"""

import os
import sys

import msgspec

from .logs import WORKER, iso_now, text_line

_encode = msgspec.json.encode


class AccessLog:
    def __init__(self, stream=None, bodies: bool = False, backend_bodies: bool = False, text: bool = False) -> None:
        self.text = text  # logging.format = "text": key=value lines, as the proxy's own lines
        self.stream = stream or sys.stderr
        self.bodies = bodies  # logging.log_bodies / include_request_body
        self.backend_bodies = backend_bodies  # logging.log_backend_bodies: what the backend got, beside
        self.lines: list[bytes] = []
        self.pid = os.getpid()

    def log(self, req, duration: float, first_byte: float | None) -> None:
        """`req`: the request's Record."""
        line = {
            "ts": iso_now(),
            "pid": self.pid,
            "worker": WORKER["n"],
            "request_id": req.rid,
            "client": req.client,
            "caller": req.caller,
            "method": req.method.decode("latin-1"),
            "route": req.route,
            "status": req.status,
            "model": req.model,
            "backend_model": req.backend_model,
            "backend": req.backend,
            "duration_ms": round(duration * 1000, 3),
            "bytes_in": req.bytes_in,
            "bytes_out": req.bytes_out,
        }
        if first_byte is not None:
            line["first_byte_ms"] = round(first_byte * 1000, 3)
        if req.t_sent:  # before the backend got it: admission, the queue, translation
            line["sent_ms"] = round((req.t_sent - req.t0) * 1000, 3)
        if req.error:
            line["error"] = req.error  # a stream that ended badly (its status was sent already)
        if self.bodies:
            line["request_body"] = req.body.decode("utf-8", "replace")
        if self.backend_bodies and req.backend_body:
            line["backend_request_body"] = req.backend_body.decode("utf-8", "replace")
        if req.variant:
            line["variant"] = req.variant
        if req.rewrites:
            line["rewrites"] = req.rewrites
        self.lines.append(text_line(line).encode() if self.text else _encode(line))
        if len(self.lines) >= 512:
            self.flush()

    def flush(self) -> None:
        if not self.lines:
            return
        data = b"\n".join(self.lines) + b"\n"
        self.lines = []
        try:
            self.stream.buffer.write(data) if hasattr(self.stream, "buffer") else self.stream.write(data.decode())
            self.stream.flush()
        except (OSError, ValueError):  # a closed or full log stream must not stop serving
            pass
