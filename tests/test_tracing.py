"""OpenTelemetry tracing through a real proxy: an OTLP/HTTP receiver in the test decodes the
exported protobuf (opentelemetry-proto) and checks the server span (GenAI attributes, the
client's traceparent as its parent), the exchange span (the parent of the traceparent the
backend received), the queue span, an error span, and that an unreachable collector changes
nothing for clients."""

import threading

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest, ExportTraceServiceResponse

from tests.support import SimThread, TinyServer, eventually, free_port, http

CHAT = {"model": "gpt-4", "messages": [{"role": "user", "content": "hi"}]}
PARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


class Collector:
    def __init__(self) -> None:
        self.spans: list = []
        self.server = TinyServer(self._respond)
        self.url = f"http://127.0.0.1:{self.server.port}/v1/traces"

    def _respond(self, method: str, body: bytes) -> tuple[int, str, bytes]:
        for resource in ExportTraceServiceRequest.FromString(body).resource_spans:
            for scope in resource.scope_spans:
                self.spans.extend(scope.spans)
        return 200, "application/x-protobuf", ExportTraceServiceResponse().SerializeToString()

    def named(self, name: str) -> list:
        return [s for s in self.spans if s.name == name]


def attrs(span) -> dict:
    out = {}
    for kv in span.attributes:
        v = kv.value
        out[kv.key] = v.string_value or v.int_value or v.double_value or v.bool_value
    return out


@pytest.fixture
def collector():
    c = Collector()
    yield c
    c.server.stop()


def test_a_request_is_a_server_span_under_the_clients_trace_and_the_backend_continues_it(sim, start_proxy, collector):
    p = start_proxy(sim.url, tracing={"otlp_endpoint": collector.url})
    r = http("POST", p.url + "/v1/chat/completions", CHAT, {"traceparent": PARENT, "tracestate": "vendor=x"})
    assert r.status == 200
    eventually(lambda: collector.named("chat gpt-4") and collector.named("chat mistral-sim"), what="the spans exported")
    server, upstream = collector.named("chat gpt-4")[0], collector.named("chat mistral-sim")[0]
    assert server.trace_id.hex() == "4bf92f3577b34da6a3ce929d0e0e4736" and server.parent_span_id.hex() == "00f067aa0ba902b7"
    assert server.kind == server.SPAN_KIND_SERVER and upstream.kind == upstream.SPAN_KIND_CLIENT
    assert upstream.parent_span_id == server.span_id and upstream.trace_id == server.trace_id
    a = attrs(server)
    assert a["gen_ai.operation.name"] == "chat" and a["gen_ai.request.model"] == "gpt-4" and a["gen_ai.response.model"] == "mistral-sim"
    assert a["http.response.status_code"] == 200 and a["gen_ai.usage.output_tokens"] > 0
    finish = next(kv.value.array_value for kv in server.attributes if kv.key == "gen_ai.response.finish_reasons")
    assert [v.string_value for v in finish.values] == ["stop"]
    sent = {k.lower(): v for k, v in sim.record.headers[-1].items()}
    assert sent["traceparent"] == f"00-4bf92f3577b34da6a3ce929d0e0e4736-{upstream.span_id.hex()}-01"  # the exchange is the backend's parent
    assert sent["tracestate"] == "vendor=x"
    assert "hi" not in str(server.attributes)  # no content


def test_a_queued_request_has_a_queue_span_and_a_failure_is_an_error_span(start_proxy, collector):
    slow = SimThread()
    slow.behavior.gate = threading.Event()
    try:
        p = start_proxy(backends={"vllm": {"url": slow.url, "max_in_flight": 1}}, tracing={"otlp_endpoint": collector.url})
        first = threading.Thread(target=http, args=("POST", p.url + "/v1/chat/completions", CHAT))
        first.start()
        eventually(lambda: slow.record.requests, what="the first request at the backend")
        second = threading.Thread(target=http, args=("POST", p.url + "/v1/chat/completions", CHAT))
        second.start()
        eventually(lambda: "devstral_queue_length{" in http("GET", p.url + "/metrics").body.decode(), what="the second request queued")
        slow.behavior.gate.set()
        first.join(30), second.join(30)
        eventually(lambda: collector.named("queue"), what="the queue span")
        queue = collector.named("queue")[0]
        assert queue.parent_span_id in {s.span_id for s in collector.named("chat gpt-4")}
    finally:
        slow.stop()
    dead = start_proxy(backends={"gone": {"url": f"http://127.0.0.1:{free_port()}"}}, tracing={"otlp_endpoint": collector.url})
    assert http("POST", dead.url + "/v1/chat/completions", CHAT).status >= 500
    eventually(lambda: [s for s in collector.named("chat gpt-4") if s.status.code == s.status.STATUS_CODE_ERROR], what="an error span")


def test_an_unreachable_collector_changes_nothing_for_clients(sim, start_proxy):
    p = start_proxy(sim.url, tracing={"otlp_endpoint": f"http://127.0.0.1:{free_port()}/v1/traces", "export_timeout": 0.5})
    for _ in range(20):
        assert http("POST", p.url + "/v1/chat/completions", CHAT).status == 200
    assert "devstral_trace_spans_dropped_total 0" in http("GET", p.url + "/metrics").body.decode()


def test_without_a_sampled_parent_the_ratio_decides_and_context_still_goes_on(sim, start_proxy, collector):
    p = start_proxy(sim.url, tracing={"otlp_endpoint": collector.url, "sample_ratio": 0.0})
    assert http("POST", p.url + "/v1/chat/completions", CHAT).status == 200
    sent = {k.lower(): v for k, v in sim.record.headers[-1].items()}
    assert sent["traceparent"].startswith("00-") and sent["traceparent"].endswith("-00")  # propagated, not sampled
    assert http("POST", p.url + "/v1/chat/completions", CHAT, {"traceparent": PARENT}).status == 200  # a sampled parent wins
    eventually(lambda: collector.named("chat gpt-4"), what="the parent's sampled trace exported")
    assert len(collector.named("chat gpt-4")) == 1


def test_spans_are_exported_with_several_workers(sim, collector, tmp_path):
    from tests.support import proxy_process

    port = free_port()
    config = tmp_path / "c.toml"
    config.write_text(f'[backends.b]\nurl = "{sim.url}"\n[model_mapping]\n"gpt-4" = "mistral-sim"\n[tracing]\notlp_endpoint = "{collector.url}"\n')
    proc = proxy_process(port, "--config", str(config), "--workers", "2", "--log-level", "WARNING")
    try:
        for _ in range(20):  # one connection each: the kernel spreads them over both workers
            assert http("POST", f"http://127.0.0.1:{port}/v1/chat/completions", CHAT).status == 200
        eventually(lambda: len(collector.named("chat gpt-4")) == 20, what="every request's span, whichever worker served it")
    finally:
        proc.terminate()
        proc.wait(30)
