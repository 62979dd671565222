"""The Mistral dialect's request translation, judged by mistral-common itself."""

import json

import pytest

from bench.mistral_judge import problem
from devstral_translate.errors import RequestError, TranslationError
from devstral_translate.mistral import MistralDialect, MistralOptions, guess_generation
from devstral_translate.mistral.names import VALID_ID, VALID_NAME
from tests.conversations import TABLE, agent_history, all_text, assistant_texts, texts_sent

GENERATIONS = [None, "v3", "v7", "v11", "v13"]


def translate(messages, extra=None, generation=None, model="mistral-sim"):
    body = json.dumps({"model": model, "messages": messages, **(extra or {})}).encode()
    p = MistralDialect(MistralOptions(generation=generation)).prepare("/v1/chat/completions", body, {})
    return json.loads(p.body), p


@pytest.mark.parametrize("generation", GENERATIONS)
@pytest.mark.parametrize("name", list(TABLE))
def test_every_conversation_passes_mistral_common(name, generation):
    messages, extra = TABLE[name]
    sent, _ = translate(messages, extra, generation)
    assert problem(sent, generation) is None, problem(sent, generation)


@pytest.mark.parametrize("name", list(TABLE))
def test_oldest_tokenizers_refuse_only_what_they_cannot_do(name):
    """v1 has no tools and v2 no parallel tool results: anything else they must encode."""
    from mistral_common.exceptions import InvalidUserMessageException, TokenizerException, UnsupportedTokenizerFeatureException
    from mistral_common.protocol.instruct.request import ChatCompletionRequest

    from bench.mistral_judge import legacy_tokenizers

    messages, extra = TABLE[name]
    sent, _ = translate(messages, extra, "v3")
    for tokenizer_name, tokenizer in legacy_tokenizers():
        try:
            tokenizer.encode_chat_completion(ChatCompletionRequest(messages=sent["messages"], tools=sent.get("tools")))
        except TokenizerException as exc:
            assert "v1" in tokenizer_name and "Tools not implemented" in str(exc) and "tools" in sent
        except InvalidUserMessageException as exc:  # v1/v2 are no vision models
            assert "ImageURLChunk" in str(exc) and "images" not in tokenizer_name
        except UnsupportedTokenizerFeatureException as exc:
            assert "multiple tool results" in str(exc)
            assert any(len(m.get("tool_calls") or []) > 1 for m in sent["messages"])


@pytest.mark.parametrize("name", list(TABLE))
def test_the_originals_would_mostly_be_refused(name):
    """The table is not trivially valid: most of it is what vLLM refuses today."""
    messages, extra = TABLE[name]
    raw = {"messages": messages, "tools": extra.get("tools") or None}
    if name in ("developer role", "orphan tool result", "prefill", "top-level extras", "legacy functions"):
        pytest.skip("refused by vLLM for reasons outside mistral-common (role names, top-level keys)")
    assert problem(raw) is not None


@pytest.mark.parametrize("name", list(TABLE))
def test_no_user_system_or_tool_text_is_lost(name):
    messages, extra = TABLE[name]
    sent, _ = translate(messages, extra)
    contents = all_text(sent["messages"])
    for text in texts_sent(messages):
        assert text in contents, text


@pytest.mark.parametrize("generation", GENERATIONS)
@pytest.mark.parametrize("name", list(TABLE))
def test_nothing_the_model_said_is_lost_on_any_generation(name, generation):
    messages, extra = TABLE[name]
    sent, _ = translate(messages, extra, generation)
    contents = all_text(sent["messages"])
    for text in assistant_texts(messages):
        assert text in contents, (generation, text)


def test_parallel_calls_sent_one_per_message_are_one_turn_and_never_cancelled():
    messages, extra = TABLE["parallel calls as one assistant message each"]
    for generation in GENERATIONS:
        sent, _ = translate(messages, extra, generation)
        turns = [m for m in sent["messages"] if m["role"] == "assistant" and m.get("tool_calls")]
        assert len(turns) == 1 and len(turns[0]["tool_calls"]) == 2
        results = [m["content"] for m in sent["messages"] if m["role"] == "tool"]
        assert results == ["sunny in Paris", "rainy in Rome"]  # the real results, in call order
        assert "cancelled" not in all_text(sent["messages"])


def test_v3_moves_text_beside_calls_after_their_results():
    messages, extra = TABLE["assistant text before and beside calls"]
    sent, _ = translate(messages, extra, "v3")
    roles = [m["role"] for m in sent["messages"]]
    assert roles == ["user", "assistant", "tool", "assistant", "user"]
    assert sent["messages"][3]["content"] == "I will look that up for you.\n\nChecking Paris first."
    sent, _ = translate(messages, extra, "v11")  # v7 and later keep it where it was said
    assert sent["messages"][1]["content"] == "I will look that up for you." and sent["messages"][2]["content"] == "Checking Paris first."


