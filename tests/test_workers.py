"""`--workers N`: processes sharing one port; a killed worker is replaced; SIGTERM stops all."""

import os
import signal
import subprocess
import sys

from tests.support import eventually, free_port, http

CHAT = {"model": "mistral-sim", "messages": [{"role": "user", "content": "hi"}]}


def children(pid: int) -> set[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return {int(x) for x in out.split()}


def wait_for(predicate, timeout: float = 30.0):
    return eventually(predicate, timeout, interval=0.05)


def ok(port: int) -> bool:
    try:
        return http("POST", f"http://127.0.0.1:{port}/v1/chat/completions", CHAT, timeout=2).status == 200
    except OSError:
        return False


def test_workers_share_the_port_and_a_killed_worker_is_replaced(sim):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "devstral_proxy", "--upstream", sim.url, "--port", str(port), "--workers", "2", "--log-level", "WARNING"])
    try:
        wait_for(lambda: ok(port))
        workers = wait_for(lambda: children(proc.pid) if len(children(proc.pid)) == 2 else None)
        victim = sorted(workers)[0]
        os.kill(victim, signal.SIGKILL)
        replaced = wait_for(lambda: children(proc.pid) if len(children(proc.pid)) == 2 and victim not in children(proc.pid) else None)
        assert victim not in replaced
        assert all(ok(port) for _ in range(20))
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    assert not children(proc.pid)


def test_a_second_instance_with_workers_refuses_a_port_already_served(sim):
    port = free_port()
    first = subprocess.Popen([sys.executable, "-m", "devstral_proxy", "--upstream", sim.url, "--port", str(port), "--workers", "2", "--log-level", "WARNING"])
    try:
        wait_for(lambda: ok(port))
        second = subprocess.run(
            [sys.executable, "-m", "devstral_proxy", "--upstream", sim.url, "--port", str(port), "--workers", "2"], capture_output=True, text=True, timeout=20
        )
        assert second.returncode == 1 and "another program uses that port; stop it, or choose another port with --port" in second.stderr
        assert all(ok(port) for _ in range(5))  # the first one still serves every request
    finally:
        first.send_signal(signal.SIGTERM)
        assert first.wait(15) == 0


def test_metrics_add_up_across_workers_and_never_fall(sim):
    """Whichever worker a scrape reaches, /metrics counts the whole service."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "devstral_proxy", "--upstream", sim.url, "--port", str(port), "--workers", "2", "--log-level", "WARNING"])
    try:
        answered = [0]

        def counted() -> bool:
            good = ok(port)
            answered[0] += good
            return good

        wait_for(counted)
        wait_for(lambda: children(proc.pid) if len(children(proc.pid)) == 2 else None)
        before = wait_for(lambda: served(port) == answered[0] and answered[0])  # each worker publishes on its sweep tick
        for _ in range(20):  # a new connection each: the kernel spreads them over both workers
            assert ok(port)
        wait_for(lambda: served(port) == before + 20)
        totals = [served(port) for _ in range(10)]
        assert totals == sorted(totals), totals  # monotonic, whichever worker answers
        assert totals[0] == before + 20 and totals[-1] == totals[0]  # every one of the 20, in every scrape
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0


def served(port: int) -> int:
    """Chat requests answered 200, summed over labels, in one scrape."""
    body = http("GET", f"http://127.0.0.1:{port}/metrics").body.decode()
    return sum(
        int(float(line.rsplit(" ", 1)[1]))
        for line in body.splitlines()
        if line.startswith("devstral_requests_total{") and 'route="/v1/chat/completions"' in line and 'status="200"' in line
    )


def _running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's reaper may be slow)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _metrics_dirs(pid: int) -> list[str]:
    import glob

    found = []
    for path in glob.glob("/dev/shm/devstral-proxy-metrics-*") + glob.glob("/tmp/devstral-proxy-metrics-*"):
        try:
            with open(os.path.join(path, "supervisor.pid")) as f:
                if f.read().strip() == str(pid):
                    found.append(path)
        except OSError:
            pass
    return found


def test_workers_die_with_a_killed_supervisor_and_its_metrics_directory_goes_next_start(sim):
    port = free_port()
    cmd = [sys.executable, "-m", "devstral_proxy", "--upstream", sim.url, "--port", str(port), "--workers", "2", "--log-level", "WARNING"]
    proc = subprocess.Popen(cmd)
    wait_for(lambda: ok(port))
    workers = wait_for(lambda: children(proc.pid) if len(children(proc.pid)) == 2 else None)
    stale = max(_metrics_dirs(proc.pid), key=os.path.getmtime)  # (an older dead one may have had the same pid)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(15)
    wait_for(lambda: not any(_running(w) for w in workers))  # they drained and exited
    wait_for(lambda: not ok(port))
    again = subprocess.Popen(cmd)
    try:
        wait_for(lambda: ok(port))
        assert not os.path.exists(stale)  # the dead supervisor's directory, cleaned at this start
    finally:
        again.send_signal(signal.SIGTERM)
        assert again.wait(15) == 0


def test_a_sigterm_while_starting_up_stops_at_once(sim):
    """SIGTERM before the supervisor saw a worker accept: it stops waiting for that (the
    workers drain and go) instead of polling a closed port for 30 s."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "devstral_proxy", "--upstream", sim.url, "--port", str(port), "--workers", "2", "--log-level", "WARNING"])
    wait_for(lambda: len(children(proc.pid)) == 2)  # forked; not yet known to be accepting
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0  # (it took 20-30 s: the readiness poll ran on against a closed port)
