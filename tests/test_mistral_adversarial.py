"""Conversations built to be slow (bench/adversarial.py) still translate correctly: every
result kept and paired once, every id and tool name distinct. (How fast: the benchmark.)"""

import json

import pytest

from bench.adversarial import colliding_names, repeated_ids, tiny_messages, translate, unmatched_ids
from bench.mistral_judge import problem
from devstral_translate.mistral.names import VALID_ID, VALID_NAME


def run(doc: dict, generation=None) -> dict:
    return json.loads(translate(json.dumps({"model": "m", **doc}).encode(), generation).body)


@pytest.mark.parametrize("shape", [repeated_ids, unmatched_ids])
def test_every_result_is_kept_and_paired_once(shape):
    sent = run(shape(3000))
    (turn,) = [m for m in sent["messages"] if m.get("tool_calls")]
    ids = [c["id"] for c in turn["tool_calls"]]
    assert len(set(ids)) == 3000 and all(VALID_ID.fullmatch(i) for i in ids)
    results = [m for m in sent["messages"] if m["role"] == "tool"]
    assert [r["content"] for r in results] == [f"r{k}" for k in range(3000)]  # in order, none synthetic
    assert [r["tool_call_id"] for r in results] == ids


@pytest.mark.parametrize("shape", [repeated_ids, unmatched_ids, colliding_names])
def test_adversarial_shapes_pass_mistral_common(shape):
    sent = run(shape(60))
    assert problem(sent) is None


def test_colliding_tool_names_stay_distinct_and_map_back():
    doc = colliding_names(3000)
    prepared = translate(json.dumps({"model": "m", **doc}).encode())
    names = [t["function"]["name"] for t in json.loads(prepared.body)["tools"]]
    assert len(set(names)) == 3000 and all(VALID_NAME.fullmatch(n) for n in names)
    back = prepared.response.names
    assert [back.client(n) for n in names] == [t["function"]["name"] for t in doc["tools"]]


def test_many_tiny_messages_keep_every_word():
    sent = run(tiny_messages(20000))
    assert sum(m["content"].count("w") for m in sent["messages"]) == 20000