def test_ids_are_valid_deterministic_and_paired():
    messages, extra = TABLE["empty short uuid and missing ids"]
    a, _ = translate(messages, extra)
    b, _ = translate(messages, extra)
    assert a == b
    calls = a["messages"][1]["tool_calls"]
    ids = [c["id"] for c in calls]
    assert all(VALID_ID.fullmatch(i) for i in ids) and len(set(ids)) == 4
    results = [m for m in a["messages"] if m["role"] == "tool"]
    assert [(r["tool_call_id"], r["content"]) for r in results] == list(zip(ids, "abcd"))


def test_valid_ids_are_kept_and_a_prefix_translates_to_a_prefix():
    history = agent_history(20)
    full, _ = translate(history)
    shorter, _ = translate(history[:-3] + [{"role": "user", "content": "go on"}])
    common = shorter["messages"][:-2]  # all but the bridge and the new user turn
    assert len(common) > 30 and full["messages"][: len(common)] == common  # prefix-cache friendly
    keep = [
        {"role": "user", "content": "x"},
        {"role": "assistant", "tool_calls": [{"id": "aB3dE5gH9", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "aB3dE5gH9", "content": "r"},
    ]
    sent, _ = translate(keep)
    assert sent["messages"][1]["tool_calls"][0]["id"] == "aB3dE5gH9"


def test_results_follow_their_calls_in_call_order():
    messages, extra = TABLE["results out of order"]
    sent, _ = translate(messages, extra)
    calls = sent["messages"][1]["tool_calls"]
    results = sent["messages"][2:5]
    assert [r["tool_call_id"] for r in results] == [c["id"] for c in calls]
    assert [r["content"] for r in results] == ["warm", "hot", "cold"]


def test_cancelled_call_gets_a_synthetic_result_and_user_turn_is_bridged():
    messages, extra = TABLE["cancelled tool call"]
    sent, _ = translate(messages, extra)
    roles = [m["role"] for m in sent["messages"]]
    assert roles == ["user", "assistant", "tool", "assistant", "user"]
    assert "cancelled" in sent["messages"][2]["content"]
    assert sent["messages"][3]["content"] == "Ok."
    opts = MistralOptions(bridge_text="(continuing)")
    body = json.dumps({"model": "m", "messages": messages}).encode()
    again = json.loads(MistralDialect(opts).prepare("/v1/chat/completions", body, {}).body)
    assert again["messages"][3]["content"] == "(continuing)"


def test_tool_names_are_sanitised_everywhere_and_schema_cleaned():
    messages, extra = TABLE["dotted tool names"]
    sent, p = translate(messages, extra)
    names = [t["function"]["name"] for t in sent["tools"]]
    assert names == ["fs_read_file", "fs_write_file"] and all(VALID_NAME.fullmatch(n) for n in names)
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "fs_write_file"}}
    assert sent["messages"][1]["tool_calls"][0]["function"]["name"] == "fs_read_file"
    assert sent["messages"][2]["name"] == "fs_read_file"
    assert "$schema" not in sent["tools"][0]["function"]["parameters"]
    assert sent["tools"][0]["function"]["strict"] is True  # kept: recent vLLM decodes under it
    assert p.response.names.client("fs_write_file") == "fs.write_file"


def test_colliding_sanitised_names_stay_distinct():
    tools = [{"type": "function", "function": {"name": n, "parameters": {}}} for n in ("a.b", "a_b", "a b")]
    sent, p = translate([{"role": "user", "content": "x"}], {"tools": tools})
    names = [t["function"]["name"] for t in sent["tools"]]
    assert len(set(names)) == 3 and [p.response.names.client(n) for n in names] == ["a.b", "a_b", "a b"]


def test_top_level_rules():
    sent, _ = translate([{"role": "user", "content": "x"}], TABLE["top-level extras"][1])
    for gone in ("chat_template_kwargs", "stream_options", "reasoning_effort", "tools", "tool_choice"):
        assert gone not in sent
    assert sent["temperature"] == 0.1 and sent["parallel_tool_calls"] is True
    sent, _ = translate(
        [{"role": "user", "content": "x"}], {"reasoning_effort": "low", "stream": True, "stream_options": {"include_usage": True}}, generation="v15"
    )
    assert sent["reasoning_effort"] == "high" and sent["stream_options"] == {"include_usage": True}


