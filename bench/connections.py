"""Memory with many open keep-alive connections: the proxy's RSS before and after N clients
each made one request and kept their connection open.

Run: `python -m bench.connections --connections 1000`.
"""

import argparse
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

from bench.compare import free_port, wait_port
from tests.support import SimThread

BODY = json.dumps({"model": "mistral-sim", "messages": [{"role": "user", "content": "hi"}]}).encode()
REQUEST = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(BODY), BODY)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--connections", type=int, default=1000)
    p.add_argument("--dialect", default="mistral")
    args = p.parse_args(argv)
    sim = SimThread()
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "devstral_proxy", "--upstream", sim.url, "--dialect", args.dialect, "--port", str(port), "--log-level", "WARNING"]
    )
    socks = []
    try:
        wait_port(port)
        time.sleep(0.5)
        before = rss_mb(proc.pid)
        for _ in range(args.connections):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(REQUEST)
            got = b""
            while not got.endswith(b"}"):  # the reply's JSON body ends the read
                got += s.recv(65536)
            assert got.startswith(b"HTTP/1.1 200 "), got[:80]
            socks.append(s)
        time.sleep(1.0)
        after = rss_mb(proc.pid)
        print(
            f"| {args.dialect} dialect | RSS at start {before:.1f} MB | "
            f"with {len(socks)} open keep-alive connections {after:.1f} MB | {(after - before) * 1024 / len(socks):.1f} KB per connection |"
        )
    finally:
        for s in socks:
            s.close()
        proc.terminate()
        proc.wait(10)
        sim.stop()


if __name__ == "__main__":
    main()
