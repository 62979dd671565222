"""The published agents, headless, through a real proxy (Mistral dialect) to the strict
simulator, each set up exactly as its README snippet says: Codex CLI, Claude Code, Mistral
Vibe (three API styles), Qwen Code (three), the OpenAI Agents SDK (two models).

The simulator plays a script (a call to the agent's own shell tool, then text) and judges
every request with mistral-common; an agent passes when it ran the tool, answered, and the
backend refused nothing. tests/agents/install.sh installs the agents (.ci/run calls it).
"""

import json
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from bench.simulator import Behavior
from tests.support import SimThread, documentation

ROOT = Path(__file__).resolve().parent.parent
AGENTS = Path(os.environ.get("DEVSTRAL_AGENTS", ROOT / ".agents"))
README = documentation()  # the README and docs/: the snippets as users copy them
SNIPPET = re.compile(r"<!-- agent: ([\w-]+) -->\n```\w+\n(.*?)```", re.S)
SNIPPETS = dict(SNIPPET.findall(README))
pytestmark = pytest.mark.timeout(600)

# (how the agent is run, its shell tool's name, that tool's arguments for a command)
SHELLS = {
    "codex": ("exec_command", lambda cmd: {"cmd": cmd}),
    "claude": ("Bash", lambda cmd: {"command": cmd, "description": "Run it"}),
    "vibe": ("bash", lambda cmd: {"command": cmd}),
    "qwen": ("run_shell_command", lambda cmd: {"command": cmd}),
    "agents-sdk": ("shell", lambda cmd: {"command": cmd}),
}
RUNS = [
    ("codex", "responses"),
    ("claude", "messages"),
    ("vibe", "devstral"),
    ("vibe", "devstral-responses"),
    ("vibe", "devstral-anthropic"),
    ("qwen", "openai"),
    ("qwen", "openai-responses"),
    ("qwen", "anthropic"),
    ("agents-sdk", "OpenAIResponsesModel"),
    ("agents-sdk", "OpenAIChatCompletionsModel"),
]
SDK_SCRIPT = """
import asyncio, subprocess, sys
from agents import Runner, function_tool
snippet, model_class, prompt = sys.argv[1], sys.argv[2], sys.argv[3]
snippet = snippet.replace("tools=[...]", "tools=[shell]").replace("model = OpenAIResponsesModel(", f"model = {model_class}(")

@function_tool
def shell(command: str) -> str:
    "Run a shell command and return its output."
    return subprocess.run(command, shell=True, capture_output=True, text=True).stdout

exec(snippet)
result = Runner.run_sync(agent, prompt, max_turns=6)
print(result.final_output)
"""


def _binary(*parts: str) -> Path:
    path = AGENTS.joinpath(*parts)
    if not path.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{path} is missing: .ci/run installs the agents (tests/agents/install.sh)")
        pytest.skip(f"{path} is not installed: bash tests/agents/install.sh")
    return path


def _exports(snippet: str, url: str) -> dict[str, str]:
    return {k: v.split("#")[0].strip() for k, v in re.findall(r"^export (\w+)=(.*)$", snippet.replace("http://localhost:9000", url), re.M)}


def run_agent(agent: str, style: str, url: str, home: Path, prompt: str, again: bool = False, model: str | None = None) -> str:
    """One headless run of the agent as the README sets it up; its output (stdout and stderr)."""
    snippet = SNIPPETS[agent].replace("http://localhost:9000", url)
    work = home / "work"
    work.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI", "ANTHROPIC", "CODEX", "CLAUDE"))}
    env.update(HOME=str(home), DEVSTRAL_PROXY_KEY="sk-your-key", NO_COLOR="1", DISABLE_AUTOUPDATER="1", DISABLE_TELEMETRY="1")
    if agent == "codex":
        (home / ".codex").mkdir(exist_ok=True)
        (home / ".codex" / "config.toml").write_text(snippet + "\ncheck_for_update_on_startup = false\n[analytics]\nenabled = false\n")
        env["CODEX_HOME"] = str(home / ".codex")
        cmd = [str(_binary("node", "node_modules", ".bin", "codex")), "exec", "--skip-git-repo-check", "--dangerously-bypass-approvals-and-sandbox"]
        cmd += (["-m", model] if model else []) + (["resume", "--last"] if again else []) + [prompt]
    elif agent == "claude":
        env.update(_exports(snippet, url), IS_SANDBOX="1")  # IS_SANDBOX: root may skip the permission prompts
        cmd = [str(_binary("node", "node_modules", ".bin", "claude")), "-p", "--dangerously-skip-permissions"] + (["--continue"] if again else []) + [prompt]
    elif agent == "vibe":
        (home / ".vibe").mkdir(exist_ok=True)
        (home / ".vibe" / "config.toml").write_text(snippet.replace('active_model = "devstral"', f'active_model = "{style}"'))
        env["VIBE_HOME"] = str(home / ".vibe")
        cmd = [str(_binary("vibe", "bin", "vibe")), "-p", prompt, "--auto-approve", "--trust"] + (["--continue"] if again else [])
    elif agent == "qwen":
        env.update(_exports(snippet, url), QWEN_CODE_SUPPRESS_YOLO_WARNING="1")
        line = [ln for ln in snippet.splitlines() if ln.startswith("qwen ")][0].split("#")[0]
        args = shlex.split(line)[1:]
        args[args.index("--auth-type") + 1] = style
        cmd = [str(_binary("node", "node_modules", ".bin", "qwen")), *args, "--yolo"] + (["--continue"] if again else []) + [prompt]
    else:
        cmd = [str(_binary("sdk", "bin", "python")), "-c", SDK_SCRIPT, snippet, style, prompt]
    done = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=240, stdin=subprocess.DEVNULL)
    out = done.stdout + done.stderr
    assert done.returncode == 0, f"{agent} ({style}) exited {done.returncode}:\n{out[-3000:]}"
    return out


