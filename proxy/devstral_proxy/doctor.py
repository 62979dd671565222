"""`devstral-proxy doctor`: the configuration, then the live setup it names, checked one line at
a time with what to do when a check fails: each backend reachable (and why not), its models and
the Mistral generation of each, one small request through its dialect; Redis; key and
certificate files; the listening port. Exit status 1 when a check failed, 2 when the
configuration does not load.

    devstral-proxy doctor [--config FILE]      (or DEVSTRAL_PROXY_CONFIG, and the usual flags' variables)
"""

import argparse
import socket
import sys

import msgspec

from .config import ConfigError, load
from .errors import unreachable_because
from .fetch import decode_json, fetch
from .monitor import BackendMonitor
from .router import Backend, Router
from .tls import server_context

_PING = {"messages": [{"role": "user", "content": "Say OK."}], "max_tokens": 1, "temperature": 0}


class Report:
    def __init__(self, out) -> None:
        self.out = out
        self.failed = 0

    def ok(self, what: str) -> None:
        self.out.write(f"ok    {what}\n")

    def fail(self, what: str, fix: str) -> None:
        self.failed += 1
        self.out.write(f"FAIL  {what}: {fix}\n")

    def note(self, what: str) -> None:
        self.out.write(f"      {what}\n")


async def _backend(backend: Backend, monitor: BackendMonitor, model_map: dict[str, str], report: Report) -> None:
    name, url = backend.name, backend.cfg.url
    try:
        status, _, _ = await fetch(backend, b"GET", backend.cfg.health_path, monitor.routing.health_timeout)
    except OSError as exc:
        report.fail(f"backend {name} ({url}) reachable", unreachable_because(name, exc))
        return
    if status >= 500:
        report.fail(f"backend {name} ({url}) healthy", f"{backend.cfg.health_path} answers {status}: the engine says it cannot serve (see its log)")
        return
    report.ok(f"backend {name} ({url}) reachable")
    try:
        models = await monitor.list_models(backend)
    except Exception as exc:
        report.fail(f"backend {name}: its model list", f"GET /v1/models failed ({exc}); set backends.{name}.models to the names it serves")
        return
    served: list[str] = [m["id"] for m in models if isinstance(m.get("id"), str)] or sorted(backend.cfg.models)
    report.ok(f"backend {name} serves {', '.join(served[:10]) or 'no model'}{' ...' if len(served) > 10 else ''}")
    if backend.cfg.dialect == "mistral":
        for model in served[:10]:
            generation = backend.generations.get(model) or (backend.cfg.tokenizer_version if backend.cfg.tokenizer_version != "auto" else None)
            if generation:
                report.note(f"{model}: Mistral tokenizer generation {generation}")
            else:
                report.note(f"{model}: Mistral generation unknown: what every generation accepts is sent (set backends.{name}.tokenizer_version)")
    if not served:
        return
    body = msgspec.json.encode({"model": served[0], **_PING})
    try:
        prepared = backend.prepare("/v1/chat/completions", body, model_map)
        status, _, reply = await fetch(backend, b"POST", "/v1/chat/completions", backend.timeout, prepared.body)
    except Exception as exc:
        report.fail(f"backend {name}: a request through the {backend.cfg.dialect} dialect", str(exc))
        return
    if status == 200 and isinstance(decode_json(reply), dict):
        report.ok(f"backend {name}: a request through the {backend.cfg.dialect} dialect answered")
    else:
        hint = ' (a Mistral model behind an openai dialect? set dialect = "mistral")' if status == 400 and backend.cfg.dialect != "mistral" else ""
        report.fail(f"backend {name}: a request through the {backend.cfg.dialect} dialect", f"status {status}: {reply[:300].decode(errors='replace')}{hint}")


async def _redis(url: str, what: str, report: Report) -> None:
    try:
        import redis.asyncio
    except ImportError:
        report.fail(f"{what} ({url})", "the redis client is missing: pip install 'devstral-proxy[redis]'")
        return
    client = redis.asyncio.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    try:
        await client.ping()
        report.ok(f"{what} ({url}) answers")
    except Exception as exc:
        report.fail(f"{what} ({url})", f"no answer ({exc}): is redis-server running there?")
    finally:
        await client.aclose()


async def check(config, out) -> int:
    report = Report(out)
    report.ok("configuration loads")
    s = config.server
    if s.tls_cert:
        try:
            server_context(s)
            report.ok(f"certificate {s.tls_cert} and key {s.tls_key} load and match")
        except Exception as exc:
            report.fail(f"certificate {s.tls_cert} / key {s.tls_key}", f"{exc}: renew them, or check the paths")
    with socket.socket() as probe:
        try:
            probe.bind((s.host, s.port))
            report.ok(f"{s.host}:{s.port} is free to listen on")
        except OSError as exc:
            report.fail(f"{s.host}:{s.port}", f"cannot be listened on ({exc.strerror}): another program (this proxy, running?) uses it; --port moves it")
    router = Router([Backend(b, config) for b in config.backend_list()], config.routing)
    monitor = BackendMonitor(router, config.routing)
    try:
        for backend in router.backends:
            await _backend(backend, monitor, config.model_map(), report)
        urls = {config.rate_limit.redis_url: "rate limits' Redis"}
        if config.responses.store == "redis":
            urls.setdefault(config.responses.redis_url, "stored responses' Redis")
        if config.cache.store == "redis":
            urls.setdefault(config.cache.redis_url, "response cache's Redis")
        for url, what in urls.items():
            if url:
                await _redis(url, what, report)
    finally:
        router.close()
    report.out.write(f"{report.failed} check{'s' if report.failed != 1 else ''} failed\n" if report.failed else "every check passed\n")
    return 1 if report.failed else 0


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="devstral-proxy doctor", description=__doc__.splitlines()[0])
    p.add_argument("--config", "-c", help="the config file (env: DEVSTRAL_PROXY_CONFIG)")
    args = p.parse_args(argv)
    try:
        config = load(args.config)
    except ConfigError as exc:
        print(f"FAIL  configuration: {exc}", file=sys.stdout)
        return 2
    import uvloop

    return uvloop.run(check(config, sys.stdout))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
