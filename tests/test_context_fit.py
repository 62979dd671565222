"""max_tokens that does not fit beside the prompt: vLLM's context-length 400 (the simulator
answers it in vLLM's words), the proxy's one retry with what fits, on chat completions and on
the Messages route (Claude Code asks for 32000), whole and streamed; off by setting."""

import anthropic
import openai
import pytest

from bench.simulator import Behavior
from devstral_translate import context
from tests.support import SimThread

NEW = (
    b'{"object":"error","message":"\'max_tokens\' or \'max_completion_tokens\' is too large: 32000. '
    b"This model's maximum context length is 4096 tokens and your request has 96 input tokens (32000 > 4096 - 96). None\"}"
)
OLD = b"This model's maximum context length is 4096 tokens. However, you requested 32096 tokens (96 in the messages, 32000 in the completion). Please reduce."


def test_both_wordings_of_vllm_read():
    assert context.refused_for_length(400, NEW) == (4096, 96) and context.fitting(400, NEW) == 4000
    assert context.refused_for_length(400, OLD) == (4096, 96)
    assert context.fitting(500, NEW) is None and context.fitting(400, b'{"message": "Unexpected role"}') is None
    full = b"maximum context length is 100 tokens and your request has 100 input tokens"
    assert context.fitting(400, full) is None  # no room at all: the refusal stands
    body = b'{"model":"m","max_tokens":32000,"max_completion_tokens":32000,"messages":[]}'
    assert context.requested(body) == 32000
    fitted = context.with_max_tokens(body, 4000)
    assert context.requested(fitted) == 4000 and b'"max_tokens":4000' in fitted


@pytest.fixture
def sim():
    s = SimThread(Behavior(strict_mistral=True, models=["devstral-sim"], max_model_len=4096))
    yield s
    s.stop()


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_chat_max_tokens_refit_once(sim, start_proxy, stream):
    p = start_proxy(backends={"vllm": {"url": sim.url, "dialect": "mistral"}}, model_mapping={"devstral": "devstral-sim"})
    client = openai.OpenAI(base_url=p.url + "/v1", api_key="x", max_retries=0)
    kwargs = {"model": "devstral", "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 32000}
    if stream:
        text = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(stream=True, **kwargs) if c.choices)
    else:
        text = client.chat.completions.create(**kwargs).choices[0].message.content
    assert text == sim.behavior.reply
    first, second = sim.record.requests
    assert first["max_tokens"] == 32000 and 0 < second["max_tokens"] < 4096
    assert second["max_tokens"] + max(1, len(str(second["messages"])) // 8) <= 4096


def test_messages_route_refit(sim, start_proxy):
    p = start_proxy(backends={"vllm": {"url": sim.url, "dialect": "mistral"}}, model_mapping={"devstral": "devstral-sim"})
    client = anthropic.Anthropic(base_url=p.url, api_key="x", max_retries=0)
    # below the learnt context (no clamp up front) but too much beside the prompt: refused, then refit
    with client.messages.stream(model="devstral", max_tokens=4090, messages=[{"role": "user", "content": "Hello"}]) as s:
        reply = s.get_final_message()
    assert reply.content[0].text == sim.behavior.reply and len(sim.record.requests) == 2


def test_refit_off_by_setting(sim, start_proxy):
    p = start_proxy(backends={"vllm": {"url": sim.url, "dialect": "mistral", "fit_max_tokens": False}}, model_mapping={"devstral": "devstral-sim"})
    client = openai.OpenAI(base_url=p.url + "/v1", api_key="x", max_retries=0)
    with pytest.raises(openai.BadRequestError) as exc:
        client.chat.completions.create(model="devstral", messages=[{"role": "user", "content": "Hello"}], max_tokens=32000)
    assert "maximum context length is 4096" in exc.value.body["message"] and len(sim.record.requests) == 1


def test_a_prompt_that_alone_is_too_long_is_refused_once(sim, start_proxy):
    p = start_proxy(backends={"vllm": {"url": sim.url, "dialect": "mistral"}}, model_mapping={"devstral": "devstral-sim"})
    client = openai.OpenAI(base_url=p.url + "/v1", api_key="x", max_retries=0)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="devstral", messages=[{"role": "user", "content": "word " * 8000}], max_tokens=10)
    assert len(sim.record.requests) == 1  # no room for any max_tokens: the refusal stands


def test_a_front_max_tokens_past_the_learnt_context_is_clamped_up_front(sim, start_proxy):
    """The model's max_model_len is read from /v1/models: a Messages request asking for more
    than the whole context is cut before it is sent (one request, no refusal)."""
    p = start_proxy(backends={"vllm": {"url": sim.url, "dialect": "mistral"}}, model_mapping={"devstral": "devstral-sim"})
    client = anthropic.Anthropic(base_url=p.url, api_key="x", max_retries=0)
    with client.messages.stream(model="devstral", max_tokens=64000, messages=[{"role": "user", "content": "Hello"}]) as s:
        assert s.get_final_message().content[0].text == sim.behavior.reply
    [sent] = sim.record.requests
    assert 0 < sent["max_tokens"] < 4096
    assert context.clamped(b'{"max_tokens":100}', 4096) == b'{"max_tokens":100}'
