"""Configuration: msgspec Structs loaded from TOML, YAML (the seed's config.yaml shape) or JSON,
then environment variables, then CLI flags, each overriding the one before.

An invalid config raises ConfigError naming the key and the problem; startup stops there.
"""

import difflib
import ipaddress
import os
import re
import tomllib
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import msgspec


class ConfigError(ValueError):
    pass


class _Section(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


# The OpenAI API surface vLLM serves beyond the routes the proxy translates.
RELAY_PATHS = (
    "/v1/audio/transcriptions",
    "/v1/audio/translations",
    "/v1/rerank",
    "/v1/score",
    "/tokenize",
    "/detokenize",
)


# The front protocols a backend may serve itself (BackendConfig.native_routes).
NATIVE_ROUTES = ("/v1/responses", "/v1/messages")


class ServerConfig(_Section):
    host: str = "127.0.0.1"
    port: int = 9000
    # 32 MiB: a few phone photos as base64 images. A body is held once while it is read and
    # about twice more while a dialect translates it, so memory is ~3x this per upload at once.
    max_body_bytes: int = 32 << 20
    max_header_bytes: int = 64 * 1024
    header_timeout: float = 10.0  # first byte of a request to the end of its headers
    body_timeout: float = 60.0  # end of headers to the end of the body
    keepalive_timeout: float = 75.0  # idle connection between requests
    max_pipeline: int = 16  # parsed requests queued on one connection before reading pauses
    backlog: int = 2048
    workers: int = 1  # processes sharing the port (SO_REUSEPORT)
    max_connections: int = 10000  # more open at once are answered 503 and closed
    request_timeout: float = 1800.0  # a whole exchange with the backend, streams included
    allow_ips: list[str] = []  # CIDRs allowed to connect; empty: everyone
    drain_timeout: float = 30.0  # on SIGTERM: how long requests in flight may take to finish
    # Backend routes relayed as they are (any method; "/x/*": everything under /x/). Anything
    # else that is not the proxy's own gets its 404. Admin routes (/v1/load_lora_adapter...)
    # are left out unless listed here.
    relay_paths: list[str] = msgspec.field(default_factory=lambda: list(RELAY_PATHS))
    cors_allow_origins: list[str] = []  # browser origins allowed to call the proxy ("*": any)
    # a client closing its side (EOF) while a backend works for it: "abort" (it left: the
    # backend's work is cancelled, as nginx does) or "answer" (a half-close: reply, then close)
    half_close: Literal["abort", "answer"] = "abort"
    trusted_proxies: list[str] = []  # CIDRs whose X-Forwarded-For is believed
    tls_cert: str | None = None  # PEM certificate (chain) to serve HTTPS; reloaded on SIGHUP
    tls_key: str | None = None


class BackendConfig(_Section):
    url: str
    name: str = ""
    dialect: Literal["openai", "mistral"] = "openai"
    # mistral dialect: the tokenizer generation; "auto" reads it from the model name, and
    # falls back to what every generation accepts
    tokenizer_version: Literal["auto", "v3", "v7", "v11", "v13", "v15"] = "auto"
    bridge_text: str = "Ok."  # assistant turn put between a tool result and a user turn
    # when to put it there: "auto" learns it (sent without it until the backend refuses that
    # order, then the request is sent again with it, and so on), "always", "never"
    bridge: Literal["auto", "always", "never"] = "auto"
    cancelled_tool_result: str = "The tool call was cancelled before it returned a result."
    images: bool = True  # false: the model takes no images; the proxy answers 400 itself
    tool_strict: bool = True  # keep `strict` in tool definitions; false for images whose mistral-common refuses it
    # a request whose max_tokens does not fit beside its prompt (vLLM's context-length 400) is
    # sent once more with the max_tokens that fits (false: the 400 goes to the client)
    fit_max_tokens: bool = True
    timeout: float | None = None  # wait for the first byte, and between bytes, of the reply
    connect_timeout: float = 5.0
    api_key: str | None = None
    pool_idle_seconds: float = 4.0  # retire idle connections before the backend does (uvicorn: 5 s)
    health_path: str = "/health"
    weight: float = 1.0  # share of requests, relative to the other backends
    models: list[str] = []  # the (backend) model names it serves; empty: any, or discovered
    max_reply_bytes: int = 64 << 20  # a whole (non-streamed) reply buffered for translation; 502 above
    # routes the backend serves itself, relayed to it untranslated (model mapped): of
    # "/v1/responses", "/v1/messages"; others are translated to chat completions
    native_routes: list[str] = []
    max_in_flight: int = 0  # requests sent to it at once; above, they wait in the proxy's queue (0: no cap)
    metrics_path: str | None = "/metrics"  # vLLM's engine load (num_requests_waiting/running, KV usage); None: not read
    # https:// backends
    tls_verify: bool = True  # false: no certificate check (only when asked for)
    ca_file: str | None = None  # PEM CA bundle to verify the backend with (else the system's)
    client_cert: str | None = None  # PEM client certificate (mutual TLS), with client_key
    client_key: str | None = None


class RoutingConfig(_Section):
    strategy: Literal["least_loaded", "affinity", "round_robin"] = "least_loaded"
    per_model: dict[str, Literal["least_loaded", "affinity", "round_robin"]] = {}  # client model -> strategy
    load_factor: float = 1.25  # affinity: a backend takes at most this times its share of the load
    affinity_bytes: int = 2048  # affinity: how much of the conversation's start identifies it
    eject_after: int = 3  # consecutive connect failures or 5xx before a backend is ejected
    cooldown: float = 1.0  # first ejection; doubles while it keeps failing
    max_cooldown: float = 60.0
    health_interval: float = 5.0  # active checks: GET each backend's health_path this often
    health_timeout: float = 2.0
    # the engines' own load, read from each vLLM's /metrics (least_loaded and affinity use it)
    load_interval: float = 1.0  # seconds between reads (0: off)
    max_engine_waiting: int = 4  # affinity: a pinned backend whose engine queue is longer is left (re-pinned)
    max_kv_usage: float = 0.95  # affinity: ... or whose KV cache is fuller than this


class JwtConfig(_Section):
    """Bearer tokens from an identity provider (tokens.py), beside or instead of static keys."""

    issuer: str  # the `iss` every token must carry
    audiences: list[str] = []  # one of them in `aud` (empty: `aud` not checked)
    jwks_url: str | None = None  # the provider's keys (fetched at start, on an unknown kid, and every jwks_refresh)
    jwks_file: str | None = None  # ... or from a file
    algorithms: list[str] = msgspec.field(default_factory=lambda: ["RS256", "ES256", "EdDSA"])  # asymmetric only: none and HMAC never
    leeway: float = 30.0  # seconds of clock skew allowed on exp / nbf / iat
    required_claims: list[str] = msgspec.field(default_factory=lambda: ["exp", "iss", "sub"])
    identity_claim: str = "sub"  # the caller is the issuer + this claim
    models_claim: str | None = None  # a claim listing the client models the caller may use (403 otherwise)
    tier_claim: str | None = None  # a claim naming the caller's [rate_limit.tiers] entry and [queue.clients] class
    jwks_refresh: float = 3600.0  # seconds between scheduled fetches of jwks_url
    jwks_min_interval: float = 30.0  # an unknown kid fetches the keys again at most this often
    jwks_timeout: float = 5.0
    jwks_max_bytes: int = 1 << 20


class AuthConfig(_Section):
    enabled: bool | None = None  # None: on when any key is configured
    valid_api_keys: list[str] = []  # the seed config's name
    api_keys: list[str] = []
    api_keys_file: str | None = None  # one key a line; blank lines and # comments ignored
    jwt: JwtConfig | None = None  # [authentication.jwt]: tokens of an identity provider

    def keys(self) -> list[str]:
        """Every configured key (ConfigError if the file cannot be read)."""
        keys = [*self.valid_api_keys, *self.api_keys]
        if self.api_keys_file:
            try:
                lines = Path(self.api_keys_file).read_text().splitlines()
            except OSError as exc:
                raise ConfigError(f"authentication.api_keys_file: cannot read {self.api_keys_file}: {exc.strerror}") from None
            keys += [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
        return keys

    def active_keys(self) -> list[str]:
        """The keys requests must present; empty when authentication is off."""
        return [] if self.enabled is False else self.keys()


class RequestConfig(_Section):
    max_content_length: int | None = None
    default_timeout: float | None = None
    max_items: int = 100_000  # messages (or input items) and their content blocks in one front request: 400 beyond


class RateTier(_Section):
    """The limits of callers whose token names this tier (authentication.jwt.tier_claim)."""

    requests_per_minute: int = 0
    tokens_per_minute: int = 0


class RateLimitConfig(_Section):
    requests_per_minute: int = 0  # per API key (or per address without keys); 0: no limit
    tokens_per_minute: int = 0  # counted from `usage` in replies and streams
    tiers: dict[str, RateTier] = {}  # a caller's tier (from its token) -> its own limits
    redis_url: str | None = None  # e.g. "redis://127.0.0.1:6379/0": one limit for all instances
    redis_prefix: str = "devstral-proxy:rl"
    redis_timeout: float = 0.1  # Redis must answer within this (seconds), else requests go unlimited


class ResponsesConfig(_Section):
    """/v1/responses: where stored responses (`store: true`) live for previous_response_id."""

    store: Literal["memory", "redis", "off"] = "memory"
    ttl: float = 3600.0  # seconds a stored response can be named by a follow-up turn
    max_stored: int = 10000  # memory: the oldest go first beyond this many
    max_bytes: int = 256 << 20  # memory: ... or beyond this many bytes in all
    redis_url: str | None = None  # store = "redis": defaults to rate_limit.redis_url
    redis_prefix: str = "devstral-proxy:resp"
    redis_timeout: float = 0.5
    # hosted tools (web_search, file_search, code_interpreter, image_generation, mcp, ...):
    # "drop" leaves them out (one log line per kind), "refuse" answers 400
    hosted_tools: Literal["drop", "refuse"] = "drop"


class CacheConfig(_Section):
    """The response cache (cache.py): off by default."""

    store: Literal["off", "memory", "redis"] = "off"
    ttl: float = 300.0  # seconds an entry is answered
    max_bytes: int = 64 << 20  # memory: least recently used entries go beyond this many bytes
    max_entry_bytes: int = 1 << 20  # a completion larger than this is not kept
    shared: bool = False  # false: an entry is answered only to the caller (key, or address) that made it
    keep_truncated: bool = False  # keep replies cut by max_tokens (finish_reason "length") too
    max_waiting: int = 64  # identical requests that wait for one in flight (single flight); beyond, they go on
    redis_url: str | None = None  # store = "redis": defaults to rate_limit.redis_url
    redis_prefix: str = "devstral-proxy:cache"
    redis_timeout: float = 0.5


class TracingConfig(_Section):
    """OpenTelemetry tracing (tracing.py): off until an OTLP endpoint is named."""

    otlp_endpoint: str | None = None  # e.g. "http://otel-collector:4318/v1/traces" (OTLP over HTTP/protobuf)
    service_name: str = "devstral-proxy"
    sample_ratio: float = 1.0  # requests without a sampled parent traced at this ratio (parent-based)
    headers: dict[str, str] = {}  # sent with every export (a collector's token)
    max_queue: int = 2048  # spans waiting for export; beyond, dropped and counted
    export_timeout: float = 5.0


class MessagesConfig(_Section):
    """/v1/messages: Anthropic's server tools (web_search, web_fetch, code_execution, ...)."""

    server_tools: Literal["drop", "refuse"] = "drop"  # as responses.hosted_tools


class QueueClient(_Section):
    weight: float = 1.0  # share of the backends' room relative to other clients
    priority: int = 0  # higher classes are served first
    max_share: float | None = None  # this client's cap on the capped slots (else queue.max_share)


class QueueConfig(_Section):
    """Requests that find every backend for their model at max_in_flight wait here."""

    max_wait: float = 30.0  # seconds a request may wait; then 503 queue_timeout with Retry-After
    max_queued: int = 1000  # requests waiting at most; beyond, 503 queue_full with Retry-After
    clients: dict[str, QueueClient] = {}  # API key (or client address without keys) -> weight, priority
    fair: bool = True  # false: one first-come-first-served line for everyone (for comparison)
    # the most of the capped slots (sum of max_in_flight over a model's backends) one client
    # may hold; below 1, room stays free for the others' next request (1: work-conserving)
    max_share: float = 1.0


class LoggingConfig(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "debug", "info", "warning", "error"] = "INFO"
    format: Literal["json", "text"] = "json"  # every line of the proxy's own
    access: bool = True  # one JSON line per request on stderr (at INFO)
    log_bodies: bool = False  # add request bodies to those lines (the seed: include_request_body)
    log_backend_bodies: bool = False  # add what the backend was sent (after translation): logs prompts
    include_request_body: bool = False
    include_response_body: bool = False  # the seed's key; true is refused: replies are never logged


class ImagesConfig(_Section):
    """Image URLs in requests, which the backend fetches itself (vLLM does)."""

    url_policy: Literal["public", "https", "all"] = "public"  # public: http(s) to public hosts; file: and private addresses refused
    allowed_domains: list[str] = []  # when set: only these hosts (and their subdomains), whatever the policy


class Variant(_Section):
    """One model of a weighted split: `model_mapping = { "gpt-4" = [{ model = "a", weight = 90 }, ...] }`."""

    model: str
    weight: float = 1.0
    backends: list[str] = []  # pinned: only these backends serve this variant (else any that serves the model)


class Config(_Section):
    server: ServerConfig = msgspec.field(default_factory=ServerConfig)
    backends: dict[str, BackendConfig] | list[BackendConfig] = msgspec.field(default_factory=dict)
    model_mapping: dict[str, str | list[Variant]] = {}  # a list: a weighted split between models (split.py)
    images: ImagesConfig = msgspec.field(default_factory=ImagesConfig)
    authentication: AuthConfig = msgspec.field(default_factory=AuthConfig)
    request: RequestConfig = msgspec.field(default_factory=RequestConfig)
    rate_limit: RateLimitConfig = msgspec.field(default_factory=RateLimitConfig)
    routing: RoutingConfig = msgspec.field(default_factory=RoutingConfig)
    logging: LoggingConfig = msgspec.field(default_factory=LoggingConfig)
    responses: ResponsesConfig = msgspec.field(default_factory=ResponsesConfig)
    messages: MessagesConfig = msgspec.field(default_factory=MessagesConfig)
    queue: QueueConfig = msgspec.field(default_factory=QueueConfig)
    cache: CacheConfig = msgspec.field(default_factory=CacheConfig)
    tracing: TracingConfig = msgspec.field(default_factory=TracingConfig)

    def model_map(self) -> dict[str, str]:
        """Each client model to the backend's name for it; a split's to its heaviest variant
        (what /v1/models lists it as, and counts tokens with)."""
        return {k: v if isinstance(v, str) else max(v, key=lambda x: x.weight).model for k, v in self.model_mapping.items()}

    def model_splits(self) -> dict[str, list[Variant]]:
        return {k: v for k, v in self.model_mapping.items() if not isinstance(v, str)}

    def backend_list(self) -> list[BackendConfig]:
        """Backends in order, each with its name set."""
        if isinstance(self.backends, dict):
            return [msgspec.structs.replace(b, name=b.name or name) for name, b in self.backends.items()]
        return [msgspec.structs.replace(b, name=b.name or f"backend{i}") for i, b in enumerate(self.backends)]

    @property
    def max_body_bytes(self) -> int:
        return self.request.max_content_length or self.server.max_body_bytes

    def backend_timeout(self, backend: BackendConfig) -> float:
        return backend.timeout or self.request.default_timeout or 300.0

    def sweep_tick(self) -> float:
        """How often deadlines are checked: a third of the shortest timeout, at most 0.5 s."""
        s = self.server
        shortest = min(s.header_timeout, s.body_timeout, s.keepalive_timeout, s.request_timeout, *(self.backend_timeout(b) for b in self.backend_list()))
        return min(0.5, shortest / 3)


def _read_file(path: Path) -> dict:
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    try:
        if path.suffix in (".yaml", ".yml"):
            import yaml

            doc = yaml.safe_load(text)
        elif path.suffix == ".json":
            doc = msgspec.json.decode(text)
        else:
            doc = tomllib.loads(text.decode())
    except Exception as exc:  # the parsers raise their own error classes
        raise ConfigError(f"{path}: not valid {path.suffix.lstrip('.') or 'toml'}: {exc}") from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: the top level must be a table of sections")
    return doc


def _check(config: Config) -> None:
    backends = config.backend_list()
    if not backends:
        raise ConfigError("backends: at least one backend is needed (config file, --upstream, or DEVSTRAL_PROXY_UPSTREAM)")
    names = set()
    for b in backends:
        key = f"backends.{b.name}"
        parts = urlsplit(b.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"{key}.url: expected an http:// or https:// URL, got {b.url!r}")
        for attr in ("ca_file", "client_cert", "client_key"):
            path = getattr(b, attr)
            if path and not Path(path).is_file():
                raise ConfigError(f"{key}.{attr}: no such file: {path}")
        try:
            _ = parts.port  # urlsplit checks the port only when asked for it
        except ValueError:
            raise ConfigError(f"{key}.url: invalid port in {b.url!r}") from None
        if b.name in names:
            raise ConfigError(f"{key}: duplicate backend name")
        names.add(b.name)
        if b.weight <= 0:
            raise ConfigError(f"{key}.weight: must be positive, got {b.weight}")
        for attr in ("timeout", "connect_timeout", "pool_idle_seconds", "max_reply_bytes"):
            value = getattr(b, attr)
            if value is not None and value <= 0:
                raise ConfigError(f"{key}.{attr}: must be positive, got {value}")
    s = config.server
    if not 0 <= s.port <= 65535:
        raise ConfigError(f"server.port: must be 0..65535, got {s.port}")
    for attr in (
        "max_body_bytes",
        "max_header_bytes",
        "header_timeout",
        "body_timeout",
        "keepalive_timeout",
        "max_pipeline",
        "workers",
        "max_connections",
        "request_timeout",
    ):
        if getattr(s, attr) <= 0:
            raise ConfigError(f"server.{attr}: must be positive, got {getattr(s, attr)}")
    rl = config.rate_limit
    if rl.requests_per_minute < 0 or rl.tokens_per_minute < 0:
        raise ConfigError("rate_limit: limits must be 0 (none) or positive")
    if rl.redis_url and not rl.redis_url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(f"rate_limit.redis_url: expected redis://host:port/db, got {rl.redis_url!r}")
    if rl.redis_url:
        try:
            import redis.asyncio  # noqa: F401
        except ImportError:
            raise ConfigError("rate_limit.redis_url: needs the redis client: pip install 'devstral-proxy[redis]'") from None
    keys = config.authentication.keys()  # reads api_keys_file: an unreadable one stops startup
    if config.authentication.enabled and not keys and config.authentication.jwt is None:
        raise ConfigError("authentication.valid_api_keys: authentication is enabled but no key is configured")
    for name in ("allow_ips", "trusted_proxies"):
        for i, cidr in enumerate(getattr(s, name)):
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError as exc:
                raise ConfigError(f"server.{name}[{i}]: {exc}") from None
    if config.logging.include_response_body:
        raise ConfigError("logging.include_response_body: not supported: replies are never logged (request bodies: log_bodies)")
    if bool(s.tls_cert) != bool(s.tls_key):
        raise ConfigError("server.tls_cert and server.tls_key: both are needed to serve HTTPS")
    for attr in ("tls_cert", "tls_key"):
        path = getattr(s, attr)
        if path and not Path(path).is_file():
            raise ConfigError(f"server.{attr}: no such file: {path}")
    for i, path in enumerate(s.relay_paths):
        if not path.startswith("/"):
            raise ConfigError(f"server.relay_paths[{i}]: a path starting with '/', got {path!r}")
    for b in backends:
        for i, route in enumerate(b.native_routes):
            if route not in NATIVE_ROUTES:
                raise ConfigError(f"backends.{b.name}.native_routes[{i}]: one of {', '.join(NATIVE_ROUTES)}, got {route!r}")
    _check_responses(config)
    _check_splits(config, names)
    _check_jwt(config)
    _check_tracing(config.tracing)
    _check_cache(config)
    q = config.queue
    if q.max_wait <= 0 or q.max_queued < 0 or not 0 < q.max_share <= 1:
        raise ConfigError("queue: max_wait must be positive, max_queued 0 or more, max_share in (0, 1]")
    for name, client in q.clients.items():
        if client.weight <= 0:
            raise ConfigError(f"queue.clients.{name}.weight: must be positive, got {client.weight}")
        if client.max_share is not None and not 0 < client.max_share <= 1:
            raise ConfigError(f"queue.clients.{name}.max_share: in (0, 1], got {client.max_share}")
    for b in backends:
        if b.max_in_flight < 0:
            raise ConfigError(f"backends.{b.name}.max_in_flight: 0 (no cap) or positive, got {b.max_in_flight}")


def _check_tracing(t: TracingConfig) -> None:
    if not t.otlp_endpoint:
        return
    if not t.otlp_endpoint.startswith(("http://", "https://")):
        raise ConfigError(f"tracing.otlp_endpoint: an http:// or https:// URL, got {t.otlp_endpoint!r}")
    if not 0 <= t.sample_ratio <= 1 or t.max_queue <= 0 or t.export_timeout <= 0:
        raise ConfigError("tracing: sample_ratio in [0, 1], max_queue and export_timeout positive")
    try:
        import opentelemetry.exporter.otlp.proto.http.trace_exporter
        import opentelemetry.sdk.trace  # noqa: F401
    except ImportError:
        raise ConfigError("tracing.otlp_endpoint: needs the OpenTelemetry SDK: pip install 'devstral-proxy[otel]'") from None


def _check_jwt(config: Config) -> None:
    j = config.authentication.jwt
    if j is None:
        return
    if bool(j.jwks_url) == bool(j.jwks_file):
        raise ConfigError("authentication.jwt: one of jwks_url or jwks_file is needed")
    if j.jwks_file and not Path(j.jwks_file).is_file():
        raise ConfigError(f"authentication.jwt.jwks_file: no such file: {j.jwks_file}")
    bad = [a for a in j.algorithms if a not in ASYMMETRIC]
    if bad or not j.algorithms:
        raise ConfigError(f"authentication.jwt.algorithms: asymmetric ones only ({', '.join(ASYMMETRIC)}), got {bad or 'none'}")
    try:
        import jwt  # noqa: F401  (PyJWT, with cryptography)
    except ImportError:
        raise ConfigError("authentication.jwt: needs PyJWT: pip install 'devstral-proxy[jwt]'") from None


ASYMMETRIC = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")


def _check_cache(config: Config) -> None:
    c = config.cache
    for attr in ("ttl", "max_bytes", "max_entry_bytes", "redis_timeout"):
        if getattr(c, attr) <= 0:
            raise ConfigError(f"cache.{attr}: must be positive, got {getattr(c, attr)}")
    if c.max_waiting < 0:
        raise ConfigError(f"cache.max_waiting: 0 or more, got {c.max_waiting}")
    if c.store == "redis":
        if not (c.redis_url or config.rate_limit.redis_url):
            raise ConfigError("cache.store = 'redis' needs cache.redis_url (or rate_limit.redis_url)")
        c.redis_url = c.redis_url or config.rate_limit.redis_url
        try:
            import redis.asyncio  # noqa: F401
        except ImportError:
            raise ConfigError("cache.store = 'redis': needs the redis client: pip install 'devstral-proxy[redis]'") from None


def _check_splits(config: Config, backends: set[str]) -> None:
    for client, variants in config.model_splits().items():
        key = f"model_mapping.{client}"
        if not variants:
            raise ConfigError(f"{key}: a split needs at least one model")
        for i, v in enumerate(variants):
            if not v.model or v.weight <= 0:
                raise ConfigError(f"{key}[{i}]: a model name and a positive weight are needed")
            for name in v.backends:
                if name not in backends:
                    raise ConfigError(f"{key}[{i}].backends: no backend named {name!r}")


def _check_responses(config: Config) -> None:
    r = config.responses
    for attr in ("ttl", "max_stored", "max_bytes", "redis_timeout"):
        if getattr(r, attr) <= 0:
            raise ConfigError(f"responses.{attr}: must be positive, got {getattr(r, attr)}")
    if r.store == "redis":
        if not (r.redis_url or config.rate_limit.redis_url):
            raise ConfigError("responses.store = 'redis' needs responses.redis_url (or rate_limit.redis_url)")
        if r.redis_url is None:
            r.redis_url = config.rate_limit.redis_url
        try:
            import redis.asyncio  # noqa: F401
        except ImportError:
            raise ConfigError("responses.store = 'redis': needs the redis client: pip install 'devstral-proxy[redis]'") from None


def load(path: str | None = None, *, env: Mapping[str, str] | None = None, overrides: dict | None = None) -> Config:
    """Build the config: file, then DEVSTRAL_PROXY_* variables, then `overrides` (CLI flags)."""
    variables = os.environ if env is None else env
    path = path or variables.get("DEVSTRAL_PROXY_CONFIG")
    return build(_read_file(Path(path)) if path else {}, env=variables, overrides=overrides)


def build(doc: dict, *, env: Mapping[str, str] | None = None, overrides: dict | None = None) -> Config:
    """A config from a parsed document (the file's sections), variables and flags."""
    env = os.environ if env is None else env
    doc = dict(doc)
    flat: dict[str, Any] = {
        "upstream": env.get("DEVSTRAL_PROXY_UPSTREAM"),
        "dialect": env.get("DEVSTRAL_PROXY_DIALECT"),
        "host": env.get("DEVSTRAL_PROXY_HOST"),
        "port": env.get("DEVSTRAL_PROXY_PORT"),
        "log_level": env.get("DEVSTRAL_PROXY_LOG_LEVEL"),
        "workers": env.get("DEVSTRAL_PROXY_WORKERS"),
        "api_key": env.get("DEVSTRAL_PROXY_BACKEND_API_KEY"),
        "model_map": [pair for pair in env.get("DEVSTRAL_PROXY_MODEL_MAP", "").split(",") if pair.strip()] or None,
    }
    flat.update({k: v for k, v in (overrides or {}).items() if v is not None})
    server = dict(doc.get("server") or {})
    if flat["host"]:
        server["host"] = flat["host"]
    if flat["port"] not in (None, ""):
        try:
            server["port"] = int(flat["port"])
        except ValueError:
            raise ConfigError(f"server.port: not a number: {flat['port']!r}") from None
    if flat["workers"] not in (None, ""):
        try:
            server["workers"] = int(flat["workers"])
        except ValueError:
            raise ConfigError(f"server.workers: not a number: {flat['workers']!r}") from None
    doc["server"] = server
    if flat["upstream"]:
        primary = {"url": flat["upstream"], **({"dialect": flat["dialect"]} if flat["dialect"] else {})}
        if flat["api_key"]:
            primary["api_key"] = flat["api_key"]
        doc["backends"] = {"primary": primary}
    elif flat["dialect"]:
        raise ConfigError("dialect: --dialect needs --upstream (set it per backend in the config file)")
    if flat["model_map"]:
        doc["model_mapping"] = {**(doc.get("model_mapping") or {}), **_pairs(flat["model_map"])}
    if flat["log_level"]:
        doc["logging"] = {**(doc.get("logging") or {}), "level": flat["log_level"]}
    backends = doc.pop("backends", None) or {}
    config = _convert(doc, Config, "")
    if isinstance(backends, dict):
        config.backends = {name: _convert(b, BackendConfig, f"backends.{name}") for name, b in backends.items()}
    elif isinstance(backends, list):
        config.backends = [_convert(b, BackendConfig, f"backends[{i}]") for i, b in enumerate(backends)]
    else:
        raise ConfigError("backends: expected a table of named backends or a list")
    _check(config)
    return config


def _pairs(items: list[str]) -> dict[str, str]:
    """`--map CLIENT=BACKEND` flags (or DEVSTRAL_PROXY_MODEL_MAP's comma-separated pairs)."""
    out = {}
    for item in items:
        client, sep, backend = item.partition("=")
        client, backend = client.strip(), backend.strip()
        if not sep or not client or not backend:
            raise ConfigError(f"model_mapping: expected CLIENT=BACKEND, got {item!r}")
        out[client] = backend
    return out


def _convert(doc, kind, where: str):
    """msgspec says `... - at `$.server.port``; say `server.port: ...`, with what would be
    right: the values an option takes, the option meant by a misspelt one. Strict: a quoted
    number (`port = "8080"`) is refused, not guessed at (variables and flags are converted
    before)."""
    try:
        return msgspec.convert(doc, kind, strict=True)
    except msgspec.ValidationError as exc:
        message, _, at = str(exc).partition(" - at `$")
        at = at.rstrip("`")
        path = at.lstrip(".")
        unknown = re.match(r"Object contains unknown field `(.+)`", message)
        if unknown:
            path = f"{path}.{unknown.group(1)}" if path else unknown.group(1)
        message += _hint(kind, path, message)
        at = where + at if where else at.lstrip(".")
        raise ConfigError(f"{at}: {message}" if at else f"{where or 'config'}: {message}") from None


def _hint(kind, path: str, message: str) -> str:
    """What the option at `path` (of the struct type `kind`) takes, or which one was meant."""
    owner, field = kind, None
    for name in path.split("."):
        if name.startswith("[") or not isinstance(owner, type) or not issubclass(owner, msgspec.Struct):
            return ""
        fields = {f.name: f.type for f in msgspec.structs.fields(owner)}
        if name not in fields:
            close = difflib.get_close_matches(name, list(fields), n=1)
            return f" (did you mean `{close[0]}`?)" if close else f" (the options here: {', '.join(sorted(fields))})"
        field = fields[name]
        owner = next((a for a in typing.get_args(field) if isinstance(a, type) and issubclass(a, msgspec.Struct)), field)
    values = [a for a in typing.get_args(field) if isinstance(a, str)]
    if "enum" in message and values:
        return f" (one of: {', '.join(values)})"
    if "Expected `int`" in message or "Expected `float`" in message:
        return " (a number, without quotes)"
    return ""
