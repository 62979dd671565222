"""End-to-end guard against an earlier commit: the same wrk load (one dialect, N connections)
on the working tree's proxy and on a named commit's, nginx beside them, alternated in one run.

Prints each target's median req/s and CPU µs per request, then `now / REF` as one ratio line.
`make bench-versus` (REF=54164b8 by default); needs nginx and wrk, and git for the worktree.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.compare import REQUEST, free_port, measure, proxy_config, start_backend, start_nginx_proxy, stop_all, wait_port, wrk_script

ROOT = Path(__file__).resolve().parent.parent


def import_path(tree: Path, work: Path, name: str) -> str:
    """The PYTHONPATH under which `tree`'s proxy imports as devstral_proxy: its folders when
    they are named so (proxy/devstral_proxy), else links made in `work` (the older layout)."""
    if (tree / "proxy" / "devstral_proxy").is_dir():
        return os.pathsep.join(str(tree / d) for d in ("proxy", "translate"))
    links = work / f"{name}-links"
    links.mkdir()
    (links / "devstral_proxy").symlink_to(tree / "proxy")
    (links / "devstral_translate").symlink_to(tree / "translate")
    return str(links)


def checkout(ref: str, work: Path) -> Path:
    tree = work / "ref"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-f", str(tree), ref], check=True, capture_output=True)
    return tree


def start_proxy(tree: Path, pythonpath: str, work: Path, name: str, backend_port: int, dialect: str, procs: list) -> tuple[int, subprocess.Popen]:
    port = free_port()
    cfg = work / f"{name}.json"
    cfg.write_text(json.dumps(proxy_config(backend_port, dialect, port)))
    env = {**os.environ, "PYTHONPATH": pythonpath}
    proc = subprocess.Popen([sys.executable, "-m", "devstral_proxy", "--config", str(cfg)], cwd=tree, env=env, stderr=open(work / f"{name}.log", "w"))
    procs.append(proc)
    return port, proc


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--ref", default="54164b8", help="the commit to compare with")
    p.add_argument("--dialect", default="mistral")
    p.add_argument("--conns", type=int, default=50)
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--repeat", type=int, default=5, help="rounds; each runs every target once, in turn")
    args = p.parse_args(argv)
    for tool in ("nginx", "wrk", "git"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is needed (apt-get install nginx-light wrk git)")
    work = Path(tempfile.mkdtemp(prefix="devstral-versus-"))
    procs: list[subprocess.Popen] = []
    tree = None
    try:
        tree = checkout(args.ref, work)
        backend_port, nginx_port = free_port(), free_port()
        start_backend(work, backend_port, procs)
        start_nginx_proxy(work, backend_port, nginx_port, 1, procs)
        ref_port, ref_proc = start_proxy(tree, import_path(tree, work, "ref"), work, "ref", backend_port, args.dialect, procs)
        now_port, now_proc = start_proxy(ROOT, import_path(ROOT, work, "now"), work, "now", backend_port, args.dialect, procs)
        for port in (backend_port, nginx_port, ref_port, now_port):
            wait_port(port)
        script = wrk_script(work / "chat.lua", json.dumps(REQUEST))
        targets = [
            ("nginx pass-through", nginx_port, None),
            (f"devstral-proxy at {args.ref}", ref_port, [ref_proc.pid]),
            ("devstral-proxy now", now_port, [now_proc.pid]),
        ]
        time.sleep(0.5)
        runs: dict[str, list[dict]] = {name: [] for name, _, _ in targets}
        for round_ in range(args.repeat):
            order = targets if round_ % 2 == 0 else targets[::-1]  # neither side always goes first
            for name, port, pids in order:
                if round_ == 0:
                    measure(port, args.conns, 1, script, None)  # warm up
                runs[name].append(measure(port, args.conns, args.seconds, script, pids))
        print(f"{args.dialect} dialect, chat JSON, {args.conns} connections, {args.repeat} alternated rounds of {args.seconds:g} s (medians)\n")
        print("| target | req/s (median) | req/s each round | CPU µs/req | vs nginx |")
        print("|---|---|---|---|---|")
        nginx_rps = statistics.median(r["rps"] for r in runs["nginx pass-through"])
        medians = {}
        for name, rs in runs.items():
            rps = medians[name] = statistics.median(r["rps"] for r in rs)
            cpu = statistics.median(r["cpu_us"] for r in rs) if rs[0]["cpu_us"] is not None else None
            errors = sum(r["errors"] for r in rs)
            each = ", ".join(f"{r['rps']:.0f}" for r in rs)
            print(f"| {name}{f' ({errors} errors)' if errors else ''} | {rps:.0f} | {each} | {f'{cpu:.0f}' if cpu else '-'} | {rps / nginx_rps:.2f}x |")
        ratio = medians["devstral-proxy now"] / medians[f"devstral-proxy at {args.ref}"]
        print(f"\nnow / {args.ref}: {ratio:.3f} (req/s)")
    finally:
        stop_all(procs, work)
        if tree is not None:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "prune"], check=False, capture_output=True)


if __name__ == "__main__":
    main()
