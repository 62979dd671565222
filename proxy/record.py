"""What the proxy learns while answering one request (id, models, backend, status, times,
bytes, usage): the record that metrics and the access log read, apart from the parsed request.
"""


class Record:
    # Class defaults, set on the instance only when known. Timings are time.perf_counter()
    # values: uvloop's loop.time() only has milliseconds.
    rid = ""  # request id (the client's X-Request-ID, or made up)
    rid_made = False
    t0 = 0.0  # the request was complete
    status = 0
    model: str | None = None  # the client's
    backend_model: str | None = None
    backend = ""
    t_sent = 0.0  # the backend got the request
    t_upstream_end = 0.0  # ... and finished its reply
    t_first = 0.0  # first byte of a stream to the client
    bytes_out = 0
    usage: tuple[int, int] | None = None  # (prompt, completion) tokens
    body = b""  # the request body, kept only when the access log is configured to log it

    def __init__(self, method: bytes, route: str, client: str, bytes_in: int) -> None:
        self.method = method
        self.route = route
        self.client = client
        self.bytes_in = bytes_in
