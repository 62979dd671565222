"""What the proxy learns while answering one request (id, models, backend, status, times,
bytes, usage): the record that metrics and the access log read, apart from the parsed request.
"""

import msgspec


class Record(msgspec.Struct, gc=False):
    """A msgspec Struct, made in C and untracked by the GC (it holds no cycle), one per
    request. Timings are time.perf_counter() values
    (uvloop's loop.time() only has milliseconds)."""

    method: bytes
    route: str
    client: str  # the address (after trusted_proxies)
    bytes_in: int
    rid: str = ""  # request id (the client's X-Request-ID, or made up)
    rid_made: bool = False
    caller: str = ""  # the caller's identity (caller.Caller.id): a key's digest, or "a" + address
    t0: float = 0.0  # the request was complete
    status: int = 0
    model: str | None = None  # the client's
    backend_model: str | None = None
    backend: str = ""
    t_sent: float = 0.0  # the backend got the request
    t_upstream_end: float = 0.0  # ... and finished its reply
    t_first: float = 0.0  # first byte of a stream to the client
    bytes_out: int = 0
    usage: tuple[int, int, int] | None = None  # (prompt, completion, cached prompt) tokens
    body: bytes = b""  # the request body, kept only when the access log is configured to log it
    extra: bytes = b""  # header lines for the reply (rate-limit state, CORS)
    error: str = ""  # why a reply whose status was already sent ended badly (a broken stream)
    variant: str = ""  # the model a weighted split chose (model_mapping's list form)
    trace: object = None  # tracing.Trace: its ids, when tracing is on
    queued: float = 0.0  # seconds it waited in the queue
    finish: tuple[str, ...] = ()  # the reply's finish reasons (noted only when traced)
    rewrites: dict | None = None  # at DEBUG: the dialect's rewrites, kind -> count (no content)
    backend_body: bytes = b""  # what the backend was sent, kept only when logging.log_backend_bodies
