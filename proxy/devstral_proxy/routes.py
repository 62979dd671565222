"""The route table: (path, method) to handler, prefixes for relayed paths, and one rule for
what matches nothing (404) or matches a path with another method (405 with Allow).

A handler is called with the request's cycle (cycle.Cycle).
"""

from devstral_translate.dialect import ROUTES

from .errors import Failure

_GET = (b"GET", b"HEAD")


class RouteTable:
    def __init__(self) -> None:
        self.paths: dict[str, dict[bytes, object]] = {}
        self.prefixes: list[tuple[str, object]] = []

    def add(self, methods: tuple[bytes, ...], path: str, handler) -> None:
        self.paths.setdefault(path, {}).update(dict.fromkeys(methods, handler))

    def add_any(self, path: str, handler) -> None:
        """Any method on `path`; a path ending in "/*", any method on any path under it."""
        if path.endswith("/*"):
            self.add_prefix(path[:-1], handler)
        else:
            self.paths.setdefault(path, {})[b"*"] = handler

    def add_prefix(self, prefix: str, handler) -> None:
        """Any method on a path under `prefix` that no exact route matches."""
        self.prefixes.append((prefix, handler))

    def known(self, path: str) -> bool:
        return path in self.paths

    def dispatch(self, cycle) -> None:
        req = cycle.req
        path = cycle.path
        methods = self.paths.get(path)
        if methods is not None:
            handler = methods.get(req.method) or methods.get(b"*")
            if handler is not None:
                handler(cycle)  # type: ignore[operator]
                return
            shown = [m.decode() for m in methods if m != b"HEAD"]
            allow = b"allow: %s\r\n" % ", ".join(shown).encode()
            cycle.fail(Failure(405, f"Method {req.method.decode()} not allowed on {path}; use {' or '.join(shown)}.", "method_not_allowed", headers=allow))
            return
        for prefix, handler in self.prefixes:
            if path.startswith(prefix):
                handler(cycle)  # type: ignore[operator]
                return
        if path.startswith("/v1/v1/"):  # a base URL ending in /v1 given to a client that adds /v1 itself
            why = f"Unknown route: {req.method.decode()} {path}. This client adds /v1 itself: its base URL should not end in /v1 (use http://host:port)."
            cycle.fail(Failure(404, why, "not_found"))
            return
        cycle.fail(Failure(404, f"Unknown route: {req.method.decode()} {path}.", "not_found"))


def proxy_routes(inference, local, fronts, relay_paths: list[str]) -> RouteTable:
    """Every route the proxy answers: the inference routes (with and without /v1), the proxy's
    own (models, health, metrics), the front protocols, and the relayed backend paths."""
    routes = RouteTable()
    for path in ROUTES:
        routes.add((b"POST",), path, inference.entry)
        routes.add((b"POST",), path.removeprefix("/v1"), inference.unprefixed)  # base URL without /v1
    routes.add(_GET, "/v1/models", local.models)
    routes.add(_GET, "/models", local.models)
    routes.add_prefix("/v1/models/", local.model)
    routes.add_prefix("/models/", local.model)
    routes.add(_GET, "/", local.root)
    routes.add(_GET, "/health", local.health)
    routes.add(_GET, "/health/live", local.live)
    routes.add(_GET, "/health/ready", local.ready)
    routes.add((b"GET",), "/metrics", local.metrics_text)
    for path in ("/v1/responses", "/responses"):
        routes.add((b"POST",), path, fronts.responses)
        routes.add_prefix(path + "/", fronts.stored)
    routes.add((b"POST",), "/v1/messages", fronts.messages)
    routes.add((b"POST",), "/v1/messages/count_tokens", fronts.count_tokens)
    for path in relay_paths:
        routes.add_any(path, inference.relay_entry)
    return routes
