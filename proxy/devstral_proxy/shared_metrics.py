"""The service's metrics across `--workers N`: each worker publishes its counts to a file in a
directory its parent made, and whichever worker a scrape reaches renders the sum, so counters
never fall between scrapes (a dead worker's last counts stay in the sum).

A worker writes its file on every sweep tick and before it renders; a file is replaced
atomically (write, then rename), so a reader sees a whole snapshot or the one before.
"""

import os
from pathlib import Path

import msgspec

from .metrics import Histogram, Metrics


class _Snapshot(msgspec.Struct, array_like=True):
    pid: int
    in_flight: int
    requests: list[tuple[str, str, str, int, int]]
    duration: dict[str, tuple[list[int], float, int]]
    overhead: dict[str, tuple[list[int], float, int]]
    first_byte: tuple[list[int], float, int]
    tokens: list[tuple[str, str, int]]
    variants: list[tuple[str, str, int]] = []


_encode = msgspec.msgpack.encode
_decode = msgspec.msgpack.Decoder(_Snapshot)


def _hist(h: Histogram) -> tuple[list[int], float, int]:
    return h.counts, h.total, h.count


def _add(into: Histogram, data: tuple[list[int], float, int]) -> None:
    counts, total, count = data
    into.counts = [a + b for a, b in zip(into.counts, counts)]
    into.total += total
    into.count += count


def alive(pid: int) -> bool:
    """Whether process `pid` exists (another user's counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class MetricsShare:
    def __init__(self, directory: str, metrics: Metrics) -> None:
        self.directory = Path(directory)
        self.metrics = metrics
        self.pid = os.getpid()
        self.path = self.directory / f"worker-{self.pid}.msgpack"

    def publish(self) -> None:
        m = self.metrics
        snap = _Snapshot(
            self.pid,
            m.in_flight,
            [(*key, n) for key, n in m.requests.items()],
            {route: _hist(h) for route, h in m.duration.items()},
            {route: _hist(h) for route, h in m.overhead.items()},
            _hist(m.first_byte),
            m.token_counts(),
            [(*key, n) for key, n in m.variants.items()],
        )
        tmp = self.path.with_suffix(".tmp")
        try:
            tmp.write_bytes(_encode(snap))
            os.replace(tmp, self.path)
        except OSError:
            pass  # a full or vanished directory: this worker's counts are missing, not wrong

    def combined(self) -> Metrics:
        """Every worker's counts summed (gauges: only the workers alive)."""
        self.publish()
        total = Metrics()
        for path in sorted(self.directory.glob("worker-*.msgpack")):
            try:
                snap = _decode.decode(path.read_bytes())
            except (OSError, msgspec.DecodeError):
                continue
            for route, model, backend, status, n in snap.requests:
                key = (route, model, backend, status)
                total.requests[key] = total.requests.get(key, 0) + n
            for name, data in snap.duration.items():
                _add(total.duration.setdefault(name, Histogram()), data)
            for name, data in snap.overhead.items():
                _add(total.overhead.setdefault(name, Histogram()), data)
            _add(total.first_byte, snap.first_byte)
            for model, kind, n in snap.tokens:
                total.add_tokens(model, kind, n)
            for model, variant, n in snap.variants:
                total.variants[(model, variant)] = total.variants.get((model, variant), 0) + n
            if snap.pid == self.pid or alive(snap.pid):
                total.in_flight += snap.in_flight
        return total
