"""usage_counts reads the token counts of the last usage in a reply body or a block of SSE
frames; checked against json's reading of generated replies (key order, spacing, details)."""

import json

from hypothesis import given
from hypothesis import strategies as st

from devstral_translate.usage import usage_counts

counts = st.integers(min_value=0, max_value=10**9)


@st.composite
def usages(draw):
    usage = {"prompt_tokens": draw(counts), "completion_tokens": draw(counts)}
    usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
    if draw(st.booleans()):
        usage["prompt_tokens_details"] = {"cached_tokens": draw(counts)}
    items = draw(st.permutations(list(usage.items())))
    return dict(items)


def _expected(usage: dict) -> tuple[int, int, int]:
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0)
    return usage["prompt_tokens"], usage["completion_tokens"], cached


@given(usages(), st.sampled_from([(",", ":"), (", ", ": ")]), st.text(max_size=40))
def test_a_whole_body(usage, separators, content):
    body = {"id": "x", "choices": [{"message": {"content": content}}], "usage": usage}
    assert usage_counts(json.dumps(body, separators=separators).encode()) == _expected(usage)


@given(st.lists(usages(), min_size=1, max_size=4))
def test_the_last_usage_of_a_block_of_frames(found):
    frames = [{"choices": [{"delta": {"content": "hi"}}], "usage": u} for u in found]
    block = "".join(f"data: {json.dumps(f)}\n\n" for f in frames) + "data: [DONE]\n\n"
    assert usage_counts(block.encode()) == _expected(found[-1])


def test_a_null_usage_after_counts_falls_back_to_the_last_counts():
    block = b'data: {"usage":{"prompt_tokens":7,"completion_tokens":3}}\n\ndata: {"usage":null}\n\n'
    assert usage_counts(block) == (7, 3, 0)


def test_no_usage():
    assert usage_counts(b'{"choices":[],"usage":null}') is None
    assert usage_counts(b'{"choices":[]}') is None
