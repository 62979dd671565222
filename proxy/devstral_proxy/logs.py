"""The proxy's own log lines in one format: JSON (default) or text, by `logging.format`, each
with an ISO-8601 UTC time, the level, the process id and the worker number.

Access lines (accesslog.py) carry the same `ts`, `pid` and `worker` fields.
"""

import json
import logging
import os
import time

WORKER = {"n": 0}  # 0: the only process, or the supervisor; 1..N: a worker


def iso_now(now: float | None = None) -> str:
    now = time.time() if now is None else now
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {"ts": iso_now(record.created), "level": record.levelname, "pid": os.getpid(), "worker": WORKER["n"], "msg": record.getMessage()}
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line)


# control characters (a newline would forge a line, ESC reach the terminal) as \xNN
_CONTROLS = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F)}


def text_line(fields: dict) -> str:
    """An access line in the text format: `ts ACCESS key=value ...`, values with a space or a
    quote quoted, control characters escaped (nothing a client sent can forge a line)."""
    parts = [f"{fields['ts']} ACCESS"]
    for key, value in fields.items():
        if key == "ts" or value is None or value == "":
            continue
        text = (json.dumps(value, separators=(",", ":")) if isinstance(value, dict) else str(value)).translate(_CONTROLS)
        parts.append(f"{key}={json.dumps(text)}" if " " in text or '"' in text else f"{key}={text}")
    return " ".join(parts)


class TextFormatter(logging.Formatter):
    """One line per record: whatever a message carries (names a backend or client chose)
    cannot forge another line or reach the terminal (JSON escapes them too)."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage().translate(_CONTROLS)
        text = f"{iso_now(record.created)} {record.levelname} pid={os.getpid()} worker={WORKER['n']} {message}"
        return text + ("\n" + self.formatException(record.exc_info) if record.exc_info else "")


def configure(level: str, fmt: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


class Once:
    """One log line per distinct fact per process (what a front left out, by kind): at most
    `limit` facts are remembered; past it, facts not yet seen are not logged."""

    __slots__ = ("seen", "limit", "log")

    def __init__(self, log: logging.Logger, limit: int = 256) -> None:
        self.seen: set[str] = set()
        self.limit = limit
        self.log = log

    def note(self, fact: str, message: str) -> None:
        if fact in self.seen or len(self.seen) >= self.limit:
            return
        self.seen.add(fact)
        self.log.warning("%s", message)
