"""Weighted model routing (an A/B split): a model_mapping entry naming several models with
weights. Shares hold over many callers, each caller keeps its variant (across requests and a
reload that changes the weights, unless its share is the one that moves), the client sees its
own model name, and each variant gets its own backend's dialect."""

import json

import pytest

from devstral_proxy.config import ConfigError, Variant, build
from devstral_proxy.split import Splits
from tests.support import SimThread, http

CALLS = [  # a tool-call history: the Mistral dialect rewrites its ids, the pass-through does not
    {"role": "user", "content": "list"},
    {"role": "assistant", "content": None, "tool_calls": [{"id": "call_abcdefghijkl", "type": "function", "function": {"name": "ls", "arguments": "{}"}}]},
    {"role": "tool", "tool_call_id": "call_abcdefghijkl", "content": "a.py"},
]


def splits(weights: tuple[float, float]) -> Splits:
    return Splits({"gpt-4": [Variant("small", weights[0]), Variant("medium", weights[1])]})


def test_shares_hold_over_many_callers_and_each_caller_keeps_its_variant():
    s = splits((90, 10))
    picks = {key: s.choose("gpt-4", key).model for key in (b"caller-%d" % i for i in range(4000))}
    share = sum(1 for m in picks.values() if m == "small") / len(picks)
    assert 0.87 < share < 0.93
    assert all(s.choose("gpt-4", key).model == model for key, model in list(picks.items())[:500])  # sticky, no state
    assert s.choose("other-model", b"caller-1") is None


def test_a_change_of_weights_moves_only_the_share_that_must_move():
    before, after = splits((90, 10)), splits((80, 20))
    keys = [b"caller-%d" % i for i in range(4000)]
    moved = [k for k in keys if before.choose("gpt-4", k).model != after.choose("gpt-4", k).model]
    assert all(before.choose("gpt-4", k).model == "small" for k in moved)  # none moves back the other way
    assert 0.07 < len(moved) / len(keys) < 0.13  # about the 10% that must


def test_a_split_is_checked_when_the_config_loads():
    backends = {"a": {"url": "http://127.0.0.1:9"}}
    with pytest.raises(ConfigError, match="model_mapping.gpt-4"):
        build({"backends": backends, "model_mapping": {"gpt-4": [{"model": "x", "weight": 0}]}}, env={})
    with pytest.raises(ConfigError, match="no backend named 'b'"):
        build({"backends": backends, "model_mapping": {"gpt-4": [{"model": "x", "backends": ["b"]}]}}, env={})


def test_each_variant_reaches_its_backend_with_its_dialect_and_the_client_sees_its_own_name(start_proxy):
    mistral, plain = SimThread(), SimThread()
    mistral.behavior.models, plain.behavior.models = ["devstral-small"], ["devstral-medium"]
    try:
        mapping = {
            "gpt-4": [
                {"model": "devstral-small", "weight": 50, "backends": ["gpu-mistral"]},
                {"model": "devstral-medium", "weight": 50, "backends": ["gpu-openai"]},
            ]
        }
        backends = {"gpu-mistral": {"url": mistral.url, "dialect": "mistral"}, "gpu-openai": {"url": plain.url}}
        p = start_proxy(backends=backends, model_mapping=mapping)
        seen = {}
        for i in range(24):
            session = f"session-{i}"
            r = http("POST", p.url + "/v1/chat/completions", {"model": "gpt-4", "messages": CALLS}, {"x-session-id": session})
            assert r.status == 200 and r.json()["model"] == "gpt-4"
            variant = r.headers["x-devstral-variant"]
            sim = mistral if variant == "devstral-small" else plain
            sent = sim.record.requests[-1]
            assert sent["model"] == variant
            call_id = sent["messages"][1]["tool_calls"][0]["id"]
            assert (len(call_id) == 9) == (variant == "devstral-small")  # the Mistral dialect on its variant only
            seen[session] = variant
        assert set(seen.values()) == {"devstral-small", "devstral-medium"}
        for session, variant in list(seen.items())[:6]:  # sticky across requests
            r = http("POST", p.url + "/v1/chat/completions", {"model": "gpt-4", "messages": CALLS}, {"x-session-id": session})
            assert r.headers["x-devstral-variant"] == variant
        # a reload that gives the small model more: every caller it had stays
        mapping["gpt-4"][0]["weight"] = 70
        new = build({"backends": backends, "model_mapping": mapping}, env={}, overrides={"host": "127.0.0.1", "port": 0})
        p.loop.call(lambda: p.proxy.reload(new))
        for session, variant in seen.items():
            if variant == "devstral-small":
                r = http("POST", p.url + "/v1/chat/completions", {"model": "gpt-4", "messages": CALLS}, {"x-session-id": session})
                assert r.headers["x-devstral-variant"] == variant
        metrics = http("GET", p.url + "/metrics").body.decode()
        assert 'devstral_variant_requests_total{model="gpt-4",variant="devstral-small"}' in metrics
        listed = {m["id"] for m in http("GET", p.url + "/v1/models").json()["data"]}
        assert "gpt-4" in listed
    finally:
        mistral.stop()
        plain.stop()


def test_without_a_session_the_caller_identity_decides_and_the_access_line_names_the_variant(sim, start_proxy, capfd):
    mapping = {"gpt-4": [{"model": "mistral-sim", "weight": 1}, {"model": "mistral-sim-b", "weight": 1}]}
    sim.behavior.models = ["mistral-sim", "mistral-sim-b"]
    p = start_proxy(sim.url, model_mapping=mapping, authentication={"api_keys": [f"sk-{i}" for i in range(12)]}, logging={"level": "INFO"})
    variants = set()
    for i in range(12):
        key = {"authorization": f"Bearer sk-{i}"}
        first = http("POST", p.url + "/v1/chat/completions", {"model": "gpt-4", "messages": CALLS[:1]}, key).headers["x-devstral-variant"]
        again = http("POST", p.url + "/v1/chat/completions", {"model": "gpt-4", "messages": CALLS[:1]}, key).headers["x-devstral-variant"]
        assert first == again
        variants.add(first)
    assert variants == {"mistral-sim", "mistral-sim-b"}

    async def flush():
        p.proxy.access.flush()

    p.loop.call(flush)
    lines = [json.loads(x) for x in capfd.readouterr().err.splitlines() if x.startswith("{") and '"request_id"' in x]
    assert {line.get("variant") for line in lines} == variants
