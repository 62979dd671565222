"""Backends and the choice of one for a request.

A Backend holds its config, its dialect and its connection pool, and builds request heads.
"""

import msgspec

from translate.dialect import Prepared
from translate.mistral import MistralDialect, MistralOptions
from translate.openai import OpenAIDialect

from .config import BackendConfig, Config
from .http import HOP_BY_HOP, relay_headers
from .upstream import Pool


def make_dialect(cfg: BackendConfig):
    if cfg.dialect == "mistral":
        generation = None if cfg.tokenizer_version == "auto" else cfg.tokenizer_version
        return MistralDialect(MistralOptions(generation, cfg.bridge_text, cfg.images, cfg.cancelled_tool_result))
    return OpenAIDialect()


# Client headers never forwarded: hop-by-hop, the client's own credentials (the backend gets
# its configured key instead), and compression (the proxy must read what it rewrites).
_SKIP_FORWARD = HOP_BY_HOP | {b"authorization", b"accept-encoding"}


class Backend:
    def __init__(self, cfg: BackendConfig, config: Config) -> None:
        self.cfg = cfg
        self.key = identity_of(cfg, config)
        self.name = cfg.name
        self.timeout = config.backend_timeout(cfg)
        self.pool = Pool(cfg.url, cfg.pool_idle_seconds, cfg.connect_timeout)
        self.dialect = make_dialect(cfg)
        self._fixed = b"host: " + self.pool.host_header + b"\r\n"
        if cfg.api_key:
            self._fixed += b"authorization: Bearer " + cfg.api_key.encode() + b"\r\n"
        self._base = self.pool.base_path.encode()

    def prepare(self, path: str, body: bytes, model_map: dict[str, str], want_usage: bool = False) -> Prepared:
        return self.dialect.prepare(path, body, model_map, want_usage)

    def request_head(self, method: bytes, target: bytes, headers: bytes, length: int) -> bytes:
        """`headers` are the client's, already filtered by forward_headers()."""
        return b"%s %s%s HTTP/1.1\r\n%scontent-length: %d\r\n%s\r\n" % (method, self._base, target, self._fixed, length, headers)

    def close(self) -> None:
        self.pool.close()


def identity_of(cfg: BackendConfig, config: Config) -> bytes:
    """What makes two backend definitions the same backend (a reload keeps its pool)."""
    return msgspec.json.encode([cfg, config.backend_timeout(cfg)])


def forward_headers(headers: list[tuple[bytes, bytes]]) -> bytes:
    return relay_headers(headers, _SKIP_FORWARD)


class Router:
    """Which backend serves a request. One backend today; balancing comes with several."""

    def __init__(self, backends: list[Backend]) -> None:
        self.backends = backends

    def pick(self, model: str | None) -> Backend:
        return self.backends[0]

    def close(self) -> None:
        for b in self.backends:
            b.close()

    def replaced(self, config: Config) -> "Router":
        """The router for a new config: unchanged backends (and their pools) are kept, the
        others retire once their requests in flight are done."""
        old = {b.key: b for b in self.backends}
        backends = []
        for cfg in config.backend_list():
            kept = old.pop(identity_of(cfg, config), None)
            backends.append(kept if kept is not None else Backend(cfg, config))
        for b in old.values():
            b.close()
        return Router(backends)
