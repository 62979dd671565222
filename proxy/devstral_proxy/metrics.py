"""Prometheus metrics kept in plain dicts, rendered as text on GET /metrics.

Requests by route, model, backend and status; latency histograms for the whole request, the
proxy's own part, and time to first byte of streams; requests in flight; backend reachability;
prompt and completion tokens from usage. With --workers, shared_metrics.py sums the workers'.
"""

from bisect import bisect_left

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
TOKEN_KINDS = ("prompt", "completion", "cached")
MAX_MODELS = 256  # distinct model label values; later ones count as "other"


class Histogram:
    __slots__ = ("counts", "total", "count")

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)
        self.total = 0.0
        self.count = 0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(BUCKETS, seconds)] += 1
        self.total += seconds
        self.count += 1


def _labels(pairs) -> str:
    return ",".join(f'{k}="{_escape(v)}"' for k, v in pairs)


def _escape(value) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Metrics:
    def __init__(self) -> None:
        self.requests: dict[tuple, int] = {}  # (route, model, backend, status) -> count
        self.duration: dict[str, Histogram] = {}  # route -> whole request
        self.overhead: dict[str, Histogram] = {}  # route -> the proxy's own time
        self.first_byte = Histogram()  # streams: request received -> first byte to the client
        self.tokens: dict[str, list[int]] = {}  # model -> [prompt, completion, cached prompt] tokens
        self.in_flight = 0
        self._models: set[str] = set()
        self.queue_refused: dict[str, int] = {}  # reason -> requests refused or dropped by the queue
        self.queue_waits: dict[tuple, Histogram] = {}  # (model, priority) -> time waited before a backend took it
        self.variants: dict[tuple[str, str], int] = {}  # (client model, variant) -> requests a split sent there
        self.cache_events: dict[tuple[str, str, str], int] = {}  # (route, model, hit | miss) -> requests

    def queue_wait(self, model: str | None, priority: int, seconds: float) -> None:
        key = (self.model_label(model), priority)
        hist = self.queue_waits.get(key) or self.queue_waits.setdefault(key, Histogram())
        hist.observe(seconds)

    def render_load(self, router, queue) -> bytes:
        """The queue and the engines' load (this worker's: the queue is per process)."""
        out = ["# HELP devstral_queue_length Requests waiting for a backend with room.", "# TYPE devstral_queue_length gauge"]
        lengths = queue.lengths() if queue is not None else {}
        out += [f"devstral_queue_length{{{_labels((('model', self.model_label(m)), ('priority', p)))}}} {n}" for (m, p), n in sorted(lengths.items(), key=str)]
        out += ["# HELP devstral_queue_wait_seconds Time a request waited in the queue.", "# TYPE devstral_queue_wait_seconds histogram"]
        for (m, p), hist in sorted(self.queue_waits.items(), key=str):
            out += _histogram("devstral_queue_wait_seconds", hist, (("model", m), ("priority", p)))
        out += ["# HELP devstral_queue_refused_total Requests the queue refused or lost, by reason.", "# TYPE devstral_queue_refused_total counter"]
        out += [f'devstral_queue_refused_total{{reason="{r}"}} {n}' for r, n in sorted(self.queue_refused.items())]
        out += [
            "# HELP devstral_orphaned_generations_total Backend requests found still running after their client left (should stay 0).",
            "# TYPE devstral_orphaned_generations_total counter",
            f"devstral_orphaned_generations_total {router.orphaned}",
            "# HELP devstral_affinity_repins_total Conversations moved off their backend, by the backend left and why.",
            "# TYPE devstral_affinity_repins_total counter",
        ]
        out += [f"devstral_affinity_repins_total{{{_labels((('backend', b), ('reason', r)))}}} {n}" for (b, r), n in sorted(router.repins.items())]
        read = [b for b in sorted(router.backends, key=lambda b: b.name) if b.engine_running is not None]
        for name, text, attr in (
            ("devstral_backend_engine_running", "Requests the engine reports running (vLLM /metrics).", "engine_running"),
            ("devstral_backend_engine_waiting", "Requests the engine reports waiting.", "engine_waiting"),
            ("devstral_backend_kv_cache_usage", "The engine's KV cache use, 0 to 1.", "kv_usage"),
        ):
            out += [f"# HELP {name} {text}", f"# TYPE {name} gauge"]
            out += [f'{name}{{backend="{_escape(b.name)}"}} {getattr(b, attr)}' for b in read]
        out += ["# HELP devstral_backend_in_flight Requests the proxy has sent to a backend and not finished.", "# TYPE devstral_backend_in_flight gauge"]
        out += [f'devstral_backend_in_flight{{backend="{_escape(b.name)}"}} {b.outstanding}' for b in sorted(router.backends, key=lambda b: b.name)]
        return ("\n".join(out) + "\n").encode()

    def model_label(self, model: str | None) -> str:
        if not model:
            return ""
        if model in self._models:
            return model
        if len(self._models) >= MAX_MODELS:
            return "other"
        self._models.add(model)
        return model

    def observe(
        self, route: str, model: str | None, backend: str, status: int, duration: float, overhead: float | None, first_byte: float | None, usage
    ) -> None:
        label = model if model in self._models else self.model_label(model)  # known: no call
        key = (route, label, backend, status)
        self.requests[key] = self.requests.get(key, 0) + 1
        # the two per-request histograms are updated inline (Histogram.observe is two calls)
        hist = self.duration.get(route) or self.duration.setdefault(route, Histogram())
        hist.counts[bisect_left(BUCKETS, duration)] += 1
        hist.total += duration
        hist.count += 1
        if overhead is not None:
            hist = self.overhead.get(route) or self.overhead.setdefault(route, Histogram())
            hist.counts[bisect_left(BUCKETS, overhead)] += 1
            hist.total += overhead
            hist.count += 1
        if first_byte is not None:
            self.first_byte.observe(first_byte)
        if usage is not None:
            counts = self.tokens.get(label)
            if counts is None:
                counts = self.tokens[label] = [0, 0, 0]
            counts[0] += usage[0]
            counts[1] += usage[1]
            counts[2] += usage[2]

    def count_variant(self, model: str | None, variant: str) -> None:
        key = (self.model_label(model), self.model_label(variant))
        self.variants[key] = self.variants.get(key, 0) + 1

    def add_tokens(self, model: str, kind: str, n: int) -> None:
        counts = self.tokens.get(model) or self.tokens.setdefault(model, [0, 0, 0])
        counts[TOKEN_KINDS.index(kind)] += n

    def token_counts(self) -> list[tuple[str, str, int]]:
        """(model, kind, tokens), sorted; cached only once the prefix cache served some."""
        return [(m, k, n) for m, counts in sorted(self.tokens.items()) for k, n in sorted(zip(TOKEN_KINDS, counts)) if n or k != "cached"]

    def render(self, backends=(), failed_open: int = 0) -> bytes:
        """The text exposition; `backends` (objects with `name` and `up`) give backend_up;
        `failed_open`: requests let through while the shared rate-limit store did not answer."""
        out = [
            "# HELP devstral_requests_total Requests answered, by route, client model, backend and status.",
            "# TYPE devstral_requests_total counter",
        ]
        for (route, model, backend, status), n in sorted(self.requests.items()):
            out.append(f"devstral_requests_total{{{_labels((('route', route), ('model', model), ('backend', backend), ('status', status)))}}} {n}")
        for name, text, hists in (
            ("devstral_request_duration_seconds", "Whole request, from the last byte received to the last byte sent.", self.duration),
            (
                "devstral_proxy_overhead_seconds",
                "The proxy's own time: before the backend got the request, and after it answered (whole replies).",
                self.overhead,
            ),
        ):
            out += [f"# HELP {name} {text}", f"# TYPE {name} histogram"]
            for route, hist in sorted(hists.items()):
                out += _histogram(name, hist, (("route", route),))
        out += [
            "# HELP devstral_stream_first_byte_seconds Streams: request received to first byte sent.",
            "# TYPE devstral_stream_first_byte_seconds histogram",
        ]
        out += _histogram("devstral_stream_first_byte_seconds", self.first_byte, ())
        out += [
            "# HELP devstral_requests_in_flight Requests being answered.",
            "# TYPE devstral_requests_in_flight gauge",
            f"devstral_requests_in_flight {self.in_flight}",
        ]
        out += ["# HELP devstral_backend_up Whether the last connection attempt to a backend worked.", "# TYPE devstral_backend_up gauge"]
        out += [f'devstral_backend_up{{backend="{_escape(b.name)}"}} {int(b.up)}' for b in sorted(backends, key=lambda b: b.name) if b.up is not None]
        out += [
            "# HELP devstral_tokens_total Tokens reported in usage, by client model (cached: prompt tokens the prefix cache served).",
            "# TYPE devstral_tokens_total counter",
        ]
        out += [f"devstral_tokens_total{{{_labels((('model', m), ('kind', k)))}}} {n}" for m, k, n in self.token_counts()]
        if self.cache_events:
            out += [
                "# HELP devstral_cache_requests_total Cacheable requests, answered from the cache (hit) or not (miss).",
                "# TYPE devstral_cache_requests_total counter",
            ]
            out += [
                f"devstral_cache_requests_total{{{_labels((('route', r), ('model', m), ('result', e)))}}} {n}"
                for (r, m, e), n in sorted(self.cache_events.items())
            ]
        if self.variants:
            out += [
                "# HELP devstral_variant_requests_total Requests a weighted model split sent to each variant.",
                "# TYPE devstral_variant_requests_total counter",
            ]
            out += [f"devstral_variant_requests_total{{{_labels((('model', m), ('variant', v)))}}} {n}" for (m, v), n in sorted(self.variants.items())]
        out += [
            "# HELP devstral_ratelimit_failed_open_total Requests let through unlimited because Redis did not answer.",
            "# TYPE devstral_ratelimit_failed_open_total counter",
            f"devstral_ratelimit_failed_open_total {failed_open}",
        ]
        return ("\n".join(out) + "\n").encode()


def _histogram(name: str, hist: Histogram, labels: tuple) -> list[str]:
    lines, running = [], 0
    prefix = _labels(labels)
    sep = "," if prefix else ""
    for bound, n in zip((*BUCKETS, float("inf")), hist.counts):
        running += n
        le = "+Inf" if bound == float("inf") else repr(bound)
        lines.append(f'{name}_bucket{{{prefix}{sep}le="{le}"}} {running}')
    suffix = f"{{{prefix}}}" if prefix else ""
    lines += [f"{name}_sum{suffix} {hist.total}", f"{name}_count{suffix} {hist.count}"]
    return lines
