"""The measuring sticks of bench/ keep working: the byte-relay floor relays real HTTP, the
socket-free pipeline measurement answers every request it feeds, in both dialects, and the
paced-stream and one-connection harnesses count what they send."""

import json
import subprocess
import sys

import pytest
import uvloop

from bench import floor, one_connection, paced, pipeline_cost
from bench.compare import stop_all, wait_port
from tests.support import LoopThread, free_port, http


def test_the_floor_relay_passes_requests_and_replies_byte_for_byte(sim):
    loop, port = LoopThread(), free_port()
    try:
        loop.call(lambda: floor.start(port, f"127.0.0.1:{sim.port}"))
        body = {"model": "mistral-sim", "messages": [{"role": "user", "content": "hi"}]}
        direct = http("POST", sim.url + "/v1/chat/completions", body)
        relayed = http("POST", f"http://127.0.0.1:{port}/v1/chat/completions", body)
        assert relayed.status == direct.status == 200
        assert relayed.json()["choices"] == direct.json()["choices"]
        assert relayed.json()["model"] == "mistral-sim"  # nothing is rewritten
        assert len(sim.record.requests) == 2
    finally:
        loop.stop()


@pytest.mark.parametrize("dialect", ["openai", "mistral"])
@pytest.mark.parametrize("shape", list(pipeline_cost.SHAPES))
def test_pipeline_cost_answers_every_request_it_feeds(dialect, shape):
    import logging

    level = logging.getLogger("devstral_proxy").level
    runs = uvloop.run(pipeline_cost._run(dialect, shape, 50, 2, False))
    assert len(runs) == 2 and all(r > 0 for r in runs)
    assert logging.getLogger("devstral_proxy").level == level  # quiet while it runs, as it was after (later tests read warnings)


def test_pipeline_cost_feeds_replies_as_a_backend_sends_them():
    whole = pipeline_cost._reply("stream")
    head, _, body = whole[0].partition(b"\r\n\r\n")
    assert len(whole) == 1 and b"content-length: %d" % len(body) in head
    reads = pipeline_cost._reply("frames")
    assert b"transfer-encoding: chunked" in reads[0] and reads[-1] == b"0\r\n\r\n"
    frames = [r.partition(b"\r\n")[2][:-2] for r in reads[1:-1]]
    assert b"".join(frames) == body  # the same frames, one per read
    assert all(f.endswith(b"\n\n") and f.count(b"data: ") == 1 for f in frames)
    assert json.loads(frames[0][6:])["object"] == "chat.completion.chunk"


def test_paced_streams_reach_the_client_through_the_floor_and_the_proxy(tmp_path):
    """bench.paced's harness: every frame of every stream is counted, through the byte-relay
    floor and the proxy alike (each frame stamped by the paced backend)."""
    backend_port, procs = free_port(), []
    procs.append(subprocess.Popen([sys.executable, "-m", "bench.paced", "--serve", str(backend_port), "--frames", "3", "--gap", "0.01"]))
    try:
        wait_port(backend_port)
        targets = paced.start_targets(["floor", "proxy-openai"], backend_port, 1, tmp_path, procs)
        assert set(targets) == {"direct", "floor", "proxy-openai"}
        body = json.dumps({"model": "gpt-4", "stream": True, "messages": [{"role": "user", "content": "hi"}]}).encode()
        for port, pids in targets.values():
            row = paced.measure("t", port, pids, 4, body)
            assert row["streams"] == 4 and row["frames"] == 4 * 3, row
            assert 0 <= row["first"][0] <= row["first"][2]
    finally:
        stop_all(procs, tmp_path / "gone")


def test_one_connection_times_each_round_trip_on_one_keep_alive_connection(sim, start_proxy):
    proxy = start_proxy(sim.url)
    times = one_connection.round_trips(proxy.port, 5)
    assert len(times) == 5 and all(t > 0 for t in times)
    assert len(sim.record.requests) == 5


def test_repeated_paced_runs_report_the_median_of_each_figure():
    rows = [
        {"streams": s, "first": (a, a * 2, a * 3), "delay": (a, a, a), "cpu_us_per_frame": a, "rss_kb_per_stream": a}
        for s, a in ((10, 5.0), (9, 1.0), (10, 3.0))
    ]
    row = paced.median_row(rows)
    assert row["streams"] == 9 and row["first"] == (3.0, 6.0, 9.0) and row["cpu_us_per_frame"] == 3.0


@pytest.mark.parametrize("blocks", [False, True])
def test_front_cost_feeds_one_conversation_to_every_reader(blocks):
    """bench.front_cost's three bodies are the same conversation: each reader makes the same
    chat messages of it (else its timings would compare different work)."""
    import msgspec

    from bench.front_cost import bodies
    from devstral_translate import anthropic, responses

    chat, messages, items = bodies(6, blocks)
    want = [(m["role"], m["content"] if isinstance(m["content"], str) else m["content"][0]["text"]) for m in msgspec.json.decode(chat)["messages"]]
    for got in (anthropic.read_request(messages)["messages"], responses.read_request(items).messages):
        assert [(m["role"], m["content"] if isinstance(m["content"], str) else m["content"][0]["text"]) for m in got] == want


def test_token_cost_times_each_kind_of_key():
    out = subprocess.run([sys.executable, "-m", "bench.token_cost", "--calls", "3"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert [line.split(":")[0] for line in out.stdout.splitlines()] == ["RS256", "ES256", "EdDSA"]
