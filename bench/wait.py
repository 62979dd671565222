"""`make run`'s helpers: is a port free (`--free PORT`), and wait until a server answers
(`--ready URL`, up to `--timeout` seconds) instead of sleeping a guessed while.
"""

import argparse
import socket
import sys
import time
import urllib.error
import urllib.request


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def ready(url: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return True
        except urllib.error.HTTPError:
            return True  # it answers
        except OSError:
            time.sleep(0.1)
    return False


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--free", type=int, help="exit 1 when this port is in use")
    p.add_argument("--ready", help="exit 0 once this URL answers, 1 after --timeout")
    p.add_argument("--timeout", type=float, default=30.0)
    args = p.parse_args(argv)
    if args.free is not None and not port_free(args.free):
        return 1
    if args.ready and not ready(args.ready, args.timeout):
        print(f"{args.ready} did not answer within {args.timeout:g} s", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
