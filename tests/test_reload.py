"""SIGHUP reloads the configuration without dropping a connection: new mappings and backends
apply to new requests; an invalid file is refused with a log line and the old one stays."""

import signal
import subprocess
import sys
import threading
import time

import pytest

from bench.simulator import Behavior
from tests.support import SimThread, eventually, free_port, http


def config(sim_url: str, mapping: dict[str, str]) -> str:
    lines = [f'[backends.vllm]\nurl = "{sim_url}"\n[model_mapping]'] + [f'"{k}" = "{v}"' for k, v in mapping.items()]
    return "\n".join(lines) + "\n"


def chat(port: int, model: str):
    return http("POST", f"http://127.0.0.1:{port}/v1/chat/completions", {"model": model, "messages": [{"role": "user", "content": "hi"}]})


@pytest.mark.parametrize("workers", [1, 2])
def test_reload_under_load(tmp_path, workers):
    first = SimThread(Behavior(models=["model-a"]))
    second = SimThread(Behavior(models=["model-b"]))
    path = tmp_path / "proxy.toml"
    path.write_text(config(first.url, {"gpt-4": "model-a"}))
    port = free_port()
    log = open(tmp_path / "stderr.log", "w")  # a file, not a pipe nobody reads while it runs
    proc = subprocess.Popen([sys.executable, "-m", "devstral_proxy", "--config", str(path), "--port", str(port), "--workers", str(workers)], stderr=log)
    failures, done, stop = [], [0], threading.Event()

    def logged(text: str) -> int:
        return (tmp_path / "stderr.log").read_text().count(text)

    def load() -> None:
        while not stop.is_set():
            try:
                r = chat(port, "gpt-4")
                if r.status != 200:
                    failures.append(r.status)
                done[0] += 1
            except OSError as exc:
                failures.append(repr(exc))

    try:
        deadline = time.time() + 15
        while True:
            try:
                assert chat(port, "gpt-4").status == 200
                break
            except OSError:
                assert time.time() < deadline and proc.poll() is None
                time.sleep(0.05)
        threads = [threading.Thread(target=load) for _ in range(4)]
        for t in threads:
            t.start()
        eventually(lambda: done[0] >= 8, what="the load running")
        # new backend and mapping: gpt-4 now goes to the second backend's model
        path.write_text(config(second.url, {"gpt-4": "model-b", "gpt-5": "model-b"}))
        proc.send_signal(signal.SIGHUP)
        eventually(lambda: logged("configuration reloaded") >= workers, what="every worker reloading")
        eventually(lambda: second.record.requests, what="requests reaching the new backend")
        assert chat(port, "gpt-5").status == 200
        # a broken file: refused, the config in force stays
        path.write_text("[server\nport = 'broken")
        proc.send_signal(signal.SIGHUP)
        eventually(lambda: logged("reload refused") >= workers, what="every worker refusing the file")
        assert chat(port, "gpt-5").status == 200
        stop.set()
        for t in threads:
            t.join()
        assert not failures, failures[:5]
        assert done[0] > 20
    finally:
        stop.set()
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)
        log.close()
        first.stop()
        second.stop()
    err = (tmp_path / "stderr.log").read_text()
    assert proc.returncode == 0
    assert "reload refused" in err and "configuration reloaded" in err