@pytest.fixture
def backend(start_proxy):
    """The strict simulator (v11) behind a proxy with the Mistral dialect; (sim, proxy url)."""
    sim = SimThread(Behavior(strict_mistral=True, generation="v11", models=["devstral-sim"]))
    proxy = start_proxy(
        backends={"vllm": {"url": sim.url, "dialect": "mistral", "tokenizer_version": "v11"}},
        model_mapping={"devstral": "devstral-sim", "gpt-5.5": "devstral-sim"},
        authentication={"api_keys": ["sk-your-key"]},
    )
    yield sim, proxy.url
    sim.stop()


def _tool_results(sim) -> list[str]:
    return [str(m.get("content")) for r in sim.record.requests for m in r.get("messages", []) if m.get("role") == "tool"]


def _assert_nothing_refused(sim, out: str) -> None:
    assert sim.record.requests, "the agent sent nothing"
    assert "BadRequestError" not in out and "Unexpected role" not in out, out[-2000:]


@pytest.mark.parametrize("agent, style", RUNS, ids=[f"{a}-{s}" for a, s in RUNS])
@pytest.mark.parametrize("scenario", ["plain", "tool-loop", "parallel", "think", "raw-calls"])
def test_agent_scenario(agent, style, scenario, backend, tmp_path):
    sim, url = backend
    tool, args = SHELLS[agent]
    b = sim.behavior
    if scenario == "plain":
        b.script = [{"text": "PLAIN-ANSWER from the model."}] * 3
    else:
        marks = ["MARK-A", "MARK-B"] if scenario == "parallel" else ["MARK-A"]
        calls = [{"name": tool, "arguments": args(f"echo {m}")} for m in marks]
        b.script = [{"calls": calls, **({"think": "I should run it."} if scenario == "think" else {})}] + [{"text": "FINAL-ANSWER after the tool."}] * 3
        b.tool_mode = "raw-v11" if scenario == "raw-calls" else "structured"
        b.think_mode = "raw"
    out = run_agent(agent, style, url, tmp_path, "Run the check and report.")
    _assert_nothing_refused(sim, out)
    if scenario == "plain":
        assert "PLAIN-ANSWER" in out
        return
    assert "FINAL-ANSWER" in out, out[-3000:]
    results = _tool_results(sim)
    for mark in ["MARK-A", "MARK-B"] if scenario == "parallel" else ["MARK-A"]:
        assert any(mark in r for r in results), (mark, results)  # the agent ran its own tool; mistral-common took the result
    assert "[THINK]" not in out and "[TOOL_CALLS]" not in out and "[ARGS]" not in out


@pytest.mark.parametrize("agent, style", [r for r in RUNS if r[0] in ("codex", "claude", "vibe", "qwen")][:5], ids=lambda v: str(v))
def test_agent_second_turn(agent, style, backend, tmp_path):
    """A second headless turn continues the saved session: its request carries the first."""
    sim, url = backend
    tool, args = SHELLS[agent]
    sim.behavior.tool_mode = "structured"
    sim.behavior.script = [{"calls": [{"name": tool, "arguments": args("echo MARK-1")}]}, {"text": "FIRST-DONE."}, {"text": "SECOND-DONE."}] + [
        {"text": "x"}
    ] * 3
    run_agent(agent, style, url, tmp_path, "First task.")
    out = run_agent(agent, style, url, tmp_path, "Second task.", again=True)
    _assert_nothing_refused(sim, out)
    assert "SECOND-DONE" in out
    last = json.dumps(sim.record.requests[-1]["messages"])
    assert "First task." in last and "MARK-1" in last and "Second task." in last


def test_codex_with_a_gpt5_name_applies_a_patch(backend, tmp_path):
    """With a GPT-5-family model name Codex offers `apply_patch` as a custom tool with a Lark
    grammar: the model's call comes back as a custom_tool_call and Codex applies it."""
    sim, url = backend
    patch = "*** Begin Patch\n*** Add File: hello.txt\n+patched by the model\n*** End Patch\n"
    sim.behavior.tool_mode = "structured"
    sim.behavior.script = [{"calls": [{"name": "apply_patch", "arguments": {"input": patch}}]}, {"text": "FINAL-ANSWER patched."}]
    out = run_agent("codex", "responses", url, tmp_path, "Create hello.txt.", model="gpt-5.5")
    _assert_nothing_refused(sim, out)
    offered = {t["function"]["name"]: t["function"] for t in sim.record.requests[0]["tools"]}
    assert "grammar" in offered["apply_patch"]["description"]
    assert (tmp_path / "work" / "hello.txt").read_text() == "patched by the model\n"
    assert "FINAL-ANSWER" in out


def test_every_agent_has_a_readme_snippet():
    assert set(SNIPPETS) == set(SHELLS)
