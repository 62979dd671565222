"""The command line: flags -> config -> a serving process on uvloop.

`devstral-proxy --config FILE --upstream URL --host H --port N`; flags override the file.
"""

import argparse
import asyncio
import ctypes
import errno
import gc
import logging
import os
import signal
import sys

from . import __version__, logs
from .app import Proxy
from .config import ConfigError, load
from .notify import notify, start_watchdog
from .tasks import background


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="devstral-proxy", description="OpenAI-compatible proxy for vLLM and other local LLM servers.")
    p.add_argument("--config", "-c", help="TOML, YAML or JSON config file (env: DEVSTRAL_PROXY_CONFIG)")
    p.add_argument("--upstream", help="backend URL, replaces the configured backends (env: DEVSTRAL_PROXY_UPSTREAM)")
    p.add_argument("--dialect", choices=("openai", "mistral"), help="dialect of the --upstream backend (default: openai)")
    p.add_argument("--api-key", help="key sent to the --upstream backend (env: DEVSTRAL_PROXY_BACKEND_API_KEY)")
    p.add_argument("--host", help="address to listen on (env: DEVSTRAL_PROXY_HOST; default: 127.0.0.1)")
    p.add_argument("--port", type=int, help="port to listen on (env: DEVSTRAL_PROXY_PORT; default: 9000)")
    p.add_argument("--workers", type=int, help="worker processes sharing the port (env: DEVSTRAL_PROXY_WORKERS; default: 1)")
    p.add_argument(
        "--map",
        action="append",
        metavar="CLIENT=BACKEND",
        help="map a model name clients send to the backend's; repeatable, added to the config's model_mapping (env: DEVSTRAL_PROXY_MODEL_MAP=a=b,c=d)",
    )
    p.add_argument("--log-level", choices=("DEBUG", "INFO", "WARNING", "ERROR"), help="(env: DEVSTRAL_PROXY_LOG_LEVEL; default: INFO)")
    p.add_argument("--version", action="version", version=f"devstral-proxy {__version__}")
    return p.parse_args(argv)


async def serve(proxy: Proxy, sock=None, ready: bool = True, load_config=None) -> None:
    """Serve until SIGTERM or SIGINT, then drain; SIGHUP reloads with `load_config()`.
    `ready`: this process is the one that talks to systemd."""
    log = logging.getLogger("devstral_proxy")
    host, port = await proxy.start(sock)
    # the startup lines show at any --log-level: an operator needs them most when it is WARNING
    startup = logging.getLogger("devstral_proxy.startup")
    startup.setLevel(logging.INFO)
    startup.info("listening on %s://%s:%d", "https" if proxy.tls else "http", host, port)
    summary(proxy, startup)
    if ready:
        notify("READY=1")
    # What start-up allocated lives for good: keep it out of every collection, and collect the
    # young generation less often (the hot path allocates no reference cycles).
    gc.collect()
    gc.freeze()
    gc.set_threshold(7000, 10, 10)
    pin_malloc()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if load_config is not None:
        loop.add_signal_handler(signal.SIGHUP, lambda: background(_reload(proxy, load_config)))
    watchdog = start_watchdog(loop) if ready else None
    await stop.wait()
    if watchdog is not None:
        watchdog.cancel()
    if ready:
        notify("STOPPING=1")
    log.info("pid %d draining (up to %g s)", os.getpid(), proxy.config.server.drain_timeout)
    await proxy.drain(proxy.config.server.drain_timeout)


def cannot_listen(host: str, port: int, exc: OSError) -> str:
    """Why the port could not be listened on, and what to do about it."""
    if exc.errno == errno.EADDRINUSE:
        return f"cannot listen on {host}:{port}: another program uses that port; stop it, or choose another port with --port (server.port, DEVSTRAL_PROXY_PORT)"
    if exc.errno == errno.EACCES:
        return f"cannot listen on {host}:{port}: permission denied (ports below 1024 need privileges); choose another with --port"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"cannot listen on {host}:{port}: this machine has no address {host}; set --host (server.host, DEVSTRAL_PROXY_HOST)"
    return f"cannot listen on {host}:{port}: {exc.strerror or exc}"


def pin_malloc() -> None:
    """glibc raises its mmap threshold to the size of each large block freed (up to 32 MiB):
    after one large request body, the next ones land in the heap, and their memory stays with
    the process once freed (measured: 31 -> 76 MiB kept after twelve 31 MiB bodies). Pinned at
    its starting value (128 KiB), large blocks are mapped and given back when freed."""
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD; also stops the trim threshold's drift
    except (OSError, AttributeError):  # not glibc (musl, macOS): their allocators differ
        pass


def summary(proxy: Proxy, log) -> None:
    """What an operator needs to know at startup: the config, the backends, auth, mappings."""
    c = proxy.config
    log.info(
        "config %s; authentication %s; %d model mappings",
        os.environ.get("DEVSTRAL_PROXY_CONFIG") or "from flags",
        "on" if c.authentication.active_keys() else "off",
        len(c.model_mapping),
    )
    assert proxy.router is not None  # started
    for b in proxy.router.backends:
        generation = ", ".join(f"{m}: {g}" for m, g in sorted(b.generations.items())) or b.cfg.tokenizer_version
        state = {True: "up", False: "DOWN (no connection)", None: "not checked"}[b.up]
        log.info("backend %s %s dialect %s%s: %s", b.name, b.cfg.url, b.cfg.dialect, f" (generation {generation})" if b.cfg.dialect == "mistral" else "", state)


async def _reload(proxy: Proxy, load_config) -> None:
    """All or nothing: a file or a certificate that does not load leaves everything as it was,
    with one line naming it."""
    log = logging.getLogger("devstral_proxy")
    try:
        await proxy.reload(load_config())
    except ConfigError as exc:
        log.error("reload refused, the configuration in force stays: %s", exc)
    except Exception as exc:  # a bug: one line and its traceback, never an unretrieved task
        log.error("reload failed: %s", exc, exc_info=exc)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["translate"]:  # devstral-proxy translate: see what the proxy would send
        from .inspection import main as translate

        return translate(argv[1:])
    if argv[:1] == ["doctor"]:  # devstral-proxy doctor: check the live setup the config names
        from .doctor import main as doctor

        return doctor(argv[1:])
    args = parse_args(argv)
    if args.config:  # where the configuration comes from: on the startup line, and for SIGHUP
        os.environ["DEVSTRAL_PROXY_CONFIG"] = args.config
    overrides = {
        "upstream": args.upstream,
        "dialect": args.dialect,
        "api_key": args.api_key,
        "host": args.host,
        "port": args.port,
        "log_level": args.log_level,
        "workers": args.workers,
        "model_map": args.map,
    }

    def load_config():
        return load(args.config, overrides=overrides)

    try:
        config = load_config()
    except ConfigError as exc:
        print(f"devstral-proxy: invalid configuration: {exc}", file=sys.stderr)
        return 2
    logs.configure(config.logging.level, config.logging.format)
    import uvloop

    try:
        if config.server.workers > 1:
            from .workers import Supervisor

            def worker(sock, current) -> int:
                uvloop.run(serve(Proxy(current, supervisor.metrics_dir), sock, ready=False, load_config=load_config))
                return 0

            supervisor = Supervisor(config, worker, load_config)
            return supervisor.run()
        uvloop.run(serve(Proxy(config), load_config=load_config))
    except OSError as exc:
        print(f"devstral-proxy: {cannot_listen(config.server.host, config.server.port, exc)}", file=sys.stderr)
        return 1
    return 0