def test_legacy_functions_become_tools():
    messages, extra = TABLE["legacy functions"]
    sent, _ = translate(messages, extra)
    assert sent["tools"][0]["function"]["name"] == "get_weather" and sent["tool_choice"] == "auto"
    assert "functions" not in sent and "function_call" not in sent
    assert sent["messages"][2]["role"] == "tool" and sent["messages"][2]["tool_call_id"] == sent["messages"][1]["tool_calls"][0]["id"]


def test_prefill_is_sent_with_prefix():
    messages, _ = TABLE["prefill"]
    sent, _ = translate(messages)
    assert sent["messages"][-1] == {"role": "assistant", "content": "Autumn moonlight", "prefix": True}


def test_v7_and_later_keep_assistant_text_beside_tool_calls():
    messages, extra = TABLE["list content with cache_control"]
    assert "content" not in translate(messages, extra, "v3")[0]["messages"][2]
    assert translate(messages, extra, "v11")[0]["messages"][2]["content"] == "Reading."


def test_generation_guessed_from_model_name():
    assert guess_generation("mistralai/Devstral-Small-2507") == "v11"
    assert guess_generation("mistralai/Devstral-Small-2505") == "v7"
    assert guess_generation("mistralai/Devstral-2-123B-Instruct-2512") == "v13"
    assert guess_generation("mistralai/Codestral-22B-v0.1") == "v3"
    assert guess_generation("my-finetune") is None


@pytest.mark.parametrize(
    "messages, index",
    [
        ([{"role": "wizard", "content": "x"}], 0),
        ([{"role": "user", "content": "x"}, {"role": "user", "content": 5}], 1),
        ([{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}], 0),
        ([{"role": "assistant", "content": "only me"}], 0),
        ([{"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": [{"function": {"arguments": "{}"}}]}], 1),
        ([{"role": "user", "content": "x"}, "not an object"], 1),
    ],
)
def test_conversations_that_cannot_be_made_valid_name_the_message(messages, index):
    with pytest.raises(RequestError) as err:
        translate(messages)
    assert err.value.param == f"messages[{index}]", err.value.message


def test_empty_conversation_is_refused():
    with pytest.raises(TranslationError):
        translate([{"role": "system", "content": "  "}])


def test_strict_is_dropped_only_when_the_backend_refuses_it():
    messages, extra = TABLE["dotted tool names"]
    body = json.dumps({"model": "m", "messages": messages, **extra}).encode()
    p = MistralDialect(MistralOptions(tool_strict=False)).prepare("/v1/chat/completions", body, {})
    assert all("strict" not in t["function"] for t in json.loads(p.body)["tools"])


def test_tool_choice_any_is_required():
    sent, _ = translate([{"role": "user", "content": "hi"}], {"tools": [TABLE["user after tool"][1]["tools"][0]], "tool_choice": "any"})
    assert sent["tool_choice"] == "required"


def test_a_prefill_carries_what_old_and_new_vllm_read():
    messages, extra = TABLE["prefill"]
    sent, _ = translate(messages, extra)
    assert sent["messages"][-1]["prefix"] is True
    assert sent["continue_final_message"] is True and sent["add_generation_prompt"] is False
    plain, _ = translate([{"role": "user", "content": "hi"}])
    assert "continue_final_message" not in plain and "add_generation_prompt" not in plain


def test_a_lone_surrogate_escape_is_accepted():
    body = b'{"model": "m", "messages": [{"role": "user", "content": "cut mid-emoji \\ud83d"}]}'
    p = MistralDialect().prepare("/v1/chat/completions", body, {})
    assert json.loads(p.body)["messages"][0]["content"] == "cut mid-emoji \ufffd"


def test_images_in_tool_results_move_to_a_user_turn_after_the_results_except_on_v15():
    messages, extra = TABLE["image in a tool result"]
    for generation in GENERATIONS:
        sent, _ = translate(messages, extra, generation)
        tool = next(m for m in sent["messages"] if m["role"] == "tool")
        assert tool["content"] == "login.png, 4x4"
        user = sent["messages"][-1]
        assert user["role"] == "user" and user["content"][-1]["image_url"]["url"].startswith("data:image/png")
        assert "view_image" in user["content"][0]["text"]
    sent, _ = translate(messages, extra, "v15")
    tool = next(m for m in sent["messages"] if m["role"] == "tool")
    assert tool["content"][1]["type"] == "image_url" and sent["messages"][-1] is tool


def test_images_in_tool_results_are_refused_for_a_model_without_vision():
    messages, extra = TABLE["image in a tool result"]
    body = json.dumps({"model": "m", "messages": messages, **extra}).encode()
    with pytest.raises(TranslationError, match="images"):
        MistralDialect(MistralOptions(images=False)).prepare("/v1/chat/completions", body, {})
