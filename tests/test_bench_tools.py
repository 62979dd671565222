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
@pytest.mark.parametrize("stream", [False, True])
def test_pipeline_cost_answers_every_request_it_feeds(dialect, stream):
    runs = uvloop.run(pipeline_cost._run(dialect, stream, 50, 2, False))
    assert len(runs) == 2 and all(r > 0 for r in runs)


def test_pipeline_cost_replies_are_what_a_client_gets():
    request, reply = pipeline_cost._request(True), pipeline_cost._reply(True)
    assert request.startswith(b"POST /v1/chat/completions HTTP/1.1\r\n")
    head, _, body = reply.partition(b"\r\n\r\n")
    assert b"content-length: %d" % len(body) in head
    assert json.loads(body.split(b"\n\n")[0][6:])["object"] == "chat.completion.chunk"
