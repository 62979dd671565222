"""The measuring sticks of bench/ keep working: the byte-relay floor relays real HTTP, and the
socket-free pipeline measurement answers every request it feeds, in both dialects."""

import json

import pytest
import uvloop

from bench import floor, pipeline_cost
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
    runs = uvloop.run(pipeline_cost._run(dialect, shape, 50, 2, False))
    assert len(runs) == 2 and all(r > 0 for r in runs)


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
