"""OpenTelemetry tracing (`[tracing]`, the `otel` extra): one server span a request, after the
GenAI semantic conventions, with child spans for its wait in the queue and its exchange with
the backend. A client's W3C trace context is continued (parent-based sampling, else
`sample_ratio`), and the backend gets a `traceparent` whose parent is the exchange's span
(vLLM started with --otlp-traces-endpoint continues the trace under it).

Nothing is traced on the event loop's time but a few ids at admission: the spans are made
when the request ends, from the times its record holds, and handed to a bounded queue that a
thread of the exporter's own drains (OTLP over HTTP/protobuf, the SDK's exporter); when the
queue is full spans are dropped and counted, never waited for. Content (prompts, completions)
is never put in a span.
"""

import logging
import os
import queue
import random
import threading
import time
from time import perf_counter

log = logging.getLogger("devstral_proxy")
_OPERATIONS = {
    "/v1/chat/completions": "chat",
    "/v1/completions": "text_completion",
    "/v1/embeddings": "embeddings",
    "/v1/responses": "chat",
    "/v1/messages": "chat",
}


class Trace:
    """The ids of one traced request: its trace, the client's span (or None), the proxy's
    server span and exchange span, and whether it is sampled."""

    __slots__ = ("trace_id", "parent", "server", "upstream", "sampled")

    def __init__(self, trace_id: bytes, parent: bytes | None, sampled: bool) -> None:
        self.trace_id = trace_id
        self.parent = parent
        self.server = os.urandom(8)
        self.upstream = os.urandom(8)
        self.sampled = sampled

    def traceparent(self) -> bytes:
        """The header line for the backend: the exchange span as its parent."""
        return b"traceparent: 00-%s-%s-%s\r\n" % (self.trace_id.hex().encode(), self.upstream.hex().encode(), b"01" if self.sampled else b"00")


def parse_traceparent(value: bytes | None) -> tuple[bytes, bytes, bool] | None:
    """(trace id, parent span id, sampled) of a valid W3C traceparent, else None."""
    if value is None or len(value) < 55:
        return None
    parts = value.strip().split(b"-")
    if len(parts) < 4 or len(parts[0]) != 2 or parts[0] == b"ff" or len(parts[1]) != 32 or len(parts[2]) != 16 or len(parts[3]) != 2:
        return None
    try:
        trace_id, span_id, flags = bytes.fromhex(parts[1].decode()), bytes.fromhex(parts[2].decode()), int(parts[3], 16)
    except ValueError:
        return None
    if not any(trace_id) or not any(span_id):
        return None
    return trace_id, span_id, bool(flags & 1)


