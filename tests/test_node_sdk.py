"""The official OpenAI Node SDK through one Responses loop (tool call, previous_response_id,
the answer, a stream). The SDK is installed from npm into a cache folder on first use."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parent / "node" / "responses_loop.mjs"
CACHE = Path(os.environ.get("DEVSTRAL_NODE_CACHE", Path.home() / ".cache" / "devstral-proxy-node"))


@pytest.fixture(scope="module")
def node_sdk():
    if shutil.which("node") is None or shutil.which("npm") is None:
        if os.environ.get("CI"):
            pytest.fail("node and npm are missing: .ci/run installs them")
        pytest.skip("node/npm are not installed (apt-get install nodejs npm)")
    if not (CACHE / "node_modules" / "openai").is_dir():
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run(["npm", "install", "--silent", "--no-audit", "--no-fund", "--prefix", str(CACHE), "openai@^6"], check=True, timeout=300)
    script = CACHE / SCRIPT.name  # beside node_modules, so `import "openai"` resolves
    shutil.copyfile(SCRIPT, script)
    return script


def test_node_sdk_responses_loop(node_sdk, sim, start_proxy):
    sim.behavior.tool_mode = "structured"
    p = start_proxy(backends={"vllm": {"url": sim.url, "dialect": "mistral", "tokenizer_version": "v11"}}, model_mapping={"devstral": "mistral-sim"})
    out = subprocess.run(["node", str(node_sdk), p.url + "/v1", "devstral"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout)
    assert seen["first"] == "devstral" and seen["call"] == "shell"
    assert seen["answer"] == sim.behavior.reply
    assert seen["events"][0] == "response.created" and seen["events"][-1] == "response.completed"
    assert seen["text"] == sim.behavior.reply
    assert [m["role"] for m in sim.record.requests[-2]["messages"]] == ["user", "assistant", "tool"]
