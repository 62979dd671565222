"""LoRA adapters and fine-tuned models: vLLM lists an adapter (`--lora-modules`) as its own id
with a `parent`; discovery lists it, model mapping and routing reach it, and under the Mistral
dialect its tokenizer generation is its parent's (its `root` is a local adapter path)."""

import json

from tests.support import SimThread, eventually, http

BASE = "mistralai/Devstral-Small-2507"
CHAT = {"messages": [{"role": "user", "content": "hi"}]}


def lora_sim() -> SimThread:
    sim = SimThread()
    sim.behavior.models = [BASE, "sql-lora"]
    sim.behavior.roots = {"sql-lora": "/adapters/sql-lora"}
    sim.behavior.parents = {"sql-lora": BASE}
    return sim


def test_an_adapter_is_listed_mapped_routed_and_speaks_its_parents_generation(start_proxy):
    sim, plain = lora_sim(), SimThread()  # the adapter on one backend of two
    try:
        p = start_proxy(
            backends={"base-only": {"url": plain.url}, "with-adapter": {"url": sim.url, "dialect": "mistral"}},
            model_mapping={"sql": "sql-lora"},
        )
        listed = {m["id"]: m for m in http("GET", p.url + "/v1/models").json()["data"]}
        assert listed["sql-lora"]["parent"] == BASE and listed["sql"]["root"] == "sql-lora"
        adapter = next(b for b in p.proxy.router.backends if b.name == "with-adapter")
        eventually(lambda: adapter.generations.get("sql-lora"), what="the adapter's generation learnt")
        assert adapter.generations["sql-lora"] == "v11"  # from its parent: its root names no model
        r = http("POST", p.url + "/v1/chat/completions", {"model": "sql", **CHAT})
        assert r.status == 200 and r.json()["model"] == "sql"
        assert sim.record.requests[-1]["model"] == "sql-lora" and not plain.record.requests  # routed to the backend that serves it
    finally:
        sim.stop()
        plain.stop()


def test_the_simulator_serves_an_adapter_from_its_command_line(tmp_path):
    import subprocess
    import sys

    from tests.support import free_port

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "bench.simulator", "--port", str(port), "--model", BASE, "--lora", f"sql-lora={BASE}"])
    try:
        eventually(lambda: _get(port), what="the simulator listening")
        models = {m["id"]: m for m in json.loads(_get(port))["data"]}
        assert models["sql-lora"]["parent"] == BASE and models[BASE]["parent"] is None
    finally:
        proc.terminate()
        proc.wait(10)


def _get(port: int) -> bytes | None:
    try:
        return http("GET", f"http://127.0.0.1:{port}/v1/models").body
    except OSError:
        return None
