"""A guard for the hot path: `pipeline_cost` per request (CPU time in-process, so it holds on a
shared machine), each row beside the figure committed in bench/baseline.json with the change
in percent. It reports; it is not a pass/fail step (`make bench-quick`; `--save` records).
"""

import argparse
import json
import os
import platform
import statistics
import sys
from pathlib import Path

import uvloop

from bench.pipeline_cost import SHAPES, _run

BASELINE = Path(__file__).with_name("baseline.json")
ROWS = (("openai", "json"), ("mistral", "json"), ("openai", "frames"), ("mistral", "frames"))
FRAMES = 41  # a `frames` reply: 40 data frames and [DONE] (bench.compare.sse_body), one read each


def machine() -> str:
    """The CPU the figures come from (its model name and count)."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model} x{os.cpu_count()}"


def measure(requests: int, repeat: int) -> dict[str, float]:
    """Median µs per request (per frame for the one-frame-per-read streams)."""
    out = {}
    for dialect, shape in ROWS:
        runs = uvloop.run(_run(dialect, shape, requests, repeat, False))
        value = statistics.median(runs)
        out[f"{dialect} {shape}"] = value / FRAMES if shape == "frames" else value
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--requests", type=int, default=5000)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--save", action="store_true", help="write these figures to bench/baseline.json")
    args = p.parse_args(argv)
    now = measure(args.requests, args.repeat)
    saved = json.loads(BASELINE.read_text()) if BASELINE.exists() else {}
    base = saved.get("us", {})
    here = machine()
    print(f"interpreter now: {sys.version}; machine: {here}")
    if saved.get("python") and saved["python"] != sys.version:
        # a build without PGO/LTO (pyenv's default) runs this code 10-20% slower (BENCHMARKS.md)
        print(f"baseline's: {saved['python']} (another interpreter build: compare with care)")
    if saved.get("machine") != here:
        # another CPU: absolute µs do not compare; `make bench-versus REF=<commit>` measures both in one run
        print(f"the baseline was recorded on {saved.get('machine') or 'an unrecorded machine'}: no change is printed (--save records one here)")
        base = {}
    print("| row | µs now | baseline | change |")
    print("|---|---|---|---|")
    for name, value in now.items():
        unit = " per frame" if name.endswith("frames") else " per request"
        was = base.get(name)
        change = f"{(value / was - 1) * 100:+.1f}%" if was else "(none)"
        print(f"| {name}{unit} ({SHAPES[name.split()[1]]}) | {value:.2f} | {was if was else '-'} | {change} |")
    if args.save:
        BASELINE.write_text(
            json.dumps(
                {
                    "note": "bench.quick on the session's machine; CPU time, medians",
                    "python": sys.version,
                    "machine": here,
                    "us": {k: round(v, 2) for k, v in now.items()},
                },
                indent=2,
            )
            + "\n"
        )
        print(f"saved {BASELINE}")


if __name__ == "__main__":
    main()
