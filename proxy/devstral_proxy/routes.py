"""The route table: (path, method) to handler, prefixes for relayed paths, and one rule for
what matches nothing (404) or matches a path with another method (405 with Allow).

A handler is called with the request's cycle (cycle.Cycle).
"""

from .errors import Failure


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