class Tracing:
    def __init__(self, cfg) -> None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope

        self.ratio = cfg.sample_ratio
        self.exporter = OTLPSpanExporter(endpoint=cfg.otlp_endpoint, headers=dict(cfg.headers), timeout=cfg.export_timeout)
        self.resource = Resource.create({"service.name": cfg.service_name})
        self.scope = InstrumentationScope("devstral-proxy")
        self.spans: queue.Queue = queue.Queue(maxsize=cfg.max_queue)
        self.dropped = 0  # spans the full queue could not take
        self.exported = 0
        self.wall_offset = time.time_ns() - int(perf_counter() * 1e9)  # perf_counter -> epoch ns
        self.rng = random.Random()
        self.thread = threading.Thread(target=self._drain, name="otlp-export", daemon=True)
        self.thread.start()

    def begin(self, traceparent: bytes | None) -> Trace:
        """The trace of a request: the client's continued, else a new one sampled at `ratio`."""
        parsed = parse_traceparent(traceparent)
        if parsed is not None:
            trace_id, parent, sampled = parsed
            return Trace(trace_id, parent, sampled)
        return Trace(os.urandom(16), None, self.rng.random() < self.ratio)

    def end(self, record, now: float) -> None:
        """The request ended: its spans, made from its record, to the export queue."""
        trace = record.trace
        if trace is None or not trace.sampled:
            return
        for span in self._spans(record, trace, now):
            try:
                self.spans.put_nowait(span)
            except queue.Full:
                self.dropped += 1

    def _ns(self, t: float) -> int:
        return self.wall_offset + int(t * 1e9)

    def _spans(self, record, trace: Trace, now: float) -> list:
        from opentelemetry.sdk.trace import ReadableSpan
        from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

        def context(span_id: bytes) -> SpanContext:
            return SpanContext(int.from_bytes(trace.trace_id, "big"), int.from_bytes(span_id, "big"), is_remote=False, trace_flags=TraceFlags(1))

        server = context(trace.server)
        parent = (
            SpanContext(int.from_bytes(trace.trace_id, "big"), int.from_bytes(trace.parent, "big"), is_remote=True, trace_flags=TraceFlags(1))
            if trace.parent
            else None
        )
        failed = record.status >= 500 or bool(record.error) or record.status == 499
        status = Status(StatusCode.ERROR, record.error or f"HTTP {record.status}") if failed else Status(StatusCode.UNSET)
        operation = _OPERATIONS.get(record.route, "http")
        attributes: dict = {
            "gen_ai.operation.name": operation,
            "http.request.method": record.method.decode("latin-1"),
            "http.route": record.route,
            "http.response.status_code": record.status,
            "devstral.request_id": record.rid,
        }
        if record.model:
            attributes["gen_ai.request.model"] = record.model
        if record.backend_model:
            attributes["gen_ai.response.model"] = record.backend_model
        if record.backend:
            attributes["devstral.backend"] = record.backend
        if record.usage is not None:
            attributes["gen_ai.usage.input_tokens"], attributes["gen_ai.usage.output_tokens"] = record.usage[0], record.usage[1]
        if record.t_first:
            attributes["gen_ai.server.time_to_first_token"] = record.t_first - record.t0
        if record.variant:
            attributes["devstral.variant"] = record.variant
        if record.finish:
            attributes["gen_ai.response.finish_reasons"] = list(record.finish)
        name = f"{operation} {record.model}" if record.model else f"{record.method.decode('latin-1')} {record.route}"

        def span(title: str, context_, parent_, attrs: dict, start: float, end: float, kind=SpanKind.INTERNAL, status_=None) -> ReadableSpan:
            return ReadableSpan(
                title, context_, parent_, self.resource, attrs, kind=kind, status=status_ or Status(StatusCode.UNSET),
                start_time=self._ns(start), end_time=self._ns(end), instrumentation_scope=self.scope,
            )  # fmt: skip

        spans = [span(name, server, parent, attributes, record.t0, now, SpanKind.SERVER, status)]
        if record.t_sent:
            if record.queued:
                wait = {"devstral.queue.wait_seconds": record.queued}
                spans.append(span("queue", context(os.urandom(8)), server, wait, record.t_sent - record.queued, record.t_sent))
            exchange = {"devstral.backend": record.backend, "gen_ai.request.model": record.backend_model or ""}
            end = record.t_upstream_end or now
            spans.append(span(f"{operation} {record.backend_model}", context(trace.upstream), server, exchange, record.t_sent, end, SpanKind.CLIENT, status))
        return spans

    def _drain(self) -> None:
        """The export thread: batches of up to 512 spans, at least every second."""
        while True:
            batch = [self.spans.get()]
            deadline = time.monotonic() + 1.0
            while len(batch) < 512:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    batch.append(self.spans.get(timeout=left))
                except queue.Empty:
                    break
            try:
                self.exporter.export(batch)
                self.exported += len(batch)
            except Exception as exc:  # an unreachable collector: the spans are lost, requests never wait
                log.debug("tracing: export failed: %s", exc)

    def render(self) -> list[str]:
        return [
            "# HELP devstral_trace_spans_dropped_total Spans dropped because the export queue was full.",
            "# TYPE devstral_trace_spans_dropped_total counter",
            f"devstral_trace_spans_dropped_total {self.dropped}",
        ]
