"""What an operator reads: the first seconds of a two-backend setup with one backend down,
every line JSON with an ISO-8601 UTC time, the pid and the worker; and the error of a stream
cut by a dying backend on its access line."""

import json
import subprocess
import sys
import time

from tests.support import eventually, free_port, http


def test_startup_lines_say_what_is_wrong(sim, tmp_path):
    down = free_port()
    cfg = tmp_path / "proxy.json"
    cfg.write_text(
        json.dumps({"backends": {"gpu0": {"url": sim.url}, "gpu1": {"url": f"http://127.0.0.1:{down}"}}, "routing": {"health_interval": 0.3, "eject_after": 1}})
    )
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "devstral_proxy", "--config", str(cfg), "--port", str(port)], stderr=subprocess.PIPE, text=True)
    try:

        def probed() -> bool:  # the monitor's first checks, made before serving, have logged gpu1's failure
            try:
                return "gpu1" in http("GET", f"http://127.0.0.1:{port}/health").body.decode()
            except OSError:
                return False

        eventually(probed, what="a health probe")
    finally:
        proc.terminate()
        err = proc.communicate(timeout=15)[1]
    lines = [json.loads(line) for line in err.splitlines() if line.strip()]
    assert lines and all(line["ts"].endswith("Z") and "T" in line["ts"] and line["pid"] == proc.pid and line["worker"] == 0 for line in lines)
    text = "\n".join(line["msg"] for line in lines if "msg" in line)  # (the rest: access lines)
    assert f"listening on http://127.0.0.1:{port}" in text
    assert str(cfg) in text and "authentication off" in text
    assert "backend gpu0" in text and "backend gpu1" in text and "DOWN" in text
    assert "gpu1: cannot connect" in text and "gpu1: ejected" in text


def test_a_stream_cut_by_the_backend_has_an_error_on_its_access_line(sim, start_proxy, capfd):
    import openai

    p = start_proxy(backends={"primary": {"url": sim.url, "timeout": 0.3}}, logging={"level": "INFO"})
    sim.behavior.token_delay = 1.0
    client = openai.OpenAI(base_url=p.url + "/v1", api_key="x", max_retries=0)
    try:
        list(client.chat.completions.create(model="gpt-4", messages=[{"role": "user", "content": "hi"}], stream=True))
    except openai.APIError:
        pass  # the SSE error event that ends the stream
    p.loop.call(lambda: _flush(p))
    access = [json.loads(line) for line in capfd.readouterr().err.splitlines() if line.startswith("{") and '"request_id"' in line]
    assert access and access[-1]["status"] == 200 and access[-1]["error"].startswith("backend_timeout")


async def _flush(p):
    p.proxy.access.flush()


def test_warning_keeps_the_startup_lines_and_debug_adds_routing(sim):
    for level, routed in (("WARNING", False), ("DEBUG", True)):
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "devstral_proxy", "--upstream", sim.url, "--port", str(port), "--log-level", level, "--map", "gpt-4=mistral-sim"],
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 15
            while True:
                try:
                    assert (
                        http("POST", f"http://127.0.0.1:{port}/v1/chat/completions", {"model": "gpt-4", "messages": [{"role": "user", "content": "hi"}]}).status
                        == 200
                    )
                    break
                except OSError:
                    assert time.monotonic() < deadline
                    time.sleep(0.1)
        finally:
            proc.terminate()
            err = proc.communicate(timeout=15)[1]
        text = "\n".join(json.loads(line).get("msg", "") for line in err.splitlines() if line.startswith("{"))
        assert "listening on" in text and "backend primary" in text, level
        assert ("-> backend primary as mistral-sim" in text) is routed, level


def test_the_text_format_writes_access_lines_as_text_too(sim, start_proxy, capfd):
    p = start_proxy(sim.url, logging={"level": "INFO", "format": "text"})
    body = {"model": "gpt-4", "messages": [{"role": "user", "content": "hi"}]}
    assert http("POST", p.url + "/v1/chat/completions", body).status == 200

    async def flush():
        p.proxy.access.flush()

    p.loop.call(flush)
    lines = [x for x in capfd.readouterr().err.splitlines() if " ACCESS " in x]
    assert len(lines) == 1 and not lines[0].startswith("{")
    assert " route=/v1/chat/completions status=200 model=gpt-4 " in lines[0]
