"""Every rewrite is reported by the dialect that makes it (translate/ reports what it did as
data, as it does it): a conversation vLLM would refuse as it came gets a rewrite list, each
kind of fix names itself, and asking for the list changes nothing sent. `devstral-proxy
translate` prints what the backend would receive, the list, and a reply as the client gets it."""

import json
import subprocess
import sys

import pytest

from bench.mistral_judge import problem
from devstral_translate.mistral import MistralDialect, MistralOptions
from devstral_translate.rewrites import Rewrites
from tests.conversations import TABLE


def notes_of(messages, extra=None, generation=None) -> tuple[dict, list[str], bytes]:
    body = json.dumps({"model": "mistral-sim", "messages": messages, **(extra or {})}).encode()
    notes = Rewrites()
    prepared = MistralDialect(MistralOptions(generation=generation)).prepare("/v1/chat/completions", body, {}, False, notes)
    plain = MistralDialect(MistralOptions(generation=generation)).prepare("/v1/chat/completions", body, {})
    return json.loads(prepared.body), notes.lines(), plain.body


@pytest.mark.parametrize("name", list(TABLE))
def test_what_would_be_refused_as_it_came_gets_a_rewrite_list_and_asking_changes_nothing(name):
    messages, extra = TABLE[name]
    sent, lines, plain = notes_of(messages, extra)
    assert json.loads(plain) == sent  # the list is a report, not a different translation
    refused = problem({"messages": messages, "tools": extra.get("tools") or None}) is not None
    if refused or name in ("developer role", "orphan tool result", "prefill", "top-level extras", "legacy functions"):
        assert lines, f"{name}: changed for vLLM, but no rewrite reported"


@pytest.mark.parametrize(
    "name, kind",
    [
        ("developer role", "developer message sent as system"),
        ("orphan tool result", "tool result without its call sent as a user message"),
        ("prefill", "final assistant turn sent as a prefix the model continues"),
        ("parallel calls as one assistant message each", "parallel tool calls sent one message each joined into one assistant turn"),
        ("dotted tool names", "tool name rewritten"),
        ("empty short uuid and missing ids", "tool call id rewritten to 9 letters and digits"),
        ("cancelled tool call", "tool call without a result answered as cancelled"),
        ("legacy functions", "functions (the pre-tools API) sent as tools"),
        ("system after a tool result", "system message after a tool turn sent as a user message"),
        ("image in a tool result", "image moved from a tool result to a user message"),
    ],
)
def test_each_kind_of_fix_names_itself(name, kind):
    messages, extra = TABLE[name]
    _, lines, _ = notes_of(messages, extra, generation="v11")
    assert any(line.startswith(kind) for line in lines), lines


def test_a_request_that_needs_nothing_has_no_rewrites():
    _, lines, _ = notes_of([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}])
    assert lines == []


