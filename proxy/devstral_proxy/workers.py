"""Several worker processes on one port: each listens on its own SO_REUSEPORT socket, so the
kernel spreads connections; the parent restarts a worker that dies and passes signals on.

The parent holds the port bound (not listening) so port 0 resolves once for all workers.
"""

import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import time

from . import logs
from .notify import notify, watchdog_interval
from .shared_metrics import alive

log = logging.getLogger("devstral_proxy")


def reuseport_socket(host: str, port: int, listen: bool, backlog: int = 2048) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    if listen:
        sock.listen(backlog)
        sock.setblocking(False)
    return sock


def port_is_free(host: str, port: int) -> None:
    """OSError (EADDRINUSE) if anything serves the port, another --workers instance too: its
    SO_REUSEPORT sockets would otherwise let this one bind and take half the traffic."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is no owner
        probe.bind((host, port))


METRICS_PREFIX = "devstral-proxy-metrics-"
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent(parent: int) -> None:
    """In a worker: SIGTERM (a drain) when the supervisor dies, even by SIGKILL (Linux's
    parent-death signal); a parent already gone means exit now."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the check below still catches a dead parent at start
        pass
    if os.getppid() != parent:
        os._exit(0)


def clean_stale_metrics(base: str | None) -> None:
    """Remove the metrics directories of supervisors that died without cleaning up (SIGKILL):
    this user's, whose recorded supervisor pid is no longer alive."""
    root = base or tempfile.gettempdir()
    try:
        names = [n for n in os.listdir(root) if n.startswith(METRICS_PREFIX)]
    except OSError:
        return
    for name in names:
        path = os.path.join(root, name)
        try:
            if os.stat(path).st_uid != os.getuid():
                continue
            with open(os.path.join(path, "supervisor.pid")) as f:
                pid = int(f.read().strip() or 0)
        except (OSError, ValueError):
            continue  # another's, or one being made: left alone
        if pid and not alive(pid):
            shutil.rmtree(path, ignore_errors=True)


class Supervisor:
    def __init__(self, config, serve_worker, load_config) -> None:
        self.config = config  # what a newly started worker runs with
        self.count = config.server.workers
        self.serve_worker = serve_worker  # (listening socket, config) -> exit code, in the child
        self.load_config = load_config
        if config.server.port:
            port_is_free(config.server.host, config.server.port)
        self.anchor = reuseport_socket(config.server.host, config.server.port, listen=False)
        self.host, self.port = self.anchor.getsockname()[:2]
        self.children: dict[int, float] = {}  # pid -> start time
        self.number = 0
        # where the workers publish their metrics, so any of them renders the whole service's
        shm = "/dev/shm" if os.path.isdir("/dev/shm") else None
        clean_stale_metrics(shm)  # left by a supervisor killed with SIGKILL
        self.metrics_dir = tempfile.mkdtemp(prefix=METRICS_PREFIX, dir=shm)
        with open(os.path.join(self.metrics_dir, "supervisor.pid"), "w") as f:
            f.write(str(os.getpid()))
        self.stopping = False

    def _spawn(self) -> None:
        self.number += 1  # this worker's number on its log lines
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # the worker
            code = 1
            try:
                die_with_parent(parent)
                for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD):
                    signal.signal(sig, signal.SIG_DFL)
                signal.signal(signal.SIGHUP, signal.SIG_IGN)
                self.anchor.close()
                logs.WORKER["n"] = self.number
                code = self.serve_worker(reuseport_socket(self.host, self.port, listen=True), self.config)
            except BaseException as exc:  # a worker never returns into the parent's code
                log.error("worker %d failed: %s", os.getpid(), exc)
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        self.children[pid] = time.monotonic()

    def _ready(self) -> None:
        """Tell systemd once a worker accepts connections (the parent is the main PID)."""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not self.stopping:  # a SIGTERM meanwhile: the workers are going
            try:
                socket.create_connection((self.host, self.port), timeout=1).close()
                notify("READY=1")
                return
            except OSError:
                time.sleep(0.05)

    def _forward(self, signum, _frame) -> None:
        if signum in (signal.SIGTERM, signal.SIGINT):
            self.stopping = True
            notify("STOPPING=1")
        elif signum == signal.SIGHUP:  # workers reload themselves; workers started later too
            try:
                self.config = self.load_config()
            except Exception as exc:  # ConfigError: the workers log it as well
                log.error("reload refused, the configuration in force stays: %s", exc)
        for pid in list(self.children):
            try:
                os.kill(pid, signal.SIGTERM if signum == signal.SIGINT else signum)
            except ProcessLookupError:
                pass

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._forward)
        log.info("%d workers on http://%s:%d", self.count, self.host, self.port)
        for _ in range(self.count):
            self._spawn()
        self._ready()
        failures = 0
        interval = watchdog_interval()
        pinged = 0.0
        while self.children:
            if interval is not None and time.monotonic() - pinged >= interval:
                notify("WATCHDOG=1")  # systemd watches the main PID: this one
                pinged = time.monotonic()
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            except InterruptedError:
                continue
            if pid == 0:
                time.sleep(0.1)
                continue
            started = self.children.pop(pid, None)
            if started is None or self.stopping:
                continue
            code = os.waitstatus_to_exitcode(status)
            log.warning("worker %d exited (%s); starting another", pid, code)
            failures = failures + 1 if time.monotonic() - started < 1.0 else 0
            time.sleep(min(5.0, 0.1 * 2**failures) if failures else 0)
            if not self.stopping:
                self._spawn()
        self.anchor.close()
        shutil.rmtree(self.metrics_dir, ignore_errors=True)
        return 0