AGENT = {  # the README's example: a coding agent's second turn, as Codex or Cline send it
    "model": "gpt-4",
    "messages": [
        {"role": "system", "content": "You are a coding agent."},
        {"role": "user", "content": "List the files."},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "call_01HX2ZQ8KD", "type": "function", "function": {"name": "shell.run", "arguments": '{"cmd":"ls"}'}}],
        },
        {"role": "tool", "tool_call_id": "call_01HX2ZQ8KD", "content": "a.py b.py"},
        {"role": "user", "content": "Show a.py."},
    ],
    "tools": [{"type": "function", "function": {"name": "shell.run", "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}}}}],
}


def run_translate(tmp_path, *args: str, request: dict | str = AGENT) -> subprocess.CompletedProcess:
    path = tmp_path / "request.json"
    path.write_text(request if isinstance(request, str) else json.dumps(request))
    return subprocess.run([sys.executable, "-m", "devstral_proxy", "translate", str(path), *args], capture_output=True, text=True, timeout=60)


def body_printed(out: str) -> dict:
    start = out.index("{")
    return json.loads(out[start : out.index("\n}\n", start) + 2])


def test_translate_prints_what_the_backend_receives_and_the_rewrites(tmp_path):
    reply = tmp_path / "reply.json"
    reply.write_text(
        json.dumps(
            {
                "id": "x",
                "object": "chat.completion",
                "created": 1,
                "model": "mistralai/Devstral-Small-2507",
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": '[TOOL_CALLS]shell_run[ARGS]{"cmd": "cat a.py"}'}, "finish_reason": "stop"}
                ],
            }
        )
    )
    done = run_translate(tmp_path, "--dialect", "mistral", "--model", "mistralai/Devstral-Small-2507", "--generation", "v11", "--reply", str(reply))
    assert done.returncode == 0, done.stderr
    sent = body_printed(done.stdout)
    assert problem(sent, "v11") is None and sent["model"] == "mistralai/Devstral-Small-2507"
    request_part, _, reply_part = done.stdout.partition("# what the client gets back")
    assert "- model mapped: gpt-4 -> mistralai/Devstral-Small-2507" in request_part
    assert "- tool name rewritten to letters, digits, _ and - (64 at most): shell.run -> shell_run" in request_part
    assert "- tool call id rewritten to 9 letters and digits: call_01HX2ZQ8KD -> " in request_part
    back = body_printed(reply_part)
    call = back["choices"][0]["message"]["tool_calls"][0]
    assert back["model"] == "gpt-4" and call["function"]["name"] == "shell.run" and back["choices"][0]["finish_reason"] == "tool_calls"
    assert "- raw [TOOL_CALLS] text given as tool calls: shell_run" in reply_part


def test_translate_with_the_servers_config_and_a_front_route(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text('[backends.gpu0]\nurl = "http://127.0.0.1:9"\ndialect = "mistral"\n[model_mapping]\n"claude-sonnet" = "mistralai/Devstral-Small-2507"\n')
    messages = {"model": "claude-sonnet", "max_tokens": 100, "system": "Be brief.", "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]}
    done = run_translate(tmp_path, "--config", str(config), "--backend", "gpu0", "--route", "messages", request=messages)
    assert done.returncode == 0, done.stderr
    assert body_printed(done.stdout)["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]
    assert "- Messages request sent as a chat request" in done.stdout and "- model mapped: claude-sonnet -> mistralai/Devstral-Small-2507" in done.stdout
    missing = run_translate(tmp_path, "--config", str(config), "--backend", "nope", request=messages)
    assert missing.returncode == 2 and "no backend named 'nope'" in missing.stderr


def test_translate_prints_the_refusal_and_exits_non_zero(tmp_path):
    done = run_translate(tmp_path, "--dialect", "mistral", request='{"model": "gpt-4"}')
    assert done.returncode == 1
    assert "400" in done.stdout and json.loads(done.stdout.splitlines()[1])["error"]["code"] == "missing_required_parameter"


def test_at_debug_the_access_line_carries_the_rewrites_and_the_backend_body_when_asked(sim, start_proxy, capfd):
    import logging

    from tests.support import http

    logger = logging.getLogger("devstral_proxy")
    level = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        p = start_proxy(
            backends={"gpu": {"url": sim.url, "dialect": "mistral"}},
            model_mapping={"gpt-4": "mistral-sim"},
            logging={"level": "DEBUG", "log_backend_bodies": True},
        )
    finally:
        logger.setLevel(level)
    assert http("POST", p.url + "/v1/chat/completions", AGENT).status == 200

    async def flush():
        p.proxy.access.flush()

    p.loop.call(flush)
    line = [json.loads(x) for x in capfd.readouterr().err.splitlines() if x.startswith("{") and '"request_id"' in x][-1]
    assert line["rewrites"]["model mapped"] == 1 and line["rewrites"]["tool call id rewritten to 9 letters and digits"] == 1
    assert json.loads(line["backend_request_body"])["tools"][0]["function"]["name"] == "shell_run"
    assert "request_body" not in line  # the client's body only with log_bodies


def test_the_readmes_worked_example_is_what_the_command_prints():
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    readme = (root / "docs" / "mistral.md").read_text()
    block = readme[readme.index("$ devstral-proxy translate docs/examples/agent.json") :]
    command, _, rest = block.partition("\n")
    shown = rest[rest.index("# rewrites\n") : rest.index("```")].splitlines()
    args = command.split()[2:]
    done = subprocess.run([sys.executable, "-m", "devstral_proxy", *args], capture_output=True, text=True, timeout=60, cwd=root)
    assert done.returncode == 0, done.stderr
    printed = done.stdout[done.stdout.index("# rewrites\n") :].splitlines()
    assert printed == shown
    assert problem(body_printed(done.stdout), "v11") is None


def test_the_list_is_bounded_whatever_the_client_names():
    """Kinds named after a client's field names: at most MAX_KINDS listed apart, the rest
    counted together; a name is shortened and its control characters escaped."""
    from devstral_translate.rewrites import MAX_KINDS

    message = {"role": "user", "content": "hi", **{f"field{i}\nforged": 1 for i in range(500)}, "x" * 1000: 1}
    _, lines, _ = notes_of([message])
    assert len(lines) == MAX_KINDS + 1 and lines[-1].startswith("other rewrites (")
    assert all("\n" not in line and len(line) < 300 for line in lines)
